namespace PSContainers.Runtime.IdMapping;

/// <summary>
/// The subordinate-id settings of /etc/login.defs that useradd uses to allocate ranges:
/// SUB_UID_MIN/MAX/COUNT and SUB_GID_MIN/MAX/COUNT, with shadow-utils' defaults.
/// </summary>
public sealed record SubordinateIdDefaults(uint UidMin, uint UidMax, uint UidCount, uint GidMin, uint GidMax, uint GidCount)
{
    public const string DefaultPath = "/etc/login.defs";
    public static readonly SubordinateIdDefaults Builtin = new(100000, 600100000, 65536, 100000, 600100000, 65536);

    public uint Min(SubordinateIdKind kind) => kind == SubordinateIdKind.Uid ? UidMin : GidMin;
    public uint Max(SubordinateIdKind kind) => kind == SubordinateIdKind.Uid ? UidMax : GidMax;
    public uint Count(SubordinateIdKind kind) => kind == SubordinateIdKind.Uid ? UidCount : GidCount;

    /// <summary>Reads login.defs ("KEY value" lines, # comments); keys it lacks, or a missing file, keep the defaults.</summary>
    public static SubordinateIdDefaults Load(string path = DefaultPath)
    {
        var values = new Dictionary<string, uint>(StringComparer.Ordinal);
        if (File.Exists(path))
            foreach (var raw in File.ReadLines(path))
            {
                var line = raw.Trim();
                if (line.Length == 0 || line[0] == '#') continue;
                var parts = line.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries);
                // login.defs numbers may be decimal, 0x hex or 0 octal (getdef uses strtoul base 0).
                if (parts.Length == 2 && parts[0].StartsWith("SUB_", StringComparison.Ordinal) && ParseNumber(parts[1].Trim()) is { } v)
                    values[parts[0]] = v;
            }
        uint Get(string key, uint fallback) => values.TryGetValue(key, out var v) ? v : fallback;
        var b = Builtin;
        return new SubordinateIdDefaults(
            Get("SUB_UID_MIN", b.UidMin), Get("SUB_UID_MAX", b.UidMax), Get("SUB_UID_COUNT", b.UidCount),
            Get("SUB_GID_MIN", b.GidMin), Get("SUB_GID_MAX", b.GidMax), Get("SUB_GID_COUNT", b.GidCount));
    }

    private static uint? ParseNumber(string s)
    {
        try
        {
            if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) return Convert.ToUInt32(s[2..], 16);
            if (s.Length > 1 && s[0] == '0') return Convert.ToUInt32(s[1..], 8);
            return uint.TryParse(s, System.Globalization.NumberStyles.None, null, out var v) ? v : null;
        }
        catch (Exception ex) when (ex is FormatException or OverflowException) { return null; }
    }
}
