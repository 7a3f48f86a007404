using System.Globalization;
using System.Text.RegularExpressions;

namespace PSContainers.Runtime.Cgroups;

[Flags]
public enum DeviceAccess
{
    None = 0,
    Read = 1,
    Write = 2,
    Mknod = 4,
    All = Read | Write | Mknod,
}

/// <summary>
/// One devices-controller rule in the v1 syntax: <c>c 1:3 rwm</c>, <c>b *:* m</c>, <c>a</c> (all
/// devices, all access), each allowing or denying. Rules apply in order; the last matching one wins.
/// </summary>
public sealed record DeviceRule(bool Allow, char Type, int? Major, int? Minor, DeviceAccess Access)
{
    private static readonly Regex Syntax = new(
        @"^(?<type>[abc])(?:\s+(?<major>\d+|\*):(?<minor>\d+|\*)(?:\s+(?<access>[rwm]{1,3}))?)?$",
        RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture);

    /// <summary>Parses "c 1:3 rwm"; an optional leading "allow"/"deny" overrides <paramref name="allow"/>.</summary>
    public static DeviceRule Parse(string text, bool allow)
    {
        var t = (text ?? "").Trim();
        if (t.StartsWith("allow ", StringComparison.OrdinalIgnoreCase)) { allow = true; t = t[6..].Trim(); }
        else if (t.StartsWith("deny ", StringComparison.OrdinalIgnoreCase)) { allow = false; t = t[5..].Trim(); }
        var m = Syntax.Match(t);
        if (!m.Success)
            throw new ContainerException("InvalidDeviceRule", ContainerErrorKind.InvalidArgument,
                $"Invalid device rule '{text}': expected 'TYPE MAJOR:MINOR ACCESS' with TYPE a (all), b (block) or c (char), " +
                "MAJOR and MINOR numbers or *, ACCESS some of r, w, m — e.g. 'c 1:3 rwm', 'b *:* m' or just 'a'.", text);
        var type = m.Groups["type"].Value[0];
        int? Num(string g) => m.Groups[g].Success && m.Groups[g].Value != "*" ? int.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture) : null;
        var access = DeviceAccess.None;
        var accessText = m.Groups["access"].Success ? m.Groups["access"].Value : "rwm";
        foreach (var ch in accessText)
        {
            var bit = ch switch { 'r' => DeviceAccess.Read, 'w' => DeviceAccess.Write, _ => DeviceAccess.Mknod };
            if ((access & bit) != 0)
                throw new ContainerException("InvalidDeviceRule", ContainerErrorKind.InvalidArgument,
                    $"Invalid device rule '{text}': access '{accessText}' repeats '{ch}'.", text);
            access |= bit;
        }
        if (type == 'a' && (Num("major") is not null || Num("minor") is not null))
            throw new ContainerException("InvalidDeviceRule", ContainerErrorKind.InvalidArgument,
                $"Invalid device rule '{text}': type 'a' means every device; use *:* or leave the numbers out.", text);
        return new DeviceRule(allow, type, Num("major"), Num("minor"), access);
    }

    /// <summary>The v1 spelling written to devices.allow / devices.deny: "c 1:3 rwm".</summary>
    public string Spec =>
        $"{Type} {(Major?.ToString(CultureInfo.InvariantCulture) ?? "*")}:{(Minor?.ToString(CultureInfo.InvariantCulture) ?? "*")} {AccessText}";

    public string AccessText =>
        ((Access & DeviceAccess.Read) != 0 ? "r" : "") + ((Access & DeviceAccess.Write) != 0 ? "w" : "") + ((Access & DeviceAccess.Mknod) != 0 ? "m" : "");

    public override string ToString() => (Allow ? "allow " : "deny ") + Spec;
}
