using System.Diagnostics;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;
using Xunit.Abstractions;
using PSContainers.Runtime.NetworkHooks;

namespace PSContainers.Tests.Faults;

/// <summary>
/// Runs one cmdlet call in a separate real pwsh (/usr/local/bin/pwsh, else psc-scripthost, the same
/// engine in a process of its own) and kills that process with SIGKILL at a chosen moment: after a
/// delay counted from the moment the call begins (the script prints GO right before it), or as soon
/// as a condition on the disk holds. Only the pwsh process is killed, as an operator's kill -9 would:
/// the helpers and supervisors it started live on and must cope.
/// </summary>
public static class KilledPwsh
{
    public static string[] CommandLine() =>
        File.Exists("/usr/local/bin/pwsh") ? ["/usr/local/bin/pwsh"] : ScriptHost.CommandLine();

    /// <summary>
    /// The process that runs the PowerShell engine: <paramref name="launched"/> itself, or, where
    /// pwsh is a launcher that starts `dotnet pwsh.dll` as its child (a dotnet tool install, as
    /// /opt/pwsh/pwsh here), that child. Killing the launcher alone would leave the engine running.
    /// </summary>
    public static int EnginePid(Process launched)
    {
        var pid = launched.Id;
        for (var depth = 0; depth < 4; depth++)
        {
            if (IsEngine(pid)) return pid;
            var child = ChildrenOf(pid).FirstOrDefault(c => IsEngine(c) || Comm(c) is "dotnet" or "pwsh");
            if (child == 0) break;
            pid = child;
        }
        return launched.Id;
    }

    private static bool IsEngine(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Split('\0').Any(a => a.EndsWith("/pwsh.dll", StringComparison.Ordinal) || a.EndsWith("/psc-scripthost.dll", StringComparison.Ordinal)); }
        catch (IOException) { return false; }
    }

    private static string Comm(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); }
        catch (IOException) { return ""; }
    }

    private static List<int> ChildrenOf(int parent)
    {
        var result = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var ppid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
                if (ppid == parent) result.Add(pid);
            }
            catch (Exception ex) when (ex is IOException or FormatException or ArgumentOutOfRangeException) { }
        }
        return result;
    }

    /// <summary>SIGKILL to the engine process only (never its children: the helpers must cope, as after an operator's kill -9).</summary>
    public static void KillEngine(int engine) => Sys.Kill(engine, 9);

    public sealed record Outcome(bool Killed, int? ExitCode, string StdOut, string StdErr, TimeSpan SinceGo);

    /// <summary>
    /// Runs <paramref name="call"/> (a PowerShell line using the store in $env:PSCONTAINERS_PATH)
    /// and kills the process <paramref name="delay"/> after GO, or when <paramref name="killWhen"/>
    /// first returns true (polled continuously), whichever comes first. Neither: it runs to the end.
    /// </summary>
    public static Outcome Run(string storePath, string call, TimeSpan? delay = null, Func<bool>? killWhen = null, TimeSpan? timeout = null)
    {
        var host = CommandLine();
        var psi = new ProcessStartInfo(host[0]) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in host[1..]) psi.ArgumentList.Add(a);
        // Warm up first (module loaded, listing code compiled), so that GO is close to the call itself.
        var script = $"$ErrorActionPreference = 'Stop'; Import-Module '{TestPaths.ModuleFolder}'; $null = Get-Container; " +
                     $"[Console]::Out.WriteLine('GO'); [Console]::Out.Flush(); {call}; [Console]::Out.WriteLine('DONE')";
        foreach (var a in new[] { "-NoProfile", "-NonInteractive", "-Command", script }) psi.ArgumentList.Add(a);
        psi.Environment[ContainerStore.EnvironmentVariable] = storePath;
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = new System.Text.StringBuilder();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        // GO first (a line read: blocking is fine, the process has not reached the call yet).
        while (true)
        {
            var line = p.StandardOutput.ReadLine();
            if (line is null) return new Outcome(false, WaitExit(p), stdout.ToString(), stderr.Result, TimeSpan.Zero);
            if (line == "GO") break;
            stdout.AppendLine(line);
        }
        var go = Stopwatch.StartNew();
        var engine = EnginePid(p);
        var rest = p.StandardOutput.ReadToEndAsync();
        var killed = false;
        while (!p.HasExited)
        {
            if ((delay is { } d && go.Elapsed >= d) || (killWhen?.Invoke() ?? false))
            {
                KillEngine(engine);
                killed = true;
                break;
            }
            if (DateTime.UtcNow > deadline)
            {
                KillEngine(engine);
                throw new TimeoutException($"pwsh did not finish: {call}");
            }
            if (killWhen is null) Thread.Sleep(delay is { } dd && dd - go.Elapsed < TimeSpan.FromMilliseconds(3) ? 0 : 1);
        }
        var since = go.Elapsed;
        var code = WaitExit(p);
        // A killed pwsh may have exited on its own just before: then it was not killed at all.
        if (killed && code is not 137 and not -1 && rest.Wait(5000) && rest.Result.Contains("DONE")) killed = false;
        rest.Wait(10_000);
        stdout.Append(rest.IsCompletedSuccessfully ? rest.Result : "");
        return new Outcome(killed, code, stdout.ToString(), stderr.Wait(10_000) ? stderr.Result : "", since);
    }

    private static int? WaitExit(Process p)
    {
        if (!p.WaitForExit(30_000)) return null;
        return p.ExitCode;
    }
}

