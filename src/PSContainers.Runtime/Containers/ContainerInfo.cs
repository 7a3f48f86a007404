using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Containers;

/// <summary>A container as Get-Container shows it: a snapshot taken when the object was made.</summary>
public sealed class ContainerInfo
{
    public string Name { get; init; } = "";
    public ContainerStatus State { get; init; }
    /// <summary>Host pid of the container's init while it runs.</summary>
    public int? Pid { get; init; }
    public string Path { get; init; } = "";
    public string? Template { get; init; }
    /// <summary>A container made from an OCI image: its tag (or path) and digest, e.g. web:1.0@sha256:0123abcd4567; null otherwise.</summary>
    public string? Image { get; init; }
    public string Hostname { get; init; } = "";
    /// <summary>Privileged (no user namespace) or Unprivileged (user-namespaced, the default); null when the config cannot be read.</summary>
    public ContainerMode? Mode { get; init; }
    /// <summary>The host ids the container's ids are (e.g. 100000-165535); null for a privileged container.</summary>
    public string? HostIdRange { get; init; }
    public DateTimeOffset Created { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? StoppedAt { get; init; }
    /// <summary>
    /// Why init last ended: Requested (Stop-Container, clean), Killed, Exited, Failed, PoweredOff, Crashed
    /// or Checkpointed; null while it runs or if it never ran.
    /// </summary>
    public ContainerStopReason? StopReason { get; init; }
    /// <summary>
    /// Exit code of init's last run (128+signal when a signal ended it, like a shell); null after a
    /// requested stop or a power-off that ended it by signal (nothing went wrong), and after a checkpoint.
    /// </summary>
    public int? ExitCode { get; init; }
    /// <summary>How long init has run, for a running container (since its last restart by policy, if any).</summary>
    public TimeSpan? Uptime { get; init; }
    /// <summary>Restarts by the restart policy in the current run (or the last one, when stopped).</summary>
    public int Restarts { get; init; }
    /// <summary>How init last ended, in words: exit code N, signal SIGx, OOM kill, stopped, killed, powered off, checkpointed; null if it never ended.</summary>
    public string? LastExit { get; init; }
    public string? ExitSignal { get; init; }
    public string[] IPv4 { get; init; } = Array.Empty<string>();
    public string[] IPv6 { get; init; } = Array.Empty<string>();
    public long? MemoryLimit { get; init; }
    public string RootfsPath { get; init; } = "";
    public string ConfigPath { get; init; } = "";
    public string ConsoleLogPath { get; init; } = "";
    public string? CgroupPath { get; init; }
    public int? SupervisorPid { get; init; }
    public string StorePath { get; init; } = "";
    public string[] Command { get; init; } = Array.Empty<string>();
    /// <summary>security.seccomp.profile: default, unconfined or a profile file.</summary>
    public string? SeccompProfile { get; init; }
    /// <summary>Capabilities removed from init and attached commands (security.capabilities).</summary>
    public string[] DroppedCapabilities { get; init; } = Array.Empty<string>();
    /// <summary>Why the container is <c>Broken</c> (or what is wrong with a running one's config); null when all is well.</summary>
    public string? Problem { get; init; }
    /// <summary>autostart.enabled: started by Start-ContainerAutostart and at boot (lxc.start.auto).</summary>
    public bool Autostart { get; init; }
    /// <summary>autostart.order: higher starts first, stops last (lxc.start.order).</summary>
    public int AutostartOrder { get; init; }
    /// <summary>autostart.delay: seconds waited after its start before the next container's (lxc.start.delay).</summary>
    public int AutostartDelay { get; init; }
    /// <summary>autostart.groups (lxc.group); empty = the NULL group.</summary>
    public string[] Groups { get; init; } = Array.Empty<string>();

    public override string ToString() => Name;

    /// <summary>The image a container was made from, as Get-Container shows it (from config.yaml's oci: section, read anyway).</summary>
    public static string ImageReference(Config.OciConfig oci)
    {
        var name = oci.Tag ?? oci.Image ?? "";
        var digest = oci.Digest is { Length: > 19 } d && d.StartsWith("sha256:", StringComparison.Ordinal) ? d[..19] : oci.Digest;
        return digest is null ? name : $"{name}@{digest}";
    }
}

/// <summary>What a command run inside a container returned (Invoke-ContainerCommand).</summary>
public sealed class ContainerCommandResult
{
    public string Name { get; init; } = "";
    public string[] Command { get; init; } = Array.Empty<string>();
    public int ExitCode { get; init; }
    /// <summary>The lines the command wrote to stdout.</summary>
    public string[] Output { get; init; } = Array.Empty<string>();
    /// <summary>The lines the command wrote to stderr.</summary>
    public string[] Error { get; init; } = Array.Empty<string>();
    public bool Succeeded => ExitCode == 0;
}
