using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PSContainers.Tests.Faults;

/// <summary>
/// kill -9 of what a running container is made of, from outside: its supervisor, its init, both.
/// After each, the state must agree with what runs; the next commands (stop, start, remove) must
/// work; and nothing may be left.
/// </summary>
[Collection("Containers")]
public sealed class ProcessKillTests(ITestOutputHelper log) : FaultTests(log)
{
    private ContainerInfo Started()
    {
        var name = TestStore.NewName("pk");
        M.Create(name, new CreateOptions { Template = "busybox" });
        return M.Start(name);
    }

    [Fact]
    public void KilledSupervisor_ContainerStillReportedRunning_AndStopsCleanly()
    {
        var c = Started();
        Sys.Kill(c.SupervisorPid!.Value, 9);
        Assert.True(Sys.WaitForExit(c.SupervisorPid.Value, Sys.ProcessStartTime(c.SupervisorPid.Value) ?? 0, TimeSpan.FromSeconds(5)) || !Directory.Exists($"/proc/{c.SupervisorPid}"));
        var info = M.Get(c.Name);
        Assert.Equal(ContainerStatus.Running, info.State);
        Assert.Equal(c.Pid, info.Pid);
        AssertTruth("supervisor killed");
        M.Stop(c.Name, kill: true);
        Assert.Equal(ContainerStatus.Stopped, M.Get(c.Name).State);
        AssertTruth("stopped after its supervisor was killed");
        // And it starts again (the cgroup the dead supervisor could not remove is not in the way).
        Assert.Equal(ContainerStatus.Running, M.Start(c.Name).State);
        AssertNoLeaks("at the end");
    }

    [Fact]
    public void KilledInit_IsReportedStoppedBySignal_AndStartsAgain()
    {
        var c = Started();
        Sys.Kill(c.Pid!.Value, 9);
        var info = M.Wait(c.Name, ContainerStatus.Stopped, TimeSpan.FromSeconds(10));
        Assert.Equal("SIGKILL", info.ExitSignal);
        AssertTruth("init killed");
        Assert.Equal(ContainerStatus.Running, M.Start(c.Name).State);
        AssertTruth("restarted");
        AssertNoLeaks("at the end");
    }

    [Fact]
    public void EverySupervisorAndInitKilledAtOnce_AllReportedStopped_AndAllStartAgain()
    {
        var all = Enumerable.Range(0, 3).Select(_ => Started()).ToList();
        foreach (var c in all) { Sys.Kill(c.SupervisorPid!.Value, 9); Sys.Kill(c.Pid!.Value, 9); }
        foreach (var c in all) Assert.Equal(ContainerStatus.Stopped, M.Wait(c.Name, ContainerStatus.Stopped, TimeSpan.FromSeconds(10)).State);
        // Their cgroups outlived them (nobody was left to remove them): not a reason to refuse a start.
        foreach (var c in all) Assert.Equal(ContainerStatus.Running, M.Start(c.Name).State);
        AssertTruth("all restarted");
        AssertNoLeaks("at the end");
    }
}
