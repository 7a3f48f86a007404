using System.Diagnostics;
using System.Management.Automation;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// Get-ContainerConsoleLog -Wait (tail -f, podman logs -f): woken by inotify, it streams every line
/// in order across the supervisor's rotations of the log, ends by itself when the container stops,
/// starts with the last -Tail lines, and ends at Ctrl+C.
/// </summary>
[Collection("Containers")]
public sealed class ConsoleLogFollowTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;

    public ConsoleLogFollowTests()
    {
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    private string New(string hint, string script, long logMaxBytes = 1 << 20)
    {
        var name = TestStore.NewName(hint);
        var config = Path.Combine(_store.Root, name + ".yaml");
        File.WriteAllText(config, $"console:\n  logMaxBytes: {logMaxBytes}\n");
        _ps.Run("New-Container -Name $args[0] -Template busybox -ConfigPath $args[1] -Command '/bin/sh', '-c', $args[2]", name, config, script);
        return name;
    }

    [Fact]
    public void Wait_StreamsEveryLineAcrossRotations_AndEndsWhenTheContainerStops()
    {
        // ~40 KB in 8 KB logs: the supervisor rotates it several times while it is followed.
        var name = New("follow", "sleep 1; i=0; while [ $i -lt 1000 ]; do echo line-$i-abcdefghijklmnopqrstuvwxyz; i=$((i+1)); [ $((i % 50)) = 0 ] && sleep 0.2; done", 8192);
        _ps.Run("Start-Container $args[0]", name);
        var watch = Stopwatch.StartNew();
        var lines = _ps.Run("Get-ContainerConsoleLog $args[0] -Wait", name).Select(o => o.ToString()).Where(l => l.StartsWith("line-", StringComparison.Ordinal)).ToList();
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => $"line-{i}-abcdefghijklmnopqrstuvwxyz"), lines);
        Assert.True(File.Exists(_store.Manager.Store.ConsoleLogPath(name) + ".1"), "the log was rotated meanwhile");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"followed for {watch.Elapsed}");
    }

    [Fact]
    public void Wait_WithTail_StartsWithTheLastLines_ThenTheNewOnes_UntilCtrlC()
    {
        var name = New("tail", "i=0; while [ $i -lt 20 ]; do echo old-$i; i=$((i+1)); done; while [ ! -e /go ]; do sleep 0.2; done; echo new-1; echo new-2; exec sleep 1000");
        var rootfs = _ps.Run("(Get-Container $args[0]).RootfsPath", name).Single().ToString();
        _ps.Run("Start-Container $args[0]", name);
        Assert.True(SpinWait.SpinUntil(() => _store.Manager.ReadConsoleLog(name).Contains("old-19"), 30_000));

        using var ps = PowerShell.Create();
        ps.Runspace = _ps.Runspace;
        ps.AddScript("Get-ContainerConsoleLog $args[0] -Tail 3 -Wait").AddArgument(name);
        var output = new PSDataCollection<PSObject>();
        var run = ps.BeginInvoke<PSObject, PSObject>(null, output);
        bool Has(int n) => SpinWait.SpinUntil(() => output.Count >= n, 30_000);
        Assert.True(Has(3), $"the last three lines, got {output.Count}");
        File.WriteAllText(Path.Combine(rootfs, "go"), "");
        Assert.True(Has(5), $"the two new lines, got {output.Count}");
        // (A PSDataCollection's enumerator waits for its end: read by index while the pipeline runs.)
        Assert.Equal(new[] { "old-17", "old-18", "old-19", "new-1", "new-2" }, Enumerable.Range(0, 5).Select(i => output[i].ToString()));
        Assert.All(Enumerable.Range(0, 5), i => Assert.Equal(name, output[i].Properties["ContainerName"].Value));
        // Ctrl+C ends the follow of a container that keeps running.
        var stop = Stopwatch.StartNew();
        ps.Stop();
        Assert.True(run.IsCompleted);
        Assert.True(stop.Elapsed < TimeSpan.FromSeconds(5), $"stopped in {stop.Elapsed}");
    }
}
