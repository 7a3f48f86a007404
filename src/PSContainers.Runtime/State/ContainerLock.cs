using System.Collections.Immutable;

namespace PSContainers.Runtime.State;

/// <summary>
/// The per-container lock every mutation takes. It is an advisory flock on
/// &lt;store&gt;/.locks/&lt;name&gt;.lock (.NET takes flock for FileShare.None), so it is released by the
/// kernel if the holder dies, works across processes and across runspaces of one process, and
/// survives the container directory being removed or renamed under it.
/// <para>
/// It is re-entrant within one logical operation: an operation that holds it for its whole length
/// (Move-Container: stop, export, remove) can call the ordinary locked operations, which then take
/// the lock it already holds instead of waiting for themselves. "One operation" is the async flow
/// (AsyncLocal) that took it, which also covers tasks it starts; another runspace's thread is a
/// different flow and waits for the flock like another process.
/// </para>
/// </summary>
public sealed class ContainerLock : IDisposable
{
    /// <summary>One taken flock and how many nested holders share it.</summary>
    private sealed class Held(FileStream stream)
    {
        public FileStream? Stream = stream;
        public int Depth = 1;
    }

    private static readonly AsyncLocal<ImmutableDictionary<string, Held>?> HeldByThisFlow = new();

    private readonly string _path;
    private Held? _held;

    private ContainerLock(string path, Held held) => (_path, _held) = (path, held);

    public static ContainerLock Acquire(string lockDirectory, string name, TimeSpan timeout)
    {
        Directory.CreateDirectory(lockDirectory);
        var path = Path.GetFullPath(Path.Combine(lockDirectory, name + ".lock"));
        if (HeldByThisFlow.Value?.GetValueOrDefault(path) is { } held)
        {
            lock (held)
            {
                // Still held by the outer holder: share it. (A task that outlived its holder finds it released.)
                if (held.Stream is not null)
                {
                    held.Depth++;
                    return new ContainerLock(path, held);
                }
            }
        }
        var deadline = DateTime.UtcNow + timeout;
        var delay = 1;
        while (true)
        {
            try
            {
                var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                // Remove-Container deletes the lock file while it holds it: a waiter that opened the
                // file before then got a lock on a deleted inode, which no longer excludes anyone.
                // Only a lock on the file that is at the path now counts; else open it again.
                if (!IsCurrentFile(stream, path))
                {
                    stream.Dispose();
                    continue;
                }
                var taken = new Held(stream);
                HeldByThisFlow.Value = (HeldByThisFlow.Value ?? ImmutableDictionary<string, Held>.Empty).SetItem(path, taken);
                return new ContainerLock(path, taken);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(delay);
                delay = Math.Min(delay * 2, 50);
            }
            catch (IOException ex)
            {
                throw new ContainerException("ContainerBusy", ContainerErrorKind.ResourceBusy,
                    $"Container '{name}' is locked by another operation (another session is changing it). " +
                    $"Waited {timeout.TotalSeconds:0.#} s; try again when that operation has finished.", name, ex);
            }
        }
    }

    private static unsafe bool IsCurrentFile(FileStream stream, string path)
    {
        Tmds.Linux.stat held, now;
        if (Tmds.Linux.LibC.fstat((int)stream.SafeFileHandle.DangerousGetHandle(), &held) != 0) return false;
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            if (Tmds.Linux.LibC.stat(p, &now) != 0) return false;
        return held.st_ino == now.st_ino && held.st_dev == now.st_dev;
    }

    /// <summary>
    /// The container is gone (Remove-Container): delete its lock file, still holding the lock, so
    /// the lock directory does not keep a file per removed container. Waiters that opened the old
    /// file notice (see <see cref="Acquire"/>). Not while an outer operation of this flow shares the
    /// lock (it still relies on it): then that operation's own removal deletes it.
    /// </summary>
    public void DeleteFile()
    {
        var held = _held;
        if (held is null) return;
        lock (held)
        {
            if (held.Depth != 1 || held.Stream is null) return;
            try { File.Delete(_path); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { /* a leftover file is harmless */ }
        }
    }

    public void Dispose()
    {
        var held = Interlocked.Exchange(ref _held, null);
        if (held is null) return;
        lock (held)
        {
            if (--held.Depth > 0) return;
            held.Stream?.Dispose();
            held.Stream = null;
        }
        if (HeldByThisFlow.Value?.GetValueOrDefault(_path) == held)
            HeldByThisFlow.Value = HeldByThisFlow.Value.Remove(_path);
    }
}
