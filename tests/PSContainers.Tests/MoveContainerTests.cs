using System.Management.Automation;
using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Migration;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>Move-Container between two stores on this host: cold moves, name collisions, rollback.</summary>
[Collection("Containers")]
public sealed class MoveContainerTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly TestStore _other = new();
    private readonly ModuleSession _ps;

    public MoveContainerTests()
    {
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); _other.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
        _other.Dispose();
    }

    /// <summary>A busybox container with settings that must survive the move, and a file of its own.</summary>
    internal static ContainerInfo Container(TestStore store, string hint, string[]? command = null)
    {
        var c = store.Manager.Create(TestStore.NewName(hint), new CreateOptions
        {
            Template = "busybox",
            Hostname = "moved-host",
            Command = command,
            Environment = new Dictionary<string, string> { ["MODE"] = "moved" },
            MemoryLimit = 64L << 20,
        });
        File.WriteAllText(Path.Combine(c.RootfsPath, "etc/marker"), "made before the move\n");
        return c;
    }

    /// <summary>The parts of a config a move must keep (the storage section is the destination store's own).</summary>
    internal static string Portable(string configPath)
    {
        var config = ConfigLoader.Load(configPath);
        config.Storage = new StorageConfig();
        config.Rootfs = null;
        return ConfigLoader.Serialize(config);
    }

    [Fact]
    public void Cold_RunningContainer_RunsAtTheDestination_WithTheSameConfig_AndTheSourceIsGone()
    {
        var c = Container(_store, "mv");
        _store.Manager.Start(c.Name);
        var config = Portable(c.ConfigPath);

        var r = _ps.Invoke("Move-Container -Name $args[0] -Destination $args[1] -PassThru", c.Name, _other.StorePath);
        Assert.Empty(r.Errors);
        var result = r.Single<MigrationResult>();
        Assert.Equal(MigrationMode.Cold, result.Mode);
        Assert.Equal(ContainerStatus.Running, result.State);
        Assert.Equal(c.Name, result.DestinationName);
        Assert.Equal(_other.StorePath, result.Destination);
        Assert.Equal(_store.StorePath, result.Source);
        Assert.True(result.SourceRemoved);
        Assert.True(result.BytesTransferred > 100_000, $"the busybox rootfs archive is more than 100 kB, got {result.BytesTransferred}");
        Assert.True(result.Downtime > TimeSpan.Zero && result.Downtime <= result.Duration);
        foreach (var phase in new[] { "Prepare", "Stop", "Export", "Transfer", "Start" })
            Assert.Contains(r.Progress, p => p.StatusDescription.StartsWith(phase + ":", StringComparison.Ordinal));

        Assert.False(_store.Manager.Exists(c.Name));
        var moved = _other.Manager.Get(c.Name);
        Assert.Equal(ContainerStatus.Running, moved.State);
        Assert.Equal(config, Portable(moved.ConfigPath));
        Assert.Equal("moved-host", _other.Manager.Exec(c.Name, new[] { "hostname" }).Output.Single());
        Assert.Equal("made before the move", _other.Manager.Exec(c.Name, new[] { "cat", "/etc/marker" }).Output.Single());
        Assert.Contains("MODE=moved", _other.Manager.Exec(c.Name, new[] { "cat", "/proc/1/environ" }).Output.Single().Split('\0'));
        Assert.Equal(64L << 20, _other.Manager.Get(c.Name).MemoryLimit);
        // Nothing of the transfer is left in either store.
        Assert.False(Directory.Exists(Path.Combine(_other.StorePath, ".migrate")));
        Assert.False(Directory.Exists(Path.Combine(_store.StorePath, ".migrate")));
    }

    [Fact]
    public void Cold_StoppedContainer_StaysStopped_UnderANewName_AndKeepLeavesTheSource()
    {
        var c = Container(_store, "mvs");
        var newName = TestStore.NewName("mvn");
        var result = _ps.Run("Move-Container $args[0] $args[1] -NewName $args[2] -Keep -PassThru", c.Name, _other.StorePath, newName)
            .Single().BaseObject as MigrationResult;
        Assert.NotNull(result);
        Assert.Equal(ContainerStatus.Stopped, result.State);
        Assert.Equal(TimeSpan.Zero, result.Downtime);
        Assert.False(result.SourceRemoved);
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(c.Name).State);
        var moved = _other.Manager.Get(newName);
        Assert.Equal(ContainerStatus.Stopped, moved.State);
        Assert.Equal("made before the move\n", File.ReadAllText(Path.Combine(moved.RootfsPath, "etc/marker")));
        Assert.Equal(Portable(c.ConfigPath), Portable(moved.ConfigPath));
    }

    [Fact]
    public void TheFormatView_SelectsTheResultType_AndNamesOnlyItsProperties()
    {
        var xml = System.Xml.Linq.XDocument.Load(Path.Combine(TestPaths.ModuleFolder, "Formats", "Migration.Format.ps1xml"));
        Assert.Equal(typeof(MigrationResult).FullName, xml.Descendants("TypeName").Single().Value);
        var properties = typeof(MigrationResult).GetProperties().Select(p => p.Name).ToHashSet();
        foreach (var name in xml.Descendants("PropertyName").Select(e => e.Value))
            Assert.Contains(name, properties);
        foreach (var script in xml.Descendants("ScriptBlock").Select(e => e.Value))
            foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(script, @"\$_\.(\w+)"))
                Assert.Contains(m.Groups[1].Value, properties);
    }

    [Fact]
    public void NameTakenAtTheDestination_IsAnError_BeforeTheSourceIsTouched()
    {
        var c = Container(_store, "col");
        var running = _store.Manager.Start(c.Name);
        var squatter = _other.Manager.Create(c.Name, new CreateOptions { Template = "busybox", Hostname = "squatter" });

        var r = _ps.Invoke("Move-Container $args[0] $args[1] -PassThru", c.Name, _other.StorePath);
        var error = r.SingleError;
        Assert.Equal("ContainerExists,PSContainers.Cmdlets.MoveContainerCommand", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ResourceExists, error.CategoryInfo.Category);
        Assert.Empty(r.Output);
        var after = _store.Manager.Get(c.Name);
        Assert.Equal(ContainerStatus.Running, after.State);
        Assert.Equal(running.Pid, after.Pid); // not even restarted
        Assert.Equal("squatter", ConfigLoader.Load(squatter.ConfigPath).Hostname);
    }

    [Fact]
    public void FailureAfterTheStop_RollsBack_TheSourceRunsAgain_AndTheDestinationHasNothing()
    {
        // A destination store on a 256 KiB tmpfs: the archive does not fit, after the source stopped.
        var small = Path.Combine(_store.Root, "small");
        Directory.CreateDirectory(small);
        HostCommand.Run("mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "psc-test-small", small);
        try
        {
            var c = Container(_store, "rb");
            var before = _store.Manager.Start(c.Name);
            var destination = Path.Combine(small, "store");
            var r = _ps.Invoke("Move-Container $args[0] $args[1] -Timeout 0", c.Name, destination);
            var error = r.SingleError;
            Assert.Contains("No space left on device", error.Exception.Message);
            Assert.Contains(r.Progress, p => p.StatusDescription.StartsWith("Rollback:", StringComparison.Ordinal));
            var after = _store.Manager.Get(c.Name);
            Assert.Equal(ContainerStatus.Running, after.State);
            Assert.NotEqual(before.Pid, after.Pid); // stopped for the move, started again by the rollback
            Assert.Equal("made before the move", _store.Manager.Exec(c.Name, new[] { "cat", "/etc/marker" }).Output.Single());
            Assert.Empty(PSContainers.Runtime.Composition.ContainerRuntime.Open(destination).Names());
            Assert.False(Directory.Exists(Path.Combine(destination, ".migrate")));
        }
        finally
        {
            HostCommand.Run("umount", small);
        }
    }

    [Fact]
    public void WhatIf_ChangesNothing_AndBadArgumentsAreErrors()
    {
        var c = Container(_store, "wi");
        Assert.Empty(_ps.Run("Move-Container $args[0] $args[1] -WhatIf", c.Name, _other.StorePath));
        Assert.True(_store.Manager.Exists(c.Name));
        Assert.Empty(_other.Manager.Names());

        Assert.Equal("SameStore,PSContainers.Cmdlets.MoveContainerCommand",
            _ps.Invoke("Move-Container $args[0] $args[1]", c.Name, _store.StorePath).SingleError.FullyQualifiedErrorId);
        Assert.Equal("TcpEstablishedNeedsWarm,PSContainers.Cmdlets.MoveContainerCommand",
            _ps.Invoke("Move-Container $args[0] $args[1] -TcpEstablished", c.Name, _other.StorePath).SingleError.FullyQualifiedErrorId);
        var scp = _ps.Invoke("Move-Container $args[0] 'root@host:/var/lib/pscontainers'", c.Name).SingleError;
        Assert.Equal("InvalidDestination,PSContainers.Cmdlets.MoveContainerCommand", scp.FullyQualifiedErrorId);
        Assert.Contains("ssh://root@host/var/lib/pscontainers", scp.Exception.Message);
        Assert.Equal("ContainerNotFound,PSContainers.Cmdlets.MoveContainerCommand",
            _ps.Invoke("Move-Container psct-none-00000000 $args[0]", _other.StorePath).SingleError.FullyQualifiedErrorId);
        Assert.True(_store.Manager.Exists(c.Name));
    }

    // ---- warm (CRIU) ------------------------------------------------------------------------------

    [Fact]
    public void Warm_ACounterKeepsCounting_AtTheDestination()
    {
        var name = CounterContainer.Start(_store, "warm");
        var beforeMove = CounterContainer.Count(_store, name);
        var r = _ps.Invoke("Move-Container $args[0] $args[1] -Warm -PassThru", name, _other.StorePath);
        Assert.Empty(r.Errors);
        var result = r.Single<MigrationResult>();
        Assert.Equal(MigrationMode.Warm, result.Mode);
        Assert.Equal(ContainerStatus.Running, result.State);
        Assert.True(result.Downtime > TimeSpan.Zero);
        foreach (var phase in new[] { "Checkpoint", "Export", "Transfer", "Restore" })
            Assert.Contains(r.Progress, p => p.StatusDescription.StartsWith(phase + ":", StringComparison.Ordinal));
        Assert.False(_store.Manager.Exists(name));

        // The restored shell goes on from its own i: the first tick at the destination continues the count.
        CounterContainer.WaitCount(_other, name, beforeMove + 10);
        var ticks = CounterContainer.Ticks(_other, name);
        Assert.NotEmpty(ticks);
        Assert.True(ticks[0] > beforeMove, $"the first tick after the move ({ticks[0]}) continues the count ({beforeMove} before the move), it did not start over");
        Assert.Equal(ticks.OrderBy(t => t), ticks);
        // Supervised like a started container: it stops, and leaves nothing.
        Assert.Equal(ContainerStatus.Stopped, _other.Manager.Stop(name, TimeSpan.Zero, kill: true).State);
    }

    [Fact]
    public void Warm_Interrupted_AfterTheCheckpoint_RestoresTheSource_WhichKeepsCounting()
    {
        var name = CounterContainer.Start(_store, "warmrb");
        using var cancel = new CancellationTokenSource();
        var phases = new List<string>();
        var progress = new Inline(p => { phases.Add(p.Phase); if (p.Phase == "Export") cancel.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            ContainerMigrator.Move(_store.Manager, name, MigrationDestination.Local(_other.StorePath), new MoveOptions { Mode = MigrationMode.Warm }, progress, cancel.Token));
        Assert.Contains("Checkpoint", phases);
        Assert.Contains("Rollback", phases);

        Assert.Empty(_other.Manager.Names());
        Assert.Equal(ContainerStatus.Running, _store.Manager.Get(name).State);
        var afterRollback = CounterContainer.Count(_store, name);
        CounterContainer.WaitCount(_store, name, afterRollback + 5);
        // Restored, not restarted: the console never shows the count starting over.
        var ticks = CounterContainer.Ticks(_store, name);
        Assert.Equal(ticks.OrderBy(t => t), ticks);
        Assert.Single(ticks, 1);
        Assert.False(Directory.Exists(Path.Combine(_other.StorePath, ".migrate")));
    }

    [Fact]
    public void Warm_StoppedContainer_IsRefused()
    {
        var c = Container(_store, "wst");
        var error = _ps.Invoke("Move-Container $args[0] $args[1] -Warm", c.Name, _other.StorePath).SingleError;
        Assert.Equal("ContainerNotRunning,PSContainers.Cmdlets.MoveContainerCommand", error.FullyQualifiedErrorId);
        Assert.True(_store.Manager.Exists(c.Name));
    }

    [Fact]
    public void Cold_HoldsTheSourceLock_ForTheWholeMove_SoOtherSessionsCannotStartOrRemoveItHalfWay()
    {
        var c = Container(_store, "mvlk");
        _store.Manager.Start(c.Name);
        using var paused = new ManualResetEventSlim();
        using var resume = new ManualResetEventSlim();
        // The move stops at its transfer (the source is stopped and archived by then) until the test lets it go on.
        var progress = new Inline(p =>
        {
            if (p.Phase != "Transfer" || paused.IsSet) return;
            paused.Set();
            resume.Wait(TimeSpan.FromSeconds(90));
        });
        var move = Task.Run(() => ContainerMigrator.Move(_store.Manager, c.Name, MigrationDestination.Local(_other.StorePath), new MoveOptions(), progress));
        using var starter = _store.OpenSession();
        using var remover = _store.OpenSession();
        Task<ModuleSession.Result>? starting = null, removing = null;
        try
        {
            Assert.True(paused.Wait(TimeSpan.FromSeconds(60)), "the move did not reach its transfer: " + move.Exception);
            Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(c.Name).State);
            // Other sessions (runspaces) of this process wait for the move instead of acting on the half-moved source.
            starting = Task.Run(() => starter.Invoke("Start-Container $args[0] -PassThru", c.Name));
            removing = Task.Run(() => remover.Invoke("Remove-Container $args[0] -Force", c.Name));
            Assert.Equal(-1, Task.WaitAny([starting, removing], TimeSpan.FromSeconds(2)));
            Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(c.Name).State);
        }
        finally { resume.Set(); }

        var result = move.Result;
        Assert.Equal(ContainerStatus.Running, result.State);
        Assert.True(result.SourceRemoved);
        // Then they act on what the move left: the source is gone.
        Assert.True(Task.WaitAll([starting!, removing!], TimeSpan.FromSeconds(60)));
        Assert.Empty(starting!.Result.Output);
        Assert.Equal("ContainerNotFound", starting.Result.SingleError.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Equal("ContainerNotFound", removing!.Result.SingleError.FullyQualifiedErrorId.Split(',')[0]);
        Assert.False(_store.Manager.Exists(c.Name));
        Assert.False(Directory.Exists(c.Path));
        Assert.Equal(ContainerStatus.Running, _other.Manager.Get(c.Name).State);
        Assert.Equal("made before the move\n", File.ReadAllText(Path.Combine(_other.Manager.Get(c.Name).RootfsPath, "etc/marker")));
    }

    private sealed class Inline(Action<MigrationProgress> report) : IProgress<MigrationProgress>
    {
        public void Report(MigrationProgress value) => report(value);
    }

    [Theory]
    [InlineData("ssh://host.example/var/lib/pscontainers", "host.example", null, null, "/var/lib/pscontainers")]
    [InlineData("ssh://admin@10.0.0.5:2222/srv/store/", "10.0.0.5", "admin", 2222, "/srv/store")]
    [InlineData("ssh://[fd00::5]:22/s", "fd00::5", null, 22, "/s")]
    [InlineData("SSH://u_1@h-1/x", "h-1", "u_1", null, "/x")]
    public void SshDestinations_Parse(string text, string host, string? user, int? port, string store)
    {
        var d = MigrationDestination.Parse(text);
        Assert.True(d.IsRemote);
        Assert.Equal(new SshEndpoint(host, user, port), d.Ssh);
        Assert.Equal(store, d.StorePath);
    }

    [Theory]
    [InlineData("ssh://host")]                 // no store path
    [InlineData("ssh://host:0/s")]             // port out of range
    [InlineData("ssh://host:99999/s")]
    [InlineData("ssh://-oProxyCommand=x/s")]   // would be an ssh option
    [InlineData("ssh://bad user@host/s")]
    [InlineData("ssh://[not-ipv6]/s")]
    [InlineData("ssh://host/")]                // "/" is no store
    [InlineData("user@host:/srv/store")]       // scp syntax: the error names the URI form
    [InlineData("relative/store")]
    public void BadDestinations_AreRefused(string text)
    {
        var ex = Assert.Throws<ContainerException>(() => MigrationDestination.Parse(text));
        Assert.Equal("InvalidDestination", ex.ErrorId);
    }

    [Theory]
    [InlineData("ControlPath=/tmp/x")]
    [InlineData("StrictHostKeyChecking=no")]
    [InlineData("-oProxyCommand=x")]
    [InlineData("NoValue")]
    public void SshOptions_ThatWouldBreakTheConnection_AreRefused(string option)
    {
        var ex = Assert.Throws<ContainerException>(() => new SshOptions { Options = new[] { option } }.Validate());
        Assert.Equal("InvalidSshOption", ex.ErrorId);
    }
}
