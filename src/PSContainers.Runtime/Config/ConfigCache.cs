using System.Collections.Concurrent;
using System.Text;

namespace PSContainers.Runtime.Config;

/// <summary>
/// Parsed config.yaml files of this process, for the paths that only read them many times over
/// (Get-Container lists every container; reaping ephemeral ones reads each config again). Parsing
/// a config costs about a millisecond, a stat a few microseconds: a file whose device, inode,
/// size, mtime and ctime are unchanged is served parsed.
/// <para>
/// An edit always changes that identity: AtomicFile's rename gives a new inode, an in-place write
/// sets ctime. Only a write within the same clock tick as the read could keep all of them, so (like
/// git's "racily clean" index entries) a file changed less than <see cref="Settle"/> before it was
/// read is not cached at all. Errors are never cached: a broken config is parsed, and reported, on
/// every read.
/// </para>
/// <para>The configs handed out are shared: callers read them and never change them (those that
/// edit a config use <see cref="ConfigLoader.Load"/>, which always parses).</para>
/// </summary>
public static unsafe class ConfigCache
{
    /// <summary>How long a file must have been unchanged before its parse is reused.</summary>
    public static readonly TimeSpan Settle = TimeSpan.FromSeconds(1);

    /// <summary>Enough for the largest stores measured (500 containers) several times over; past it the cache starts afresh.</summary>
    public const int MaxEntries = 4096;

    private readonly record struct Identity(ulong Device, ulong Inode, long Size, long MTimeSec, long MTimeNsec, long CTimeSec, long CTimeNsec);

    private static readonly ConcurrentDictionary<string, (Identity Identity, ContainerConfig Config)> Entries = new(StringComparer.Ordinal);

    private static long _hits, _parses;

    /// <summary>Reads served from the cache, and reads that parsed (tests check invalidation with them).</summary>
    public static (long Hits, long Parses) Counters => (Interlocked.Read(ref _hits), Interlocked.Read(ref _parses));

    /// <summary>The config at <paramref name="path"/>, as <see cref="ConfigLoader.Load"/> reads it; shared: do not modify it.</summary>
    public static ContainerConfig Load(string path)
    {
        var before = Stat(path);
        if (before is { } id && Entries.TryGetValue(path, out var entry) && entry.Identity == id)
        {
            Interlocked.Increment(ref _hits);
            return entry.Config;
        }
        Interlocked.Increment(ref _parses);
        // The identity is taken before the read: a change during the read makes it stale, never the parse.
        var config = ConfigLoader.Load(path);
        if (before is { } taken && IsSettled(taken))
        {
            if (Entries.Count >= MaxEntries) Entries.Clear();
            Entries[path] = (taken, config);
        }
        else Entries.TryRemove(path, out _);
        return config;
    }

    private static bool IsSettled(Identity id)
    {
        static DateTimeOffset At(long sec, long nsec) => DateTimeOffset.FromUnixTimeSeconds(sec).AddTicks(nsec / 100);
        var changed = At(id.MTimeSec, id.MTimeNsec) > At(id.CTimeSec, id.CTimeNsec) ? At(id.MTimeSec, id.MTimeNsec) : At(id.CTimeSec, id.CTimeNsec);
        return DateTimeOffset.UtcNow - changed > Settle;
    }

    private static Identity? Stat(string path)
    {
        Tmds.Linux.stat st;
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0"))
            if (Tmds.Linux.LibC.stat(p, &st) != 0) return null;
        return new Identity(st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
    }
}
