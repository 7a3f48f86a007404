// PSContainers benchmark: one run measures, on this machine,
//   a. the full cycle New -> Start -> Invoke true -> Stop (graceful and -Kill) -> Remove through the
//      real PowerShell engine with the built module imported once (warm runspace);
//   b. the same cycle with LXC 5 (lxc-create -t busybox / lxc-start -d / lxc-attach / lxc-stop [-k] / lxc-destroy);
//   c. a bare floor: unshare into new namespaces + chroot into a busybox rootfs, nsenter -a true, kill;
//   d. the resident memory of the per-container supervisor (psc-supervise) versus LXC's monitor.
// Everything it creates lives under /tmp/psc-bench-<id>/ (store, lxcpath, floor rootfs) or in
// cgroups named after it, and is removed in a finally block (and on Ctrl+C).
using System.Collections.ObjectModel;
using System.Diagnostics;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Text;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.Launcher;

namespace PSContainers.Bench;

internal static class Program
{
    private static int Main(string[] args)
    {
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        Options options;
        try { options = Options.Parse(args); }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message);
            Console.Error.WriteLine(Options.Usage);
            return 2;
        }
        if (options.Help) { Console.WriteLine(Options.Usage); return 0; }
        if (!PSContainers.Runtime.Host.HostContext.Current.IsRoot) { Console.Error.WriteLine("psc-bench: run as root (containers need CAP_SYS_ADMIN)."); return 2; }

        var bench = new Bench(options);
        Console.CancelKeyPress += (_, e) =>
        {
            Console.Error.WriteLine("\npsc-bench: interrupted, cleaning up...");
            bench.Cleanup();
            Environment.Exit(130);
        };
        try
        {
            var markdown = bench.Run();
            Console.WriteLine();
            Console.WriteLine(markdown);
            if (options.OutputPath is not null)
            {
                File.WriteAllText(options.OutputPath, markdown);
                Console.Error.WriteLine($"psc-bench: results written to {options.OutputPath}");
            }
            return 0;
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"psc-bench: FAILED: {ex}");
            return 1;
        }
        finally
        {
            bench.Cleanup();
        }
    }
}

internal sealed class Options
{
    public int Iterations { get; private set; } = 20;
    public int Warmup { get; private set; } = 3;
    public int Containers { get; private set; } = 10;
    public string? OutputPath { get; private set; }
    public string? RepoRoot { get; private set; }
    public bool SkipGraceful { get; private set; }
    public bool Help { get; private set; }
    /// <summary>Diagnostics: run only the runtime-API cycles (e.g. under strace), print their per-step times.</summary>
    public bool ApiOnly { get; private set; }
    /// <summary>Without LXC (e.g. in the pure cgroup-v2 guest): PSContainers against the floor only, as ratios.</summary>
    public bool NoLxc { get; private set; }
    /// <summary>LXC without lxc.idmap (its root default) instead of the unprivileged container PSContainers makes by default.</summary>
    public bool PrivilegedLxc { get; private set; }

    public const string Usage =
        "usage: PSContainers.Bench [ITERATIONS] [--iterations N] [--warmup N] [--containers K] [--output FILE] [--repo DIR] [--no-graceful]\n" +
        "  ITERATIONS/--iterations  measured cycles per scenario (default 20)\n" +
        "  --warmup                 unmeasured warm-up cycles per scenario (default 3)\n" +
        "  --containers             running containers for the memory measurement (default 10)\n" +
        "  --output                 also write the markdown results to FILE\n" +
        "  --repo                   repository root (default: found above the binary or the current directory)\n" +
        "  --no-graceful            skip the graceful-stop cycles (each costs ~2 s of busybox init shutdown)\n" +
        "  --api-only               diagnostics: only the runtime-API cycles (no PowerShell, LXC or floor), e.g. under strace\n" +
        "  --no-lxc                 PSContainers (PowerShell and runtime API) against the floor only, reported as ratios\n" +
        "  --privileged-lxc         LXC containers without lxc.idmap (default: the same id map as PSContainers' unprivileged default)\n" +
        "                           (tools/bench-v2-guest.sh runs this inside the pure cgroup-v2 guest)";

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int NextInt(int min) => int.TryParse(Next(), out var v) && v >= min ? v : throw new ArgumentException($"{args[i - 1]} needs an integer >= {min}");
            switch (args[i])
            {
                case "-h" or "--help": o.Help = true; break;
                case "-n" or "--iterations": o.Iterations = NextInt(1); break;
                case "-w" or "--warmup": o.Warmup = NextInt(0); break;
                case "-k" or "--containers": o.Containers = NextInt(1); break;
                case "-o" or "--output": o.OutputPath = Path.GetFullPath(Next()); break;
                case "--repo": o.RepoRoot = Path.GetFullPath(Next()); break;
                case "--no-graceful": o.SkipGraceful = true; break;
                case "--api-only": o.ApiOnly = true; break;
                case "--no-lxc": o.NoLxc = true; break;
                case "--privileged-lxc": o.PrivilegedLxc = true; break;
                default:
                    if (int.TryParse(args[i], out var n) && n >= 1) o.Iterations = n;
                    else throw new ArgumentException($"unknown argument '{args[i]}'");
                    break;
            }
        }
        return o;
    }
}

/// <summary>Samples in milliseconds, by name.</summary>
internal sealed class Samples
{
    private readonly Dictionary<string, List<double>> _data = new(StringComparer.Ordinal);

