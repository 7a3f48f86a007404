using System.Diagnostics;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;
using PSContainers.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PSContainers.Tests.Faults;

/// <summary>
/// Four real pwsh sessions racing on the same two containers (start, stop, kill, freeze, resume,
/// export -Force, copy, list), each killed with SIGKILL at a random moment. Afterwards the state
/// must agree with what runs, the next commands must work, and nothing may be left.
/// </summary>
[Collection("Containers")]
public sealed class RacingSessionsTests(ITestOutputHelper log) : FaultTests(log)
{
    private void Trace(string line)
    {
        Log.WriteLine(line);
        if (Environment.GetEnvironmentVariable("PSC_FAULT_TRACE") is { Length: > 0 } trace) File.AppendAllText(trace, $"{DateTime.UtcNow:HH:mm:ss.fff} {line}\n");
    }

    [Fact]
    public void FourSessionsRacing_AndKilled_LeaveTheTruthAndNoLeftovers()
    {
        var random = new Random(Seed);
        var names = new[] { TestStore.NewName("ra"), TestStore.NewName("rb") };
        foreach (var n in names) M.Create(n, new CreateOptions { Template = "busybox" });
        var exports = Path.Combine(Store.Root, "exports");
        Directory.CreateDirectory(exports);
        Check.ExtraDirectories.Add(exports);
        for (var round = 0; round < 2; round++)
        {
            // Each session: an endless loop of random operations on the two containers; errors
            // (already running, not running, busy, ...) are expected and ignored: this is a race.
            var sessions = new List<Process>();
            for (var s = 0; s < 4; s++)
            {
                var script = $"Import-Module '{TestPaths.ModuleFolder}'; $names = '{names[0]}','{names[1]}'; $r = [Random]::new({random.Next()}); $i = 0; " +
                             "[Console]::Out.WriteLine('GO'); [Console]::Out.Flush(); " +
                             "while ($true) { $n = $names[$r.Next(2)]; $i++; switch ($r.Next(8)) { " +
                             "0 { Start-Container $n -ErrorAction SilentlyContinue } " +
                             "1 { Stop-Container $n -Kill -ErrorAction SilentlyContinue } " +
                             "2 { Stop-Container $n -Timeout 1 -ErrorAction SilentlyContinue } " +
                             "3 { Suspend-Container $n -ErrorAction SilentlyContinue } " +
                             "4 { Resume-Container $n -ErrorAction SilentlyContinue } " +
                             $"5 {{ Export-Container $n '{exports}/s{s}.tar' -Force -ErrorAction SilentlyContinue }} " +
                             "6 { $c = \"$n-c$i\"; Copy-Container $n $c -ErrorAction SilentlyContinue | Out-Null; Remove-Container $c -Force -ErrorAction SilentlyContinue } " +
                             "7 { $null = Get-Container -ErrorAction SilentlyContinue } } }";
                var psi = new ProcessStartInfo(KilledPwsh.CommandLine()[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                foreach (var a in KilledPwsh.CommandLine()[1..]) psi.ArgumentList.Add(a);
                foreach (var a in new[] { "-NoProfile", "-NonInteractive", "-Command", script }) psi.ArgumentList.Add(a);
                psi.Environment[ContainerStore.EnvironmentVariable] = Store.StorePath;
                var session = Process.Start(psi)!;
                session.ErrorDataReceived += (_, _) => { };  // drained: a full pipe must not stall a session
                session.BeginErrorReadLine();
                sessions.Add(session);
            }
            try
            {
                foreach (var p in sessions) Assert.Equal("GO", p.StandardOutput.ReadLine());
                var engines = sessions.ToDictionary(p => p, KilledPwsh.EnginePid);
                foreach (var p in sessions) _ = p.StandardOutput.ReadToEndAsync(); // drained from here on
                Trace($"round {round}: four sessions racing");
                // Killed one after another at random moments of the race.
                var clock = Stopwatch.StartNew();
                foreach (var p in sessions)
                {
                    var at = TimeSpan.FromMilliseconds(500 + random.Next(2500));
                    while (clock.Elapsed < at && !p.HasExited) Thread.Sleep(5);
                    Assert.False(p.HasExited, "a session ended on its own");
                    KilledPwsh.KillEngine(engines[p]);
                    Trace($"round {round}: session {engines[p]} killed at {clock.Elapsed.TotalMilliseconds:0} ms");
                }
            }
            finally
            {
                foreach (var p in sessions)
                {
                    try { if (!p.HasExited) { KilledPwsh.KillEngine(KilledPwsh.EnginePid(p)); p.Kill(); } } catch (Exception) { }
                    p.WaitForExit(10_000);
                    p.Dispose();
                }
            }
            Trace($"round {round}: " + string.Join(", ", M.Names().Select(n => $"{n} {M.Get(n).State}")));
            AssertTruth($"round {round}", allowFrozen: true);
            // The next commands: each container stops (thawed if an export was killed while it was frozen) and starts.
            foreach (var n in names)
            {
                if (M.Get(n).State != ContainerStatus.Stopped) M.Stop(n, kill: true);
                Assert.Equal(ContainerStatus.Running, M.Start(n).State);
                Trace($"round {round}: {n} restarted");
            }
            AssertTruth($"round {round}, restarted");
            // The next export into that directory removes what killed exports left there.
            ContainerArchive.Export(M, names[0], Path.Combine(exports, "next.tar"), force: true);
            Assert.Empty(Directory.EnumerateFiles(exports, "*.partial"));
            // Copies a killed session made stay (they are whole containers); they go with the rest.
            foreach (var n in M.Names().Where(n => !names.Contains(n)).ToList()) M.Remove(n, force: true);
        }
        foreach (var f in Directory.EnumerateFiles(exports, "*.tar")) File.Delete(f);
        AssertNoLeaks("after the rounds");
    }
}
