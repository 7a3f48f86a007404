namespace PSContainers.Runtime.State;

/// <summary>
/// The per-container lock every mutation takes. It is an advisory flock on
/// &lt;store&gt;/.locks/&lt;name&gt;.lock (.NET takes flock for FileShare.None), so it is released by the
/// kernel if the holder dies, works across processes and across runspaces of one process, and
/// survives the container directory being removed or renamed under it.
/// </summary>
public sealed class ContainerLock : IDisposable
{
    private FileStream? _stream;

    private ContainerLock(FileStream stream) => _stream = stream;

    public static ContainerLock Acquire(string lockDirectory, string name, TimeSpan timeout)
    {
        Directory.CreateDirectory(lockDirectory);
        var path = Path.Combine(lockDirectory, name + ".lock");
        var deadline = DateTime.UtcNow + timeout;
        var delay = 1;
        while (true)
        {
            try
            {
                return new ContainerLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
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

    public void Dispose()
    {
        _stream?.Dispose();
        _stream = null;
    }
}
