using System.Diagnostics;
using PSContainers.Runtime.IdMapping;

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
    public static string ShippedPath => Path.Combine(Path.GetDirectoryName(Namespaces.Helper.Path)!, FileName);

    /// <summary>Why the program at <paramref name="path"/> cannot work for a non-root caller; null when it is installed privileged.</summary>
    public static string? InstallationProblem(string path)
    {
        if (!File.Exists(path))
            return $"{path} does not exist";
        if (ContainerHostCheck.OwnerOf(path) != 0)
            return $"{path} does not belong to root";
        var setuid = File.GetUnixFileMode(path).HasFlag(UnixFileMode.SetUser);
        if (!setuid && FileCapabilities.Read(path)?.Grants(CapNetAdmin) != true)
            return $"{path} has neither the setuid bit nor the file capability cap_net_admin+ep";
        return null;
    }

    /// <summary>
    /// Copies <paramref name="source"/> to <paramref name="destination"/> owned by root, mode 0755,
    /// with the file capability cap_net_admin+ep, or (with <paramref name="setuid"/>) mode 4755 and
    /// no capability. Written beside the target and renamed over it, so a half-installed privileged
    /// file never exists under its name.
    /// </summary>
    public static void Install(string source, string destination, bool setuid)
    {
        if (!Native.Sys.IsRoot)
            throw new ContainerException("UserNicInstallNeedsRoot", ContainerErrorKind.PermissionDenied,
                "Only root can install psc-usernic privileged; run Install-ContainerUserNic as root.", destination);
        if (!File.Exists(source))
            throw new ContainerException("UserNicNotFound", ContainerErrorKind.NotInstalled,
                $"{source} does not exist; rebuild the module (dotnet build -c Release).", source);
        var directory = Path.GetDirectoryName(Path.GetFullPath(destination))!;
        Directory.CreateDirectory(directory);
        // Someone else who can write there could swap the file between our chown and the rename.
        if (ContainerHostCheck.OwnerOf(directory) != 0 || (File.GetUnixFileMode(directory) & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
            throw new ContainerException("UserNicUnsafeDirectory", ContainerErrorKind.PermissionDenied,
                $"{directory} must belong to root and be writable only by root to hold a privileged program; choose another -Path.", destination);
        var temporary = Path.Combine(directory, $".{Path.GetFileName(destination)}.{Environment.ProcessId}.tmp");
        try
        {
            File.Copy(source, temporary, overwrite: true);
            fixed (byte* p = System.Text.Encoding.UTF8.GetBytes(temporary + "\0"))
                if (Tmds.Linux.LibC.chown(p, 0, 0) != 0)
                    throw new ContainerException("UserNicInstallFailed", ContainerErrorKind.DeviceError,
                        $"Cannot make {temporary} root's: {Native.Sys.ErrnoMessage(Native.Sys.Errno)}.", destination);
            // After the chown, which clears setuid bits and file capabilities.
            File.SetUnixFileMode(temporary, setuid
                ? UnixFileMode.SetUser | UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute
                : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            if (!setuid)
                Storage.FsNative.SetXattr(-1, temporary, FileCapabilities.XattrName, FileCapabilities.Encode(1UL << CapNetAdmin, effective: true));
            File.Move(temporary, destination, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
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
        var psi = new ProcessStartInfo(path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.Environment.Clear(); // it clears its environment itself; nothing of ours is its business
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        var message = stderr.Result.Trim();
        if (message.StartsWith(FileName + ": ", StringComparison.Ordinal)) message = message[(FileName.Length + 2)..];
        var (id, kind) = process.ExitCode switch
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
