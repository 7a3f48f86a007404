using System.Text;
using System.Text.Json;
using PSContainers.Runtime;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.NetworkHooks;

namespace PSContainers.Tests;

/// <summary>
/// The rough edges of the README walk-through (issue 13), at the runtime's level: how a stop is
/// recorded, the warning of an escalated stop, the hint for "ls -l /", what Remove-Container takes
/// with it (leases, lock file) and the lock's safety when its file is deleted, and the console log
/// (rendered harmless, followed across rotation). The user-visible side is tests/Pester/Edges.Tests.ps1.
/// </summary>
[Collection("Containers")]
public sealed class EdgesTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;

    public EdgesTests()
    {
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    private string NewStarted(string hint, string extra = "")
    {
        var name = TestStore.NewName(hint);
        _ps.Run($"New-Container -Name $args[0] {extra} | Start-Container", name);
        return name;
    }

    private ContainerInfo Get(string name) => (ContainerInfo)_ps.Run("Get-Container $args[0]", name).Single().BaseObject;

    private string? PersistedReason(string name) =>
        JsonDocument.Parse(File.ReadAllText(_store.Manager.Store.StatePath(name))).RootElement.TryGetProperty("StopReason", out var r) ? r.GetString() : null;

    // ---- stop reasons ---------------------------------------------------------------------------

    [Fact]
    public void RequestedStop_OfBusybox_IsRequested_WithNoCrashLookingCode_AndPersists()
    {
        var name = NewStarted("req");
        Assert.Null(Get(name).StopReason);
        var stopped = (ContainerInfo)_ps.Run("Stop-Container $args[0] -Timeout 20 -PassThru", name).Single().BaseObject;
        Assert.Equal(ContainerStopReason.Requested, stopped.StopReason);
        // busybox init's power-off ends it with SIGINT (reboot(2) in a pid namespace): not a crash.
        Assert.Null(stopped.ExitCode);
        Assert.Null(stopped.ExitSignal);
        // Recorded durably: a new session (another pwsh) reads the same from state.json.
        Assert.Equal("Requested", PersistedReason(name));
        using var other = _store.OpenSession();
        Assert.Equal(ContainerStopReason.Requested, ((ContainerInfo)other.Run("Get-Container $args[0]", name).Single().BaseObject).StopReason);
        // A new run forgets the last stop.
        _ps.Run("Start-Container $args[0]", name);
        Assert.Null(Get(name).StopReason);
        Assert.Null(PersistedReason(name));
    }

    [Fact]
    public void Kill_IsKilled_AndInitsOwnEndings_AreExitedFailedPoweredOffCrashed()
    {
        var killed = NewStarted("kill");
        var k = (ContainerInfo)_ps.Run("Stop-Container $args[0] -Kill -PassThru", killed).Single().BaseObject;
        Assert.Equal(ContainerStopReason.Killed, k.StopReason);
        Assert.Equal(137, k.ExitCode);
        Assert.Equal("SIGKILL", k.ExitSignal);

        var ok = NewStarted("ok", "-Command /bin/true");
        var failed = NewStarted("fail", "-Command /bin/sh,-c,'exit 3'");
        foreach (var n in new[] { ok, failed }) _ps.Run("Wait-Container $args[0] -State Stopped -Timeout 20", n);
        Assert.Equal(ContainerStopReason.Exited, Get(ok).StopReason);
        Assert.Equal(0, Get(ok).ExitCode);
        Assert.Equal(ContainerStopReason.Failed, Get(failed).StopReason);
        Assert.Equal(3, Get(failed).ExitCode);

        // poweroff inside: busybox init shuts down and calls reboot(2), which the kernel reports as SIGINT.
        var off = NewStarted("off");
        _ps.Run("Invoke-ContainerCommand $args[0] -Command poweroff", off);
        _ps.Run("Wait-Container $args[0] -State Stopped -Timeout 30", off);
        var o = Get(off);
        Assert.Equal(ContainerStopReason.PoweredOff, o.StopReason);
        Assert.Null(o.ExitCode);

        // Killed from the host, not through Stop-Container: a crash, with the signal.
        var crash = NewStarted("crash");
        Sys.Kill(Get(crash).Pid!.Value, 9);
        _ps.Run("Wait-Container $args[0] -State Stopped -Timeout 20", crash);
        var c = Get(crash);
        Assert.Equal(ContainerStopReason.Crashed, c.StopReason);
        Assert.Equal("SIGKILL", c.ExitSignal);
        // A Stop-Container after the fact folds it in without calling it a stop it asked for.
        _ps.Invoke("Stop-Container $args[0]", crash);
        Assert.Equal(ContainerStopReason.Crashed, Get(crash).StopReason);
    }

    [Fact]
    public void StopPastItsTimeout_WarnsAndSaysSoInVerbose_AndIsKilled()
    {
        // An init that ignores busybox's stop signal (and TERM): only SIGKILL ends it.
        var name = NewStarted("stubborn", "-Command /bin/sh,-c,'trap \"\" USR2 TERM INT; while :; do sleep 1; done'");
        var r = _ps.Invoke("Stop-Container $args[0] -Timeout 1 -Verbose", name);
        Assert.Empty(r.Errors);
        var warning = Assert.Single(r.Warnings);
        Assert.Contains($"Container '{name}' did not stop within 1 s of SIGUSR2: killing every process with SIGKILL", warning);
        Assert.Contains("-Timeout", warning);
        Assert.Contains(r.Verbose, v => v.Contains("SIGUSR2 to init"));
        Assert.Contains(r.Verbose, v => v.Contains("killing every process with SIGKILL"));
        Assert.Equal(ContainerStopReason.Killed, Get(name).StopReason);

        // A clean stop warns nothing.
        var clean = NewStarted("clean");
        Assert.Empty(_ps.Invoke("Stop-Container $args[0] -Timeout 20", clean).Warnings);
    }

    [Fact]
    public void StopMessages_FromAnOperationOnAWorkerThread_ReachThePipeline()
    {
        // Move-Container runs on a worker thread (its progress is relayed); the cold move's stop
        // reports verbose messages from there, which a cmdlet may only write from its own thread.
        using var other = new TestStore();
        var name = NewStarted("mvmsg");
        var r = _ps.Invoke("Move-Container $args[0] $args[1] -Verbose", name, other.StorePath);
        Assert.Empty(r.Errors);
        Assert.Contains(r.Verbose, v => v.Contains($"Stopping container '{name}': SIGUSR2 to init"));
        Assert.Equal(ContainerStatus.Running, other.Manager.Get(name).State);
    }

    // ---- Invoke-ContainerCommand "ls -l /" ----------------------------------------------------

    [Fact]
    public void ProgramWithSpaces_ThatDoesNotExist_SaysHowToPassArguments_OtherFailuresUnchanged()
    {
        var name = NewStarted("cmd");
        var e = _ps.Invoke("Invoke-ContainerCommand $args[0] -Command 'ls -l /'", name).SingleError;
        Assert.Equal("CommandNotFound", e.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Equal(System.Management.Automation.ErrorCategory.ObjectNotFound, e.CategoryInfo.Category);
        Assert.Contains("-Command ls,-l,/", e.Exception.Message);
        Assert.Contains("-Command sh,-c,'ls -l /'", e.Exception.Message);
        // What it suggests works.
        var ok = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command ls,-l,/", name).Single().BaseObject;
        Assert.Equal(0, ok.ExitCode);
        // A plain missing program and a command's own 127 stay results, as before.
        Assert.Equal(127, ((ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command nosuchprogram", name).Single().BaseObject).ExitCode);
        Assert.Equal(127, ((ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command sh,-c,'exit 127'", name).Single().BaseObject).ExitCode);
        // A program whose name has a space and exists is run.
        _ps.Run("Invoke-ContainerCommand $args[0] -Command sh,-c,'printf \"#!/bin/sh\\necho spaced\\n\" > \"/bin/my tool\"; chmod +x \"/bin/my tool\"'", name);
        var spaced = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command 'my tool'", name).Single().BaseObject;
        Assert.Equal(new[] { "spaced" }, spaced.Output);
    }

    // ---- what Remove-Container takes with it --------------------------------------------------

    [Fact]
    public void Remove_ReleasesLeases_AndDeletesItsLockFile()
    {
        var a = TestStore.NewName("la");
        var b = TestStore.NewName("lb");
        _ps.Run("New-Container $args[0]; New-Container $args[1]", a, b);
        // Leases as a start on the default bridge records them (no bridge needed to lease).
        var bridge = DefaultBridge.For(_store.Manager.Store);
        bridge.Lease(a, 0, _store.Manager.Store);
        bridge.Lease(b, 0, _store.Manager.Store);
        Assert.Equal(2, bridge.Leases().Count);
        var locks = _store.Manager.Store.LockDirectory;
        Assert.True(File.Exists(Path.Combine(locks, a + ".lock")));

        _ps.Run("Remove-Container $args[0]", a);
        Assert.Equal(new[] { b }, bridge.Leases().Select(l => l.Container));
        Assert.False(File.Exists(Path.Combine(locks, a + ".lock")));
        _ps.Run("Remove-Container $args[0]", b);
        Assert.Empty(bridge.Leases());
        Assert.Empty(Directory.GetFiles(locks));
    }

    [Fact]
    public void Lock_WhoseFileIsDeletedWhileAWaiterHasItOpen_StillExcludes()
    {
        var store = _store.Manager.Store;
        const string name = "psct-lockrace";
        // Threads of their own flow: the lock is re-entrant only within one async flow.
        static Task<T> Fresh<T>(Func<T> f)
        {
            using (ExecutionContext.SuppressFlow()) return Task.Run(f);
        }
        var first = store.Lock(name);
        using var waiterHas = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        // The waiter opens the file now and waits for the flock.
        var waiter = Fresh(() =>
        {
            using var l = store.Lock(name, TimeSpan.FromSeconds(20));
            waiterHas.Set();
            release.Wait(TimeSpan.FromSeconds(20));
            return true;
        });
        Thread.Sleep(300);
        // The holder deletes the file (as Remove-Container does) and lets go.
        first.DeleteOnRelease();
        first.Dispose();
        Assert.True(waiterHas.Wait(TimeSpan.FromSeconds(10)));
        // The waiter must hold the lock on the file now at the path: a third party is excluded.
        var third = Fresh(() =>
        {
            try { using var l = store.Lock(name, TimeSpan.FromMilliseconds(500)); return "acquired"; }
            catch (ContainerException ex) { return ex.ErrorId; }
        });
        Assert.Equal("ContainerBusy", third.Result);
        release.Set();
        Assert.True(waiter.Result);
        using (store.Lock(name, TimeSpan.FromSeconds(5))) { }
    }

    // ---- console log ---------------------------------------------------------------------------

    [Fact]
    public void ConsoleText_MakesEveryControlCharacterVisible_ButTabs()
    {
        Assert.Equal("plain\ttext", ConsoleText.Render("plain\ttext"));
        Assert.Equal("␛]0;title␇␛[2J␛[31mred␛[0m", ConsoleText.Render("\u001b]0;title\u0007\u001b[2J\u001b[31mred\u001b[0m"));
        Assert.Equal("a␛[b␡c␀", ConsoleText.Render("a\u009bb\u007fc\0"));
        Assert.Equal("line", ConsoleText.Render("line\r"));
        var rendered = ConsoleText.Render(new string(Enumerable.Range(0, 0xA0).Select(i => (char)i).ToArray()));
        Assert.DoesNotContain(rendered, c => c != '\t' && (c < 0x20 || c is >= (char)0x7F and <= (char)0x9F));
    }

    [Fact]
    public void ConsoleLog_OfAContainerPrintingEscapes_IsRenderedHarmless_RawOnRequest()
    {
        var name = NewStarted("esc", "-Command /bin/sh,-c,'printf \"\\033]0;owned\\007\\033[2J\\033[31mred\\033[0m\\ttab\\n\"; exec sleep 600'");
        Assert.True(SpinWait.SpinUntil(() => _store.Manager.ReadConsoleLog(name).Length > 0, 5000));
        var line = _ps.Run("Get-ContainerConsoleLog $args[0]", name).Single();
        Assert.Equal("␛]0;owned␇␛[2J␛[31mred␛[0m\ttab", line.ToString());
        Assert.Equal(name, line.Properties["ContainerName"].Value);
        var raw = _ps.Run("Get-ContainerConsoleLog $args[0] -Raw", name).Single().ToString();
        Assert.Equal("\u001b]0;owned\u0007\u001b[2J\u001b[31mred\u001b[0m\ttab\r", raw);
    }

    [Fact]
    public void ConsoleLogReader_FollowsAcrossRotationAndTruncation_CompleteLinesOnly()
    {
        var dir = Path.Combine(_store.Root, "logs");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, "console.log");
        using var reader = new ConsoleLogReader(path, raw: false);
        Assert.Empty(reader.ReadLines()); // no file yet
        File.WriteAllText(path, "one\r\ntw");
        Assert.Equal(new[] { "one" }, reader.ReadLines());
        File.AppendAllText(path, "o\nthree\n");
        // The supervisor's rotation: renamed to .1, a new file started.
        File.Move(path, path + ".1");
        File.AppendAllText(path + ".1", "four\n");
        File.WriteAllText(path, "five\n");
        Assert.Equal(new[] { "two", "three", "four", "five" }, reader.ReadLines());
        // Truncated in place and shorter than what was read: read again from its start.
        File.WriteAllText(path, "six\n");
        Assert.Equal(new[] { "six" }, reader.ReadLines());
        File.AppendAllText(path, "part");
        Assert.Empty(reader.ReadLines());
        Assert.Equal(new[] { "part" }, reader.ReadLines(final: true));
        // UTF-8 split across reads stays one character.
        var bytes = Encoding.UTF8.GetBytes("é\n");
        using (var f = new FileStream(path, FileMode.Append)) f.Write(bytes, 0, 1);
        Assert.Empty(reader.ReadLines());
        using (var f = new FileStream(path, FileMode.Append)) f.Write(bytes, 1, bytes.Length - 1);
        Assert.Equal(new[] { "é" }, reader.ReadLines());
    }

    [Fact]
    public void BusyboxTemplate_SaysOnItsConsoleWhenItStartsAndStops()
    {
        var name = NewStarted("bbcon");
        Assert.True(SpinWait.SpinUntil(() => _store.Manager.ReadConsoleLog(name).Any(l => l == $"{name}: started (busybox init, /etc/init.d/rcS)"), 5000),
            string.Join("\n", _store.Manager.ReadConsoleLog(name)));
        _ps.Run("Stop-Container $args[0] -Timeout 20", name);
        Assert.Contains($"{name}: shutting down", _store.Manager.ReadConsoleLog(name));
    }
}
