using System.Runtime.InteropServices;

namespace PSContainers.Runtime.Security;

/// <summary>The architectures a seccomp filter is generated for (the host's).</summary>
public enum SeccompArch
{
    X86_64,
    Aarch64,
}

/// <summary>Syscall names to numbers per architecture (generated from the kernel headers), and errno names.</summary>
public static partial class SyscallTable
{
    public static SeccompArch HostArch => RuntimeInformation.OSArchitecture switch
    {
        Architecture.X64 => SeccompArch.X86_64,
        Architecture.Arm64 => SeccompArch.Aarch64,
        var other => throw new ContainerException("SeccompUnsupportedArch", ContainerErrorKind.NotImplemented,
            $"Seccomp filters are generated for x86_64 and aarch64 only, not {other}. Set security.seccomp.profile to unconfined on this machine."),
    };

    internal static IReadOnlyDictionary<string, int> For(SeccompArch arch) => arch == SeccompArch.X86_64 ? X86_64 : Aarch64;

    /// <summary>The number of a syscall on an architecture; null where it does not exist there.</summary>
    public static int? Number(string name, SeccompArch arch) => For(arch).TryGetValue(name, out var n) ? n : null;

    /// <summary>Known on some architecture (a profile may name x86_64-only calls like "open").</summary>
    public static bool IsKnown(string name) => X86_64.ContainsKey(name) || Aarch64.ContainsKey(name);

    private static readonly Dictionary<string, int> Errnos = new(StringComparer.Ordinal)
    {
        ["EPERM"] = 1, ["ENOENT"] = 2, ["ESRCH"] = 3, ["EINTR"] = 4, ["EIO"] = 5, ["ENXIO"] = 6, ["E2BIG"] = 7,
        ["ENOEXEC"] = 8, ["EBADF"] = 9, ["ECHILD"] = 10, ["EAGAIN"] = 11, ["ENOMEM"] = 12, ["EACCES"] = 13,
        ["EFAULT"] = 14, ["EBUSY"] = 16, ["EEXIST"] = 17, ["EXDEV"] = 18, ["ENODEV"] = 19, ["ENOTDIR"] = 20,
        ["EISDIR"] = 21, ["EINVAL"] = 22, ["ENFILE"] = 23, ["EMFILE"] = 24, ["ENOTTY"] = 25, ["ETXTBSY"] = 26,
        ["EFBIG"] = 27, ["ENOSPC"] = 28, ["ESPIPE"] = 29, ["EROFS"] = 30, ["EMLINK"] = 31, ["EPIPE"] = 32,
        ["ERANGE"] = 34, ["EDEADLK"] = 35, ["ENAMETOOLONG"] = 36, ["ENOLCK"] = 37, ["ENOSYS"] = 38,
        ["ENOTEMPTY"] = 39, ["ELOOP"] = 40, ["ENOTSUP"] = 95, ["EOPNOTSUPP"] = 95, ["EAFNOSUPPORT"] = 97,
        ["EADDRINUSE"] = 98, ["ENETDOWN"] = 100, ["ETIMEDOUT"] = 110, ["ECONNREFUSED"] = 111,
    };

    /// <summary>EPERM, eperm or a number 1..4095 (what SECCOMP_RET_ERRNO can carry).</summary>
    public static bool TryParseErrno(string text, out int errno)
    {
        if (Errnos.TryGetValue(text.Trim().ToUpperInvariant(), out errno)) return true;
        return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out errno) && errno is >= 1 and <= 4095;
    }

    public static string ErrnoHelp => "an errno name (" + string.Join(", ", Errnos.Keys.Take(12)) + ", ENOSYS, ...) or a number from 1 to 4095";
}
