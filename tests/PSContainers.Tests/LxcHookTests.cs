using System.Diagnostics;
using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Events;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>config.yaml hooks: read, refused at file:line:column, written back, and stripped from untrusted configs.</summary>
public sealed class LxcHookConfigTests
{
    [Fact]
    public void EveryForm_IsReadAndWrittenBack()
    {
        const string yaml = """
            hooks:
              timeout: 5s
              preStart: [ /usr/local/bin/a ]
              mount: [ [ /usr/local/bin/b, --x, "two words" ] ]
              stop: [ { path: /usr/local/bin/c, args: [ -v ], timeout: 250ms } ]
              postStop: [ /d ]
              start: [ /e ]
              netUp: [ /f ]
              netDown: [ /g ]
            """;
        var config = ConfigLoader.Parse(yaml, "c.yaml");
        Assert.Equal(TimeSpan.FromSeconds(5), config.Hooks.Timeout);
        Assert.Equal("/usr/local/bin/a", Assert.Single(config.Hooks.PreStart).Path);
        Assert.Equal(new[] { "--x", "two words" }, Assert.Single(config.Hooks.Mount).Args);
        var stop = Assert.Single(config.Hooks.Stop);
        Assert.Equal(TimeSpan.FromMilliseconds(250), stop.Timeout);
        Assert.Equal(TimeSpan.FromMilliseconds(250), config.Hooks.TimeoutOf(stop));
        Assert.Equal(TimeSpan.FromSeconds(5), config.Hooks.TimeoutOf(config.Hooks.PostStop[0]));
        var text = ConfigLoader.Serialize(config);
        var again = ConfigLoader.Parse(text, "again.yaml");
        Assert.Equal(text, ConfigLoader.Serialize(again));
        Assert.Equal(new[] { "--x", "two words" }, again.Hooks.Mount[0].Args);
        Assert.Equal("/g", again.Hooks.NetDown[0].Path);
        Assert.DoesNotContain("hooks", ConfigLoader.Serialize(ConfigLoader.Parse("hostname: h\n", "c.yaml")));
    }

    [Theory]
    [InlineData("hooks:\n  preStart: [ bin/x ]\n", "c.yaml:2:15: invalid path 'bin/x' for hooks.preStart[0]: it must be absolute")]
    [InlineData("hooks:\n  mount: [ [ /x, \"a\\tb\" ] ]\n", "c.yaml:2:18: invalid value for hooks.mount[0][1]: it must not contain a NUL, tab or newline")]
    [InlineData("hooks:\n  stop: [ { path: /x, timeout: 2h } ]\n", "c.yaml:2:32: invalid value '2h' for hooks.stop[0].timeout")]
    [InlineData("hooks:\n  stop: [ { args: [ a ] } ]\n", "c.yaml:2:11: hooks.stop[0].path needs the hook program's path")]
    [InlineData("hooks:\n  preStop: [ /x ]\n", "c.yaml:2:3: unknown key 'preStop' under 'hooks' (expected one of: timeout, preStart, mount, start, stop, postStop, netUp, netDown)")]
    [InlineData("hooks:\n  start: /x\n", "c.yaml:2:10: expected a list of hooks for hooks.start")]
    [InlineData("hooks:\n  timeout: 0ms\n", "c.yaml:2:12: invalid value '0ms' for hooks.timeout")]
    public void BadValues_AreRefusedAtTheirLineAndColumn(string yaml, string expected)
    {
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Parse(yaml, "c.yaml"));
        Assert.Equal("InvalidConfig", ex.ErrorId);
        Assert.StartsWith(expected, ex.Message);
    }

    [Fact]
    public void AConfigMadeInCode_IsCheckedByTheSameRules()
    {
        var config = new ContainerConfig();
        config.Hooks.Stop.Add(new HookConfig { Path = "relative" });
        Assert.Contains("hooks.stop[0]", Assert.Throws<ContainerException>(() => ConfigLoader.Validate(config)).Message);
        config.Hooks.Stop[0] = new HookConfig { Path = "/x", Args = { "a\nb" } };
        Assert.Contains("hooks.stop[0].args[0]", Assert.Throws<ContainerException>(() => ConfigLoader.Validate(config)).Message);
        config.Hooks.Stop[0] = new HookConfig { Path = "/x" };
        ConfigLoader.Validate(config);
    }

    [Fact]
    public void ConfigEditor_SetsAndRemovesHooks()
    {
        var (yaml, config) = ConfigEditor.Apply("hostname: h\n", new[] { new ConfigEdit("hooks.preStart", new object[] { "/usr/local/bin/x" }) }, "c.yaml");
        Assert.Equal("/usr/local/bin/x", Assert.Single(config.Hooks.PreStart).Path);
        var (_, removed) = ConfigEditor.Apply(yaml, new[] { new ConfigEdit("hooks", null, Remove: true) }, "c.yaml");
        Assert.True(removed.Hooks.IsEmpty);
        var bad = Assert.Throws<ContainerException>(() => ConfigEditor.Apply("hostname: h\n", new[] { new ConfigEdit("hooks.stop", new object[] { "x" }) }, "c.yaml"));
        Assert.Contains("hooks.stop[0]", bad.Message);
    }

    [Fact]
    public void UntrustedPolicy_StripsEveryHookPoint()
    {
        var config = ConfigLoader.Parse("hooks:\n  preStart: [ /a ]\n  mount: [ /b ]\n  start: [ /c ]\n  stop: [ /d ]\n  postStop: [ /e ]\n  netUp: [ /f ]\n  netDown: [ [ /g, x ] ]\n", "c.yaml");
        var found = UntrustedConfigPolicy.Find(config);
        Assert.Equal(new[] { "hooks.mount[0]", "hooks.netDown[0]", "hooks.netUp[0]", "hooks.postStop[0]", "hooks.preStart[0]", "hooks.start[0]", "hooks.stop[0]" }, found.Select(f => f.Key));
        Assert.Contains(found, f => f.Value == "/g x");
        Assert.Equal(7, UntrustedConfigPolicy.Sanitize(config).Count);
        Assert.True(config.Hooks.Points().All(p => p.Hooks.Count == 0));
        Assert.Empty(UntrustedConfigPolicy.Find(config));
    }
}