/// <summary>
/// What a fault trial checks: the state the runtime reports agrees with what runs, and nothing is
/// left behind (processes, cgroups in every hierarchy, mounts, veths, temporaries, lock files,
/// frozen containers). Problems are returned as sentences; an empty list is a pass.
/// </summary>
public sealed class FaultChecker(TestStore store)
{
    private readonly CgroupManager _cgroups = CgroupManager.ForHost();

    /// <summary>Host-side veth names a trial may have made (NetworkHook.HostEndName of its NIC containers).</summary>
    public HashSet<string> Veths { get; } = new();

    /// <summary>Directories outside the store a trial writes into (Export destinations).</summary>
    public HashSet<string> ExtraDirectories { get; } = new();

    private string Root => store.StorePath;

    /// <summary>Retries <paramref name="check"/> for a short while: a killed pwsh's helper needs a moment to notice and abort.</summary>
    public static IReadOnlyList<string> Settled(Func<IReadOnlyList<string>> check, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(5));
        while (true)
        {
            var problems = check();
            if (problems.Count == 0 || DateTime.UtcNow > deadline) return problems;
            Thread.Sleep(50);
        }
    }

    /// <summary>
    /// State agrees with what runs, for every container of the store, as a fresh session sees it.
    /// <paramref name="allowFrozen"/>: right after a killed Export -Force the container is frozen
    /// (and says so); the next command that touches it must thaw it.
    /// </summary>
    public IReadOnlyList<string> Truth(bool allowFrozen = false)
    {
        var problems = new List<string>();
        var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(Root);
        var supervisors = SupervisorsOfStore();
        var claimed = new HashSet<int>();
        foreach (var name in manager.Names())
        {
            ContainerInfo info;
            try { info = manager.Get(name); }
            catch (Exception ex) { problems.Add($"{name}: Get-Container fails: {ex.Message}"); continue; }
            var cgroup = $"{manager.Store.CgroupParent}/{name}";
            var inCgroup = _cgroups.Exists(cgroup) ? CgroupPids(cgroup) : new HashSet<int>();
            var running = info.State is ContainerStatus.Running or ContainerStatus.Frozen;
            if (running)
            {
                if (info.Pid is not { } init || !Directory.Exists($"/proc/{init}")) problems.Add($"{name}: reported {info.State} but its init ({info.Pid}) does not run");
                else
                {
                    if (!inCgroup.Contains(init)) problems.Add($"{name}: init {init} is not in its cgroup {cgroup}");
                    if (info.SupervisorPid is { } sup)
                    {
                        claimed.Add(sup);
                        if (ParentOf(init) != sup) problems.Add($"{name}: supervisor {sup} is not the parent of init {init}");
                    }
                }
                if (info.State == ContainerStatus.Frozen && !allowFrozen) problems.Add($"{name}: left frozen");
            }
            else
            {
                if (inCgroup.Count > 0) problems.Add($"{name}: reported {info.State} but its cgroup {cgroup} holds processes {string.Join(",", inCgroup)}");
            }
        }
        foreach (var (pid, what) in supervisors)
            if (!claimed.Contains(pid)) problems.Add($"supervisor {pid} ({what}) runs but no container reports it");
        return problems;
    }

    /// <summary>After every container was removed: nothing of them is left.</summary>
    public IReadOnlyList<string> Leaks()
    {
        var problems = new List<string>(Truth());
        var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(Root);
        var names = manager.Names().ToHashSet();
        // Processes holding anything in the store (supervisors: console log; inits: rootfs; helpers).
        foreach (var (pid, what) in ProcessesUsing(Root)) problems.Add($"process {pid} still uses the store ({what})");
        // Cgroups: nothing under this store's parent in any hierarchy but the containers that exist.
        foreach (var dir in _cgroups.Directories(manager.Store.CgroupParent).Where(Directory.Exists))
            foreach (var child in Directory.EnumerateDirectories(dir))
                if (!names.Contains(Path.GetFileName(child))) problems.Add($"cgroup left: {child}");
        // Mounts under the store or an export destination.
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var point = line.Split(' ')[4].Replace("\\040", " ");
            if (point.StartsWith(Root + "/", StringComparison.Ordinal) || ExtraDirectories.Any(d => point.StartsWith(d + "/", StringComparison.Ordinal)))
                problems.Add($"mount left: {point}");
        }
        foreach (var veth in Veths)
            if (Directory.Exists($"/sys/class/net/{veth}")) problems.Add($"veth left: {veth}");
        // Temporaries: .tmp and .trash empty, no *.tmp / *.partial beside state or exports, locks only of containers.
        foreach (var special in new[] { ".tmp", ".trash" })
        {
            var dir = Path.Combine(Root, special);
            if (Directory.Exists(dir))
                foreach (var entry in Directory.EnumerateFileSystemEntries(dir)) problems.Add($"{special} entry left: {entry}");
        }
        var scan = new List<string> { Root };
        scan.AddRange(names.Select(n => Path.Combine(Root, n)));
        scan.AddRange(ExtraDirectories);
        foreach (var dir in scan.Where(Directory.Exists))
            foreach (var f in Directory.EnumerateFiles(dir))
                if (f.EndsWith(".tmp", StringComparison.Ordinal) || f.EndsWith(".partial", StringComparison.Ordinal)) problems.Add($"temporary file left: {f}");
        var locks = Path.Combine(Root, ".locks");
        if (Directory.Exists(locks))
            foreach (var f in Directory.EnumerateFiles(locks))
                if (!names.Contains(Path.GetFileName(f)[..^".lock".Length])) problems.Add($"lock file of no container: {f}");
        return problems;
    }

    private HashSet<int> CgroupPids(string cgroup)
    {
        var pids = new HashSet<int>();
        // The container's cgroup and below: its processes live in the inner cgroup (<name>/ns). A
        // supervisor may remove them while they are read (its init just ended): gone, they hold no one.
        foreach (var top in _cgroups.Directories(cgroup).Where(Directory.Exists))
        {
            try
            {
                foreach (var dir in Directory.EnumerateDirectories(top, "*", SearchOption.AllDirectories).Prepend(top))
                    foreach (var line in File.ReadAllLines(Path.Combine(dir, "cgroup.procs")))
                        if (int.TryParse(line, out var pid)) pids.Add(pid);
            }
            catch (IOException) { }
        }
        return pids;
    }

    /// <summary>psc-supervise processes with a file open in this store (their console log).</summary>
    private Dictionary<int, string> SupervisorsOfStore()
    {
        var result = new Dictionary<int, string>();
        foreach (var (pid, what) in ProcessesUsing(Root))
            if (Comm(pid) == "psc-supervise") result[pid] = what;
        return result;
    }

    /// <summary>Processes (not this one) with an open file, cwd or root under <paramref name="dir"/>.</summary>
    public static List<(int Pid, string What)> ProcessesUsing(string dir)
    {
        var result = new List<(int, string)>();
        var self = Environment.ProcessId;
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid) || pid == self) continue;
            try
            {
                string? hit = null;
                foreach (var link in new[] { "cwd", "root" })
                {
                    var target = new FileInfo(Path.Combine(proc, link)).LinkTarget;
                    if (target is not null && (target == dir || target.StartsWith(dir + "/", StringComparison.Ordinal))) hit = $"{Comm(pid)} {link} {target}";
                }
                if (hit is null)
                    foreach (var fd in Directory.EnumerateFileSystemEntries(Path.Combine(proc, "fd")))
                    {
                        var target = new FileInfo(fd).LinkTarget;
                        if (target is not null && target.StartsWith(dir + "/", StringComparison.Ordinal)) { hit = $"{Comm(pid)} fd {target}"; break; }
                    }
                if (hit is not null) result.Add((pid, hit));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        }
        return result;
    }

    private static string Comm(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); }
        catch (IOException) { return "?"; }
    }

    private static int? ParentOf(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("PPid:", StringComparison.Ordinal));
            return line is null ? null : int.Parse(line[5..].Trim());
        }
        catch (IOException) { return null; }
    }
}