    public void Add(string key, double ms)
    {
        if (!_data.TryGetValue(key, out var list)) _data[key] = list = new List<double>();
        list.Add(ms);
    }

    public bool Has(string key) => _data.ContainsKey(key);
    public IReadOnlyList<double> this[string key] => _data[key];

    public static double Median(IReadOnlyList<double> values)
    {
        var s = values.OrderBy(v => v).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>Nearest-rank percentile.</summary>
    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        var s = values.OrderBy(v => v).ToArray();
        var rank = (int)Math.Ceiling(p / 100.0 * s.Length);
        return s[Math.Clamp(rank - 1, 0, s.Length - 1)];
    }

    public double Median(string key) => Median(this[key]);
    public double P90(string key) => Percentile(this[key], 90);
}

internal sealed record ProcResult(int ExitCode, string Output, string Error, double Milliseconds);

internal sealed class Bench
{
    private readonly Options _o;
    private readonly string _id = Guid.NewGuid().ToString("N")[..8];
    private readonly string _work;
    private readonly string _store;
    private readonly string _lxcPath;
    private readonly string _floorRoot;
    private readonly string _lxcConf;
    private string _lxcMode = "privileged (no lxc.idmap)";
    private readonly Samples _s = new();
    private readonly List<(int Unshare, int Child)> _floorProcesses = new();
    private readonly HashSet<string> _pivotBefore;
    private readonly object _cleanupLock = new();
    private bool _cleaned;
    private Runspace? _runspace;
    private string _moduleFolder = "";
    private readonly List<double> _pscRss = new(), _lxcRss = new();
    private readonly List<string> _notes = new();
    private int _counter;
    private readonly List<string> _load = new();
    private (double Symlink, double Link, double Mkdir) _fsProbe;

    public Bench(Options options)
    {
        _o = options;
        _work = Path.Combine("/tmp", "psc-bench-" + _id);
        _store = Path.Combine(_work, "store");
        _lxcPath = Path.Combine(_work, "lxc");
        _floorRoot = Path.Combine(_work, "floor-rootfs");
        _lxcConf = Path.Combine(_work, "lxc-empty-net.conf");
        _pivotBefore = LxcCgroupDirs("lxc.pivot").ToHashSet(StringComparer.Ordinal);
    }

    private string NewName(string kind) => $"psc-bench-{kind}-{_id}-{++_counter}";

    private static void Log(string message) => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");

    // ---- the run ------------------------------------------------------------------------------

    public string Run()
    {
        var repo = _o.RepoRoot ?? FindRepoRoot();
        _moduleFolder = Path.Combine(repo, "out", "PSContainers");
        if (!File.Exists(Path.Combine(_moduleFolder, "PSContainers.psd1")))
            throw new InvalidOperationException($"{_moduleFolder} has no module: run 'dotnet build -c Release' at {repo} first (bench/run.sh does).");
        var tools = new[] { "lxc-create", "lxc-start", "lxc-attach", "lxc-stop", "lxc-destroy", "unshare", "nsenter", "busybox" };
        foreach (var tool in _o.NoLxc ? tools.Where(t => !t.StartsWith("lxc-", StringComparison.Ordinal)) : tools)
            if (Which(tool) is null) throw new InvalidOperationException($"'{tool}' is not on PATH (apt-get install lxc busybox-static util-linux).");

        Directory.CreateDirectory(_work);
        Directory.CreateDirectory(_store);
        Directory.CreateDirectory(_lxcPath);
        // No host networking: the container gets no interface but its own loopback (no lxcbr0, no veth).
        File.WriteAllText(_lxcConf, "lxc.net.0.type = empty\n");
        // Like for like: PSContainers' default container is unprivileged (a user namespace on root's
        // subordinate ids), so LXC's gets the same map (lxc.idmap; its busybox template then builds
        // the rootfs through lxc-usernsexec). --privileged-lxc compares with LXC's root default instead.
        if (!_o.PrivilegedLxc)
        {
            var map = PSContainers.Runtime.UserNamespaces.DefaultIdMap.ForCaller(warn: Log);
            _lxcMode = $"unprivileged (lxc.idmap {map})";
            File.AppendAllText(_lxcConf, string.Concat(map.Entries.Select(e => $"lxc.idmap = {e}\n")));
        }
        // The measured helper is the module's own.
        PscHelper.ConfiguredPath = Path.Combine(_moduleFolder, PscHelper.FileName);

        Log($"work directory {_work}; module {_moduleFolder}");
        if (!_o.ApiOnly) OpenRunspace();

        // Warm-up (unmeasured): JIT, page cache, busybox applet list, LXC template.
        var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(_store);
        BuildFloorRootfs();
        _load.Add(LoadAverage());
        _fsProbe = ProbeInodeCost();
        Log($"warm-up: {_o.Warmup} cycles of each scenario");
        for (var i = 0; i < _o.Warmup; i++)
        {
            if (!_o.ApiOnly) PscCycle(kill: true, record: false);
            ApiCycle(manager, record: false);
            if (!_o.ApiOnly) { if (!_o.NoLxc) LxcCycle(kill: true, record: false); FloorCycle(record: false); }
        }

        // Measured cycles, interleaved so that background load hits every scenario alike:
        // a. PSContainers through PowerShell, the same runtime without PowerShell (where the time
        //    goes: engine vs runtime), b. LXC, c. the floor.
        Log($"{_o.Iterations} measured rounds (kill stop): PSContainers/PowerShell, runtime API, LXC, floor");
        for (var i = 0; i < _o.Iterations; i++)
        {
            if (!_o.ApiOnly) PscCycle(kill: true, record: true);
            ApiCycle(manager, record: true);
            if (!_o.ApiOnly) { if (!_o.NoLxc) LxcCycle(kill: true, record: true); FloorCycle(record: true); }
        }
        if (_o.NoLxc)
        {
            _load.Add(LoadAverage());
            return FloorRatios(repo);
        }
        if (_o.ApiOnly)
            return string.Join("\n", new[] { "create", "start", "exec", "stop", "remove", "sis", "total" }
                .Select(k => $"api.{k}: median {_s.Median("api." + k):0.0} ms, p90 {_s.P90("api." + k):0.0} ms"));
        if (!_o.SkipGraceful)
        {
            Log($"{_o.Iterations} measured rounds (graceful stop): PSContainers/PowerShell, LXC");
            for (var i = 0; i < _o.Iterations; i++)
            {
                PscCycle(kill: false, record: true);
                LxcCycle(kill: false, record: true);
            }
        }

        // d. Memory.
        Log($"memory: {_o.Containers} running PSContainers containers");
        MeasurePscMemory(manager);
        Log($"memory: {_o.Containers} running LXC containers");
        MeasureLxcMemory();

        _load.Add(LoadAverage());
        return Report(repo);
    }