/// <summary>
/// The hook points on real containers (in the store's default mode): each runs where and when LXC
/// runs it, with LXC's environment and arguments, in order; a failing or slow hook fails its point
/// with HookFailed / HookTimedOut and a failed start leaves nothing; the supervisor runs stop and
/// post-stop also when init ends on its own; an imported archive's hooks never run.
/// </summary>
[Collection("Containers")]
public sealed class LxcHookTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "psc-test-hooks-" + Guid.NewGuid().ToString("N")[..8]);
    private string Log => Path.Combine(_dir, "log");

    public LxcHookTests()
    {
        Directory.CreateDirectory(_dir);
        // The mount hook runs as the container's root: in a user namespace that is a mapped host id.
        File.SetUnixFileMode(_dir, (UnixFileMode)0x1FF);
        File.WriteAllText(Log, "");
        File.SetUnixFileMode(Log, (UnixFileMode)0x1B6);
        // Every host hook appends one line: what it was told, and its arguments.
        Script("record", "echo \"$LXC_HOOK_TYPE|$LXC_HOOK_SECTION|$LXC_NAME|$LXC_CONFIG_FILE|$LXC_ROOTFS_MOUNT|$LXC_ROOTFS_PATH|$LXC_CGNS_AWARE|$LXC_HOOK_VERSION|$LXC_TARGET|$*\" >> " + Log);
    }

    public void Dispose()
    {
        _store.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private string Script(string name, string body)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        File.SetUnixFileMode(path, (UnixFileMode)0x1ED);
        return path;
    }

    private string Create(string hint, string yaml, string? startHook = null)
    {
        var name = TestStore.NewName(hint);
        var config = Path.Combine(_store.Root, name + ".yaml");
        File.WriteAllText(config, yaml);
        _store.Manager.Create(name, new CreateOptions { Template = "busybox", ConfigPath = config });
        if (startHook is not null)
        {
            // The start hook's path is the container's own.
            var inside = Path.Combine(_store.Manager.RootfsOf(name, null), "psc-test-start-hook");
            File.WriteAllText(inside, "#!/bin/sh\n" + startHook + "\n");
            File.SetUnixFileMode(inside, (UnixFileMode)0x1ED);
        }
        return name;
    }

    private string[] LogLines() => File.ReadAllLines(Log);

    private void AssertNothingLeft(string name)
    {
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
        foreach (var dir in CgroupManager.ForHost().Directories(Path.Combine(_store.CgroupParent, name)))
            Assert.False(Directory.Exists(dir), $"cgroup {dir} was left behind");
        Assert.False(File.Exists(_store.Manager.Store.RunRecordPath(name)), "the supervisor's run record was left behind");
        // No supervisor is left: none has the container's console log open.
        var console = _store.Manager.Store.ConsoleLogPath(name);
        foreach (var proc in Directory.EnumerateDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)))
        {
            string[] fds;
            try { fds = Directory.GetFiles(Path.Combine(proc, "fd")); } catch (Exception) { continue; }
            foreach (var fd in fds)
            {
                string? target = null;
                try { target = new FileInfo(fd).LinkTarget; } catch (Exception) { }
                Assert.False(target == console, $"process {proc} still holds {console}");
            }
        }
    }

    private const string Init = "init:\n  command: [/bin/sh, -c, \"cat /scratch/psc-mounted > /psc-test-init-saw.t 2>&1; mv /psc-test-init-saw.t /psc-test-init-saw; exec sleep 600\"]\nmounts:\n  - { target: /scratch, type: tmpfs }\n";

    /// <summary>In the store's default mode (user-namespaced) and privileged: the mount hook runs as the container's root in both.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EveryPoint_RunsWhereLxcRunsIt_WithItsEnvironment_InOrder(bool privileged)
    {
        var record = Path.Combine(_dir, "record");
        // The mount hook writes into the container's tmpfs, which exists only in its mount namespace.
        var mount = Script("mount", $"{record} \"$@\"; echo from-mount-hook > \"$LXC_ROOTFS_MOUNT/scratch/psc-mounted\"");
        var stop = Script("stop", $"{record} \"$@\"; echo \"ns|$LXC_NET_NS|$(readlink $LXC_NET_NS)|$(readlink $LXC_MNT_NS)\" >> {Log}");
        var name = Create("all", (privileged ? "privileged: true\n" : "") + Init + $"""
            hooks:
              preStart: [ [ {record}, first-arg ] ]
              mount: [ {mount} ]
              start: [ {"{"} path: /psc-test-start-hook, args: [ inside ] {"}"} ]
              stop: [ {stop} ]
              postStop: [ {record} ]
            """, startHook: "echo \"$LXC_HOOK_TYPE|$LXC_NAME|$*\" > /psc-test-start-ran; test ! -e /scratch/psc-never");
        var info = _store.Manager.Start(name);
        var netNs = new FileInfo($"/proc/{info.Pid}/ns/net").LinkTarget;
        var mntNs = new FileInfo($"/proc/{info.Pid}/ns/mnt").LinkTarget;
        // Start returns once init runs, not once it has written its file (renamed into place whole): wait for it.
        Assert.Equal(new[] { "from-mount-hook" }, _store.Manager.Exec(name, new[] { "/bin/sh", "-c",
            "i=0; while [ ! -e /psc-test-init-saw ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat /psc-test-init-saw" }).Output);
        Assert.Equal(new[] { $"start|{name}|inside {name} lxc start" }, _store.Manager.Exec(name, new[] { "cat", "/psc-test-start-ran" }).Output);
        // Nothing of the mount hook's write is on the host side of the tmpfs.
        Assert.False(File.Exists(Path.Combine(_store.Manager.RootfsOf(name, null), "scratch", "psc-mounted")));
        var rootfs = _store.Manager.RootfsOf(name, null);
        var config = _store.Manager.Store.ConfigPath(name);
        Assert.Equal(2, LogLines().Length);
        Assert.Equal($"pre-start|lxc|{name}|{config}|{rootfs}|{rootfs}|1|0||first-arg {name} lxc pre-start", LogLines()[0]);
        // The mount hook reaches the rootfs through a descriptor it inherits (a user-namespaced root
        // could not walk the store's path to it), as LXC gives it a mount point of its own.
        Assert.Matches($@"^mount\|lxc\|{name}\|{System.Text.RegularExpressions.Regex.Escape(config)}\|/proc/self/fd/\d+\|{System.Text.RegularExpressions.Regex.Escape(rootfs)}\|1\|0\|\|{name} lxc mount$", LogLines()[1]);

        _store.Manager.Stop(name);
        var lines = LogLines();
        Assert.Equal(new[] { "pre-start", "mount", "stop", "ns", "post-stop" }, lines.Select(l => l.Split('|')[0]));
        // stop: LXC's arguments with the namespace references after them, and LXC_<NS>_NS, which still
        // name the container's namespaces though its init is gone.
        var stopLine = lines[2].Split('|');
        Assert.Equal("stop", stopLine[8]);
        Assert.StartsWith($"{name} lxc stop ", stopLine[9]);
        Assert.Matches(@"(^| )net:/proc/\d+/fd/\d+( |$)", stopLine[9]);
        Assert.Matches(@"(^| )mnt:/proc/\d+/fd/\d+( |$)", stopLine[9]);
        var ns = lines[3].Split('|');
        Assert.Matches(@"^/proc/\d+/fd/\d+$", ns[1]);
        Assert.Equal(netNs, ns[2]);
        Assert.Equal(mntNs, ns[3]);
        Assert.Equal($"post-stop|lxc|{name}|{config}|{rootfs}|{rootfs}|1|0|stop|{name} lxc post-stop", lines[4]);
    }

    [Fact]
    public void StopAndPostStop_RunWhenInitEndsOnItsOwn_WithNoPwshWatching()
    {
        var record = Path.Combine(_dir, "record");
        var name = Create("died", $"init:\n  command: [/bin/sleep, \"1\"]\nhooks:\n  stop: [ {record} ]\n  postStop: [ {record} ]\n");
        _store.Manager.Start(name);
        // Nobody calls Stop-Container: init's supervisor runs them once init has ended.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline && LogLines().Length < 2) Thread.Sleep(100);
        Assert.Equal(new[] { "stop", "post-stop" }, LogLines().Select(l => l.Split('|')[0]));
        while (DateTime.UtcNow < deadline && _store.Manager.Get(name).State != ContainerStatus.Stopped) Thread.Sleep(100);
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
    }

    public static TheoryData<string> FailingPoints => new() { "preStart", "mount", "start" };

    [Theory]
    [MemberData(nameof(FailingPoints))]
    public void AFailingStartHook_FailsTheStart_ReportsIt_AndLeavesNothing(string point)
    {
        var record = Path.Combine(_dir, "record");
        var fail = point == "start" ? "/psc-test-start-hook" : Script("fail", "echo psc-test-first >&2; echo psc-test-boom >&2; exit 3");
        var name = Create("fail" + point.ToLowerInvariant(), Init + $"hooks:\n  {point}: [ {fail} ]\n  postStop: [ {record} ]\n",
            startHook: "echo psc-test-boom >&2; exit 3");
        var ex = Assert.Throws<ContainerException>(() => _store.Manager.Start(name));
        Assert.True(ex.ErrorId == "HookFailed", ex.ErrorId + ": " + ex.Message);
        Assert.Contains($"the {point} hook {fail} failed with exit code 3", ex.Message);
        Assert.Contains("psc-test-boom", ex.Message);
        AssertNothingLeft(name);
        // As LXC: post-stop undoes a start that got past pre-start; a failed pre-start made nothing.
        Assert.Equal(point == "preStart" ? Array.Empty<string>() : new[] { "post-stop" }, LogLines().Select(l => l.Split('|')[0]));
    }

    [Theory]
    [InlineData("preStart")]
    [InlineData("mount")]
    public void ASlowHook_IsKilledAtItsTimeout_AndTheStartLeavesNothing(string point)
    {
        var slow = Script("slow", "sleep 30 & wait");
        var name = Create("slow" + point.ToLowerInvariant(), Init + $"hooks:\n  timeout: 20s\n  {point}: [ {{ path: {slow}, timeout: 400ms }} ]\n");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var ex = Assert.Throws<ContainerException>(() => _store.Manager.Start(name));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"the start took {clock.Elapsed}");
        Assert.True(ex.ErrorId == "HookTimedOut", ex.ErrorId + ": " + ex.Message);
        Assert.Contains($"{point} hook {slow}", ex.Message);
        AssertNothingLeft(name);
        // What the hook started went with it.
        Assert.DoesNotContain(Directory.EnumerateDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)),
            d => { try { return File.ReadAllText(Path.Combine(d, "cmdline")).Contains(slow); } catch (Exception) { return false; } });
    }

    [Fact]
    public void AFailingStopHook_IsReportedByStopContainer_WhichStillStopsIt()
    {
        var fail = Script("fail", "echo psc-test-stop-broke >&2; exit 5");
        var record = Path.Combine(_dir, "record");
        var name = Create("stopfail", Init + $"hooks:\n  stop: [ {fail} ]\n  postStop: [ {record} ]\n");
        using var ps = _store.OpenSession();
        ps.Run("Start-Container $args[0]", name);
        var error = ps.Invoke("Stop-Container $args[0]", name).SingleError;
        Assert.Equal("HookFailed", error.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Contains($"the stop hook {fail} failed with exit code 5", error.ToString());
        Assert.Contains("psc-test-stop-broke", error.ToString());
        // The failure does not stop the rest: post-stop ran, and the container is stopped and recorded so.
        Assert.Equal(new[] { "post-stop" }, LogLines().Select(l => l.Split('|')[0]));
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
        Assert.False(File.Exists(Path.Combine(_store.Manager.Store.ContainerDirectory(name), "hooks.failed")));
        // The supervisor recorded it in the journal too (it may have run with no pwsh to report it).
        var events = ps.Run("Get-ContainerEvent -Name $args[0] -Kind HookFailed", name).Select(o => (PSContainers.Runtime.Events.ContainerEvent)o.BaseObject).ToList();
        var recorded = Assert.Single(events);
        Assert.Equal("stop", recorded.Details["hook"]);
        Assert.Equal("5", recorded.Details["code"]);
    }

    [Fact]
    public void NetHooks_RunForEachNic_WithItsTypeParentAndPeer()
    {
        var net = Script("net", $"echo \"$LXC_HOOK_TYPE|$LXC_HOOK_SECTION|$LXC_NET_TYPE|$LXC_NET_PARENT|$LXC_NET_PEER|$*|$(cat /sys/class/net/$LXC_NET_PEER/operstate 2>&1)\" >> {Log}");
        var name = Create("net", Init + $"network:\n  - {{ type: veth }}\nhooks:\n  netUp: [ {net} ]\n  netDown: [ {net} ]\n");
        _store.Manager.Start(name);
        var up = Assert.Single(LogLines()).Split('|');
        Assert.Equal(new[] { "up", "net", "veth" }, up[..3]);
        var peer = up[4];
        Assert.Matches("^v[pu][0-9a-f]+$", peer);
        Assert.Equal($"{name} net up veth {peer}", up[5]);
        // Up runs once the host end exists.
        Assert.DoesNotContain("No such file", up[6]);
        _store.Manager.Stop(name);
        var down = LogLines()[1].Split('|');
        Assert.Equal(new[] { "down", "net", "veth", up[3], peer, $"{name} net down veth {peer}" }, down[..6]);
        // Down runs before the host side goes.
        Assert.DoesNotContain("No such file", down[6]);
        Assert.False(Directory.Exists($"/sys/class/net/{peer}"), "the veth's host end was left behind");
    }

    private string[] Points() => LogLines().Select(l => l.Split('|')[0]).ToArray();

    /// <summary>
    /// A restored run is a run like a started one (LXC's lxc-checkpoint -r: lxc_init, CRIU, lxc_end):
    /// pre-start on the host before it, no mount or start (CRIU restores what they made), and stop,
    /// post-stop at its end by its supervisor, with stop given the restored namespaces; a failure is
    /// reported by Stop-Container and in the journal as a started run's is.
    /// </summary>
    [Fact]
    public void ARestoredRun_RunsPreStart_ThenStopAndPostStopAtItsEnd_LikeAStartedOne()
    {
        var record = Path.Combine(_dir, "record");
        var armed = Path.Combine(_dir, "armed");
        var failing = Script("fail-when-armed", $"test ! -e {armed} || {{ echo psc-test-post-stop-broke >&2; exit 4; }}");
        var name = Create("restore", "privileged: true\ninit:\n  command: [/bin/sleep, \"600\"]\n" + $"""
            hooks:
              preStart: [ {record} ]
              mount: [ {record} ]
              stop: [ {record} ]
              postStop: [ {record}, {failing} ]
            """);
        using var ps = _store.OpenSession();
        ps.Run("Start-Container $args[0]", name);
        Assert.Equal(new[] { "pre-start", "mount" }, Points());
        var dir = Path.Combine(_store.Root, "ckpt-" + name);
        Assert.Empty(ps.Invoke("Checkpoint-Container -Name $args[0] -Path $args[1]", name, dir).Errors);
        // The dump ended the run: its end-of-run hooks ran.
        Assert.Equal(new[] { "pre-start", "mount", "stop", "post-stop" }, Points());

        var restored = ps.Invoke("Restore-Container -Path $args[0] -PassThru", dir);
        Assert.Empty(restored.Errors);
        var info = restored.Single<ContainerInfo>();
        Assert.Equal(ContainerStatus.Running, info.State);
        var netNs = new FileInfo($"/proc/{info.Pid}/ns/net").LinkTarget;
        Assert.Equal(new[] { "pre-start", "mount", "stop", "post-stop", "pre-start" }, Points());
        File.WriteAllText(armed, "");

        var error = ps.Invoke("Stop-Container $args[0]", name).SingleError;
        Assert.Equal("HookFailed", error.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Contains($"the postStop hook {failing} failed with exit code 4", error.ToString());
        Assert.Contains("psc-test-post-stop-broke", error.ToString());
        var lines = LogLines();
        Assert.Equal(new[] { "pre-start", "mount", "stop", "post-stop", "pre-start", "stop", "post-stop" }, Points());
        // stop got the restored init's namespaces, held by its supervisor.
        var stopArgs = lines[5].Split('|')[9];
        Assert.StartsWith($"{name} lxc stop ", stopArgs);
        var netRef = stopArgs.Split(' ').Single(a => a.StartsWith("net:", StringComparison.Ordinal));
        Assert.Matches(@"^net:/proc/\d+/fd/\d+$", netRef);
        Assert.Equal($"post-stop|lxc|{name}|{_store.Manager.Store.ConfigPath(name)}|{info.RootfsPath}|{info.RootfsPath}|1|0|stop|{name} lxc post-stop", lines[6]);
        Assert.NotNull(netNs);
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
        var failed = _store.Manager.Events.Read().Where(e => e.Container == name && e.Kind == ContainerEventKind.HookFailed).ToList();
        var recorded = Assert.Single(failed);
        Assert.Equal("post-stop", recorded.Details["hook"]);
        Assert.Equal("4", recorded.Details["code"]);
    }

    /// <summary>
    /// A supervisor killed before init's end runs none of the end-of-run hooks: the runtime runs
    /// post-stop when it finishes that run (a stop, or the next command's recovery), once; stop
    /// cannot run (the namespaces it is given died with init). A run whose supervisor lives to the
    /// end gets post-stop from it alone, never again from the runtime.
    /// </summary>
    [Fact]
    public void PostStop_RunsExactlyOncePerRun_AlsoWhenItsSupervisorWasKilled()
    {
        var record = Path.Combine(_dir, "record");
        var armed = Path.Combine(_dir, "armed");
        var failing = Script("fail-when-armed", $"test ! -e {armed} || {{ echo psc-test-recovered-broke >&2; exit 6; }}");
        var name = Create("orphan", Init + $"hooks:\n  stop: [ {record} ]\n  postStop: [ {record}, {failing} ]\n");
        using var ps = _store.OpenSession();

        // 1. The supervisor is killed, init runs on: Stop-Container ends it and runs post-stop.
        var info = (ContainerInfo)ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
        KillSupervisor(info);
        Assert.Equal(ContainerStatus.Running, _store.Manager.Get(name).State);
        Assert.Empty(ps.Invoke("Stop-Container $args[0] -Kill", name).Errors);
        var lines = LogLines();
        Assert.Equal(new[] { "post-stop" }, Points());
        Assert.Equal($"post-stop|lxc|{name}|{_store.Manager.Store.ConfigPath(name)}|{info.RootfsPath}|{info.RootfsPath}|1|0|stop|{name} lxc post-stop", lines[0]);
        AssertNothingLeft(name);
        Assert.Equal("ContainerNotRunning", ps.Invoke("Stop-Container $args[0]", name).SingleError.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Equal(new[] { "post-stop" }, Points());

        // 2. Supervisor and init both gone: reading changes nothing; the next command under the lock
        // (here a start) finishes the run first, its hook failure a warning and a journal record.
        info = (ContainerInfo)ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
        KillSupervisor(info);
        using (var init = Process.GetProcessById(info.Pid!.Value)) init.Kill();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline && _store.Manager.Get(name).State != ContainerStatus.Stopped) Thread.Sleep(50);
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
        Assert.Equal(new[] { "post-stop" }, Points());
        File.WriteAllText(armed, "");
        var start = ps.Invoke("Start-Container $args[0]", name);
        Assert.Empty(start.Errors);
        Assert.Contains(start.Warnings, w => w.Contains($"the postStop hook {failing} failed with exit code 6", StringComparison.Ordinal) && w.Contains("psc-test-recovered-broke", StringComparison.Ordinal));
        Assert.Equal(new[] { "post-stop", "post-stop" }, Points());
        var failed = Assert.Single(_store.Manager.Events.Read(), e => e.Container == name && e.Kind == ContainerEventKind.HookFailed);
        Assert.Equal("post-stop", failed.Details["hook"]);
        Assert.Equal("6", failed.Details["code"]);
        Assert.Equal("1", failed.Details["recovered"]);
        File.Delete(armed);

        // 3. A normal stop: the supervisor runs stop and post-stop, and nothing runs them again.
        Assert.Empty(ps.Invoke("Stop-Container $args[0] -Kill", name).Errors);
        Assert.Equal(new[] { "post-stop", "post-stop", "stop", "post-stop" }, Points());
        ps.Run("Get-Container $args[0]", name);
        Assert.Equal("ContainerNotRunning", ps.Invoke("Stop-Container $args[0]", name).SingleError.FullyQualifiedErrorId.Split(',')[0]);
        ps.Run("Remove-Container $args[0]", name);
        Assert.Equal(new[] { "post-stop", "post-stop", "stop", "post-stop" }, Points());
    }

    private static void KillSupervisor(ContainerInfo info)
    {
        using var supervisor = Process.GetProcessById(info.SupervisorPid!.Value);
        supervisor.Kill();
        Assert.True(supervisor.WaitForExit(10000), "the supervisor did not die");
    }

    [Fact]
    public void AnImportedArchivesHooks_AreStripped_WithAWarning_AndNeverRun()
    {
        var record = Path.Combine(_dir, "record");
        var name = Create("export", $"hooks:\n  preStart: [ {record} ]\n  postStop: [ {record} ]\n");
        var archive = Path.Combine(_store.Root, "hooks.tar");
        ContainerArchive.Export(_store.Manager, name, archive, force: false);
        _store.Manager.Remove(name, force: true);

        var plain = ContainerArchive.Import(_store.Manager, archive, new ImportOptions { Name = TestStore.NewName("plain") });
        Assert.Contains(plain.Warnings, w => w.StartsWith($"Removed hooks.preStart[0] ({record})", StringComparison.Ordinal));
        Assert.Contains(plain.Warnings, w => w.StartsWith($"Removed hooks.postStop[0] ({record})", StringComparison.Ordinal));
        Assert.True(ConfigLoader.Load(plain.Container.ConfigPath).Hooks.IsEmpty);
        _store.Manager.Start(plain.Container.Name);
        _store.Manager.Stop(plain.Container.Name);
        Assert.Empty(LogLines());

        // Kept only when asked for: then they run.
        var kept = ContainerArchive.Import(_store.Manager, archive, new ImportOptions { Name = TestStore.NewName("kept"), KeepHostAccess = true });
        Assert.Contains(kept.Warnings, w => w.StartsWith("Kept hooks.preStart[0] ", StringComparison.Ordinal));
        _store.Manager.Start(kept.Container.Name);
        Assert.Equal(new[] { "pre-start" }, LogLines().Select(l => l.Split('|')[0]));
    }
}
