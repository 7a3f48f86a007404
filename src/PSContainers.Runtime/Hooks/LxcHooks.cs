using System.Globalization;
using System.Text.RegularExpressions;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.Processes;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Hooks;

/// <summary>
/// config.yaml <c>hooks:</c>, run where and when LXC runs lxc.hook.* and lxc.net.[i].script.*:
/// <list type="bullet">
/// <item>preStart: on the host, in the host's namespaces, before anything of the run exists (no
/// cgroup, namespaces or supervisor yet: a failure leaves nothing to undo);</item>
/// <item>mount: by init in the container's mount namespace, after its mounts, before pivot_root (a
/// host path; the rootfs is at LXC_ROOTFS_MOUNT);</item>
/// <item>start: by init inside the container just before its program is exec'd (a path inside the
/// container), before capabilities are dropped and seccomp is installed;</item>
/// <item>netUp: on the host for each NIC once its host side is set up, while init waits;</item>
/// <item>stop, netDown, postStop: by the supervisor once init has ended (also when no pwsh runs):
/// stop with references to the container's namespaces, netDown while they are still held,
/// postStop after the cgroups are gone. A failure there is recorded in the event journal
/// (HookFailed) and appended to a report that Stop-Container (or the command that finishes the
/// run) raises as an error. They run at the run's final end, not between restarts by policy.</item>
/// </list>
/// A CRIU restore is a run like a start, as LXC's (do_restore: lxc_init, then lxc_end): preStart
/// before it, stop, netDown and postStop at its end (<see cref="Restoring"/>); mount, start and
/// netUp not (CRIU brings back what they made). A run whose supervisor was killed gets postStop
/// (and netDown where a host end remains) from the runtime when it finishes that run (<see cref="Stopped"/>).
/// Each hook gets LXC's environment (LXC_NAME, LXC_CONFIG_FILE, LXC_ROOTFS_MOUNT, LXC_ROOTFS_PATH,
/// LXC_HOOK_TYPE, LXC_HOOK_SECTION, LXC_HOOK_VERSION=0, LXC_CGNS_AWARE; LXC_TARGET=stop for stop
/// and postStop; LXC_NET_TYPE, LXC_NET_PARENT, LXC_NET_PEER for net hooks; LXC_&lt;NS&gt;_NS for stop)
/// and, after its own arguments, LXC's version-0 arguments: the container's name, the section
/// ("lxc", or "net" for net hooks), the hook type ("up"/"down" and the NIC's type and peer for net
/// hooks; the namespace references for stop). A hook that runs past its timeout is killed with what
/// it started; a timeout or a non-zero exit fails the point it ran at (HookTimedOut, HookFailed).
/// </summary>
public sealed partial class LxcHooks : IContainerHook
{
    private const string Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    private readonly IContainerLifecycle _lifecycle;
    private readonly Func<string, int, NicConfig, string?> _peerName;

    /// <param name="peerName">The host end of a NIC (LXC_NET_PEER), from the network hook that made it.</param>
    public LxcHooks(IContainerLifecycle lifecycle, Func<string, int, NicConfig, string?> peerName)
    {
        _lifecycle = lifecycle;
        _peerName = peerName;
    }

    /// <summary>Where the supervisor appends the failures of its hooks.</summary>
    public string ReportPath(string name) => System.IO.Path.Combine(_lifecycle.Store.ContainerDirectory(name), "hooks.failed");

    public void BeforeLaunch(string name, ContainerConfig config)
    {
        // A report of an earlier run nobody finished is stale once a new run begins.
        File.Delete(ReportPath(name));
        foreach (var hook in config.Hooks.PreStart) RunOnHost(name, config, "pre-start", hook, Environment(name, config, "pre-start", "lxc"), LxcArgs(name, "lxc", "pre-start"));
    }

    public void Preparing(string name, ContainerConfig config, StartSpec spec)
    {
        foreach (var h in config.Hooks.Mount) Add(spec, config, "mount", h, Environment(name, config, "mount", "lxc"), LxcArgs(name, "lxc", "mount"));
        foreach (var h in config.Hooks.Start) Add(spec, config, "start", h, Environment(name, config, "start", "lxc"), LxcArgs(name, "lxc", "start"));
        AddEndOfRun(name, config, spec);
    }

    /// <summary>A restored run ends like a started one (LXC's lxc_end after do_restore): the same end-of-run hooks, the same report.</summary>
    public void Restoring(string name, ContainerConfig config, RestoreSpec spec) => AddEndOfRun(name, config, spec);

