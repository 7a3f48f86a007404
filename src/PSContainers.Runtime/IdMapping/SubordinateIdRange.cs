namespace PSContainers.Runtime.IdMapping;

/// <summary>Which file a range lives in: /etc/subuid (user ids) or /etc/subgid (group ids).</summary>
public enum SubordinateIdKind
{
    Uid,
    Gid,
}

/// <summary>
/// One line of /etc/subuid or /etc/subgid, "owner:start:count": ids start .. start+count-1 that
/// the owner may map into user namespaces it creates (through newuidmap/newgidmap).
/// </summary>
public sealed class SubordinateIdRange
{
    /// <summary>The user: the owner field, or the name of the account when the line names it by numeric uid.</summary>
    public string User { get; }
    /// <summary>The owner field exactly as the file has it (a name or a numeric uid).</summary>
    public string Owner { get; }
    public SubordinateIdKind Kind { get; }
    public uint Start { get; }
    public uint Count { get; }
    /// <summary>The last id of the range (inclusive).</summary>
    public uint End => (uint)(Start + (ulong)Count - 1);
    /// <summary>The file and 1-based line the range was read from (0 for a range not written yet).</summary>
    public string Path { get; }
    public int Line { get; }

    public SubordinateIdRange(string user, string owner, SubordinateIdKind kind, uint start, uint count, string path, int line)
    {
        User = user;
        Owner = owner;
        Kind = kind;
        Start = start;
        Count = count;
        Path = path;
        Line = line;
    }

    public bool Overlaps(ulong start, ulong count) => start <= End && start + count - 1 >= Start;

    public override string ToString() => $"{Owner}:{Start}:{Count}";
}
