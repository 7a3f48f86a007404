using System.Globalization;
using System.Text;

namespace PSContainers.Runtime.Namespaces;

public sealed record MountEntry(string Source, string Target, string FsType, MountFlags Flags, string Data = "");

/// <summary>
/// What psc-helper is asked to do: one class per command (StartSpec, RestoreSpec, ExecSpec,
/// NetNsExecSpec, UsernsTreeSpec, ConsoleSpec), generated at build time from src/native/protocol/psc-protocol.h,
/// the definition psc-helper's parser is compiled from too (see gen-csharp.c there). Serialized
/// as NUL-terminated key/value strings, sent on stdin after a "&lt;length&gt;\n" header so stdin
/// stays usable afterwards. Everything policy-like is decided in C#.
/// </summary>
public abstract class HelperSpec
{
    /// <summary>The psc-helper command this spec is for ("start", "exec", ...).</summary>
    public abstract string HelperCommand { get; }

    private protected abstract void Write(SpecWriter writer);

    public byte[] Serialize()
    {
        var writer = new SpecWriter();
        Write(writer);
        return writer.ToArray();
    }

    /// <summary>The spec as sent on stdin: its length, a newline, the spec.</summary>
    public byte[] SerializeFramed()
    {
        var body = Serialize();
        var header = Encoding.ASCII.GetBytes(body.Length.ToString(CultureInfo.InvariantCulture) + "\n");
        return header.Concat(body).ToArray();
    }
}

/// <summary>
/// What a start and an exec share: the constraints of the container's processes, which
/// Security.SecurityPlan puts into either (the generated classes hold the properties).
/// </summary>
public interface ISecuritySpec
{
    ulong? CapabilityDropMask { get; set; }
    byte[]? SeccompFilter { get; set; }
    bool NoNewPrivileges { get; set; }
}

public sealed partial class StartSpec : ISecuritySpec { }

/// <summary>
/// What a start and a restore share: a supervisor that keeps the console log, records how init
/// ended and its own run, and removes the container's cgroups (Containers.ContainerManager.Launch
/// sets these for both).
/// </summary>
public interface ISupervisedSpec
{
    string? ConsoleLog { get; set; }
    long? ConsoleLogMaxBytes { get; set; }
    /// <summary>The console pty's host owner: a user-namespaced container's root, at start and restore alike.</summary>
    long? ConsoleUid { get; set; }
    long? ConsoleGid { get; set; }
    /// <summary>Where the supervisor lends the console to Enter-Container -Console (console_relay.c).</summary>
    string? ConsoleSocket { get; set; }
    string? ExitRecord { get; set; }
    string? RunRecord { get; set; }
    List<string> CgroupDirectories { get; }
    string? ContainerName { get; set; }
    string? EventJournalDirectory { get; set; }
    long? EventJournalMaxBytes { get; set; }
    string? StopMarker { get; set; }
    string? OomWatchDirectory { get; set; }
    /// <summary>The hooks the supervisor runs once init has ended for good (stop, net-down, post-stop; a start's also mount and start).</summary>
    List<string> Hooks { get; }
    /// <summary>Where the supervisor appends the failures of those hooks.</summary>
    string? HookReport { get; set; }
}

public sealed partial class StartSpec : ISupervisedSpec { }

public sealed partial class RestoreSpec : ISupervisedSpec { }

public sealed partial class ExecSpec : ISecuritySpec { }

/// <summary>
/// Puts a spec's values on the wire, one method per value kind of psc-protocol.h (the generated
/// Write methods call them with each key's limits); refuses what psc-helper would refuse, so that
/// the caller learns it here, with the key named.
/// </summary>
internal sealed class SpecWriter
{
    private readonly MemoryStream _bytes = new();
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public byte[] ToArray() => _bytes.ToArray();

    private void Put(string key, long maxLength, params string[] values)
    {
        Append(key);
        foreach (var v in values)
        {
            if (v.Contains('\0')) throw Invalid($"A value of '{key}' contains a NUL character: '{v.Replace("\0", "\\0")}'.");
            var length = Utf8.GetByteCount(v);
            if (length > maxLength) throw Invalid($"A value of '{key}' is too long for psc-helper: {length} bytes, at most {maxLength} ('{Shorten(v)}').");
            Append(v);
        }
    }

    private void Append(string text)
    {
        var b = Utf8.GetBytes(text);
        _bytes.Write(b, 0, b.Length);
        _bytes.WriteByte(0);
    }

    private static void CheckCount(string key, int count, long most)
    {
        if (count > most) throw Invalid($"psc-helper takes at most {most} '{key}' values; this spec has {count}.");
    }

    private static string Shorten(string v) => v.Length <= 60 ? v : v[..60] + "...";

    private static ContainerException Invalid(string message) => new("InvalidArgument", ContainerErrorKind.InvalidArgument, message);

    private static string Number(ulong value) => value.ToString(CultureInfo.InvariantCulture);

