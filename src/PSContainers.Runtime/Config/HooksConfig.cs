namespace PSContainers.Runtime.Config;

/// <summary>
/// One hook of <c>hooks:</c>: a program (absolute path, never through a shell) with its arguments,
/// and its own timeout (null: <see cref="HooksConfig.Timeout"/>).
/// </summary>
public sealed class HookConfig
{
    public string Path { get; set; } = "";
    public List<string> Args { get; set; } = new();
    public TimeSpan? Timeout { get; set; }
}

/// <summary>
/// <c>hooks:</c> (LXC's lxc.hook.* and lxc.net.[i].script.up/down): programs run at the points of a
/// container's life LXC runs them at, with LXC's environment and arguments (see Hooks/LxcHooks).
/// </summary>
public sealed class HooksConfig
{
    /// <summary>The default timeout of each hook (a hook that runs longer is killed and fails).</summary>
    public TimeSpan Timeout { get; set; } = DefaultTimeout;
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    /// <summary>On the host, before anything of the run exists (lxc.hook.pre-start).</summary>
    public List<HookConfig> PreStart { get; set; } = new();
    /// <summary>In the container's mount namespace after its mounts, before pivot_root (lxc.hook.mount).</summary>
    public List<HookConfig> Mount { get; set; } = new();
    /// <summary>Inside the container just before init is exec'd; the path is the container's (lxc.hook.start).</summary>
    public List<HookConfig> Start { get; set; } = new();
    /// <summary>On the host once init has ended, with references to its namespaces (lxc.hook.stop).</summary>
    public List<HookConfig> Stop { get; set; } = new();
    /// <summary>On the host after the container's cgroups are gone (lxc.hook.post-stop).</summary>
    public List<HookConfig> PostStop { get; set; } = new();
    /// <summary>On the host for each NIC once its host side is set up (lxc.net.[i].script.up).</summary>
    public List<HookConfig> NetUp { get; set; } = new();
    /// <summary>On the host for each NIC before its host side goes (lxc.net.[i].script.down).</summary>
    public List<HookConfig> NetDown { get; set; } = new();

    /// <summary>The hook points: config key, LXC's hook type, the list.</summary>
    public IEnumerable<(string Key, string Type, List<HookConfig> Hooks)> Points()
    {
        yield return ("preStart", "pre-start", PreStart ?? new());
        yield return ("mount", "mount", Mount ?? new());
        yield return ("start", "start", Start ?? new());
        yield return ("stop", "stop", Stop ?? new());
        yield return ("postStop", "post-stop", PostStop ?? new());
        yield return ("netUp", "up", NetUp ?? new());
        yield return ("netDown", "down", NetDown ?? new());
    }

    public bool IsEmpty => Timeout == DefaultTimeout && Points().All(p => p.Hooks.Count == 0);

    public TimeSpan TimeoutOf(HookConfig hook) => hook.Timeout ?? Timeout;
}