/// <summary>The seed of a run of trials: PSC_FAULT_SEED replays one; otherwise a new one, always logged.</summary>
public static class FaultSeed
{
    public static int Next() =>
        int.TryParse(Environment.GetEnvironmentVariable("PSC_FAULT_SEED"), out var seed) ? seed : Random.Shared.Next(1, int.MaxValue);
}

/// <summary>
/// What every fault-trial class shares: a store of its own (removed with all it holds, also when a
/// test fails), the checker of that store, the test's log, and the seed of its random choices
/// (logged; PSC_FAULT_SEED replays it).
/// </summary>
public abstract class FaultTests : IDisposable
{
    /// <param name="store">The store to work in; default: a new one under /tmp.</param>
    protected FaultTests(ITestOutputHelper log, TestStore? store = null)
    {
        Log = log;
        Store = store ?? new TestStore();
        Check = new FaultChecker(Store);
        Log.WriteLine($"fault seed {Seed} (PSC_FAULT_SEED={Seed} replays this run)");
    }

    protected ITestOutputHelper Log { get; }
    protected TestStore Store { get; }
    protected FaultChecker Check { get; }
    protected int Seed { get; } = FaultSeed.Next();
    protected ContainerManager M => Store.Manager;

    /// <summary>The state agrees with what runs, for every container (after a moment for the helpers of a killed pwsh to notice).</summary>
    protected void AssertTruth(string when, bool allowFrozen = false)
    {
        var truth = FaultChecker.Settled(() => Check.Truth(allowFrozen));
        Assert.True(truth.Count == 0, $"seed {Seed}, {when}: state disagrees with what runs: {string.Join("; ", truth)}");
    }

    /// <summary>Removes every container; then nothing of them may be left.</summary>
    protected void AssertNoLeaks(string when)
    {
        foreach (var name in M.Names().ToList()) M.Remove(name, force: true);
        var leaks = FaultChecker.Settled(Check.Leaks);
        Assert.True(leaks.Count == 0, $"seed {Seed}, {when}: left behind: {string.Join("; ", leaks)}");
    }

    public virtual void Dispose()
    {
        // CRIU's cgroup yard that a failed trial left mounted in a checkpoint directory is undone
        // first: deleting the store must never reach into the host's cgroup hierarchies.
        var yards = File.ReadLines("/proc/self/mountinfo").Select(l => l.Split(' ')[4])
            .Where(p => p.StartsWith(Store.Root + "/", StringComparison.Ordinal) && p.Contains("/.criu.", StringComparison.Ordinal))
            .Select(p => p[..p.IndexOf("/.criu.", StringComparison.Ordinal)]).Distinct().ToList();
        foreach (var dir in yards)
            try { PSContainers.Runtime.Checkpoint.CriuService.UnmountLeftovers(dir); } catch (Exception) { }
        Store.Dispose();
    }
}