    /// <summary>stop, net-down and post-stop, which the supervisor runs once init has ended for good, and where it reports their failures.</summary>
    private void AddEndOfRun(string name, ContainerConfig config, ISupervisedSpec spec)
    {
        foreach (var h in config.Hooks.Stop) Add(spec, config, "stop", h, Environment(name, config, "stop", "lxc"), LxcArgs(name, "lxc", "stop"));
        foreach (var (nic, index, _) in NetworkPlan.Interfaces(config))
            foreach (var h in config.Hooks.NetDown)
                Add(spec, config, "net-down", h, NetEnvironment(name, config, "down", nic, index), NetArgs(name, "down", nic, index));
        foreach (var h in config.Hooks.PostStop) Add(spec, config, "post-stop", h, Environment(name, config, "post-stop", "lxc"), LxcArgs(name, "lxc", "post-stop"));
        if (spec.Hooks.Count > 0) spec.HookReport = ReportPath(name);
    }

    private static void Add(ISupervisedSpec spec, ContainerConfig config, string type, HookConfig hook, IDictionary<string, string> env, IEnumerable<string> args) =>
        spec.Hooks.Add(Record(type, config.Hooks.TimeoutOf(hook), env, new[] { hook.Path }.Concat(hook.Args).Concat(args)));

    public void Starting(ContainerStartContext context)
    {
        var config = context.Config;
        if (config.Hooks.NetUp.Count == 0) return;
        foreach (var (nic, index, _) in NetworkPlan.Interfaces(config))
            foreach (var hook in config.Hooks.NetUp)
                RunOnHost(context.Name, config, "up", hook, NetEnvironment(context.Name, config, "up", nic, index), NetArgs(context.Name, "up", nic, index));
    }