    // ---- PowerShell ---------------------------------------------------------------------------

    private void OpenRunspace()
    {
        var sw = Stopwatch.StartNew();
        _runspace = RunspaceFactory.CreateRunspace(InitialSessionState.CreateDefault2());
        _runspace.Open();
        Ps("Import-Module $args[0] -ErrorAction Stop; $PSDefaultParameterValues['*:StorePath'] = $args[1]", _moduleFolder, _store);
        Log($"runspace open + Import-Module: {sw.Elapsed.TotalMilliseconds:0} ms (not measured below)");
    }

    /// <summary>Runs a script in the warm runspace; any error is fatal.</summary>
    private Collection<PSObject> Ps(string script, params object[] args)
    {
        using var ps = PowerShell.Create();
        ps.Runspace = _runspace;
        ps.AddScript(script);
        foreach (var a in args) ps.AddArgument(a);
        var output = ps.Invoke();
        if (ps.Streams.Error.Count > 0)
            throw new InvalidOperationException($"PowerShell failed: {script}: " +
                string.Join("; ", ps.Streams.Error.Select(e => $"{e.FullyQualifiedErrorId}: {e}")));
        return output;
    }

    private double TimedPs(string script, params object[] args)
    {
        var sw = Stopwatch.StartNew();
        Ps(script, args);
        return sw.Elapsed.TotalMilliseconds;
    }

    private void PscCycle(bool kill, bool record)
    {
        var name = NewName(kill ? "k" : "g");
        var total = Stopwatch.StartNew();
        var create = TimedPs("New-Container -Name $args[0] -Template busybox | Out-Null", name);
        var start = TimedPs("Start-Container -Name $args[0]", name);
        var sw = Stopwatch.StartNew();
        var result = Ps("Invoke-ContainerCommand -Name $args[0] -Command true", name);
        var exec = sw.Elapsed.TotalMilliseconds;
        var stop = TimedPs(kill ? "Stop-Container -Name $args[0] -Kill" : "Stop-Container -Name $args[0]", name);
        var remove = TimedPs("Remove-Container -Name $args[0]", name);
        var all = total.Elapsed.TotalMilliseconds;
        var code = result.Count == 1 ? result[0].Properties["ExitCode"]?.Value : null;
        if (code is not int c || c != 0) throw new InvalidOperationException($"Invoke-ContainerCommand true in {name} did not exit 0 (got {code ?? "no result"})");
        if (!record) return;
        var p = kill ? "psc.kill" : "psc.graceful";
        _s.Add($"{p}.create", create);
        _s.Add($"{p}.start", start);
        _s.Add($"{p}.exec", exec);
        _s.Add($"{p}.stop", stop);
        _s.Add($"{p}.remove", remove);
        _s.Add($"{p}.sis", start + exec + stop);
        _s.Add($"{p}.total", all);
    }

    private void ApiCycle(ContainerManager m, bool record)
    {
        var name = NewName("api");
        var total = Stopwatch.StartNew();
        var sw = Stopwatch.StartNew();
        m.Create(name, new CreateOptions { Template = "busybox" });
        var create = Lap(sw);
        m.Start(name);
        var start = Lap(sw);
        var r = m.Exec(name, new[] { "true" });
        var exec = Lap(sw);
        m.Stop(name, kill: true);
        var stop = Lap(sw);
        m.Remove(name);
        var remove = Lap(sw);
        var all = total.Elapsed.TotalMilliseconds;
        if (r.ExitCode != 0) throw new InvalidOperationException($"Exec true in {name} exited {r.ExitCode}: {string.Join(' ', r.Error)}");
        if (!record) return;
        _s.Add("api.create", create);
        _s.Add("api.start", start);
        _s.Add("api.exec", exec);
        _s.Add("api.stop", stop);
        _s.Add("api.remove", remove);
        _s.Add("api.sis", start + exec + stop);
        _s.Add("api.total", all);
    }

