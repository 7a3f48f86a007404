using System.Globalization;
using System.Text;

namespace PSContainers.Runtime.IdMapping;

/// <summary>
/// The content of one /etc/subuid or /etc/subgid, line by line. Lines that are not ranges
/// (comments, blank lines, NIS "+"/"-" entries, malformed ones) are kept byte for byte, as
/// shadow-utils keeps lines it cannot parse; changes only append or drop range lines.
/// </summary>
internal sealed class SubordinateIdFile
{
    /// <summary>The highest valid id: (uid_t)-1 means "no id" to the kernel.</summary>
    public const ulong MaxId = uint.MaxValue - 1UL;

    private sealed record Line(string Text, string? Owner, uint Start, uint Count)
    {
        public bool IsRange => Owner is not null;
    }

    // Latin-1 maps bytes 1:1 to chars, so untouched lines are written back exactly as read.
    private static readonly Encoding Bytes = Encoding.Latin1;

    private readonly List<Line> _lines = new();

    public string Path { get; }
    public SubordinateIdKind Kind { get; }
    /// <summary>1-based numbers and texts of lines that look like ranges but are not valid ones.</summary>
    public List<(int Line, string Text, string Problem)> Malformed { get; } = new();

    private SubordinateIdFile(string path, SubordinateIdKind kind)
    {
        Path = path;
        Kind = kind;
    }

    /// <summary>Reads the file; a missing file is an empty one (shadow-utils creates it on first write).</summary>
    public static SubordinateIdFile Read(string path, SubordinateIdKind kind) =>
        Parse(File.Exists(path) ? File.ReadAllBytes(path) : Array.Empty<byte>(), path, kind);

    public static SubordinateIdFile Parse(byte[] content, string path, SubordinateIdKind kind)
    {
        var file = new SubordinateIdFile(path, kind);
        var text = Bytes.GetString(content);
        var lines = text.Split('\n');
        // A final newline ends the last line rather than starting an empty one.
        var count = text.Length == 0 ? 0 : text.EndsWith('\n') ? lines.Length - 1 : lines.Length;
        for (int i = 0; i < count; i++)
            file._lines.Add(file.ParseLine(lines[i], i + 1));
        return file;
    }

    private Line ParseLine(string text, int number)
    {
        var trimmed = text.TrimStart();
        if (trimmed.Length == 0 || trimmed[0] is '#' or '+' or '-') return new Line(text, null, 0, 0);
        var fields = text.Split(':');
        string? problem = null;
        ulong start = 0, count = 0;
        if (fields.Length != 3 || fields.Any(f => f.Length == 0))
            problem = "expected owner:start:count";
        else if (!ulong.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out start))
            problem = $"start '{fields[1]}' is not a number";
        else if (!ulong.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out count) || count == 0)
            problem = $"count '{fields[2]}' is not a positive number";
        else if (start + count - 1 > MaxId)
            problem = $"the range ends beyond the highest id {MaxId}";
        if (problem is null) return new Line(text, fields[0], (uint)start, (uint)count);
        Malformed.Add((number, text, problem));
        return new Line(text, null, 0, 0);
    }

    /// <summary>Every valid range, in file order.</summary>
    public IEnumerable<SubordinateIdRange> Ranges() =>
        _lines.Select((l, i) => (l, i)).Where(x => x.l.IsRange)
            .Select(x => new SubordinateIdRange(DisplayName(x.l.Owner!), x.l.Owner!, Kind, x.l.Start, x.l.Count, Path, x.i + 1));

    /// <summary>Ranges whose owner is the user, by name or by numeric uid (newuidmap accepts both).</summary>
    public IEnumerable<SubordinateIdRange> RangesOf(string name, uint? uid) =>
        Ranges().Where(r => IsOwner(r.Owner, name, uid));

    public static bool IsOwner(string owner, string name, uint? uid) =>
        owner == name || (uid is { } u && owner == u.ToString(CultureInfo.InvariantCulture));

    private static string DisplayName(string owner) =>
        uint.TryParse(owner, NumberStyles.None, CultureInfo.InvariantCulture, out var uid) && UserAccounts.FindByUid(uid) is { } account
            ? account.Name : owner;

    /// <summary>The first range of any owner that overlaps start..start+count-1, or null.</summary>
    public SubordinateIdRange? FirstOverlap(ulong start, ulong count) => Ranges().FirstOrDefault(r => r.Overlaps(start, count));

    /// <summary>Appends "owner:start:count" (shadow-utils' commonio_append).</summary>
    public SubordinateIdRange Append(string owner, uint start, uint count)
    {
        _lines.Add(new Line(string.Create(CultureInfo.InvariantCulture, $"{owner}:{start}:{count}"), owner, start, count));
        return new SubordinateIdRange(DisplayName(owner), owner, Kind, start, count, Path, _lines.Count);
    }

    /// <summary>
    /// Takes start..start+count-1 away from the owner's ranges, as shadow-utils' remove_range does:
    /// a range inside it is dropped, one that overlaps an end is shortened, one that contains it is
    /// split in two. Returns what was taken away; empty when nothing matched.
    /// </summary>
    public List<SubordinateIdRange> Remove(Func<string, bool> isOwner, ulong start, ulong count)
    {
        var removed = new List<SubordinateIdRange>();
        var end = start + count - 1;
        for (int i = 0; i < _lines.Count; i++)
        {
            var l = _lines[i];
            if (!l.IsRange || !isOwner(l.Owner!)) continue;
            ulong first = l.Start, last = l.Start + (ulong)l.Count - 1;
            if (end < first || start > last) continue;
            ulong cutFrom = Math.Max(first, start), cutTo = Math.Min(last, end);
            removed.Add(new SubordinateIdRange(DisplayName(l.Owner!), l.Owner!, Kind, (uint)cutFrom, (uint)(cutTo - cutFrom + 1), Path, i + 1));
            var pieces = new List<Line>();
            if (first < cutFrom) pieces.Add(Make(l.Owner!, first, cutFrom - first));
            if (cutTo < last) pieces.Add(Make(l.Owner!, cutTo + 1, last - cutTo));
            _lines.RemoveAt(i);
            _lines.InsertRange(i, pieces);
            i += pieces.Count - 1;
        }
        return removed;
    }

    private static Line Make(string owner, ulong start, ulong count) =>
        new(string.Create(CultureInfo.InvariantCulture, $"{owner}:{start}:{count}"), owner, (uint)start, (uint)count);

    /// <summary>
    /// The lowest start in min..max where count ids overlap none of <paramref name="taken"/>
    /// (shadow-utils' find_free_range), or null when there is no such gap.
    /// </summary>
    public static uint? FindFree(IEnumerable<SubordinateIdRange> taken, ulong min, ulong max, ulong count)
    {
        if (count == 0 || max < min) return null;
        ulong low = min;
        foreach (var r in taken.OrderBy(r => r.Start).ThenBy(r => r.Count))
        {
            ulong first = r.Start, last = r.End;
            if (last < low) continue;
            if (first > low && Math.Min(first, max + 1) - low >= count) return (uint)low;
            low = Math.Max(low, last + 1);
            if (low > max) return null;
        }
        return max - low + 1 >= count ? (uint)low : null;
    }

    /// <summary>The file as bytes; every line ends with a newline, as shadow-utils writes it.</summary>
    public byte[] ToBytes()
    {
        var sb = new StringBuilder();
        foreach (var l in _lines) sb.Append(l.Text).Append('\n');
        return Bytes.GetBytes(sb.ToString());
    }
}
