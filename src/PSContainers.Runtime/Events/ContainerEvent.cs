using System.Globalization;
using System.Text;
using PSContainers.Runtime.Namespaces;

namespace PSContainers.Runtime.Events;

/// <summary>
/// One state change of one container, as the journal records it (psc-protocol.h, PSC_EVENT_*):
/// when, which container, what kind, and the kind's details (reason, code, signal, limits...).
/// </summary>
public sealed class ContainerEvent
{
    public DateTimeOffset Time { get; init; }
    public string Container { get; init; } = "";
    public ContainerEventKind Kind { get; init; }
    /// <summary>The kind's details, key to value (e.g. reason=requested, code=3, signal=9 name=SIGKILL).</summary>
    public IReadOnlyDictionary<string, string> Details { get; init; } = new Dictionary<string, string>();
    /// <summary>The store whose journal it came from.</summary>
    public string StorePath { get; init; } = "";

    /// <summary>The details as one line, "key=value key=value".</summary>
    public string DetailText => string.Join(' ', Details.Select(kv => $"{kv.Key}={kv.Value}"));

    public override string ToString() => $"{Time:O} {Kind} {Container} {DetailText}".TrimEnd();

    /// <summary>The record's line (with its newline); null when it would exceed the record limit.</summary>
    internal static string Format(DateTimeOffset time, ContainerEventKind kind, string container, IEnumerable<KeyValuePair<string, string>>? details)
    {
        var ticks = time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        var seconds = ticks / TimeSpan.TicksPerSecond;
        var nanos = ticks % TimeSpan.TicksPerSecond * 100;
        var sb = new StringBuilder();
        sb.Append(seconds.ToString(CultureInfo.InvariantCulture)).Append('.').Append(nanos.ToString("D9", CultureInfo.InvariantCulture))
          .Append('\t').Append(EventRecordFormat.Words[(int)kind]).Append('\t').Append(Escape(container)).Append('\t');
        var first = true;
        foreach (var (key, value) in details ?? Enumerable.Empty<KeyValuePair<string, string>>())
        {
            if (!first) sb.Append(' ');
            first = false;
            sb.Append(Escape(key)).Append('=').Append(Escape(value));
        }
        return sb.Append('\n').ToString();
    }

    /// <summary>A value in a record: no separator of the record (space, tab, newline, '=', '%') appears unescaped.</summary>
    private static string Escape(string value)
    {
        var bytes = new List<byte>();
        foreach (var b in Encoding.UTF8.GetBytes(value))
            if (b is (byte)'%' or (byte)'=' or <= 0x20 or 0x7f) bytes.AddRange(Encoding.ASCII.GetBytes($"%{b:X2}"));
            else bytes.Add(b);
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private static string Unescape(string value)
    {
        if (!value.Contains('%')) return value;
        var src = Encoding.UTF8.GetBytes(value);
        var bytes = new List<byte>(src.Length);
        for (var i = 0; i < src.Length; i++)
            if (src[i] == '%' && i + 2 < src.Length && byte.TryParse(Encoding.ASCII.GetString(src, i + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var b))
            { bytes.Add(b); i += 2; }
            else bytes.Add(src[i]);
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>A record's line (without its newline), or null when it is not one (a torn or foreign line is skipped, never guessed).</summary>
    public static ContainerEvent? Parse(string line, string storePath = "")
    {
        var f = line.Split('\t');
        if (f.Length != 4) return null;
        var dot = f[0].IndexOf('.');
        if (dot <= 0 || !long.TryParse(f[0].AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            || !long.TryParse(f[0].AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var nanos) || f[0].Length - dot - 1 != 9)
            return null;
        var kind = Array.IndexOf(EventRecordFormat.Words, f[1]);
        if (kind < 0 || f[2].Length == 0) return null;
        var details = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in f[3].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=');
            if (eq <= 0) continue;
            details[Unescape(pair[..eq])] = Unescape(pair[(eq + 1)..]);
        }
        DateTimeOffset time;
        try { time = DateTimeOffset.FromUnixTimeSeconds(seconds).AddTicks(nanos / 100).ToLocalTime(); }
        catch (ArgumentOutOfRangeException) { return null; }
        return new ContainerEvent { Time = time, Kind = (ContainerEventKind)kind, Container = Unescape(f[2]), Details = details, StorePath = storePath };
    }
}