    public void String(string key, string? value, long maxLength, long most)
    {
        if (value is not null) Put(key, maxLength, value);
    }

    public void Flag(string key, bool value, long maxLength, long most)
    {
        if (value) Put(key, maxLength, "1");
    }

    public void Int32(string key, int? value, long maxLength, long most)
    {
        if (value is not { } v) return;
        if (v < 0) throw Invalid($"'{key}' cannot be negative ({v}).");
        Put(key, maxLength, Number((ulong)v));
    }

    public void UInt32(string key, uint? value, long maxLength, long most)
    {
        if (value is { } v) Put(key, maxLength, Number(v));
    }

    public void Int64(string key, long? value, long maxLength, long most)
    {
        if (value is not { } v) return;
        if (v < 0) throw Invalid($"'{key}' cannot be negative ({v}).");
        Put(key, maxLength, Number((ulong)v));
    }

    public void UInt64(string key, ulong? value, long maxLength, long most)
    {
        if (value is { } v) Put(key, maxLength, Number(v));
    }

    /// <summary>Clone flags: the namespaces to create (always sent; 0 is none).</summary>
    public void NamespaceFlags(string key, NamespaceKind value, long maxLength, long most) => Put(key, maxLength, Number((uint)value));

    /// <summary>Namespaces to join, one name each, user first (it grants the rights for the others).</summary>
    public void NamespaceNames(string key, NamespaceKind value, long maxLength, long most)
    {
        var each = NamespaceKinds.Each(value).ToList();
        CheckCount(key, each.Count, most);
        foreach (var ns in each) Put(key, maxLength, NamespaceKinds.ProcName(ns));
    }

    /// <summary>A classic BPF program, as hex.</summary>
    public void Bpf(string key, byte[]? value, long maxLength, long most)
    {
        if (value is not null) Put(key, maxLength, Convert.ToHexString(value));
    }

    public void List(string key, List<string> values, long maxLength, long most)
    {
        CheckCount(key, values.Count, most);
        foreach (var v in values) Put(key, maxLength, v);
    }

    public void Mounts(string key, List<MountEntry> values, long maxLength, long most)
    {
        CheckCount(key, values.Count, most);
        foreach (var m in values) Put(key, maxLength, m.Source, m.Target, m.FsType, Number((ulong)m.Flags), m.Data);
    }

    /// <summary>Mounts on the rootfs path itself: no target.</summary>
    public void RootMounts(string key, List<MountEntry> values, long maxLength, long most)
    {
        CheckCount(key, values.Count, most);
        foreach (var m in values) Put(key, maxLength, m.Source, m.FsType, Number((ulong)m.Flags), m.Data);
    }

    public void Symlinks(string key, List<(string Target, string LinkPath)> values, long maxLength, long most)
    {
        CheckCount(key, values.Count, most);
        foreach (var (target, link) in values) Put(key, maxLength, target, link);
    }
}

/// <summary>
/// Reading and writing the reply lines of psc-protocol.h (the records are generated from it:
/// <see cref="StartPaused"/>, <see cref="Started"/>, ...).
/// </summary>
public static partial class HelperProtocol
{
    internal static bool HasWord(string line, string word) =>
        line.StartsWith(word, StringComparison.Ordinal) && (line.Length == word.Length || line[word.Length] == ' ');

    internal static string[] Fields(string line, string word, int count)
    {
        var f = line.Split(' ');
        if (f.Length != count + 1 || f[0] != word || f.Skip(1).Any(string.IsNullOrEmpty)) throw Malformed(line, word, count);
        return f;
    }

    internal static int Pid(string text, string line) =>
        text.All(char.IsAsciiDigit) && text[0] != '0' && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
            ? pid : throw new ContainerException("HelperProtocolError", ContainerErrorKind.InvalidData,
                $"psc-helper answered '{line}', where '{text}' should be a process id. The helper and the runtime do not match: rebuild the module (dotnet build) or point $PSCONTAINERS_HELPER at the helper built with it.");

    internal static string? Path(string text, string line) => text == "-" ? null : text;

    internal static string FormatPid(int pid) => pid.ToString(CultureInfo.InvariantCulture);

    internal static string FormatPath(string? path) =>
        path is null ? "-" : path.Length > 0 && !path.Contains(' ') && !path.Contains('\n') ? path : throw new ArgumentException($"'{path}' cannot be sent in a reply line.", nameof(path));

    internal static string Join(string word, params string[] fields) => fields.Length == 0 ? word : word + " " + string.Join(' ', fields);

    private static ContainerException Malformed(string line, string word, int count) =>
        new("HelperProtocolError", ContainerErrorKind.InvalidData,
            $"psc-helper answered '{line}', which is not a '{word}' line with {count} field(s). The helper and the runtime do not match: rebuild the module (dotnet build) or point $PSCONTAINERS_HELPER at the helper built with it.");
}
