using System.Globalization;
using System.Text.RegularExpressions;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Processes;

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
/// run) raises as an error.</item>
/// </list>
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
        var hooks = config.Hooks;
        void Add(string type, HookConfig hook, IDictionary<string, string> env, IEnumerable<string> args) =>
            spec.Hooks.Add(Record(type, hooks.TimeoutOf(hook), env, new[] { hook.Path }.Concat(hook.Args).Concat(args)));
        foreach (var h in hooks.Mount) Add("mount", h, Environment(name, config, "mount", "lxc"), LxcArgs(name, "lxc", "mount"));
        foreach (var h in hooks.Start) Add("start", h, Environment(name, config, "start", "lxc"), LxcArgs(name, "lxc", "start"));
        foreach (var h in hooks.Stop) Add("stop", h, Environment(name, config, "stop", "lxc"), LxcArgs(name, "lxc", "stop"));
        foreach (var (nic, index, _) in NetworkPlan.Interfaces(config))
            foreach (var h in hooks.NetDown)
                Add("net-down", h, NetEnvironment(name, config, "down", nic, index), NetArgs(name, "down", nic, index));
        foreach (var h in hooks.PostStop) Add("post-stop", h, Environment(name, config, "post-stop", "lxc"), LxcArgs(name, "lxc", "post-stop"));
        if (spec.Hooks.Count > 0) spec.HookReport = ReportPath(name);
    }

    public void Starting(ContainerStartContext context)
    {
        var config = context.Config;
        if (config.Hooks.NetUp.Count == 0) return;
        foreach (var (nic, index, _) in NetworkPlan.Interfaces(config))
            foreach (var hook in config.Hooks.NetUp)
                RunOnHost(context.Name, config, "up", hook, NetEnvironment(context.Name, config, "up", nic, index), NetArgs(context.Name, "up", nic, index));
    }

    public void Stopped(string name, ContainerConfig config)
    {
        var path = ReportPath(name);
        string text;
        try { text = File.ReadAllText(path).Trim(); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return; }
        File.Delete(path);
        if (text.Length == 0) return;
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        throw Failure(name, lines[0], lines.Length > 1 ? $" ({lines.Length - 1} more: {string.Join("; ", lines.Skip(1))})" : "", "its run had ended; nothing was undone") ?? 
            new ContainerException("HookFailed", ContainerErrorKind.InvalidOperation, $"Container '{name}': {text}", name);
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

    /// <summary>A host-side hook run from here (pre-start, net up), with its timeout.</summary>
    private static void RunOnHost(string name, ContainerConfig config, string type, HookConfig hook, IDictionary<string, string> env, IEnumerable<string> lxcArgs)
    {
        var timeout = config.Hooks.TimeoutOf(hook);
        var point = KeyOf(type);
        var outcome = type == "pre-start" ? "the container was not started (nothing of it had been made)" : "the start was undone (its cgroup, network and supervisor are gone)";
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
            throw new ContainerException("HookTimedOut", ContainerErrorKind.OperationTimeout,
                $"Container '{name}': the {point} hook {hook.Path} did not finish within {timeout.TotalMilliseconds:0} ms and was killed; {outcome}. Make it faster or give it longer (hooks.timeout, or timeout: on its entry).", name, e);
        }
        if (result.Succeeded) return;
        var tail = result.ErrorTail(600);
        if (tail.Length == 0) tail = ProcessRunner.Tail(result.Output, 600);
        var said = tail.Length == 0 ? "it wrote nothing" : $"its last output: {tail}";
        throw new ContainerException("HookFailed", ContainerErrorKind.InvalidOperation,
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
