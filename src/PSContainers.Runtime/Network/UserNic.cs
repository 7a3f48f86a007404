using PSContainers.Runtime.IdMapping;
using PSContainers.Runtime.HostCheck;

namespace PSContainers.Runtime.Network;

/// <summary>
/// psc-usernic (src/native/psc-usernic.c), LXC's lxc-user-nic: the privileged step that gives a
/// non-root user's container a veth on a host bridge within the quota root grants in
/// <see cref="UsernetQuota.DefaultPath"/>. The module ships it unprivileged beside psc-helper;
/// root installs a copy with the file capability cap_net_admin (or setuid root) with
/// <see cref="Install"/> (Install-ContainerUserNic). This class only runs it: every check that
/// matters is made by the program itself.
/// </summary>
public static unsafe class UserNic
{
    public const string FileName = "psc-usernic";
    /// <summary>Where Install-ContainerUserNic puts it, and where the runtime looks by default.</summary>
    public const string DefaultPath = "/usr/local/libexec/pscontainers/" + FileName;
    /// <summary>Overrides <see cref="DefaultPath"/> (an installation elsewhere).</summary>
    public const string EnvironmentVariable = "PSC_USERNIC";
    public const int CapNetAdmin = 12;

    /// <summary>The host end of a user's veth: "vu", the uid as 8 hex digits, 1-5 hex digits (psc-usernic refuses other names, so a user never squats a host name another user needs).</summary>
    public const string HostPrefix = "vu";

