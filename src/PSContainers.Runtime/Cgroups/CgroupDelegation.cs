using System.Text;
using Tmds.Linux;

namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// The cgroup2 subtree a non-root caller may manage: the caller's own cgroup (from /proc/self/cgroup)
/// when it is delegated to it — the directory and its cgroup.procs writable, as systemd's
/// Delegate=yes (user@UID.service) or an administrator's chown make it. Non-root containers live
/// under it; cgroup v1 hierarchies are never delegated to users and are not used for them.
/// </summary>
public sealed record CgroupDelegation(string UnifiedMount, string RelativePath)
{
    public string Directory => Path.Combine(UnifiedMount, RelativePath);

    /// <summary>The caller's delegated subtree, or null (with the reason) when the host provides none.</summary>
    public static CgroupDelegation? ForCaller(out string reason)
    {
        CgroupLayout layout;
        try { layout = CgroupLayout.Detect(); }
        catch (ContainerException ex) { reason = ex.Message; return null; }
        if (layout.UnifiedMount is null)
        {
            reason = "this host has no cgroup2 hierarchy (cgroup v1 is never delegated to users)";
            return null;
        }
        var line = File.ReadLines("/proc/self/cgroup").FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal));
        if (line is null)
        {
            reason = "this process is in no cgroup2 cgroup (/proc/self/cgroup has no '0::' line)";
            return null;
        }
        var relative = line[3..].Trim('/');
        var delegation = new CgroupDelegation(layout.UnifiedMount, relative);
        if (!Writable(delegation.Directory) || !Writable(Path.Combine(delegation.Directory, "cgroup.procs")))
        {
            reason = $"your cgroup {delegation.Directory} is not delegated to you (it and its cgroup.procs must be writable by you; " +
                     "systemd does that for user@UID.service with Delegate=yes, e.g. run pwsh in 'systemd-run --user --scope -p Delegate=yes pwsh')";
            return null;
        }
        reason = "";
        return delegation;
    }

    private static unsafe bool Writable(string path)
    {
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0"))
            return LibC.access(p, LibC.W_OK) == 0;
    }
}
