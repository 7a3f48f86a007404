using System.Text;
using PSContainers.Runtime.Namespaces;

namespace PSContainers.Runtime.Events;

/// <summary>
/// A store's bounded journal of container events, &lt;store&gt;/.events (psc-protocol.h, PSC_EVENT_*):
/// the runtime appends what it does (created, started, stopped, frozen...), each container's
/// supervisor what only it sees (died, OOM kills, restarts by policy). Appends from any process are
/// whole records: each is one write(2) to the journal opened O_APPEND while holding an exclusive
/// flock on the lock file, which a rotation takes too. Once the journal reaches half of
/// <see cref="MaxBytes"/> it is renamed to journal.1 (replacing the older one), so the two files
/// never hold much more than the bound. Readers take the lock shared while they read both files,
/// and followers are woken by inotify on the directory, never by a timer: nothing is lost while no
/// one listens, up to the bound.
/// </summary>
public sealed unsafe class EventJournal
{
    public const long DefaultMaxBytes = 4L << 20;

    public EventJournal(string storeRoot)
    {
        StorePath = storeRoot;
        Directory = Path.Combine(storeRoot, ".events");
    }

    public string StorePath { get; }
    public string Directory { get; }
    public string JournalPath => Path.Combine(Directory, EventRecordFormat.Journal);
    public string RotatedPath => Path.Combine(Directory, EventRecordFormat.Rotated);
    private string LockPath => Path.Combine(Directory, EventRecordFormat.Lock);

    /// <summary>The bound of the journal's two files together (the supervisors of containers started from here get it too).</summary>
    public long MaxBytes { get; set; } = DefaultMaxBytes;

    /// <summary>Creates the directory (private to the store's owner) when missing.</summary>
    public void EnsureDirectory()
    {
        if (!System.IO.Directory.Exists(Directory))
            State.ContainerStore.CreatePrivateDirectory(Directory);
    }

