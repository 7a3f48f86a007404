using System.Globalization;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Native;

using PSContainers.Runtime.Network;

using PSContainers.Runtime.State;

namespace PSContainers.Runtime.NetworkHooks;

/// <summary>
/// User-mode networking (<c>network: [{ type: pasta }]</c>): pasta, from the passt package, attaches
/// to the container's network namespace, creates a tap interface there with the host's addresses and
/// routes, and carries the container's traffic through ordinary sockets of the caller — no host
/// interface, no privilege, so it is what a non-root user's containers use. Driven through pasta's
/// documented command line; it daemonizes once the interface is configured and is stopped with the
/// container. Traffic to the host's own loopback is off (--no-map-gw); chosen ports are forwarded
/// (<c>ports</c>: host → container, pasta -t; <c>hostPorts</c>: container loopback → host loopback, -T).
/// </summary>
public sealed class PastaHook : IContainerHook
{
    public const string Program = "pasta";
    private readonly ContainerStore _store;

    public PastaHook(ContainerStore store) => _store = store;

    private string PidFile(string name) => Path.Combine(_store.ContainerDirectory(name), "pasta.pid");
    private string PinPath(string name) => Path.Combine(_store.ContainerDirectory(name), "pasta.netns");

    /// <summary>The pasta interface of a config and its name inside (ethN by position, like every NIC).</summary>
    public static (NicConfig Nic, string Name)? Interface(ContainerConfig config)
    {
        var eth = 0;
        foreach (var nic in config.Network)
        {
            if (nic.Type is "none" or "empty") continue;
            if (nic.Type == "pasta") return (nic, nic.Name ?? $"eth{eth}");
            eth++;
        }
        return null;
    }

    /// <summary>pasta's arguments for a container: everything but the namespace to attach to.</summary>
    public static List<string> Arguments(NicConfig nic, string name, string pidFile)
    {
        static string Spec(List<string> ports) => ports.Count == 0 ? "none" : string.Join(',', ports);
        var args = new List<string>
        {
            "--config-net", "--ns-ifname", name, "--quiet", "--pid", pidFile,
            "--tcp-ports", Spec(nic.Ports), "--tcp-ns", Spec(nic.HostPorts),
            "--udp-ports", "none", "--udp-ns", "none",
            // Without this, the gateway address would lead to every service on the host's loopback.
            "--no-map-gw",
        };
        if (nic.Mtu is { } mtu) args.AddRange(new[] { "--mtu", mtu.ToString(CultureInfo.InvariantCulture) });
        return args;
    }

    public void Starting(ContainerStartContext context)
    {
        if (Interface(context.Config) is not var (nic, name)) return;
        Release(context.Name); // a pasta left by a run that ended without a stop
        var pidFile = PidFile(context.Name);
        var args = Arguments(nic, name, pidFile);
        if (Host.HostContext.Current.IsRoot)
        {
            // pasta drops the capabilities it does not need, CAP_SYS_PTRACE among them, so it cannot
            // open another root process's /proc/PID/ns: give it a pinned namespace file instead, and
            // keep it root (--runas 0) to enter it; it still runs with a minimal capability set.
            var pin = PinPath(context.Name);
            NetworkHook.Pin(context.InitPid, pin);
            args.AddRange(new[] { "--runas", "0", "--netns", pin });
        }
        else
        {
            // The caller owns the container's user namespace, which owns its network namespace.
            CheckTun(context.Name);
            args.AddRange(new[] { "--userns", $"/proc/{context.InitPid}/ns/user", "--netns", $"/proc/{context.InitPid}/ns/net" });
        }
        // .NET runs child processes with SIGPIPE ignored (inherited through exec), and this pasta
        // takes the ignored disposition it finds for a failure to install its own handler: env(1)
        // restores the default before exec'ing it.
        Processes.ProgramResult result;
        try
        {
            // pasta returns once the interface is configured and it has daemonized.
            result = Processes.ProcessRunner.Run(new Processes.ProgramStart
            {
                Program = "env",
                Arguments = new[] { "--default-signal=PIPE", Program }.Concat(args).ToArray(),
                DisplayName = "pasta",
                Timeout = TimeSpan.FromSeconds(30),
                TimeoutErrorId = "PastaFailed",
                TimeoutAdvice = "Check the container's pasta options in its config.yaml, and that /dev/net/tun is usable.",
                NotFoundErrorId = "PastaNotFound",
                NotFoundAdvice = "Install pasta: apt-get install passt.",
                Target = context.Name,
            });
        }
        catch (ContainerException)
        {
            Release(context.Name);
            throw;
        }
        if (result.ExitCode == 127)
        {
            Release(context.Name);
            throw new ContainerException("PastaNotFound", ContainerErrorKind.NotInstalled,
                $"Container '{context.Name}' uses pasta networking, but pasta is not installed. Install it: apt-get install passt.", context.Name);
        }
        if (result.ExitCode != 0 || !File.Exists(pidFile))
        {
            Release(context.Name);
            var why = string.Join(" ", (result.Error + "\n" + result.Output).Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith("Failed to send", StringComparison.Ordinal)));
            throw new ContainerException("PastaFailed", ContainerErrorKind.InvalidOperation,
                $"Container '{context.Name}': pasta could not set up its network (exit code {result.ExitCode}): {why}", context.Name);
        }
    }

    public void Stopped(string name, ContainerConfig config)
    {
        if (Interface(config) is null) return;
        Release(name);
    }

    /// <summary>A pasta left by a run whose init ended on its own (no stop ran the hooks) goes with its container.</summary>
    public void Removed(string name) => Release(name);

    /// <summary>Stops the container's pasta (checked by name: a reused pid is left alone) and unpins its namespace.</summary>
    public void Release(string name)
    {
        var pidFile = PidFile(name);
        if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && IsPasta(pid))
        {
            var start = Sys.ProcessStartTime(pid);
            try { Sys.Kill(pid, 15); } catch (ContainerException) { /* not ours to signal: not our pasta */ }
            if (start is { } s && !Sys.WaitForExit(pid, s, TimeSpan.FromSeconds(2))) try { Sys.Kill(pid, 9); } catch (ContainerException) { }
        }
        File.Delete(pidFile);
        if (Host.HostContext.Current.IsRoot) NetworkHook.Unpin(PinPath(name));
    }

    // passt and pasta are one program; its comm is passt, or passt.avx2 where the AVX2 build runs.
    private static bool IsPasta(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim() is "pasta" or "passt" or "passt.avx2" or "pasta.avx2"; }
        catch (IOException) { return false; }
    }

    /// <summary>pasta opens /dev/net/tun as the caller; many hosts (udev's default) make it 0666, some keep it root's.</summary>
    private static unsafe void CheckTun(string name)
    {
        int rc;
        fixed (byte* p = System.Text.Encoding.UTF8.GetBytes("/dev/net/tun\0"))
            rc = Tmds.Linux.LibC.access(p, Tmds.Linux.LibC.R_OK | Tmds.Linux.LibC.W_OK);
        if (rc != 0)
            throw new ContainerException("TunUnavailable", ContainerErrorKind.PermissionDenied,
                $"Container '{name}' uses pasta networking, which needs read and write access to /dev/net/tun, and this user has none. " +
                "Root can allow it the way udev does by default: chmod 0666 /dev/net/tun (the tun driver itself checks CAP_NET_ADMIN in the container's namespace).", name);
    }
}
