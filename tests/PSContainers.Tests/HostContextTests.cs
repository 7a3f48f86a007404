using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Host;
using PSContainers.Runtime.IdMapping;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// The host context: what this process is (root, here), what a real non-root user's process sees
/// (its ids, store, and its delegated cgroup or why it has none), and a constructed one steering a
/// ContainerManager the way a non-root caller's would.
/// </summary>
[Collection("Containers")]
public sealed class HostContextTests
{
    [Fact]
    public void Detect_InTheTestProcess_IsRootWithTheHostsCgroupLayout()
    {
        var host = HostContext.Detect();
        Assert.True(host.IsRoot);
        Assert.Equal((0u, 0u, "root"), (host.Uid, host.Gid, host.UserName));
        var layout = CgroupLayout.Detect();
        Assert.Equal(layout.Kind, host.CgroupLayout!.Kind);
        Assert.Equal(layout.UnifiedMount, host.CgroupLayout.UnifiedMount);
        Assert.Equal(layout.V1Mounts.OrderBy(m => m.Key), host.CgroupLayout.V1Mounts.OrderBy(m => m.Key));
        // Root needs no delegation: its containers go under the store's parent in every hierarchy.
        Assert.Null(host.Delegation);
        Assert.Equal(SubordinateIdPaths.Default, host.SubordinateIds);
        Assert.Equal(Environment.GetEnvironmentVariable(HostContext.StoreEnvironmentVariable) is { Length: > 0 } env ? env : HostContext.SystemStorePath,
            host.DefaultStorePath);
    }

    [Fact]
    public void Detect_AsANonRootUser_SeesItsIds_ItsStore_AndItsDelegatedCgroupOnlyWhereItHasOne()
    {
        using var user = new TestUser();
        var unified = CgroupLayout.Detect().UnifiedMount!;
        var delegated = Path.Combine(unified, "psc-test-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(delegated);
        try
        {
            const string script = """
                $h = [PSContainers.Runtime.Host.HostContext]::Detect()
                "root=$($h.IsRoot)"
                "ids=$($h.Uid):$($h.Gid):$($h.UserName)"
                "store=$($h.DefaultStorePath)"
                "layout=$($h.CgroupLayout.Kind)"
                "delegation=$($h.Delegation.Directory)"
                "problem=$($h.DelegationProblem)"
                """;
            var plain = user.Run(script);
            Assert.True(plain.ExitCode == 0, plain.StdErr + plain.StdOut);
            var gid = HostCommand.Run("id", "-g", user.Name);
            Assert.Equal("False", Value(plain, "root"));
            Assert.Equal($"{user.Uid}:{gid}:{user.Name}", Value(plain, "ids"));
            Assert.Equal($"{user.Home}/.local/share/pscontainers", Value(plain, "store"));
            Assert.Equal(CgroupLayout.Detect().Kind.ToString(), Value(plain, "layout"));
            Assert.Equal("", Value(plain, "delegation"));
            Assert.Contains("is not delegated to you", Value(plain, "problem"));

            // What systemd's Delegate=yes does: the directory and its interface files belong to the user.
            foreach (var f in new[] { "", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control" })
                HostCommand.Run("chown", user.Name, Path.Combine(delegated, f));
            var inDelegated = user.Run(script, cgroup: delegated);
            Assert.True(inDelegated.ExitCode == 0, inDelegated.StdErr + inDelegated.StdOut);
            Assert.Equal(delegated, Value(inDelegated, "delegation"));
            Assert.Equal("", Value(inDelegated, "problem"));
        }
        finally
        {
            user.Dispose();
            foreach (var dir in Directory.EnumerateDirectories(delegated, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length))
                try { Directory.Delete(dir); } catch (IOException) { }
            try { Directory.Delete(delegated); } catch (IOException) { }
        }
    }

    [Fact]
    public void Constructed_NonRootContext_PlacesContainerCgroupsUnderItsDelegation_OrNowhere()
    {
        var dir = Path.Combine(Path.GetTempPath(), "psc-test-host-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var store = new ContainerStore(Path.Combine(dir, "store"));
            var layout = CgroupLayout.Detect();
            var alice = new UserAccount("alice", 1000, 1000, "/home/alice", "/bin/sh");
            var subIds = SubordinateIdPaths.InDirectory(dir);

            var delegated = new HostContext(1000, 1000, alice, layout, new CgroupDelegation(layout.UnifiedMount!, "user.slice/user-1000.slice/psc"),
                subIds, defaultStorePath: Path.Combine(dir, "alice-store"));
            var manager = new ContainerManager(store, host: delegated);
            Assert.False(manager.Host.IsRoot);
            Assert.Equal($"user.slice/user-1000.slice/psc/{store.CgroupParent}/c1", manager.CgroupPathFor("c1"));
            // The manager's default subordinate-id files are the context's.
            Assert.Equal(subIds, manager.SubordinateIds.Paths);
            Assert.Equal(Path.Combine(dir, "alice-store"), delegated.DefaultStorePath);

            var undelegated = new HostContext(1000, 1000, alice, layout, delegation: null, delegationProblem: "no cgroup for alice");
            Assert.Null(new ContainerManager(store, host: undelegated).CgroupPathFor("c1"));
            Assert.Equal("no cgroup for alice", undelegated.DelegationProblem);

            // Root: a delegation given is not its business.
            var root = new HostContext(0, 0, new UserAccount("root", 0, 0, "/root", "/bin/sh"), layout, new CgroupDelegation(layout.UnifiedMount!, "x"));
            Assert.Null(root.Delegation);
            Assert.Equal($"{store.CgroupParent}/c1", new ContainerManager(store, host: root).CgroupPathFor("c1"));
        }
        finally { try { Directory.Delete(dir, recursive: true); } catch (DirectoryNotFoundException) { } }
    }

    private static string Value(ScriptHost.Result r, string key) =>
        r.Lines.Where(l => l.StartsWith(key + "=", StringComparison.Ordinal)).Select(l => l[(key.Length + 1)..]).ToArray() is [var v]
            ? v : throw new Xunit.Sdk.XunitException($"no single {key}= line in:\n{r.StdOut}\n{r.StdErr}");
}
