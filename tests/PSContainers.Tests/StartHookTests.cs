using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.Launcher;

namespace PSContainers.Tests;

/// <summary>The start handshake (hooks run while init waits) and root mounts, at the runtime level.</summary>
[Collection("Containers")]
public sealed class StartHookTests : IDisposable
{
    private readonly TestStore _store = new();

    public void Dispose() => _store.Dispose();

    private sealed class RecordingHook : IContainerHook
    {
        public string? ExeWhilePaused;
        public string? NetNsWhilePaused;
        public int StopCalls;
        public Exception? Throw;

        public void Starting(ContainerStartContext context)
        {
            ExeWhilePaused = new FileInfo($"/proc/{context.InitPid}/exe").LinkTarget;
            NetNsWhilePaused = new FileInfo($"/proc/{context.InitPid}/ns/net").LinkTarget;
            if (Throw is not null) throw Throw;
        }

        public void Stopped(string name, ContainerConfig config) => StopCalls++;

        public void Removed(string name) { }
    }

    [Fact]
    public void Hook_RunsInTheNewNamespaces_BeforeInitExecs_AndUndoesOnStop()
    {
        var name = TestStore.NewName("hook");
        _store.Manager.Create(name, new CreateOptions { Template = "busybox" });
        var hook = new RecordingHook();
        _store.Manager.Hooks.Add(hook);
        var info = _store.Manager.Start(name);
        Assert.EndsWith("psc-helper", hook.ExeWhilePaused);                                // not exec'd yet
        Assert.NotEqual(new FileInfo("/proc/self/ns/net").LinkTarget, hook.NetNsWhilePaused); // its own netns already
        Assert.Equal(new FileInfo($"/proc/{info.Pid}/ns/net").LinkTarget, hook.NetNsWhilePaused);
        Assert.Equal(0, hook.StopCalls);
        _store.Manager.Stop(name, kill: true);
        Assert.Equal(1, hook.StopCalls);
    }

    [Fact]
    public void FailingHook_AbortsTheStart_AndLeavesNothing()
    {
        var name = TestStore.NewName("hookfail");
        _store.Manager.Create(name, new CreateOptions { Template = "busybox" });
        var hook = new RecordingHook { Throw = new ContainerException("TestHookFailed", ContainerErrorKind.InvalidOperation, "no network today") };
        _store.Manager.Hooks.Add(hook);
        var ex = Assert.Throws<ContainerException>(() => _store.Manager.Start(name));
        Assert.Equal("TestHookFailed", ex.ErrorId);
        Assert.Equal(1, hook.StopCalls);
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
        Assert.False(CgroupManager.ForHost().Exists($"{_store.CgroupParent}/{name}"));
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(_store.StorePath));
        // Without the failing hook it starts normally afterwards.
        _store.Manager.Hooks.Clear();
        Assert.Equal(ContainerStatus.Running, _store.Manager.Start(name).State);
    }

    [Fact]
    public void RootMount_OverlayRootfs_ExistsOnlyInsideTheContainer()
    {
        // A busybox rootfs as the read-only lower layer of an overlay mounted by the helper on the
        // rootfs path inside the new mount namespace: writes land in upper/, the host sees no mount.
        var donor = TestStore.NewName("lower");
        var lower = _store.Manager.Create(donor, new CreateOptions { Template = "busybox" }).RootfsPath;
        var dir = Path.Combine(_store.Root, "overlay");
        var (upper, work, rootfs) = (Path.Combine(dir, "upper"), Path.Combine(dir, "work"), Path.Combine(dir, "rootfs"));
        foreach (var d in new[] { upper, work, rootfs }) Directory.CreateDirectory(d);
        var exitRecord = Path.Combine(dir, "exit");
        var spec = new StartSpec { Namespaces = NamespaceKind.ContainerDefault, Rootfs = rootfs, Hostname = "ovl", ExitRecord = exitRecord };
        spec.RootMounts.Add(new MountEntry("overlay", "", "overlay", MountFlags.None, $"lowerdir={lower},upperdir={upper},workdir={work}"));
        MountPlan.AddDefaults(spec, new ContainerConfig());
        spec.Command.AddRange(new[] { "/bin/sh", "-c", "echo written > /new-file; exec sleep 1000" });
        spec.Environment.Add("PATH=/bin:/sbin");
        var result = PscHelper.Start(spec, null);
        Assert.True(result.ExitCode == 0, string.Join("\n", result.Error));
        var started = HelperProtocol.Started.Parse(result.Output.Single());
        var pids = new[] { started.Supervisor, started.Init };
        try
        {
            Assert.True(SpinWait.SpinUntil(() => File.Exists(Path.Combine(upper, "new-file")), 5000));
            Assert.False(File.Exists(Path.Combine(lower, "new-file")), "the lower layer is never written");
            Assert.Empty(Directory.EnumerateFileSystemEntries(rootfs));   // the host sees the bare directory
            Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(dir));
        }
        finally
        {
            Sys.Kill(pids[1], 9);
            Sys.WaitForExit(pids[0], Sys.ProcessStartTime(pids[0]) ?? 0, TimeSpan.FromSeconds(5));
        }
        Assert.StartsWith("signaled 9", File.ReadAllText(exitRecord));
    }
}
