using System.Collections.Concurrent;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace PSContainers.Runtime.Templates;

/// <summary>
/// A tiny rootfs like lxc-busybox: the host's statically linked busybox, one hard link per applet,
/// and just enough of /etc for a shell and busybox init.
/// </summary>
public sealed class BusyboxTemplate : IRootfsTemplate
{
    public const string BusyboxEnvironmentVariable = "PSCONTAINERS_BUSYBOX";

    // busybox --list-full per (resolved path, mtime, size): building many containers runs busybox once.
    static readonly ConcurrentDictionary<(string Path, long MTime, long Size), IReadOnlyList<string>> AppletCache = new();

    public string Name => "busybox";
    public IReadOnlyList<string> DefaultInitCommand { get; } = new[] { "/sbin/init" };
    // busybox init: SIGUSR1 halts, SIGUSR2 powers off, SIGTERM reboots (which would restart it).
    public string DefaultStopSignal => "SIGUSR2";

    public void CheckPrerequisites(TemplateOptions options) => FindBusybox();

    public void Build(string rootfsDirectory, TemplateOptions options, IProgress<TemplateProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(rootfsDirectory);
        ArgumentNullException.ThrowIfNull(options);
        const string activity = "Building busybox rootfs";
        var busybox = FindBusybox();
        var name = string.IsNullOrEmpty(options.ContainerName) ? "busybox" : options.ContainerName;
        progress?.Report(new TemplateProgress(activity, $"Listing applets of {busybox}", 5));
        var applets = ListApplets(busybox, cancellationToken);

        var root = Path.GetFullPath(rootfsDirectory);
        Directory.CreateDirectory(root);
        RootfsFile.SetMode(root, 0b111_101_101);
        progress?.Report(new TemplateProgress(activity, "Creating directories", 15));
        foreach (var (dir, mode) in StandardDirectories)
            RootfsFile.CreateDirectory(root, dir, mode);

        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(new TemplateProgress(activity, "Copying busybox", 30));
        var target = RootfsFile.PrepareNew(root, "bin/busybox");
        File.Copy(busybox, target);
        RootfsFile.SetMode(target, 0b111_101_101);

        progress?.Report(new TemplateProgress(activity, $"Linking {applets.Count} applets", 50));
        foreach (var parent in applets.Select(a => Path.GetDirectoryName(a) ?? "").Where(p => p.Length > 0).Distinct())
            RootfsFile.CreateDirectory(root, parent, 0b111_101_101);
        cancellationToken.ThrowIfCancellationRequested();
        // Hard links, as `busybox --install` makes them: a link costs a directory entry, where a
        // symlink costs an inode too (a tenth of the time on ext4 for ~270 applets).
        foreach (var applet in applets)
        {
            if (applet == "bin/busybox")
                continue;
            var errno = Native.Sys.HardLink(target, Path.Combine(root, applet));
            if (errno != 0)
            {
                if (errno == Tmds.Linux.LibC.EEXIST) continue;
                throw new ContainerException("RootfsWriteFailed", ContainerErrorKind.DeviceError,
                    $"Cannot link applet {applet} in {root}: {Native.Sys.ErrnoMessage(errno)}", root);
            }
        }

        progress?.Report(new TemplateProgress(activity, "Writing /etc", 85));
        RootfsFile.Write(root, "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0b110_100_100);
        RootfsFile.Write(root, "etc/group", "root:x:0:\nnogroup:x:65534:\n", 0b110_100_100);
        RootfsFile.Write(root, "etc/shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0b110_000_000);
        RootfsFile.WriteHostFiles(root, name);
        // No getty lines: init must just keep running; consoles are attached by the runtime. No
        // "umount -a" at shutdown: the container's mounts end with its mount namespace, and trying
        // to remount the rootfs read-only only costs the stop seconds.
        // rcS and the shutdown action say so on the console, so the console log (Get-ContainerConsoleLog) tells the story of each run.
        RootfsFile.Write(root, "etc/inittab",
            "::sysinit:/etc/init.d/rcS\n::ctrlaltdel:/sbin/reboot\n::shutdown:/bin/echo \"$(/bin/hostname): shutting down\"\n", 0b110_100_100);
        RootfsFile.Write(root, "etc/init.d/rcS",
            "#!/bin/sh\n/bin/mkdir -p /run /var/log\necho \"$(/bin/hostname): started (busybox init, /etc/init.d/rcS)\"\n", 0b111_101_101);
        RootfsFile.Write(root, "etc/profile",
            "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1='\\u@\\h:\\w\\$ '\n", 0b110_100_100);
        progress?.Report(new TemplateProgress(activity, "Done", 100));
    }

    // Modes as binary literals (C# has no octal): 0b111_101_101 is rwxr-xr-x, 0755.
    static readonly (string Path, int Mode)[] StandardDirectories =
    {
        ("bin", 0b111_101_101), ("sbin", 0b111_101_101), ("usr", 0b111_101_101), ("usr/bin", 0b111_101_101), ("usr/sbin", 0b111_101_101),
        ("etc", 0b111_101_101), ("etc/init.d", 0b111_101_101), ("dev", 0b111_101_101), ("proc", 0b101_101_101), ("sys", 0b101_101_101),
        ("tmp", 0b1_111_111_111 /* 01777 */), ("root", 0b111_000_000), ("home", 0b111_101_101), ("var", 0b111_101_101), ("var/log", 0b111_101_101),
        ("run", 0b111_101_101), ("lib", 0b111_101_101), ("mnt", 0b111_101_101),
    };

    /// <summary>The busybox binary to use: $PSCONTAINERS_BUSYBOX, PATH, /bin/busybox, /usr/bin/busybox; must be static.</summary>
    internal static string FindBusybox()
    {
        string? found;
        var env = Environment.GetEnvironmentVariable(BusyboxEnvironmentVariable);
        if (!string.IsNullOrEmpty(env))
        {
            if (!File.Exists(env))
                throw new ContainerException("BusyboxNotFound", ContainerErrorKind.NotInstalled,
                    $"busybox not found at '{env}' (set by ${BusyboxEnvironmentVariable}). Point the variable at a statically linked busybox, or unset it and apt-get install busybox-static.", env);
            found = env;
        }
        else
        {
            var path = Environment.GetEnvironmentVariable("PATH") ?? "";
            found = path.Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Select(d => Path.Combine(d, "busybox"))
                .Append("/bin/busybox").Append("/usr/bin/busybox")
                .FirstOrDefault(File.Exists);
            if (found is null)
                throw new ContainerException("BusyboxNotFound", ContainerErrorKind.NotInstalled,
                    "busybox not found on PATH, in /bin or /usr/bin. Install a statically linked one: apt-get install busybox-static (or set $PSCONTAINERS_BUSYBOX).");
        }

        var resolved = Path.GetFullPath(found);
        if (File.ResolveLinkTarget(resolved, returnFinalTarget: true) is { } final)
            resolved = final.FullName;
        if (!IsStaticElf(resolved, out var problem))
            throw new ContainerException("BusyboxNotStatic", ContainerErrorKind.NotInstalled,
                $"'{found}' {problem}; a container cannot use the host's shared libraries. Install busybox-static (apt-get install busybox-static) or set ${BusyboxEnvironmentVariable} to a static busybox.", found);
        return resolved;
    }

    /// <summary>True for an ELF executable without a PT_INTERP program header (no dynamic loader needed).</summary>
    internal static bool IsStaticElf(string path, out string problem)
    {
        const uint PT_INTERP = 3;
        byte[] header = new byte[64];
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        if (fs.Read(header, 0, header.Length) < 52 || header[0] != 0x7F || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F')
        {
            problem = "is not an ELF executable";
            return false;
        }
        bool is64 = header[4] == 2;
        bool bigEndian = header[5] == 2;
        ulong U(byte[] b, int off, int size)
        {
            ulong v = 0;
            for (int i = 0; i < size; i++)
                v |= (ulong)b[off + (bigEndian ? size - 1 - i : i)] << (8 * i);
            return v;
        }
        ulong phoff = is64 ? U(header, 0x20, 8) : U(header, 0x1C, 4);
        int phentsize = (int)U(header, is64 ? 0x36 : 0x2A, 2);
        int phnum = (int)U(header, is64 ? 0x38 : 0x2C, 2);
        if (phnum == 0 || phentsize < 4 || phoff == 0 || (long)phoff + (long)phentsize * phnum > fs.Length)
        {
            problem = "has no valid ELF program headers";
            return false;
        }
        var phdrs = new byte[phentsize * phnum];
        fs.Position = (long)phoff;
        fs.ReadExactly(phdrs);
        for (int i = 0; i < phnum; i++)
        {
            if (U(phdrs, i * phentsize, 4) == PT_INTERP)
            {
                problem = "is dynamically linked (it has an ELF interpreter)";
                return false;
            }
        }
        problem = "";
        return true;
    }

    /// <summary>Applet paths relative to / (e.g. bin/sh, usr/bin/awk) from <c>busybox --list-full</c>.</summary>
    internal static IReadOnlyList<string> ListApplets(string busybox, CancellationToken ct)
    {
        var info = new FileInfo(busybox);
        var key = (info.FullName, info.LastWriteTimeUtc.Ticks, info.Length);
        if (AppletCache.TryGetValue(key, out var cached))
            return cached;

        var result = Processes.ProcessRunner.Run(new Processes.ProgramStart
        {
            Program = busybox,
            Arguments = new[] { "--list-full" },
            Timeout = TimeSpan.FromSeconds(30),
            NotFoundErrorId = "BusyboxNotFound",
            NotFoundAdvice = "The busybox template needs a static busybox that runs here; install busybox-static.",
        }, ct);
        var list = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => l.TrimStart('/'))
            // Only plain relative paths: the list must not be able to place links outside the rootfs.
            .Where(l => l.Length > 0 && !l.Split('/').Any(part => part is "" or "." or ".."))
            .Distinct(StringComparer.Ordinal)
            .ToArray();
        if (result.ExitCode != 0 || list.Length == 0)
            throw result.Failure("BusyboxListFailed", ContainerErrorKind.InvalidOperation, $"'{busybox} --list-full' listed no applets",
                "The busybox build must support --list-full; install busybox-static.", busybox);
        AppletCache[key] = list;
        return list;
    }
}

/// <summary>
/// Writes files into a rootfs without following symlinks the rootfs might contain
/// (a link like etc -> /etc must never make us write on the host).
/// </summary>
internal static unsafe class RootfsFile
{
    /// <summary>Ensures every component of <paramref name="relative"/> below root is a real directory.</summary>
    public static void CreateDirectory(string root, string relative, int mode)
    {
        var path = root;
        foreach (var part in relative.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            path = Path.Combine(path, part);
            var type = EntryType(path);
            if (type == S_IFDIR)
                continue;
            if (type != default)
                throw new ContainerException("RootfsPathNotDirectory", ContainerErrorKind.InvalidData,
                    $"'{path}' exists and is not a directory (symlinks are not followed). Remove it from the rootfs.", path);
            Directory.CreateDirectory(path);
            SetMode(path, mode);
        }
    }

    /// <summary>Makes the parent directories and removes an existing entry; returns the full path to create.</summary>
    public static string PrepareNew(string root, string relative)
    {
        var dir = Path.GetDirectoryName(relative);
        if (!string.IsNullOrEmpty(dir))
            CreateDirectory(root, dir, 0b111_101_101);
        var path = Path.Combine(root, relative);
        var type = EntryType(path);
        if (type == S_IFDIR)
            throw new ContainerException("RootfsPathIsDirectory", ContainerErrorKind.InvalidData,
                $"'{path}' is a directory where a file is expected. Remove it from the rootfs.", path);
        if (type != default)
            File.Delete(path); // unlinks a symlink itself, not its target
        return path;
    }

    public static void Write(string root, string relative, string content, int mode)
    {
        var path = PrepareNew(root, relative);
        int fd;
        // 0600 and O_NOFOLLOW until the final mode is set: /etc/shadow is never readable in between.
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0"))
            fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)0b110_000_000);
        if (fd < 0)
            throw Failure(errorId: "RootfsWriteFailed", "create", path, errno);
        using (var fs = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Write))
            fs.Write(Encoding.UTF8.GetBytes(content));
        SetMode(path, mode);
    }

    /// <summary>/etc/hostname and /etc/hosts for a container called <paramref name="name"/>.</summary>
    public static void WriteHostFiles(string root, string name)
    {
        Write(root, "etc/hostname", name + "\n", 0b110_100_100);
        Write(root, "etc/hosts",
            $"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n", 0b110_100_100);
    }

    /// <summary>chmod with all 12 bits; unlike the mode given at creation, umask does not apply.</summary>
    public static void SetMode(string path, int mode)
    {
        int rc;
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0"))
            rc = fchmodat(AT_FDCWD, p, (mode_t)(ushort)mode, 0);
        if (rc != 0)
            throw Failure(errorId: "RootfsChmodFailed", "chmod", path, errno);
    }

    // errno is passed in, read right after the call: any later P/Invoke may overwrite it.
    static ContainerException Failure(string errorId, string op, string path, int err) =>
        new(errorId, ContainerErrorKind.InvalidOperation,
            $"Cannot {op} '{path}': {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(err)}. Check that the rootfs directory is writable by this user.", path);

    public static bool Exists(string path) => EntryType(path) != default;

    static mode_t EntryType(string path)
    {
        stat st;
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            if (lstat(p, &st) != 0)
                return default;
        return st.st_mode & S_IFMT;
    }
}
