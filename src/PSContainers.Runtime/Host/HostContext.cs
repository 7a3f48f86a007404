using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.IdMapping;
using Tmds.Linux;

namespace PSContainers.Runtime.Host;

/// <summary>
/// Who is calling and what the host gives it: root or not, the ids and account, the cgroup layout,
/// the caller's delegated cgroup2 subtree (non-root), the subordinate-id files and the default store.
/// The one place the runtime asks "am I root?": every privilege-dependent decision reads it.
/// <see cref="Current"/> is this process; tests construct others to exercise the non-root paths.
/// </summary>
public sealed class HostContext
{
    /// <summary>$PSCONTAINERS_PATH overrides where the store is by default.</summary>
    public const string StoreEnvironmentVariable = "PSCONTAINERS_PATH";
    public const string SystemStorePath = "/var/lib/pscontainers";

    private static readonly Lazy<HostContext> CurrentHost = new(Detect);

    /// <summary>
    /// This process, detected once: its effective ids never change under it, and the cgroup layout is
    /// what <see cref="CgroupManager.ForHost"/> caches too. A ContainerManager takes a fresh
    /// <see cref="Detect"/> instead, so a delegation granted meanwhile counts for the next command.
    /// </summary>
    public static HostContext Current => CurrentHost.Value;

    /// <summary>The effective uid: what the kernel checks for file access and user-namespace ownership.</summary>
    public uint Uid { get; }
    /// <summary>The effective gid.</summary>
    public uint Gid { get; }
    public bool IsRoot => Uid == 0;

    private readonly Lazy<UserAccount> _user;
    private readonly Lazy<(CgroupLayout? Layout, string Problem)> _cgroups;
    private readonly Lazy<(CgroupDelegation? Delegation, string Problem)> _delegation;

    /// <summary>The caller's account (a uid without a passwd entry gets its number as its name).</summary>
    public UserAccount User => _user.Value;
    public string UserName => User.Name;

    /// <summary>The mounted cgroup hierarchies (v2, hybrid or v1); null, with <see cref="CgroupProblem"/>, when none is.</summary>
    public CgroupLayout? CgroupLayout => _cgroups.Value.Layout;
    public string CgroupProblem => _cgroups.Value.Problem;

    /// <summary>
    /// Non-root: the cgroup2 subtree delegated to the caller, where its containers' cgroups go; null,
    /// with <see cref="DelegationProblem"/> saying why, when the host gives it none. Root: null (it
    /// needs no delegation; its containers go under the store's cgroup parent in every hierarchy).
    /// </summary>
    public CgroupDelegation? Delegation => _delegation.Value.Delegation;
    public string DelegationProblem => _delegation.Value.Problem;

    /// <summary>The subordinate-id files: a non-root caller's default id map comes from its ranges there.</summary>
    public SubordinateIdPaths SubordinateIds { get; }

    /// <summary>
    /// $PSCONTAINERS_PATH, else /var/lib/pscontainers for root, else $XDG_DATA_HOME (~/.local/share)/pscontainers;
    /// read on each use (a session may set the variable), unless given.
    /// </summary>
    public string DefaultStorePath => _defaultStorePath ?? StorePathFor(IsRoot);
    private readonly string? _defaultStorePath;

    /// <summary>A host context as given (tests: a non-root caller with or without a delegated subtree).</summary>
    public HostContext(uint uid, uint gid, UserAccount user, CgroupLayout? cgroupLayout, CgroupDelegation? delegation,
        SubordinateIdPaths? subordinateIds = null, string? defaultStorePath = null, string? delegationProblem = null)
        : this(uid, gid, () => user, () => (cgroupLayout, cgroupLayout is null ? "no cgroup filesystem is mounted" : ""),
               () => (uid == 0 ? null : delegation,
                      uid == 0 ? "" : delegation is null ? delegationProblem ?? "no cgroup2 subtree is delegated to this user" : ""),
               subordinateIds, defaultStorePath)
    {
    }

    private HostContext(uint uid, uint gid, Func<UserAccount> user, Func<(CgroupLayout?, string)> cgroups,
        Func<(CgroupDelegation?, string)> delegation, SubordinateIdPaths? subordinateIds, string? defaultStorePath)
    {
        Uid = uid;
        Gid = gid;
        _user = new(user);
        _cgroups = new(cgroups);
        _delegation = new(delegation);
        SubordinateIds = subordinateIds ?? SubordinateIdPaths.Default;
        _defaultStorePath = defaultStorePath;
    }

    /// <summary>This process as it is now (the account, layout and delegation are read on first use).</summary>
    public static HostContext Detect()
    {
        uint uid = LibC.geteuid(), gid = LibC.getegid();
        return new HostContext(uid, gid,
            () => UserAccounts.FindByUid(uid) ?? new UserAccount(uid.ToString(System.Globalization.CultureInfo.InvariantCulture), uid, gid, "", ""),
            () =>
            {
                try { return (Cgroups.CgroupLayout.Detect(), ""); }
                catch (ContainerException ex) { return (null, ex.Message); }
            },
            () => uid == 0 ? (null, "") : (CgroupDelegation.ForCaller(out var why), why),
            null, null);
    }

    private static string StorePathFor(bool root)
    {
        var env = Environment.GetEnvironmentVariable(StoreEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(env)) return env;
        if (root) return SystemStorePath;
        var dataHome = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        if (string.IsNullOrEmpty(dataHome))
            dataHome = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        return Path.Combine(dataHome, "pscontainers");
    }
}
