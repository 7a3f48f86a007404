namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// Sets a device node's permission bits for the length of a test (what a udev rule would do, e.g.
/// Debian's /dev/net/tun 0666) and puts back exactly the mode it found on Dispose, also after a failure.
/// </summary>
public sealed class DeviceMode : IDisposable
{
    private readonly string _path;
    private readonly UnixFileMode _previous;

    public DeviceMode(string path, UnixFileMode mode)
    {
        _path = path;
        _previous = File.GetUnixFileMode(path);
        File.SetUnixFileMode(path, mode);
    }

    public const UnixFileMode ReadWriteAll = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead |
        UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;

    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    public void Dispose() => File.SetUnixFileMode(_path, _previous);
}