    /// <summary>Appends one event. A journal that cannot be written does not fail the operation it reports: the error is returned.</summary>
    public string? Append(string container, ContainerEventKind kind, IEnumerable<KeyValuePair<string, string>>? details = null)
    {
        var line = ContainerEvent.Format(DateTimeOffset.UtcNow, kind, container, details);
        var bytes = Encoding.UTF8.GetBytes(line);
        if (bytes.Length > EventRecordFormat.RecordMax)
            bytes = Encoding.UTF8.GetBytes(ContainerEvent.Format(DateTimeOffset.UtcNow, kind, container, new[] { KeyValuePair.Create("truncated", "1") }));
        try { EnsureDirectory(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return ex.Message; }
        using var held = Lock(exclusive: true);
        if (held.Fd < 0) return $"cannot lock {LockPath}: {Native.Sys.ErrnoMessage(held.Errno)}";
        Tmds.Linux.stat st;
        fixed (byte* p = Z(JournalPath))
            if (Tmds.Linux.LibC.stat(p, &st) == 0 && st.st_size + bytes.Length > MaxBytes / 2)
                File.Move(JournalPath, RotatedPath, overwrite: true);
        int fd;
        fixed (byte* p = Z(JournalPath))
            fd = Tmds.Linux.LibC.open(p, Tmds.Linux.LibC.O_WRONLY | Tmds.Linux.LibC.O_APPEND | Tmds.Linux.LibC.O_CREAT | Tmds.Linux.LibC.O_CLOEXEC | Tmds.Linux.LibC.O_NOFOLLOW, 0x180);
        if (fd < 0) return $"cannot open {JournalPath}: {Native.Sys.ErrnoMessage(Native.Sys.Errno)}";
        try
        {
            fixed (byte* b = bytes)
                if (Tmds.Linux.LibC.write(fd, b, bytes.Length) != bytes.Length)
                    return $"cannot write {JournalPath}: {Native.Sys.ErrnoMessage(Native.Sys.Errno)}";
        }
        finally { Tmds.Linux.LibC.close(fd); }
        return null;
    }

    /// <summary>The events recorded (oldest first), from <paramref name="since"/> on when given.</summary>
    public IReadOnlyList<ContainerEvent> Read(DateTimeOffset? since = null)
    {
        var events = new List<ContainerEvent>();
        if (!System.IO.Directory.Exists(Directory)) return events;
        using var held = Lock(exclusive: false);
        foreach (var path in new[] { RotatedPath, JournalPath })
        {
            byte[] data;
            try { data = File.ReadAllBytes(path); }
            catch (FileNotFoundException) { continue; }
            Parse(data, since, events, out _);
        }
        return events;
    }

    /// <summary>
    /// The events from <paramref name="since"/> on (none of the past without it), then each new one as
    /// it is appended, until <paramref name="cancellationToken"/> is cancelled (the enumeration then ends).
    /// Woken by inotify on the journal's directory; a rotation is followed (the old file is read to its
    /// end first: no writer appends to it once it was renamed).
    /// </summary>
    public IEnumerable<ContainerEvent> Follow(DateTimeOffset? since, CancellationToken cancellationToken)
    {
        EnsureDirectory();
        using var wake = new SemaphoreSlim(0);
        using var watcher = new FileSystemWatcher(Directory)
        {
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size,
            IncludeSubdirectories = false,
        };
        void Wake() { if (wake.CurrentCount == 0) wake.Release(); }
        watcher.Changed += (_, _) => Wake();
        watcher.Created += (_, _) => Wake();
        watcher.Renamed += (_, _) => Wake();
        watcher.Deleted += (_, _) => Wake();
        watcher.Error += (_, _) => Wake();   // an overflowed queue: read anyway, the file is the truth
        watcher.EnableRaisingEvents = true;

        var past = new List<ContainerEvent>();
        FileStream current;
        using (Lock(exclusive: false))
        {
            if (since is not null)
                try { Parse(File.ReadAllBytes(RotatedPath), since, past, out _); }
                catch (FileNotFoundException) { }
            current = OpenJournal();
            if (since is null) current.Seek(0, SeekOrigin.End);
        }
        foreach (var e in past) yield return e;
        var partial = new List<byte>();
        try
        {
            while (true)
            {
                foreach (var e in ReadNew(current, partial, since)) yield return e;
                if (Replaced(current))
                {
                    // Records that landed between the read above and the rename are still in the old file.
                    foreach (var e in ReadNew(current, partial, since)) yield return e;
                    current.Dispose();
                    partial.Clear();
                    current = OpenJournal();
                    continue;
                }
                try { wake.Wait(cancellationToken); }
                catch (OperationCanceledException) { yield break; }
            }
        }
        finally { current.Dispose(); }
    }

    private FileStream OpenJournal() =>
        new(JournalPath, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);

    private List<ContainerEvent> ReadNew(FileStream stream, List<byte> partial, DateTimeOffset? since)
    {
        var events = new List<ContainerEvent>();
        var buffer = new byte[65536];
        int n;
        while ((n = stream.Read(buffer, 0, buffer.Length)) > 0) partial.AddRange(buffer.AsSpan(0, n));
        var data = partial.ToArray();
        Parse(data, since, events, out var used);
        partial.RemoveRange(0, used);
        return events;
    }

    /// <summary>Parses the complete lines of <paramref name="data"/>; <paramref name="used"/> is where the last one ends.</summary>
    private void Parse(byte[] data, DateTimeOffset? since, List<ContainerEvent> into, out int used)
    {
        used = 0;
        int nl;
        while ((nl = Array.IndexOf(data, (byte)'\n', used)) >= 0)
        {
            var line = Encoding.UTF8.GetString(data, used, nl - used);
            used = nl + 1;
            if (ContainerEvent.Parse(line, StorePath) is { } e && (since is null || e.Time >= since)) into.Add(e);
        }
    }

    private bool Replaced(FileStream stream)
    {
        Tmds.Linux.stat open, now;
        if (Tmds.Linux.LibC.fstat((int)stream.SafeFileHandle.DangerousGetHandle(), &open) != 0) return false;
        fixed (byte* p = Z(JournalPath))
            if (Tmds.Linux.LibC.stat(p, &now) != 0) return false;
        return open.st_ino != now.st_ino || open.st_dev != now.st_dev;
    }

    private sealed class Held : IDisposable
    {
        public int Fd = -1, Errno;
        public void Dispose() { if (Fd >= 0) Tmds.Linux.LibC.close(Fd); Fd = -1; }
    }

    /// <summary>The journal's flock (the supervisors take the same one, see events.c); blocking, released with its descriptor.</summary>
    private Held Lock(bool exclusive)
    {
        var held = new Held();
        if (!System.IO.Directory.Exists(Directory)) return held;
        fixed (byte* p = Z(LockPath))
            held.Fd = Tmds.Linux.LibC.open(p, Tmds.Linux.LibC.O_RDWR | Tmds.Linux.LibC.O_CREAT | Tmds.Linux.LibC.O_CLOEXEC | Tmds.Linux.LibC.O_NOFOLLOW, 0x180);
        if (held.Fd < 0) { held.Errno = Native.Sys.Errno; return held; }
        while (flock(held.Fd, exclusive ? LOCK_EX : LOCK_SH) != 0)
            if (Native.Sys.Errno != Tmds.Linux.LibC.EINTR) { held.Errno = Native.Sys.Errno; held.Dispose(); break; }
        return held;
    }

    private const int LOCK_SH = 1, LOCK_EX = 2;

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int flock(int fd, int operation);

    private static byte[] Z(string s) => Encoding.UTF8.GetBytes(s + "\0");
}
