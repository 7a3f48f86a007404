using System.Management.Automation;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// End to end through the real PowerShell engine and the built module: real namespaces, cgroups,
/// pivot_root and processes on this kernel. Each test has its own store, cleaned up on failure too.
/// </summary>
[Collection("Containers")]
public sealed class ContainerLifecycleTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;

    public ContainerLifecycleTests()
    {
        // xunit does not call Dispose when the constructor throws: clean the store ourselves.
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    private ContainerInfo NewBusybox(string name, string extra = "") =>
        (ContainerInfo)Assert.Single(_ps.Run($"New-Container -Name $args[0] -Template busybox {extra}", name)).BaseObject;

    [Fact]
    public void FullLifecycle_IsolatesAndCleansUp()
    {
        var name = TestStore.NewName("life");
        var created = NewBusybox(name);
        Assert.Equal(ContainerStatus.Stopped, created.State);
        Assert.Equal("busybox", created.Template);
        Assert.True(File.Exists(Path.Combine(created.RootfsPath, "bin", "busybox")));
        File.WriteAllText(Path.Combine(created.RootfsPath, "marker-of-rootfs"), name);

        var started = (ContainerInfo)Assert.Single(_ps.Run("Start-Container $args[0] -PassThru", name)).BaseObject;
        Assert.Equal(ContainerStatus.Running, started.State);
        Assert.NotNull(started.Pid);
        var initPid = started.Pid!.Value;
        var cgroupPath = started.CgroupPath!;
        // Init lives in the inner cgroup below the one with the limits (see CgroupManagerContainer.cs).
        Assert.All(CgroupManager.ForHost().ProcsFiles(CgroupManager.InnerOf(cgroupPath)), f => Assert.Contains(initPid.ToString(), File.ReadAllLines(f)));
        Assert.All(CgroupManager.ForHost().ProcsFiles(cgroupPath), f => Assert.Empty(File.ReadAllLines(f)));

        // A second session (another pwsh) sees it running.
        using (var other = _store.OpenSession())
        {
            var seen = other.Run("Get-Container $args[0]", name).Single().BaseObject as ContainerInfo;
            Assert.Equal(ContainerStatus.Running, seen!.State);
            Assert.Equal(initPid, seen.Pid);
        }

        // pid 1 is its init, the hostname is its own, / is its rootfs, and the namespaces differ from ours.
        var ps = _ps.Run("Invoke-ContainerCommand $args[0] -Command cat,/proc/1/cmdline", name).Single().BaseObject as ContainerCommandResult;
        Assert.Equal(0, ps!.ExitCode);
        // busybox init renames itself "init"; its executable is the rootfs's /sbin/init.
        Assert.StartsWith("init", ps.Output[0]);
        var exe = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command readlink,/proc/1/exe", name).Single().BaseObject;
        Assert.Equal("/sbin/init", exe.Output.Single());
        var hostname = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command hostname", name).Single().BaseObject;
        Assert.Equal(new[] { name }, hostname.Output);
        var marker = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command cat,/marker-of-rootfs", name).Single().BaseObject;
        Assert.Equal(new[] { name }, marker.Output);
        // A command run inside is in the container's cgroups: at the root of its cgroup namespace.
        var cg = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command cat,/proc/self/cgroup", name).Single().BaseObject;
        // Pure v2 has the one "0::" line; a hybrid host one per v1 hierarchy too.
        foreach (var hierarchy in HostCgroups.IsUnified ? new[] { "0::" } : new[] { "0::", ":memory:", ":pids:", ":freezer:" })
            Assert.Contains(cg.Output, l => (l.StartsWith(hierarchy) || l.Contains(hierarchy)) && l.EndsWith(":/"));
        var selfPid = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command sh,-c,'echo $$'", name).Single().BaseObject;
        Assert.True(int.Parse(selfPid.Output[0]) < 100, "a command inside sees small pids of its own pid namespace");
        foreach (var ns in new[] { "mnt", "pid", "uts", "ipc", "net", "cgroup" })
        {
            var inside = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command readlink,/proc/1/ns/$($args[1])", name, ns).Single().BaseObject;
            var host = new FileInfo($"/proc/self/ns/{ns}").LinkTarget;
            Assert.NotEqual(host, inside.Output[0]);
        }
        // /sys read-only, /proc/sys read-only, a minimal /dev.
        var sysWrite = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command sh,-c,'echo 1 > /proc/sys/kernel/panic'", name).Single().BaseObject;
        Assert.NotEqual(0, sysWrite.ExitCode);
        var dev = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command ls,/dev", name).Single().BaseObject;
        foreach (var d in new[] { "null", "zero", "full", "random", "urandom", "tty", "console", "ptmx", "pts", "shm" })
            Assert.Contains(d, dev.Output);
        Assert.DoesNotContain("sda", dev.Output);

        // Freeze and thaw: frozen as seen by Get-Container, a command is refused, then running again.
        _ps.Run("Suspend-Container $args[0]", name);
        Assert.Equal(ContainerStatus.Frozen, _store.Manager.Get(name).State);
        var frozenExec = _ps.Invoke("Invoke-ContainerCommand $args[0] -Command true", name);
        Assert.StartsWith("ContainerFrozen", frozenExec.SingleError.FullyQualifiedErrorId);
        _ps.Run("Resume-Container $args[0]", name);
        Assert.Equal(ContainerStatus.Running, _store.Manager.Get(name).State);

        var stopped = (ContainerInfo)_ps.Run("Stop-Container $args[0] -PassThru", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Stopped, stopped.State);
        Assert.Null(stopped.Pid);
        Assert.Null(Sys.ProcessStartTime(initPid));
        Assert.False(CgroupManager.ForHost().Exists(cgroupPath));
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(created.RootfsPath));

        _ps.Run("Remove-Container $args[0]", name);
        Assert.False(Directory.Exists(created.Path));
        Assert.Empty(_ps.Run("Get-Container"));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(_store.StorePath, ".trash")));
    }

    [Theory]
    [InlineData("..")]
    [InlineData("a/b")]
    [InlineData("../escape")]
    [InlineData("-rf")]
    [InlineData(" ")]
    [InlineData("x000000001x000000001x000000001x000000001x000000001x000000001xxxxx")]
    public void BadNames_AreRejected_AndNothingIsCreated(string name)
    {
        var r = _ps.Invoke("New-Container -Name $args[0] -Template busybox", name);
        Assert.StartsWith("InvalidContainerName", r.SingleError.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.InvalidArgument, r.SingleError.CategoryInfo.Category);
        Assert.DoesNotContain(Directory.EnumerateDirectories(_store.StorePath), d => !Path.GetFileName(d).StartsWith('.'));
        Assert.False(Directory.Exists(Path.Combine(_store.Root, "escape")));
    }

    [Fact]
    public void EmptyName_IsRejectedByBinding()
    {
        var r = _ps.Invoke("New-Container -Name '' -Template busybox");
        Assert.Contains("ParameterArgumentValidationError", r.SingleError.FullyQualifiedErrorId);
    }

    [Fact]
    public void CreatingAnExistingName_FailsWithoutTouchingIt()
    {
        var name = TestStore.NewName("dup");
        var first = NewBusybox(name);
        var configBefore = File.ReadAllText(first.ConfigPath);
        var mtime = File.GetLastWriteTimeUtc(first.ConfigPath);
        var r = _ps.Invoke("New-Container -Name $args[0] -Template busybox -Hostname other", name);
        Assert.StartsWith("ContainerExists", r.SingleError.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ResourceExists, r.SingleError.CategoryInfo.Category);
        Assert.Equal(name, r.SingleError.TargetObject);
        Assert.Equal(configBefore, File.ReadAllText(first.ConfigPath));
        Assert.Equal(mtime, File.GetLastWriteTimeUtc(first.ConfigPath));
    }

    [Fact]
    public void StartingStarted_AndStoppingStopped_ArePreciseErrors()
    {
        var name = TestStore.NewName("twice");
        NewBusybox(name);
        var stop = _ps.Invoke("Stop-Container $args[0]", name);
        Assert.StartsWith("ContainerNotRunning", stop.SingleError.FullyQualifiedErrorId);
        _ps.Run("Start-Container $args[0]", name);
        var again = _ps.Invoke("Start-Container $args[0]", name);
        Assert.StartsWith("ContainerAlreadyRunning", again.SingleError.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.InvalidOperation, again.SingleError.CategoryInfo.Category);
        var remove = _ps.Invoke("Remove-Container $args[0]", name);
        Assert.StartsWith("ContainerRunning", remove.SingleError.FullyQualifiedErrorId);
        _ps.Run("Remove-Container $args[0] -Force", name);
        Assert.Empty(_ps.Run("Get-Container"));
    }

    [Fact]
    public void UnknownContainer_IsObjectNotFound()
    {
        var r = _ps.Invoke("Start-Container psct-does-not-exist");
        Assert.StartsWith("ContainerNotFound", r.SingleError.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ObjectNotFound, r.SingleError.CategoryInfo.Category);
        Assert.Empty(_ps.Run("Get-Container psct-nothing-*"));
    }

    [Fact]
    public void StartFailure_LeavesNoCgroupOrProcess()
    {
        var name = TestStore.NewName("badinit");
        NewBusybox(name, "-Command /no/such/init");
        var r = _ps.Invoke("Start-Container $args[0]", name);
        Assert.StartsWith("StartFailed", r.SingleError.FullyQualifiedErrorId);
        Assert.Contains("/no/such/init", r.SingleError.Exception.Message);
        Assert.False(CgroupManager.ForHost().Exists($"{_store.CgroupParent}/{name}"));
        Assert.Equal(ContainerStatus.Stopped, _store.Manager.Get(name).State);
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(_store.StorePath));
    }

    [Fact]
    public void MissingBusybox_IsNotInstalled_AndCreatesNothing()
    {
        var saved = Environment.GetEnvironmentVariable("PSCONTAINERS_BUSYBOX");
        Environment.SetEnvironmentVariable("PSCONTAINERS_BUSYBOX", "/nonexistent/busybox");
        try
        {
            var r = _ps.Invoke("New-Container -Name $args[0] -Template busybox", TestStore.NewName("nobb"));
            Assert.Equal(ErrorCategory.NotInstalled, r.SingleError.CategoryInfo.Category);
            Assert.Contains("busybox", r.SingleError.Exception.Message);
            Assert.Empty(_ps.Run("Get-Container"));
            Assert.Empty(Directory.EnumerateFileSystemEntries(_store.StorePath).Where(d => !Path.GetFileName(d).StartsWith('.')));
        }
        finally { Environment.SetEnvironmentVariable("PSCONTAINERS_BUSYBOX", saved); }
    }

    [Fact]
    public void ConfigErrors_NameFileLineAndColumn_AndCreateNothing()
    {
        var config = Path.Combine(_store.Root, "bad.yaml");
        File.WriteAllText(config, "hostname: ok\ninit:\n  comand: [/bin/sh]\n");
        var r = _ps.Invoke("New-Container -Name $args[0] -ConfigPath $args[1]", TestStore.NewName("yaml"), config);
        Assert.StartsWith("InvalidConfig", r.SingleError.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ParserError, r.SingleError.CategoryInfo.Category);
        Assert.Contains($"{config}:3:3", r.SingleError.Exception.Message);
        Assert.Contains("comand", r.SingleError.Exception.Message);
        Assert.Empty(_ps.Run("Get-Container"));
    }

    [Fact]
    public void ConfigFile_DrivesInitEnvironmentHostnameAndMounts()
    {
        var shared = Path.Combine(_store.Root, "shared");
        Directory.CreateDirectory(shared);
        File.WriteAllText(Path.Combine(shared, "data.txt"), "from host");
        var config = Path.Combine(_store.Root, "c.yaml");
        File.WriteAllText(config, $"""
            hostname: configured-host
            init:
              command: [/bin/sh, -c, "echo started-$GREETING; exec sleep 1000"]
              environment: {"{"} GREETING: hello {"}"}
            mounts:
              - {"{"} source: {shared}, target: /mnt/shared, readOnly: true {"}"}
            stop: {"{"} signal: SIGKILL, timeout: 5 {"}"}
            """);
        var name = TestStore.NewName("cfg");
        _ps.Run("New-Container -Name $args[0] -ConfigPath $args[1] | Start-Container", name, config);
        var host = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] hostname", name).Single().BaseObject;
        Assert.Equal("configured-host", host.Output.Single());
        var read = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] cat,/mnt/shared/data.txt", name).Single().BaseObject;
        Assert.Equal("from host", read.Output.Single());
        var write = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] touch,/mnt/shared/new", name).Single().BaseObject;
        Assert.NotEqual(0, write.ExitCode);
        Assert.False(File.Exists(Path.Combine(shared, "new")));
        Assert.True(SpinWait.SpinUntil(() => _ps.Run("Get-ContainerConsoleLog $args[0]", name).Any(o => o.ToString() == "started-hello"), 5000));
        _ps.Run("Stop-Container $args[0]", name);
        Assert.Equal("SIGKILL", _store.Manager.Get(name).ExitSignal);
    }

    [Fact]
    public void BindMountTarget_ThroughSymlink_StaysInsideRootfs()
    {
        // The rootfs's /mnt is an absolute symlink naming a directory that exists on the host (and,
        // in the second part, inside the rootfs too). Targets resolve as if the rootfs were /: the
        // mount lands inside the rootfs, never on the host path.
        var outside = Path.Combine(_store.Root, "outside");
        Directory.CreateDirectory(outside);
        var source = Path.Combine(_store.Root, "src");
        Directory.CreateDirectory(source);
        File.WriteAllText(Path.Combine(source, "secret"), "x");
        var name = TestStore.NewName("symlink");
        var info = NewBusybox(name);
        Directory.Delete(Path.Combine(info.RootfsPath, "mnt"));
        File.CreateSymbolicLink(Path.Combine(info.RootfsPath, "mnt"), outside);
        var config = File.ReadAllText(info.ConfigPath).Replace("mounts: []", $"mounts:\n- source: {source}\n  target: /mnt/evil\n  readOnly: false");
        File.WriteAllText(info.ConfigPath, config);

        // Dangling inside the rootfs: refused with a precise error, nothing made on the host.
        var refused = _ps.Invoke("Start-Container $args[0]", name);
        Assert.StartsWith("StartFailed", refused.SingleError.FullyQualifiedErrorId);
        Assert.Contains($"/mnt is a symlink to {outside}, which does not exist inside the container", refused.SingleError.Exception.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));

        // Present inside the rootfs: the mount goes there.
        var inRoot = Path.Combine(info.RootfsPath, outside.TrimStart('/'));
        Directory.CreateDirectory(inRoot);
        // Made by host root: handed to the container's root (the rootfs's owner), who makes the target in it.
        HostCommand.Run("chown", "-R", "--reference=" + info.RootfsPath, Path.Combine(info.RootfsPath, outside.TrimStart('/').Split('/')[0]));
        _ps.Run("Start-Container $args[0]", name);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
        Assert.True(Directory.Exists(Path.Combine(inRoot, "evil")));
        var seen = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] cat,/mnt/evil/secret", name).Single().BaseObject;
        Assert.Equal("x", seen.Output.Single());
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(outside));
    }

    [Fact]
    public void StopTimeout_EscalatesToKill_AndExitIsRecorded()
    {
        var name = TestStore.NewName("stubborn");
        // A pid-1 without a TERM handler ignores SIGTERM: the stop must escalate after -Timeout.
        NewBusybox(name, "-Command /bin/sleep,1000");
        _ps.Run("Start-Container $args[0]", name);
        var stopped = (ContainerInfo)_ps.Run("Stop-Container $args[0] -Timeout 1 -PassThru", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Stopped, stopped.State);
        Assert.Equal("SIGKILL", stopped.ExitSignal);
        Assert.Equal(137, stopped.ExitCode);
    }

    [Fact]
    public void InitExit_IsRecordedBySupervisor_WithoutAnySession()
    {
        var name = TestStore.NewName("exit");
        NewBusybox(name, "-Command /bin/sh,-c,'echo bye; exit 3'");
        _ps.Run("Start-Container $args[0]", name);
        var done = (ContainerInfo)_ps.Run("Wait-Container $args[0] -State Stopped -Timeout 10 -PassThru", name).Single().BaseObject;
        Assert.Equal(3, done.ExitCode);
        Assert.Null(done.ExitSignal);
        Assert.False(CgroupManager.ForHost().Exists($"{_store.CgroupParent}/{name}"));
        Assert.Contains("bye", _ps.Run("Get-ContainerConsoleLog $args[0]", name).Select(o => o.ToString()));
        // It can be started again.
        _ps.Run("Start-Container $args[0]; Wait-Container $args[0] Stopped", name);
    }

    [Fact]
    public void GracefulStop_UsesTheTemplatesSignal()
    {
        var name = TestStore.NewName("graceful");
        NewBusybox(name);
        _ps.Run("Start-Container $args[0]", name);
        var stopped = (ContainerInfo)_ps.Run("Stop-Container $args[0] -Timeout 10 -PassThru", name).Single().BaseObject;
        // busybox init powers off on SIGUSR2: in a pid namespace that ends init with SIGINT, not SIGKILL.
        Assert.NotEqual("SIGKILL", stopped.ExitSignal);
    }

    [Fact]
    public void StopRightAfterStart_WaitsForInitsHandler_InsteadOfLosingTheSignal()
    {
        // This init installs its TERM handler only after three seconds. pid 1 of a namespace ignores
        // uncaught signals, so a TERM sent at once would be lost and the stop would end in SIGKILL.
        // The stop waits for the handler for half its grace period (6 s of 12): longer than any
        // fixed short wait, so the handler's delay plus a loaded host's start-up still fits.
        var name = TestStore.NewName("slowinit");
        NewBusybox(name, "-Command /bin/sh,-c,'sleep 3; trap \"exit 0\" TERM; while :; do sleep 1 & wait; done'");
        var config = File.ReadAllText(_store.Manager.Store.ConfigPath(name)).Replace("  signal: SIGUSR2", "  signal: SIGTERM");
        File.WriteAllText(_store.Manager.Store.ConfigPath(name), config);
        var stopped = (ContainerInfo)_ps.Run("Start-Container $args[0]; Stop-Container $args[0] -Timeout 12 -PassThru", name).Single().BaseObject;
        Assert.Equal(0, stopped.ExitCode);
        Assert.Null(stopped.ExitSignal);
    }

    [Fact]
    public void MemoryLimit_IsAppliedToTheContainersCgroup()
    {
        var name = TestStore.NewName("mem");
        NewBusybox(name, "-MemoryLimit 64MB");
        var info = (ContainerInfo)_ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
        Assert.Equal(64L << 20, info.MemoryLimit);
        Assert.Equal(64L << 20, CgroupManager.ForHost().GetMemoryMax(info.CgroupPath!));
        var textual = TestStore.NewName("mem2");
        NewBusybox(textual, "-MemoryLimit '32M'");
        Assert.Equal(32L << 20, _store.Manager.Get(textual).MemoryLimit);
        var bad = _ps.Invoke("New-Container $args[0] -MemoryLimit 'lots'", TestStore.NewName("mem3"));
        Assert.Contains("ParameterArgumentTransformationError", bad.SingleError.FullyQualifiedErrorId);
    }

    [Fact]
    public void TwoSessionsRacing_OneWinsCleanly()
    {
        var name = TestStore.NewName("race");
        using var a = _store.OpenSession();
        using var b = _store.OpenSession();
        var results = new ModuleSession.Result[2];
        Parallel.Invoke(
            () => results[0] = a.Invoke("New-Container $args[0] -Template busybox", name),
            () => results[1] = b.Invoke("New-Container $args[0] -Template busybox", name));
        Assert.Single(results, r => r.Errors.Count == 0);
        Assert.StartsWith("ContainerExists", results.Single(r => r.Errors.Count > 0).SingleError.FullyQualifiedErrorId);

        Parallel.Invoke(
            () => results[0] = a.Invoke("Start-Container $args[0]", name),
            () => results[1] = b.Invoke("Start-Container $args[0]", name));
        Assert.Single(results, r => r.Errors.Count == 0);
        Assert.StartsWith("ContainerAlreadyRunning", results.Single(r => r.Errors.Count > 0).SingleError.FullyQualifiedErrorId);
        Assert.Equal(ContainerStatus.Running, _store.Manager.Get(name).State);

        Parallel.Invoke(
            () => results[0] = a.Invoke("Stop-Container $args[0] -Kill", name),
            () => results[1] = b.Invoke("Remove-Container $args[0] -Force", name));
        Assert.Empty(_ps.Run("Get-Container"));
        Assert.False(CgroupManager.ForHost().Exists($"{_store.CgroupParent}/{name}"));
    }

    [Fact]
    public void Pipeline_ByPropertyName_WhatIf_AndRestart()
    {
        var n1 = TestStore.NewName("pipe");
        var n2 = TestStore.NewName("pipe");
        NewBusybox(n1);
        NewBusybox(n2);
        var running = _ps.Run("Get-Container | Start-Container -PassThru");
        Assert.Equal(2, running.Count);
        Assert.Equal(2, _ps.Run("Get-Container -State Running").Count);
        var before = _store.Manager.Get(n1).Pid;
        var restarted = (ContainerInfo)_ps.Run("Restart-Container $args[0] -Kill -PassThru", n1).Single().BaseObject;
        Assert.Equal(ContainerStatus.Running, restarted.State);
        Assert.NotEqual(before, restarted.Pid);
        _ps.Run("Get-Container psct-pipe-* | Stop-Container -Kill -WhatIf");
        Assert.Equal(2, _ps.Run("Get-Container -State Running").Count);
        _ps.Run("Get-Container psct-pipe-* | Remove-Container -Force -WhatIf");
        Assert.Equal(2, _ps.Run("Get-Container").Count);
        _ps.Run("Get-Container | Stop-Container -Kill");
        Assert.Equal(2, _ps.Run("Get-Container -State Stopped").Count);
        _ps.Run("Get-Container | Remove-Container");
        Assert.Empty(_ps.Run("Get-Container"));
    }

    [Fact]
    public void WaitContainer_TimesOut_WithAPreciseError()
    {
        var name = TestStore.NewName("wait");
        NewBusybox(name);
        var r = _ps.Invoke("Wait-Container $args[0] -State Running -Timeout 1", name);
        Assert.StartsWith("WaitTimeout", r.SingleError.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.OperationTimeout, r.SingleError.CategoryInfo.Category);
    }

    [Fact]
    public void InvokeContainerCommand_InChosenNamespaces()
    {
        var name = TestStore.NewName("ns");
        NewBusybox(name);
        _ps.Run("Start-Container $args[0]", name);
        // Only the UTS namespace: the program runs from the host's filesystem, with the container's hostname.
        var r = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Namespace Uts -Command /bin/hostname", name).Single().BaseObject;
        Assert.Equal(name, r.Output.Single());
        var fail = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command sh,-c,'echo oops >&2; exit 4'", name).Single().BaseObject;
        Assert.Equal(4, fail.ExitCode);
        Assert.Equal(new[] { "oops" }, fail.Error);
        var missing = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command /no/such/program", name).Single().BaseObject;
        Assert.Equal(127, missing.ExitCode);
    }

    [Fact]
    public void NameCompletion_ListsContainersOfTheStore()
    {
        var name = TestStore.NewName("compl");
        NewBusybox(name);
        var line = $"Start-Container -StorePath '{_store.StorePath}' -Name psct-com";
        var completion = (CommandCompletion)_ps.Run("TabExpansion2 -inputScript $args[0] -cursorColumn $args[0].Length", line).Single().BaseObject;
        Assert.Contains(completion.CompletionMatches, m => m.CompletionText == name);
    }

    [Fact]
    public void EnterContainer_RunsOnTheCallersTerminal_AndSetsLastExitCode()
    {
        var name = TestStore.NewName("enter");
        var info = NewBusybox(name);
        _ps.Run("Start-Container $args[0]", name);
        // Non-interactive here (the test host has no terminal), but the same path: the spec goes
        // through a private file, stdio stays the caller's.
        var r = _ps.Run("Enter-Container $args[0] -Command /bin/sh,-c,'hostname > /tmp/entered; exit 5'; $LASTEXITCODE", name);
        Assert.Equal(5, (int)r.Single().BaseObject);
        Assert.Equal(name, File.ReadAllText(Path.Combine(info.RootfsPath, "tmp", "entered")).Trim());
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_store.StorePath, ".tmp")));
    }

    [Fact]
    public void KilledSupervisor_ContainerStaysManageable()
    {
        var name = TestStore.NewName("orphan");
        NewBusybox(name);
        var info = (ContainerInfo)_ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
        var supervisor = info.SupervisorPid!.Value;
        Sys.Kill(supervisor, 9);
        Assert.True(SpinWait.SpinUntil(() => Sys.ProcessStartTime(supervisor) is null, 5000));
        // init lives on (re-parented): still running, still reachable, and stoppable.
        Assert.Equal(ContainerStatus.Running, _store.Manager.Get(name).State);
        var r = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command true", name).Single().BaseObject;
        Assert.Equal(0, r.ExitCode);
        var stopped = (ContainerInfo)_ps.Run("Stop-Container $args[0] -Timeout 5 -PassThru", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Stopped, stopped.State);
        Assert.Null(Sys.ProcessStartTime(info.Pid!.Value));
        Assert.False(CgroupManager.ForHost().Exists(info.CgroupPath!));
        _ps.Run("Start-Container $args[0]; Remove-Container $args[0] -Force", name);
    }

    [Fact]
    public void ExistingRootDirectory_IsUsedInPlace_AndNeverDeleted()
    {
        var donor = NewBusybox(TestStore.NewName("donor"));
        var external = Path.Combine(_store.Root, "external-rootfs");
        PSContainers.Runtime.Filesystem.TreeCopier.Copy(donor.RootfsPath, external);
        var name = TestStore.NewName("ext");
        var info = (ContainerInfo)_ps.Run("New-Container $args[0] -RootfsPath $args[1] -Command /bin/sleep,1000", name, external).Single().BaseObject;
        Assert.Equal(external, info.RootfsPath);
        Assert.Equal("none", info.Template);
        _ps.Run("Start-Container $args[0]", name);
        File.WriteAllText(Path.Combine(external, "from-host"), "seen");
        var r = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] cat,/from-host", name).Single().BaseObject;
        Assert.Equal("seen", r.Output.Single());
        _ps.Run("Remove-Container $args[0] -Force", name);
        Assert.True(File.Exists(Path.Combine(external, "bin", "busybox")), "an external rootfs is not ours to delete");
        // The same through a config file's rootfs: key.
        var yaml = Path.Combine(_store.Root, "ext.yaml");
        File.WriteAllText(yaml, $"rootfs: {external}\ninit: {{ command: [/bin/sleep, '1000'] }}\n");
        var fromConfig = (ContainerInfo)_ps.Run("New-Container $args[0] -ConfigPath $args[1]", TestStore.NewName("extcfg"), yaml).Single().BaseObject;
        Assert.Equal(external, fromConfig.RootfsPath);
        Assert.Equal("none", fromConfig.Template);
        Assert.False(Directory.Exists(Path.Combine(fromConfig.Path, "rootfs")));
        var missing = _ps.Invoke("New-Container $args[0] -RootfsPath /nonexistent/psc-root", TestStore.NewName("ext"));
        Assert.StartsWith("RootfsNotFound", missing.SingleError.FullyQualifiedErrorId);
    }
}