    /// <summary>
    /// The end of a run, from the runtime (a stop, the recovery of a run, an undone start): raises the
    /// failures the supervisor reported, and runs the end-of-run hooks that can still run when the
    /// supervisor died before init's end (<see cref="RunOrphanedEnd"/>).
    /// </summary>
    public void Stopped(string name, ContainerConfig config)
    {
        var failures = RunOrphanedEnd(name, config);
        var path = ReportPath(name);
        string text = "";
        try { text = File.ReadAllText(path).Trim(); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { }
        File.Delete(path);
        if (text.Length > 0)
        {
            var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            failures.Insert(0, Failure(name, lines[0], lines.Length > 1 ? $" ({lines.Length - 1} more: {string.Join("; ", lines.Skip(1))})" : "", "its run had ended; nothing was undone") ??
                new ContainerException("HookFailed", ContainerErrorKind.InvalidOperation, $"Container '{name}': {text}", name));
        }
        if (failures.Count == 1) throw failures[0];
        if (failures.Count > 1) throw new AggregateException(failures);
    }

    /// <summary>
    /// A released run whose supervisor is gone without its exit record (killed, or it died) ran none of
    /// its end-of-run hooks: they run here, on the host, once — the caller deletes the run record after
    /// this. post-stop runs as the supervisor would run it; net-down for each NIC whose host end still
    /// exists (a veth's host end goes with the network namespace, so usually only while something else
    /// holds that). stop cannot run: it is given the container's namespaces, which only the supervisor
    /// held and which are gone with init. A supervisor alive at the end wrote the exit record and ran
    /// them itself, so they never run twice. Each failure is recorded as a HookFailed event and returned.
    /// </summary>
    private List<ContainerException> RunOrphanedEnd(string name, ContainerConfig config)
    {
        var failures = new List<ContainerException>();
        var store = _lifecycle.Store;
        if (RunRecord.Read(store.RunRecordPath(name)) is not { Released: true } run
            || Sys.IsAlive(run.SupervisorPid, run.SupervisorStartTime) || File.Exists(store.ExitRecordPath(name)))
            return failures;
        var hooks = config.Hooks;
        const string outcome = "its supervisor had died, so the runtime ran it when it recovered the run";
        void Run(string type, HookConfig hook, IDictionary<string, string> env, IEnumerable<string> args)
        {
            if (HostHook(name, config, type, hook, env, args, outcome, out var end) is not { } failure) return;
            failures.Add(failure);
            _lifecycle.Emit(name, ContainerEventKind.HookFailed, ("hook", type), end, ("recovered", "1"));
        }
        foreach (var (nic, index, _) in NetworkPlan.Interfaces(config))
        {
            if (hooks.NetDown.Count == 0 || !HostEndExists(name, index, nic)) continue;
            foreach (var h in hooks.NetDown) Run("net-down", h, NetEnvironment(name, config, "down", nic, index), NetArgs(name, "down", nic, index));
        }
        foreach (var h in hooks.PostStop) Run("post-stop", h, Environment(name, config, "post-stop", "lxc"), LxcArgs(name, "lxc", "post-stop"));
        return failures;
    }

    /// <summary>Whether a NIC's host end (a veth's peer) is still there, where its link lives.</summary>
    private bool HostEndExists(string name, int index, NicConfig nic)
    {
        if (_peerName(name, index, nic) is not { } peer) return false;
        try
        {
            using var client = new NetworkClient(nic.LinkNamespace is null ? NetworkLocation.Host : NetworkLocation.ForNamespace(nic.LinkNamespace));
            return client.LinkExists(peer);
        }
        catch (Exception e) when (e is ContainerException or IOException or UnauthorizedAccessException) { return false; } // its namespace is gone, or out of the caller's reach: nothing to bring down
    }

    public void Removed(string name) { }

    public ContainerException? StartFailed(string name, string helperError) =>
        Failure(name, helperError, "", "the start was undone (its cgroup, network and supervisor are gone)");

    [GeneratedRegex(@"\bhook (?<type>pre-start|mount|start|stop|net-down|post-stop) (?<path>\S+) (?<what>timed out after (?<ms>\d+) ms|failed with exit code (?<code>\d+)|was killed by signal (?<signal>\d+)); output:(?<output>.*)$", RegexOptions.Singleline)]
    private static partial Regex HelperFailure();

    /// <summary>The error of a hook psc-helper ran, from its "hook TYPE PATH ..." message; null when the message is not one.</summary>
    private static ContainerException? Failure(string name, string message, string more, string outcome)
    {
        var m = HelperFailure().Match(message);
        if (!m.Success) return null;
        var point = KeyOf(m.Groups["type"].Value);
        var output = m.Groups["output"].Value.Trim();
        var said = output.Length == 0 ? "it wrote nothing" : $"its last output: {output}";
        if (m.Groups["ms"].Success)
            return new ContainerException("HookTimedOut", ContainerErrorKind.OperationTimeout,
                $"Container '{name}': the {point} hook {m.Groups["path"].Value} did not finish within {m.Groups["ms"].Value} ms and was killed; {outcome}; {said}{more}. " +
                $"Make it faster or give it longer (hooks.timeout, or timeout: on its entry).", name);
        var how = m.Groups["code"].Success ? $"exit code {m.Groups["code"].Value}" : $"signal {m.Groups["signal"].Value}";
        return new ContainerException("HookFailed", ContainerErrorKind.InvalidOperation,
            $"Container '{name}': the {point} hook {m.Groups["path"].Value} failed with {how}; {outcome}; {said}{more}. Fix the hook, or remove it (Set-ContainerConfig -Remove hooks.{point}).", name);
    }

    /// <summary>config.yaml's key of an LXC hook type.</summary>
    private static string KeyOf(string type) => type switch
    {
        "pre-start" => "preStart",
        "post-stop" => "postStop",
        "up" => "netUp",
        "net-down" or "down" => "netDown",
        _ => type,
    };

    /// <summary>A host-side hook run from here at a start (pre-start, net up), with its timeout; its failure fails the start.</summary>
    private static void RunOnHost(string name, ContainerConfig config, string type, HookConfig hook, IDictionary<string, string> env, IEnumerable<string> lxcArgs)
    {
        var outcome = type == "pre-start" ? "the container was not started or restored (nothing of it had been made)" : "the start was undone (its cgroup, network and supervisor are gone)";
        if (HostHook(name, config, type, hook, env, lxcArgs, outcome, out _) is { } failure) throw failure;
    }

    /// <summary>
    /// Runs a hook on the host with its timeout: null when it succeeded, else its error (which says
    /// <paramref name="outcome"/>), with how it ended as the supervisor's events say it (code, or timeout).
    /// </summary>
    private static ContainerException? HostHook(string name, ContainerConfig config, string type, HookConfig hook, IDictionary<string, string> env, IEnumerable<string> lxcArgs,
        string outcome, out (string Key, string Value) end)
    {
        var timeout = config.Hooks.TimeoutOf(hook);
        var point = KeyOf(type);
        end = ("timeout", ((long)timeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture));
        ProgramResult result;
        try
        {
            result = ProcessRunner.Run(new ProgramStart
            {
                Program = hook.Path,
                Arguments = hook.Args.Concat(lxcArgs).ToList(),
                DisplayName = $"{point} hook {hook.Path}",
                ClearEnvironment = true,
                Environment = env.ToDictionary(kv => kv.Key, kv => (string?)kv.Value),
                Timeout = timeout,
                OutputEndTimeout = TimeSpan.FromSeconds(1),
                TimeoutErrorId = "HookTimedOut",
                TimeoutAdvice = $"Container '{name}': {outcome}. Make the hook faster or give it longer (hooks.timeout, or timeout: on its entry).",
                NotFoundErrorId = "HookFailed",
                NotFoundAdvice = $"Container '{name}': {outcome}. Check the path of hooks.{point} in config.yaml (an executable on the host).",
                Target = name,
            });
        }
        catch (ContainerException e) when (e.ErrorId == "HookTimedOut")
        {
            return new ContainerException("HookTimedOut", ContainerErrorKind.OperationTimeout,
                $"Container '{name}': the {point} hook {hook.Path} did not finish within {timeout.TotalMilliseconds:0} ms and was killed; {outcome}. Make it faster or give it longer (hooks.timeout, or timeout: on its entry).", name, e);
        }
        catch (ContainerException e) when (e.ErrorId == "HookFailed")
        {
            end = ("code", "127"); // not found, or not executable
            return e;
        }
        end = ("code", result.ExitCode.ToString(CultureInfo.InvariantCulture));
        if (result.Succeeded) return null;
        var tail = result.ErrorTail(600);
        if (tail.Length == 0) tail = ProcessRunner.Tail(result.Output, 600);
        var said = tail.Length == 0 ? "it wrote nothing" : $"its last output: {tail}";
        return new ContainerException("HookFailed", ContainerErrorKind.InvalidOperation,
            $"Container '{name}': the {point} hook {hook.Path} failed with exit code {result.ExitCode}; {outcome}; {said}. Fix the hook, or remove it (Set-ContainerConfig -Remove hooks.{point}).", name);
    }

    /// <summary>LXC's environment of a hook (lxc/src/lxc/conf.c, run_lxc_hooks and run_script_argv).</summary>
    private Dictionary<string, string> Environment(string name, ContainerConfig config, string type, string section)
    {
        var rootfs = _lifecycle.RootfsOf(name, config);
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = Path,
            ["LXC_NAME"] = name,
            ["LXC_CONFIG_FILE"] = _lifecycle.Store.ConfigPath(name),
            ["LXC_ROOTFS_MOUNT"] = rootfs,
            ["LXC_ROOTFS_PATH"] = rootfs,
            ["LXC_CGNS_AWARE"] = "1",
            ["LXC_HOOK_TYPE"] = type,
            ["LXC_HOOK_SECTION"] = section,
            ["LXC_HOOK_VERSION"] = "0",
        };
        if (type is "stop" or "post-stop" or "down") env["LXC_TARGET"] = "stop";
        return env;
    }

