using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;
using PSContainers.Runtime.UserNamespaces;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Launcher;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// Invoke-Container and Enter-Container (lxc-attach): a program run inside a running container,
/// in its namespaces, cgroup and security settings, as the user asked for; errors that say what
/// went wrong (a container that stopped meanwhile, a command line given as one string).
/// </summary>
internal sealed class ContainerExec : ContainerOperation
{
    public ContainerExec(ContainerManager manager) : base(manager) { }

    /// <summary>Builds the spec that runs a program inside a running container (lxc-attach).</summary>
    private ExecSpec AttachSpec(string name, IReadOnlyList<string> command, NamespaceKind namespaces, string? workingDirectory, IDictionary<string, string>? environment, ExecOptions? options = null)
    {
        if (command.Count == 0 || string.IsNullOrEmpty(command[0]))
            throw new ContainerException("NoCommand", ContainerErrorKind.InvalidArgument, "Give the program to run, e.g. -Command hostname or -Command ls,-l,/.", name);
        var (state, status) = Running(name, "run a command in");
        if (status == ContainerStatus.Frozen)
            throw new ContainerException("ContainerFrozen", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' is frozen; a command would hang. Resume it first with Resume-Container.", name);
        var config = ConfigLoader.Load(Store.ConfigPath(name));
        var spec = new ExecSpec
        {
            TargetPid = state.InitPid,
            Namespaces = namespaces == NamespaceKind.None ? NamespaceKind.ContainerDefault : namespaces,
            WorkingDirectory = workingDirectory ?? config.Init.WorkingDirectory,
        };
        // Its user namespace first: the other namespaces belong to it, and so do the command's ids.
        if (config.IdMap is not null) spec.Namespaces |= NamespaceKind.User;
        // A user-namespaced container in the host's network namespace (type none): that namespace
        // belongs to the host's user namespace, which a command joined to the container's cannot
        // enter (EPERM). It keeps the caller's, which for a caller on the host is that very one.
        if (config.IdMap is not null && NetworkPlan.SharesHostNetwork(config)) spec.Namespaces &= ~NamespaceKind.Network;
        spec.Command.AddRange(command);
        var identity = ExecIdentities.Resolve(name, state.InitPid!.Value, options?.User, options?.Group, config.IdMap);
        spec.Environment.AddRange(Environment(config, environment, options?.ClearEnvironment ?? false, identity.Home));
        (spec.UserId, spec.GroupId) = (identity.Uid, identity.Gid);
        spec.SupplementaryGroups.AddRange(identity.SupplementaryGroups.Select(g => g.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        if (options?.Timeout is { } timeout) spec.TimeoutMilliseconds = Math.Max(1, (long)timeout.TotalMilliseconds);
        spec.Terminal = options?.Terminal ?? false;
        Containers.SecurityPlan.Apply(spec, config, attach: true);
        if (state.CgroupPath is not null && Cgroups.Exists(state.CgroupPath))
        {
            // The inner cgroup, where init is (the outer one for a container started before that layout).
            var join = Cgroups.JoinPathOf(state.CgroupPath);
            spec.CgroupProcsFiles.AddRange(Cgroups.ProcsFiles(join));
            spec.CgroupV2Directory = Cgroups.V2?.Directories(join)[0];
        }
        return spec;
    }

    public ContainerCommandResult Exec(string name, IReadOnlyList<string> command, NamespaceKind namespaces = NamespaceKind.None,
        string? workingDirectory = null, IDictionary<string, string>? environment = null, CancellationToken cancellationToken = default, ExecOptions? options = null)
    {
        ContainerNames.Validate(name);
        ExecSpec spec;
        // The lock covers only the checks: a long-running command must not block Stop-Container.
        ulong? initStart;
        using (Store.Lock(name))
        {
            spec = AttachSpec(name, command, namespaces, workingDirectory, environment, options);
            initStart = spec.TargetPid is { } target ? Sys.ProcessStartTime(target) : null;
        }
        var result = PscHelper.Run(spec, options?.Input, cancellationToken);
        // The relay killed the command at its timeout (124, and its own message last on stderr).
        if (spec.TimeoutMilliseconds is { } ms && result.ExitCode == 124 && result.Error.LastOrDefault()?.StartsWith("psc-helper: timed out", StringComparison.Ordinal) == true)
            throw new ContainerException("CommandTimeout", ContainerErrorKind.OperationTimeout,
                $"'{string.Join(' ', command)}' in container '{name}' ran longer than {TimeSpan.FromMilliseconds(ms).TotalSeconds:0.###} s and was killed (with its process group). Raise -Timeout, or check what it waits for.", name);
        if (result.ExitCode == 125 && result.Error.Any(l => l.StartsWith("psc-helper:", StringComparison.Ordinal)))
        {
            // The container stopped (or was removed) between the check and the attach: say that,
            // not the helper's "open /proc/N/ns/mnt".
            if (StoppedDuringAttach(spec.TargetPid, initStart))
                throw Store.Exists(name) ? new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                    $"Cannot run a command in container '{name}': it stopped while the command was being started.", name) : NotFound(name);
            throw new ContainerException("AttachFailed", ContainerErrorKind.InvalidOperation,
                $"Could not enter container '{name}': {string.Join(" ", result.Error).Replace("psc-helper: ", "")}", name);
        }
        // "ls -l /" as one string is a program of that name, which no container has: say how arguments are passed.
        if (result.ExitCode == 127 && command.Count == 1 && command[0].Trim().Contains(' ') && spec.TargetPid is { } pid && !ProgramExists(pid, command[0]))
        {
            var words = command[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            throw new ContainerException("CommandNotFound", ContainerErrorKind.ObjectNotFound,
                $"Container '{name}' has no program named '{command[0]}'. -Command takes the program and each argument as separate strings " +
                $"(no shell is involved): -Command {string.Join(",", words.Select(QuoteForPowerShell))}. For a shell command line, run a shell: -Command sh,-c,{QuoteForPowerShell(command[0])}.", name);
        }
        return new ContainerCommandResult
        {
            Name = name,
            Command = command.ToArray(),
            ExitCode = result.ExitCode,
            Output = result.Output,
            Error = result.Error,
        };
    }

    /// <summary>
    /// Whether a failed attach met a container on its way down. An init killed by a stop releases its
    /// namespaces before it becomes a zombie, and its pid namespace refuses new processes while it
    /// exits: for a moment the attach fails while the process still looks alive. So a dying init
    /// (namespaces already gone) counts as stopped, and otherwise the answer waits, briefly and only on
    /// this error path, for the exit to show.
    /// </summary>
    private static bool StoppedDuringAttach(int? pid, ulong? initStart)
    {
        for (var i = 0; i < 20; i++)
        {
            if (!Sys.IsAlive(pid, initStart)) return true;
            try { if (new FileInfo($"/proc/{pid}/ns/mnt").LinkTarget is null) return true; }
            catch (IOException) { return true; }
            catch (UnauthorizedAccessException) { } // cannot look: the liveness check alone decides
            Thread.Sleep(50);
        }
        return false;
    }

    /// <summary>Whether the container (through its init's root) has <paramref name="program"/>: a path, or a name on its PATH.</summary>
    private static bool ProgramExists(int initPid, string program)
    {
        var root = $"/proc/{initPid}/root";
        try
        {
            // Present as a file or as a link (an absolute link inside the container would resolve against the host's root here).
            static bool Present(string p) => File.Exists(p) || new FileInfo(p).LinkTarget is not null;
            if (program.Contains('/')) return Present(root + "/" + program.TrimStart('/'));
            return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".Split(':').Any(d => Present($"{root}{d}/{program}"));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return true; } // cannot tell: no hint
    }

    private static string QuoteForPowerShell(string word) =>
        word.Length > 0 && word.All(c => char.IsLetterOrDigit(c) || c is '-' or '/' or '.' or '_' or '=' or ':') ? word : "'" + word.Replace("'", "''") + "'";

    /// <summary>
    /// Starts an interactive program in the container (Enter-Container): on a new pty of the container's
    /// own devpts, in a session of its own; the helper relays between it and the caller's terminal,
    /// which never enters the container (no TIOCSTI into the caller's shell, no foreground group taken).
    /// </summary>
    public Processes.RunningProgram StartInteractive(string name, IReadOnlyList<string> command, NamespaceKind namespaces = NamespaceKind.None, string? workingDirectory = null,
        IDictionary<string, string>? environment = null, ExecOptions? options = null)
    {
        ContainerNames.Validate(name);
        ExecSpec spec;
        using (Store.Lock(name)) spec = AttachSpec(name, command, namespaces, workingDirectory, environment, options);
        spec.Terminal = true;
        spec.Environment.Add("TERM=" + (System.Environment.GetEnvironmentVariable("TERM") ?? "xterm"));
        return PscHelper.StartInteractive(spec, Store.TempDirectory);
    }

}
