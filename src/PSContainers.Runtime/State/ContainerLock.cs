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
/// <para>
/// A lock file may be deleted by its holder (<see cref="DeleteOnRelease"/>: a removed container's,
/// so that .locks does not only grow). That is safe because a taker checks, once it has the flock,
/// that the path still names the file it locked, and starts over if not: two processes can never
/// hold "the" lock on two different files.
/// </para>
/// </summary>
public sealed unsafe class ContainerLock : IDisposable
{
    /// <summary>One taken flock and how many nested holders share it.</summary>
    private sealed class Held(FileStream stream)
    {
        public FileStream? Stream = stream;
        public int Depth = 1;
        public bool DeleteFile;
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
                if (!StillNamedBy(stream, path))
                {
                    // Its holder deleted it before we got it (a removed container): lock the current file.
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

    /// <summary>Is the file <paramref name="stream"/> has open still the one at <paramref name="path"/>?</summary>
    private static bool StillNamedBy(FileStream stream, string path)
    {
        Tmds.Linux.stat open, named;
        var fd = (int)stream.SafeFileHandle.DangerousGetHandle();
        if (Tmds.Linux.LibC.fstat(fd, &open) != 0) return false;
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            if (Tmds.Linux.LibC.stat(p, &named) != 0) return false;
        return open.st_ino == named.st_ino && open.st_dev == named.st_dev;
    }

    /// <summary>Deletes the lock file when the outermost holder releases it (still holding it then).</summary>
    public void DeleteOnRelease()
    {
        if (_held is { } held) lock (held) held.DeleteFile = true;
    }

    public void Dispose()
    {
        var held = Interlocked.Exchange(ref _held, null);
        if (held is null) return;
        lock (held)
        {
            if (--held.Depth > 0) return;
            if (held.DeleteFile)
                try { File.Delete(_path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            held.Stream?.Dispose();
            held.Stream = null;
        }
        if (HeldByThisFlow.Value?.GetValueOrDefault(_path) == held)
            HeldByThisFlow.Value = HeldByThisFlow.Value.Remove(_path);
    }
}