    private Dictionary<string, string> NetEnvironment(string name, ContainerConfig config, string type, NicConfig nic, int index)
    {
        var env = Environment(name, config, type, "net");
        env["LXC_NET_TYPE"] = nic.Type;
        if (nic.Link is { } link) env["LXC_NET_PARENT"] = link;
        if (_peerName(name, index, nic) is { } peer) env["LXC_NET_PEER"] = peer;
        return env;
    }

    private static string[] LxcArgs(string name, string section, string type) => [name, section, type];

    /// <summary>A net hook's arguments after its own: name, "net", up/down, the NIC's type, then its host end (veth) or link.</summary>
    private string[] NetArgs(string name, string type, NicConfig nic, int index)
    {
        var device = _peerName(name, index, nic) ?? nic.Link;
        return device is null ? [name, "net", type, nic.Type] : [name, "net", type, nic.Type, device];
    }

    /// <summary>A psc-helper hook record (psc-protocol.h, key "hook"): type, timeout ms, env count, env, path and arguments, TAB-separated.</summary>
    private static string Record(string type, TimeSpan timeout, IDictionary<string, string> env, IEnumerable<string> argv)
    {
        var fields = new List<string> { type, ((long)timeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture), env.Count.ToString(CultureInfo.InvariantCulture) };
        fields.AddRange(env.Select(kv => $"{kv.Key}={kv.Value}"));
        fields.AddRange(argv);
        foreach (var f in fields)
            if (f.IndexOfAny(['\t', '\n', '\0']) >= 0)
                throw new ContainerException("InvalidArgument", ContainerErrorKind.InvalidArgument,
                    $"A {type} hook cannot be passed to psc-helper: '{f}' holds a tab, newline or NUL (a store path or hook argument with one). Move the store or change the hook's arguments.");
        return string.Join('\t', fields);
    }
}