    private static double Lap(Stopwatch sw)
    {
        var ms = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        return ms;
    }

    // ---- LXC ----------------------------------------------------------------------------------

    private double Lxc(params string[] args)
    {
        var r = RunProcess(args[0], args.Skip(1).ToArray());
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"'{string.Join(' ', args)}' exited {r.ExitCode}: {r.Error.Trim()} {r.Output.Trim()}");
        return r.Milliseconds;
    }

    private void LxcCycle(bool kill, bool record)
    {
        var name = NewName(kill ? "lk" : "lg");
        var total = Stopwatch.StartNew();
        var create = Lxc("lxc-create", "-t", "busybox", "-n", name, "-P", _lxcPath, "-f", _lxcConf);
        var start = Lxc("lxc-start", "-n", name, "-P", _lxcPath, "-d");
        var exec = Lxc("lxc-attach", "-n", name, "-P", _lxcPath, "--", "true");
        var stop = kill ? Lxc("lxc-stop", "-n", name, "-P", _lxcPath, "-k") : Lxc("lxc-stop", "-n", name, "-P", _lxcPath);
        var destroy = Lxc("lxc-destroy", "-n", name, "-P", _lxcPath);
        var all = total.Elapsed.TotalMilliseconds;
        if (!record) return;
        var p = kill ? "lxc.kill" : "lxc.graceful";
        _s.Add($"{p}.create", create);
        _s.Add($"{p}.start", start);
        _s.Add($"{p}.exec", exec);
        _s.Add($"{p}.stop", stop);
        _s.Add($"{p}.remove", destroy);
        _s.Add($"{p}.sis", start + exec + stop);
        _s.Add($"{p}.total", all);
    }

    // ---- the floor ----------------------------------------------------------------------------

    private void BuildFloorRootfs()
    {
        var busybox = Path.GetFullPath(Which("busybox")!);
        if (File.ResolveLinkTarget(busybox, true) is { } final) busybox = final.FullName;
        foreach (var d in new[] { "bin", "proc", "dev", "sys", "tmp", "etc" })
            Directory.CreateDirectory(Path.Combine(_floorRoot, d));
        File.Copy(busybox, Path.Combine(_floorRoot, "bin", "busybox"), overwrite: true);
        File.SetUnixFileMode(Path.Combine(_floorRoot, "bin", "busybox"),
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        foreach (var applet in new[] { "sh", "true", "sleep" })
            File.CreateSymbolicLink(Path.Combine(_floorRoot, "bin", applet), "busybox");
    }

    private void FloorCycle(bool record)
    {
        var sw = Stopwatch.StartNew();
        // The container: pid 1 of new pid/mount/uts/ipc/net/cgroup namespaces, chrooted into the
        // busybox rootfs with its own /proc; "ready" once the shell runs inside, then exec sleep.
        var psi = new ProcessStartInfo("unshare")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var a in new[] { "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "--cgroup", "--mount-proc",
                     "--root=" + _floorRoot, "/bin/sh", "-c", "echo ready; exec /bin/sleep 1000000" })
            psi.ArgumentList.Add(a);
        using var unshare = Process.Start(psi)!;
        unshare.ErrorDataReceived += (_, _) => { }; // unshare complains when its child is SIGKILLed
        unshare.BeginErrorReadLine();
        var entry = (Unshare: unshare.Id, Child: 0);
        lock (_floorProcesses) _floorProcesses.Add(entry);
        var line = unshare.StandardOutput.ReadLine();
        if (line != "ready") throw new InvalidOperationException($"floor: unshare did not start its child (read '{line}')");
        var start = Lap(sw);
        var children = File.ReadAllText($"/proc/{unshare.Id}/task/{unshare.Id}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var child = int.Parse(children.Single(), CultureInfo.InvariantCulture);
        lock (_floorProcesses) { _floorProcesses.Remove(entry); _floorProcesses.Add(entry = (unshare.Id, child)); }
        sw.Restart();

        var r = RunProcess("nsenter", new[] { "-t", child.ToString(CultureInfo.InvariantCulture), "-a", "-r", "-w", "/bin/true" });
        var exec = Lap(sw);
        if (r.ExitCode != 0) throw new InvalidOperationException($"floor: nsenter -a true exited {r.ExitCode}: {r.Error}");

        Sys.Kill(child, 9);
        unshare.WaitForExit();
        var stop = Lap(sw);
        lock (_floorProcesses) _floorProcesses.Remove(entry);
        if (!record) return;
        _s.Add("floor.start", start);
        _s.Add("floor.exec", exec);
        _s.Add("floor.stop", stop);
        _s.Add("floor.sis", start + exec + stop);
    }

    // ---- memory -------------------------------------------------------------------------------

    private void MeasurePscMemory(ContainerManager manager)
    {
        var names = Enumerable.Range(0, _o.Containers).Select(_ => NewName("m")).ToList();
        try
        {
            foreach (var n in names)
            {
                Ps("New-Container -Name $args[0] -Template busybox | Out-Null", n);
                Ps("Start-Container -Name $args[0]", n);
            }
            Thread.Sleep(1000); // let busybox init finish its sysinit
            foreach (var n in names)
            {
                var pid = manager.Get(n).SupervisorPid ?? throw new InvalidOperationException($"{n} has no supervisor pid");
                var comm = File.ReadAllText($"/proc/{pid}/comm").Trim();
                if (comm != "psc-supervise") throw new InvalidOperationException($"pid {pid} of {n} is '{comm}', not psc-supervise");
                _pscRss.Add(VmRssKb(pid));
            }
        }
        finally
        {
            foreach (var n in names)
                try { if (manager.Exists(n)) manager.Remove(n, force: true); }
                catch (Exception ex) { Log($"cleanup of {n}: {ex.Message}"); }
        }
    }

    private void MeasureLxcMemory()
    {
        var names = Enumerable.Range(0, _o.Containers).Select(_ => NewName("lm")).ToList();
        try
        {
            foreach (var n in names)
            {
                Lxc("lxc-create", "-t", "busybox", "-n", n, "-P", _lxcPath, "-f", _lxcConf);
                Lxc("lxc-start", "-n", n, "-P", _lxcPath, "-d");
            }
            Thread.Sleep(1000);
            var monitors = LxcMonitors();
            foreach (var n in names)
            {
                if (!monitors.TryGetValue(n, out var pid)) throw new InvalidOperationException($"no [lxc monitor] process found for {n}");
                _lxcRss.Add(VmRssKb(pid));
            }
        }
        finally
        {
            foreach (var n in names)
            {
                RunProcess("lxc-stop", new[] { "-n", n, "-P", _lxcPath, "-k" });
                RunProcess("lxc-destroy", new[] { "-n", n, "-P", _lxcPath });
            }
        }
    }

    /// <summary>Container name -> pid of its "[lxc monitor] LXCPATH NAME" process, for our lxcpath.</summary>
    private Dictionary<string, int> LxcMonitors()
    {
        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        var prefix = $"[lxc monitor] {_lxcPath} ";
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            string cmdline;
            try { cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Trim(); }
            catch (Exception) { continue; }
            if (cmdline.StartsWith(prefix, StringComparison.Ordinal))
                result[cmdline[prefix.Length..].Trim()] = pid;
        }
        return result;
    }

    private static double VmRssKb(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return double.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        throw new InvalidOperationException($"no VmRSS in /proc/{pid}/status");
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int HardLink(string oldPath, string newPath);

    private static string LoadAverage() => string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));

    /// <summary>Per-entry cost (ms) of symlink(2), link(2) and mkdir(2) on the store's filesystem.</summary>
    private (double Symlink, double Link, double Mkdir) ProbeInodeCost()
    {
        var dir = Path.Combine(_work, "fs-probe");
        Directory.CreateDirectory(dir);
        var target = Path.Combine(dir, "target");
        File.WriteAllText(target, "x");
        const int n = 200;
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < n; i++) File.CreateSymbolicLink(Path.Combine(dir, "s" + i), "target");
        var symlink = Lap(sw) / n;
        for (var i = 0; i < n; i++) HardLink(target, Path.Combine(dir, "h" + i));
        var link = Lap(sw) / n;
        for (var i = 0; i < n; i++) Directory.CreateDirectory(Path.Combine(dir, "d" + i));
        var mkdir = Lap(sw) / n;
        Directory.Delete(dir, recursive: true);
        return (symlink, link, mkdir);
    }

    // ---- report -------------------------------------------------------------------------------

    /// <summary>
    /// Start, exec and stop of PSContainers as multiples of the floor's, measured on this machine
    /// (absolute times differ between machines and guests; the ratios are what compare).
    /// </summary>
    private string FloorRatios(string repo)
    {
        static string X(double r) => r.ToString("0.00", CultureInfo.InvariantCulture) + "x";
        var layout = CgroupManager.ForHost().Layout;
        var cgroup2 = File.ReadLines("/proc/self/mountinfo").FirstOrDefault(l => l.Contains(" - cgroup2 ", StringComparison.Ordinal))?.Split(" - ")[1] ?? "none";
        var sb = new StringBuilder();
        sb.AppendLine("# PSContainers versus the floor (ratios)");
        sb.AppendLine();
        // In the guest there is no git (and no repository metadata): bench/run-v2-guest.sh passes the commit.
        var commit = Environment.GetEnvironmentVariable("PSC_BENCH_COMMIT") ?? RunProcess("git", new[] { "-C", repo, "rev-parse", "--short", "HEAD" }).Output.Trim();
        sb.AppendLine($"- Date: {DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss zzz}; PSContainers {commit}");
        sb.AppendLine($"- Kernel: {File.ReadAllText("/proc/sys/kernel/osrelease").Trim()}; cgroups: {layout} ({cgroup2}); nproc = {Environment.ProcessorCount}");
        sb.AppendLine($"- Iterations: {_o.Iterations} (after {_o.Warmup} warm-up); load average at start: {_load.FirstOrDefault()}, at end: {_load.LastOrDefault()}");
        sb.AppendLine("- Median of each step divided by the median of the floor's same step (`unshare ... --root`, `nsenter -a true`, `kill -9`).");
        sb.AppendLine();
        sb.AppendLine("| Step | PSContainers, PowerShell / floor | runtime API / floor |");
        sb.AppendLine("|---|---:|---:|");
        foreach (var (step, label) in new[] { ("start", "start"), ("exec", "run `true` inside"), ("stop", "stop (kill)"), ("sis", "start + exec + stop") })
        {
            var floor = _s.Median("floor." + step);
            sb.AppendLine($"| {label} | {X(_s.Median("psc.kill." + step) / floor)} | {X(_s.Median("api." + step) / floor)} |");
        }
        return sb.ToString();
    }

    private string Report(string repo)
    {
        static string F(double ms) => ms >= 100 ? ms.ToString("0", CultureInfo.InvariantCulture) : ms.ToString("0.0", CultureInfo.InvariantCulture);
        static string X(double r) => r.ToString("0.00", CultureInfo.InvariantCulture) + "x";
        string Med(string k) => _s.Has(k) ? F(_s.Median(k)) : "n/a";
        string P90(string k) => _s.Has(k) ? F(_s.P90(k)) : "n/a";
        string Ok(bool b) => b ? "**met**" : "**missed**";

        var sb = new StringBuilder();
        var cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
        var mem = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal", StringComparison.Ordinal)).Split(':', 2)[1].Trim();
        var commit = RunProcess("git", new[] { "-C", repo, "rev-parse", "--short", "HEAD" }).Output.Trim();
        var lxcVersion = RunProcess("lxc-start", new[] { "--version" }).Output.Trim();
        var unshareVersion = RunProcess("unshare", new[] { "--version" }).Output.Trim();
        var layout = CgroupManager.ForHost().Layout;

        sb.AppendLine("# PSContainers benchmark results");
        sb.AppendLine();
        sb.AppendLine($"- Date: {DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss zzz}");
        sb.AppendLine($"- Kernel: {File.ReadAllText("/proc/sys/kernel/osrelease").Trim()}; cgroups: {layout}");
        sb.AppendLine($"- Machine: nproc = {Environment.ProcessorCount}, {cpu}, {mem} RAM");
        sb.AppendLine($"- Software: PSContainers {commit} (Release, module out/PSContainers, System.Management.Automation {typeof(PowerShell).Assembly.GetName().Version}), .NET {Environment.Version}, LXC {lxcVersion}, {unshareVersion}");
        sb.AppendLine($"- Containers: PSContainers' default (unprivileged: a user namespace on root's subordinate ids, rootfs shifted into them); LXC {_lxcMode}");
        sb.AppendLine($"- Iterations: {_o.Iterations} measured per scenario (after {_o.Warmup} warm-up cycles); memory: {_o.Containers} running containers each");
        sb.AppendLine($"- Load average (1/5/15 min) at start: {_load.FirstOrDefault()}, at end: {_load.LastOrDefault()} (scenarios are interleaved round by round, so background load affects all alike)");
        sb.AppendLine($"- Store filesystem ({_work}): {FsType(_work)}; cost per new entry: symlink {_fsProbe.Symlink:0.000} ms, hard link {_fsProbe.Link:0.000} ms, mkdir {_fsProbe.Mkdir:0.000} ms");
        sb.AppendLine("- Times in milliseconds, wall clock; median and p90 (nearest rank).");
        sb.AppendLine();

        sb.AppendLine("## Full cycle: create → start → run `true` inside → stop → remove");
        sb.AppendLine();
        sb.AppendLine("| Stop mode | PSContainers median | p90 | LXC median | p90 | LXC / PSContainers (speed-up) |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|");
        double kSpeed = _s.Median("lxc.kill.total") / _s.Median("psc.kill.total");
        sb.AppendLine($"| kill (`Stop-Container -Kill` / `lxc-stop -k`) | {Med("psc.kill.total")} | {P90("psc.kill.total")} | {Med("lxc.kill.total")} | {P90("lxc.kill.total")} | {X(kSpeed)} |");
        double? gSpeed = null;
        if (_s.Has("psc.graceful.total"))
        {
            gSpeed = _s.Median("lxc.graceful.total") / _s.Median("psc.graceful.total");
            sb.AppendLine($"| graceful (default `Stop-Container` / `lxc-stop`) | {Med("psc.graceful.total")} | {P90("psc.graceful.total")} | {Med("lxc.graceful.total")} | {P90("lxc.graceful.total")} | {X(gSpeed.Value)} |");
        }
        sb.AppendLine();

        sb.AppendLine("## Start → Invoke → Stop (no create/remove) versus the bare floor");
        sb.AppendLine();
        sb.AppendLine("Floor: `unshare --fork --pid --mount --uts --ipc --net --cgroup --mount-proc --root=<busybox rootfs> sh -c 'echo ready; exec sleep'` (start = until \"ready\" is read), `nsenter -t PID -a -r -w /bin/true`, `kill -9` + wait.");
        sb.AppendLine();
        sb.AppendLine("| Runtime | median | p90 | vs floor |");
        sb.AppendLine("|---|---:|---:|---:|");
        var floor = _s.Median("floor.sis");
        sb.AppendLine($"| bare floor (unshare / nsenter / kill) | {Med("floor.sis")} | {P90("floor.sis")} | 1.00x |");
        sb.AppendLine($"| PSContainers, PowerShell, `Stop-Container -Kill` | {Med("psc.kill.sis")} | {P90("psc.kill.sis")} | {X(_s.Median("psc.kill.sis") / floor)} |");
        sb.AppendLine($"| PSContainers, runtime API (no PowerShell), Stop kill | {Med("api.sis")} | {P90("api.sis")} | {X(_s.Median("api.sis") / floor)} |");
        sb.AppendLine($"| LXC, `lxc-stop -k` | {Med("lxc.kill.sis")} | {P90("lxc.kill.sis")} | {X(_s.Median("lxc.kill.sis") / floor)} |");
        if (_s.Has("psc.graceful.sis"))
        {
            sb.AppendLine($"| PSContainers, PowerShell, graceful `Stop-Container` | {Med("psc.graceful.sis")} | {P90("psc.graceful.sis")} | {X(_s.Median("psc.graceful.sis") / floor)} |");
            sb.AppendLine($"| LXC, graceful `lxc-stop` | {Med("lxc.graceful.sis")} | {P90("lxc.graceful.sis")} | {X(_s.Median("lxc.graceful.sis") / floor)} |");
        }
        sb.AppendLine();

        sb.AppendLine("## Per step (median / p90)");
        sb.AppendLine();
        sb.AppendLine("| Step | PSContainers (PowerShell) | PSContainers runtime API | LXC | floor |");
        sb.AppendLine("|---|---:|---:|---:|---:|");
        string MP(string k) => _s.Has(k) ? $"{Med(k)} / {P90(k)}" : "–";
        sb.AppendLine($"| create (`New-Container -Template busybox` / `lxc-create -t busybox`) | {MP("psc.kill.create")} | {MP("api.create")} | {MP("lxc.kill.create")} | – |");
        sb.AppendLine($"| start (`Start-Container` / `lxc-start -d` / unshare) | {MP("psc.kill.start")} | {MP("api.start")} | {MP("lxc.kill.start")} | {MP("floor.start")} |");
        sb.AppendLine($"| run `true` (`Invoke-ContainerCommand` / `lxc-attach` / `nsenter -a`) | {MP("psc.kill.exec")} | {MP("api.exec")} | {MP("lxc.kill.exec")} | {MP("floor.exec")} |");
        sb.AppendLine($"| stop, kill (`-Kill` / `lxc-stop -k` / `kill -9`) | {MP("psc.kill.stop")} | {MP("api.stop")} | {MP("lxc.kill.stop")} | {MP("floor.stop")} |");
        if (_s.Has("psc.graceful.stop"))
            sb.AppendLine($"| stop, graceful (busybox init powers off) | {MP("psc.graceful.stop")} | – | {MP("lxc.graceful.stop")} | – |");
        sb.AppendLine($"| remove (`Remove-Container` / `lxc-destroy`) | {MP("psc.kill.remove")} | {MP("api.remove")} | {MP("lxc.kill.remove")} | – |");
        sb.AppendLine();

        sb.AppendLine("## Resident memory per running container: supervisor versus LXC monitor");
        sb.AppendLine();
        sb.AppendLine("| Process | median VmRSS (KB) | min | max | n |");
        sb.AppendLine("|---|---:|---:|---:|---:|");
        sb.AppendLine($"| `psc-supervise` (PSContainers) | {Samples.Median(_pscRss):0} | {_pscRss.Min():0} | {_pscRss.Max():0} | {_pscRss.Count} |");
        sb.AppendLine($"| `[lxc monitor]` (LXC) | {Samples.Median(_lxcRss):0} | {_lxcRss.Min():0} | {_lxcRss.Max():0} | {_lxcRss.Count} |");
        var rssRatio = Samples.Median(_pscRss) / Samples.Median(_lxcRss);
        sb.AppendLine($"| ratio PSContainers / LXC | {X(rssRatio)} | | | |");
        sb.AppendLine();

        sb.AppendLine("## Targets");
        sb.AppendLine();
        sb.AppendLine("| Target | Measured | Result |");
        sb.AppendLine("|---|---:|---|");
        sb.AppendLine($"| full cycle ≥ 20x faster than LXC (kill stop) | {X(kSpeed)} | {Ok(kSpeed >= 20)} |");
        if (gSpeed is { } g)
            sb.AppendLine($"| full cycle ≥ 20x faster than LXC (graceful stop) | {X(g)} | {Ok(g >= 20)} |");
        var sisRatio = _s.Median("psc.kill.sis") / floor;
        sb.AppendLine($"| Start → Invoke → Stop within 2x of the bare floor (PowerShell, -Kill) | {X(sisRatio)} | {Ok(sisRatio <= 2)} |");
        sb.AppendLine($"| supervisor RSS ≤ LXC monitor RSS | {Samples.Median(_pscRss):0} KB vs {Samples.Median(_lxcRss):0} KB ({X(rssRatio)}) | {Ok(rssRatio <= 1)} |");
        sb.AppendLine();
        sb.AppendLine("Notes: graceful stop of a busybox container is dominated by busybox init itself (on SIGUSR2/SIGPWR it runs its shutdown actions, then sends TERM to everything, sleeps 1 s, KILLs, sleeps 1 s), in both runtimes. " +
                      "The floor does no cgroup setup, no /dev, /sys or devpts mounts and no pivot_root; it is the minimum cost of entering and leaving the namespaces.");
        foreach (var n in _notes) sb.AppendLine("- " + n);
        return sb.ToString();
    }

    // ---- processes, paths ---------------------------------------------------------------------

    private static ProcResult RunProcess(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        var ms = sw.Elapsed.TotalMilliseconds;
        return new ProcResult(p.ExitCode, output, err.Result, ms);
    }

    /// <summary>The type of the filesystem holding path (longest mount point prefix in /proc/self/mounts).</summary>
    private static string FsType(string path)
    {
        var best = ("", "?");
        foreach (var line in File.ReadLines("/proc/self/mounts"))
        {
            var f = line.Split(' ');
            if (f.Length < 3) continue;
            var mp = f[1].Replace("\\040", " ");
            if ((path == mp || path.StartsWith(mp.TrimEnd('/') + "/", StringComparison.Ordinal)) && mp.Length >= best.Item1.Length)
                best = (mp, f[2] + (f.Length > 3 ? " (" + f[3] + ")" : ""));
        }
        return best.Item2;
    }

    private static string? Which(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    private static string FindRepoRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            var dir = new DirectoryInfo(start);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "PSContainers.psd1"))) dir = dir.Parent;
            if (dir is not null) return dir.FullName;
        }
        throw new InvalidOperationException("PSContainers.psd1 not found above the binary or the current directory; pass --repo.");
    }

    /// <summary>LXC's cgroup directories with this name in every hierarchy (v1 controllers and the unified one).</summary>
    private static IEnumerable<string> LxcCgroupDirs(string leaf)
    {
        if (!Directory.Exists("/sys/fs/cgroup")) yield break;
        var top = Path.Combine("/sys/fs/cgroup", leaf);
        if (Directory.Exists(top)) yield return top;
        foreach (var h in Directory.EnumerateDirectories("/sys/fs/cgroup"))
        {
            var d = Path.Combine(h, leaf);
            if (Directory.Exists(d)) yield return d;
        }
    }

    // ---- cleanup ------------------------------------------------------------------------------

    /// <summary>Removes everything this run created. Idempotent; safe after a failure at any point.</summary>
    public void Cleanup()
    {
        lock (_cleanupLock)
        {
            if (_cleaned) return;
            _cleaned = true;
        }
        // Floor processes.
        lock (_floorProcesses)
        {
            foreach (var (u, c) in _floorProcesses)
            {
                try { if (c > 0) Sys.Kill(c, 9); } catch (Exception) { }
                try { Sys.Kill(u, 9); } catch (Exception) { }
            }
            _floorProcesses.Clear();
        }
        // PSContainers containers of our store, then the store's cgroup parent.
        try
        {
            var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(_store);
            foreach (var name in manager.Names().ToList())
                try { manager.Remove(name, force: true); }
                catch (Exception ex) { Log($"cleanup: Remove-Container {name}: {ex.Message}"); }
            var cgroups = CgroupManager.ForHost();
            foreach (var dir in cgroups.Directories(manager.Store.CgroupParent))
                RemoveCgroupTree(dir);
        }
        catch (Exception ex) { Log($"cleanup (PSContainers): {ex.Message}"); }
        // LXC containers of our lxcpath.
        try
        {
            if (Directory.Exists(_lxcPath))
                foreach (var dir in Directory.EnumerateDirectories(_lxcPath))
                {
                    var name = Path.GetFileName(dir);
                    RunProcess("lxc-stop", new[] { "-n", name, "-P", _lxcPath, "-k" });
                    RunProcess("lxc-destroy", new[] { "-n", name, "-P", _lxcPath });
                }
            foreach (var prefix in new[] { "lxc.payload.", "lxc.monitor." })
                foreach (var dir in LxcCgroupDirsMatching(prefix + "psc-bench-"))
                    if (dir.Contains(_id, StringComparison.Ordinal)) RemoveCgroupTree(dir);
            // LXC makes an (empty) lxc.pivot cgroup in each hierarchy on stop: remove it if we caused it.
            foreach (var dir in LxcCgroupDirs("lxc.pivot"))
                if (!_pivotBefore.Contains(dir))
                    try { Directory.Delete(dir); } catch (Exception) { /* in use by another LXC container: leave it */ }
        }
        catch (Exception ex) { Log($"cleanup (LXC): {ex.Message}"); }
        try { _runspace?.Dispose(); } catch (Exception) { }
        try { if (Directory.Exists(_work)) Directory.Delete(_work, recursive: true); }
        catch (Exception ex) { Log($"cleanup: could not delete {_work}: {ex.Message}"); }
    }

    private static IEnumerable<string> LxcCgroupDirsMatching(string prefix)
    {
        if (!Directory.Exists("/sys/fs/cgroup")) yield break;
        var hierarchies = new List<string> { "/sys/fs/cgroup" };
        hierarchies.AddRange(Directory.EnumerateDirectories("/sys/fs/cgroup"));
        foreach (var h in hierarchies)
        {
            IEnumerable<string> entries;
            try { entries = Directory.EnumerateDirectories(h, prefix + "*").ToList(); }
            catch (Exception) { continue; }
            foreach (var e in entries) yield return e;
        }
    }

    /// <summary>Kills what is left in a cgroup tree and removes it, children first.</summary>
    private static void RemoveCgroupTree(string dir)
    {
        if (!Directory.Exists(dir)) return;
        foreach (var child in Directory.EnumerateDirectories(dir).ToList()) RemoveCgroupTree(child);
        try
        {
            foreach (var pid in File.ReadAllLines(Path.Combine(dir, "cgroup.procs")))
                if (int.TryParse(pid, out var p)) try { Sys.Kill(p, 9); } catch (Exception) { }
        }
        catch (Exception) { }
        for (var i = 0; i < 100 && Directory.Exists(dir); i++)
            try { Directory.Delete(dir); }
            catch (IOException) { Thread.Sleep(10); }
            catch (UnauthorizedAccessException) { break; }
    }
}