    public static string InstalledPath =>
        Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } path ? path : DefaultPath;

    /// <summary>The unprivileged copy the module ships (beside psc-helper): what root installs.</summary>
    public static string ShippedPath => Path.Combine(Path.GetDirectoryName(Launcher.PscHelper.Path)!, FileName);

    /// <summary>Why the program at <paramref name="path"/> cannot work for a non-root caller; null when it is installed privileged.</summary>
    public static string? InstallationProblem(string path)
    {
        if (!File.Exists(path))
            return $"{path} does not exist";
        if (Filesystem.FsNative.OwnerOf(path) != 0)
            return $"{path} does not belong to root";
        var setuid = File.GetUnixFileMode(path).HasFlag(UnixFileMode.SetUser);
        if (!setuid && FileCapabilities.Read(path)?.Grants(CapNetAdmin) != true)
            return $"{path} has neither the setuid bit nor the file capability cap_net_admin+ep";
        return null;
    }

    /// <summary>
    /// Copies <paramref name="source"/> to <paramref name="destination"/> owned by root, mode 0755,
    /// with the file capability cap_net_admin+ep, or (with <paramref name="setuid"/>) mode 4755 and
    /// no capability. Everything goes through descriptors, never by path: the directory is reached
    /// from "/" one component at a time with openat(O_NOFOLLOW), each ancestor root's and writable
    /// by nobody else (a sticky one like /tmp may be, since others cannot rename a root entry in it),
    /// the directory itself root's and writable only by root; the new file is created there with
    /// O_EXCL|O_NOFOLLOW, made root's and given its mode and capability with fchown, fchmod and
    /// fsetxattr on that descriptor, and renamed over the target within the directory, so a
    /// half-installed privileged file never exists under its name.
    /// </summary>
    public static void Install(string source, string destination, bool setuid)
    {
        if (!Host.HostContext.Current.IsRoot)
            throw new ContainerException("UserNicInstallNeedsRoot", ContainerErrorKind.PermissionDenied,
                "Only root can install psc-usernic privileged; run Install-ContainerUserNic as root.", destination);
        if (!File.Exists(source))
            throw new ContainerException("UserNicNotFound", ContainerErrorKind.NotInstalled,
                $"{source} does not exist; rebuild the module (dotnet build -c Release).", source);
        var full = Path.GetFullPath(destination);
        var name = Path.GetFileName(full);
        var dirfd = OpenTrustedDirectory(Path.GetDirectoryName(full)!, destination);
        var temporary = $".{name}.{Environment.ProcessId}.tmp";
        var created = false;
        try
        {
            var fd = OpenAt(dirfd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0b111_000_000);
            if (fd < 0 && Native.Sys.Errno == EEXIST)
            {
                // Left by an install that died: the directory is root's alone, so it is ours.
                UnlinkAt(dirfd, temporary);
                fd = OpenAt(dirfd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0b111_000_000);
            }
            if (fd < 0) throw InstallFailed("create", temporary, destination);
            created = true;
            using (var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true))
            {
                // Written first: a write drops a file's capability, and the chown its setuid bit.
                RandomAccess.Write(handle, File.ReadAllBytes(source), 0);
                RandomAccess.FlushToDisk(handle);
                if (fchown(fd, 0, 0) != 0) throw InstallFailed("make root's", temporary, destination);
                // After the chown, which clears setuid bits and file capabilities.
                if (fchmod(fd, setuid ? 0b100_111_101_101u : 0b111_101_101u) != 0) throw InstallFailed("set the mode of", temporary, destination);
                if (!setuid)
                    Filesystem.FsNative.SetXattr(fd, temporary, FileCapabilities.XattrName, FileCapabilities.Encode(1UL << CapNetAdmin, effective: true));
            }
            if (RenameAt(dirfd, temporary, dirfd, name) != 0) throw InstallFailed("rename into place", temporary, destination);
            created = false;
        }
        finally
        {
            if (created) UnlinkAt(dirfd, temporary);
            close(dirfd);
        }
    }

    /// <summary>
    /// Opens <paramref name="directory"/> walking from "/" with openat(O_NOFOLLOW), creating missing
    /// components (root's, 0755); refuses a symlink, an ancestor someone else could replace, or a
    /// target directory anyone but root can write.
    /// </summary>
    private static int OpenTrustedDirectory(string directory, string destination)
    {
        var fd = OpenAt(AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd < 0) throw InstallFailed("open", "/", destination);
        var parts = directory.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var walked = "";
        try
        {
            CheckDirectory(fd, "/", destination, last: parts.Length == 0);
            for (var i = 0; i < parts.Length; i++)
            {
                walked += "/" + parts[i];
                if (MkdirAt(fd, parts[i], 0b111_101_101) != 0 && Native.Sys.Errno != EEXIST) throw InstallFailed("create the directory", walked, destination);
                var next = OpenAt(fd, parts[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
                if (next < 0)
                {
                    var errno = Native.Sys.Errno;
                    if (errno is ELOOP or ENOTDIR)
                        throw new ContainerException("UserNicUnsafeDirectory", ContainerErrorKind.PermissionDenied,
                            $"{walked} is not a directory but a symbolic link or a file; a privileged program is installed only along real directories. Give the resolved path as -Path.", destination);
                    throw InstallFailed("open", walked, destination);
                }
                close(fd);
                fd = next;
                CheckDirectory(fd, walked, destination, last: i == parts.Length - 1);
            }
            // O_PATH cannot create files in it: reopen the final directory for real.
            var real = OpenAt(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
            if (real < 0) throw InstallFailed("open", walked, destination);
            close(fd);
            return real;
        }
        catch
        {
            close(fd);
            throw;
        }
    }

    private static void CheckDirectory(int fd, string path, string destination, bool last)
    {
        Tmds.Linux.stat st;
        if (Tmds.Linux.LibC.fstat(fd, &st) != 0) throw InstallFailed("inspect", path, destination);
        var mode = (uint)st.st_mode;
        var othersWrite = (mode & 0b000_010_010) != 0;
        var sticky = (mode & 0b1_000_000_000) != 0;
        if ((uint)st.st_uid != 0 || (othersWrite && (last || !sticky)))
            throw new ContainerException("UserNicUnsafeDirectory", ContainerErrorKind.PermissionDenied,
                last
                    ? $"{path} must belong to root and be writable only by root to hold a privileged program (it is uid {(uint)st.st_uid}'s, mode {Convert.ToString(mode & 0xFFF, 8)}); choose another -Path."
                    : $"{path}, a directory on the way to {destination}, must belong to root and be writable only by root (or be sticky, like /tmp), or someone else could swap what lies below it (it is uid {(uint)st.st_uid}'s, mode {Convert.ToString(mode & 0xFFF, 8)}); choose another -Path.",
                destination);
    }

    private static ContainerException InstallFailed(string what, string path, string destination) =>
        new("UserNicInstallFailed", ContainerErrorKind.DeviceError, $"Cannot {what} {path}: {Native.Sys.ErrnoMessage(Native.Sys.Errno)}.", destination);

    private const int AT_FDCWD = -100, O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0x40, O_EXCL = 0x80, O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000, O_PATH = 0x200000;
    private const int EEXIST = 17, ENOTDIR = 20, ELOOP = 40;

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] private static extern int openat(int dirfd, byte* path, int flags, uint mode);
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] private static extern int mkdirat(int dirfd, byte* path, uint mode);
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] private static extern int unlinkat(int dirfd, byte* path, int flags);
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] private static extern int renameat(int olddirfd, byte* oldpath, int newdirfd, byte* newpath);
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] private static extern int fchown(int fd, uint owner, uint group);
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] private static extern int fchmod(int fd, uint mode);
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] private static extern int close(int fd);

    private static int OpenAt(int dirfd, string path, int flags, uint mode) { fixed (byte* p = Filesystem.FsNative.Z(path)) return openat(dirfd, p, flags, mode); }
    private static int MkdirAt(int dirfd, string path, uint mode) { fixed (byte* p = Filesystem.FsNative.Z(path)) return mkdirat(dirfd, p, mode); }
    private static int UnlinkAt(int dirfd, string path) { fixed (byte* p = Filesystem.FsNative.Z(path)) return unlinkat(dirfd, p, 0); }
    private static int RenameAt(int olddirfd, string oldpath, int newdirfd, string newpath)
    {
        fixed (byte* o = Filesystem.FsNative.Z(oldpath), n = Filesystem.FsNative.Z(newpath)) return renameat(olddirfd, o, newdirfd, n);
    }

    /// <summary>psc-usernic create: the veth <paramref name="hostName"/>/<paramref name="name"/> on <paramref name="bridge"/> into the namespace of <paramref name="pid"/>.</summary>
    public static void Create(int pid, string bridge, string name, string hostName, string container) =>
        Run(container, "create", pid.ToString(System.Globalization.CultureInfo.InvariantCulture), bridge, name, hostName);

    /// <summary>psc-usernic delete: removes a host end it made for this user (nothing when it is gone already).</summary>
    public static void Delete(string hostName, string container) => Run(container, "delete", hostName);

    private static void Run(string container, params string[] args)
    {
        var path = InstalledPath;
        if (InstallationProblem(path) is { } problem)
            throw new ContainerException("UserNicNotInstalled", ContainerErrorKind.NotInstalled,
                $"Container '{container}': a non-root user's veth needs psc-usernic installed privileged, but {problem}. " +
                $"As root run Install-ContainerUserNic (or point ${EnvironmentVariable} at an installed copy).", container);
        var result = Processes.ProcessRunner.Run(new Processes.ProgramStart
        {
            Program = path,
            Arguments = args.ToArray(),
            ClearEnvironment = true, // it clears its environment itself; nothing of ours is its business
            Timeout = TimeSpan.FromSeconds(60),
            TimeoutErrorId = "UserNicFailed",
            TimeoutAdvice = "It waits for the usernet quota's lock; check for a hung psc-usernic process.",
            NotFoundErrorId = "UserNicNotInstalled",
            NotFoundAdvice = $"As root run Install-ContainerUserNic (or point ${EnvironmentVariable} at an installed copy).",
            Target = container,
        });
        var message = result.Error.Trim();
        if (message.StartsWith(FileName + ": ", StringComparison.Ordinal)) message = message[(FileName.Length + 2)..];
        var (id, kind) = result.ExitCode switch
        {
            0 => (null, default(ContainerErrorKind)),
            2 => ("InvalidNetworkConfig", ContainerErrorKind.InvalidArgument),
            3 => ("UsernetQuotaExceeded", ContainerErrorKind.PermissionDenied),
            4 => ("UserNicNotPermitted", ContainerErrorKind.PermissionDenied),
            5 => ("BridgeNotFound", ContainerErrorKind.ObjectNotFound),
            6 => ("UserNicNotInstalled", ContainerErrorKind.NotInstalled),
            _ => ("UserNicFailed", ContainerErrorKind.DeviceError),
        };
        if (id is not null)
            throw new ContainerException(id, kind, $"Container '{container}': {message}", container);
    }
}
