using System.Diagnostics;
using System.Runtime.InteropServices;
using PSContainers.Runtime.Checkpoint;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Launcher;

// Checkpoint and restore one running busybox container, round after round, two ways:
//   runtime: CheckpointManager.Checkpoint (criu swrk over RPC, manifest, stop bookkeeping) and
//            CheckpointManager.Restore (cgroup, supervisor, criu swrk with rst_sibling, state);
//   bare:    `criu dump` and `criu restore -d` on the same container with the same options
//            (external mounts and console, nftables lock, cgroup created first as any restore needs).
// Prints medians and writes a markdown section (--output FILE appends to it).
var rounds = 10;
string? output = null, repo = null;
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "--output") output = args[++i];
    else if (args[i] == "--repo") repo = args[++i];
    else rounds = int.Parse(args[i]);
}
PscHelper.ConfiguredPath = Path.Combine(repo ?? Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../..")), "out/PSContainers/psc-helper");
var id = Guid.NewGuid().ToString("N")[..6];
var work = $"/tmp/psc-bench-criu-{id}";
var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(Path.Combine(work, "store"));
var checkpoints = new CheckpointManager(manager);
var criu = checkpoints.Criu();
var name = $"psc-bench-criu-{id}";
var times = new Dictionary<string, List<double>> { ["runtime checkpoint"] = new(), ["runtime restore"] = new(), ["criu dump"] = new(), ["criu restore"] = new() };
var cgroupPath = $"{manager.Store.CgroupParent}/{name}";
Console.WriteLine($"criu {criu.Version} at {criu.Path}; {rounds} rounds (+1 warm-up)");
try
{
    manager.Create(name, new CreateOptions { Template = "busybox" });
    for (var round = 0; round <= rounds; round++)
    {
        manager.Start(name);
        Thread.Sleep(500); // let busybox init settle
        var dir = Path.Combine(work, $"rt{round}");
        var sw = Stopwatch.StartNew();
        var info = checkpoints.Checkpoint(name, dir, new CheckpointOptions());
        var dump = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        var restored = checkpoints.Restore(dir, null, new RestoreOptions());
        var restore = sw.Elapsed.TotalMilliseconds;
        if (restored.State != PSContainers.Runtime.State.ContainerStatus.Running) throw new InvalidOperationException("runtime restore did not run");

        // The same container (now restored, supervised) with the bare CLI.
        var init = restored.Pid!.Value;
        var config = PSContainers.Runtime.Config.ConfigLoader.Load(manager.Store.ConfigPath(name));
        var cli = Path.Combine(work, $"cli{round}");
        Directory.CreateDirectory(cli);
        sw.Restart();
        var plan = new StartSpec();
        MountPlan.AddDefaults(plan, config);
        var ext = new List<string>();
        var keys = new List<(string Key, string Source)>();
        foreach (var m in plan.Mounts.Where(m => m.Flags.HasFlag(MountFlags.Bind) && !m.Flags.HasFlag(MountFlags.SourceInRoot)))
        {
            var key = m.Flags.HasFlag(MountFlags.Console) ? "console" : $"ext{keys.Count}";
            keys.Add((key, m.Source));
            ext.AddRange(new[] { "--external", $"mnt[{m.Target}]:{key}" });
        }
        var tty = Pty.TtyId($"/proc/{init}/root/dev/console");
        Run(criu.Path, new[] { "dump", "-t", init.ToString(), "-D", cli, "-o", "dump.log", "-v4", "--network-lock", "nftables", "--file-locks", "--external", tty }.Concat(ext));
        var cliDump = sw.Elapsed.TotalMilliseconds;
        manager.Wait(name, PSContainers.Runtime.State.ContainerStatus.Stopped, TimeSpan.FromSeconds(10));

        var (master, slave, slavePath) = Pty.Open();
        sw.Restart();
        manager.Cgroups.Create(cgroupPath, config.Limits.Controllers());
        var rext = new List<string>();
        foreach (var (key, source) in keys) rext.AddRange(new[] { "--external", $"mnt[{key}]:{(key == "console" ? slavePath : source)}" });
        Run(criu.Path, new[] { "restore", "-D", cli, "-o", "restore.log", "-v4", "--root", manager.Get(name).RootfsPath, "--restore-detached",
            "--network-lock", "nftables", "--file-locks", "--manage-cgroups=soft", "--cgroup-root", "/" + cgroupPath, "--cgroup-root", "name=systemd:/",
            "--inherit-fd", $"fd[{slave}]:{tty}" }.Concat(rext));
        var cliRestore = sw.Elapsed.TotalMilliseconds;
        Pty.Close(slave); Pty.Close(master);
        if (manager.Cgroups.Pids(cgroupPath).Count == 0) throw new InvalidOperationException("criu restore left no process");
        manager.Cgroups.KillAll(cgroupPath);
        for (var i = 0; i < 200 && !manager.Cgroups.Remove(cgroupPath); i++) Thread.Sleep(10);

        Console.WriteLine($"round {round}: runtime {dump,6:0.0} / {restore,6:0.0} ms   criu {cliDump,6:0.0} / {cliRestore,6:0.0} ms   ({info.ProcessCount} processes, {info.Size / 1024} KiB)");
        if (round == 0) continue; // warm-up
        times["runtime checkpoint"].Add(dump);
        times["runtime restore"].Add(restore);
        times["criu dump"].Add(cliDump);
        times["criu restore"].Add(cliRestore);
    }
}
finally
{
    try { manager.Remove(name, force: true); } catch (Exception ex) { Console.Error.WriteLine(ex.Message); }
    if (manager.Cgroups.Exists(cgroupPath)) { manager.Cgroups.KillAll(cgroupPath); manager.Cgroups.Remove(cgroupPath); }
    foreach (var dir in manager.Cgroups.Directories(manager.Store.CgroupParent)) try { Directory.Delete(dir); } catch (IOException) { }
    try { Directory.Delete(work, recursive: true); } catch (Exception) { }
}

double Median(List<double> v) { var s = v.Order().ToList(); return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2; }
var rtDump = Median(times["runtime checkpoint"]); var rtRestore = Median(times["runtime restore"]);
var cDump = Median(times["criu dump"]); var cRestore = Median(times["criu restore"]);
var report = $"""

## Checkpoint/restore versus bare criu (bench/CheckpointBench)

CRIU {criu.Version}, kernel {File.ReadAllText("/proc/sys/kernel/osrelease").Trim()}, busybox container (busybox init), {rounds} rounds, median:

| step | PSContainers runtime | bare `criu` | ratio |
|---|---:|---:|---:|
| checkpoint (dump, container stopped) | {rtDump:0.0} ms | {cDump:0.0} ms | {rtDump / cDump:0.00}× |
| restore | {rtRestore:0.0} ms | {cRestore:0.0} ms | {rtRestore / cRestore:0.00}× |

Target ≤ 1.2×: checkpoint {(rtDump / cDump <= 1.2 ? "met" : "MISSED")}, restore {(rtRestore / cRestore <= 1.2 ? "met" : "MISSED")}.
""";
Console.WriteLine(report);
if (output is not null) File.AppendAllText(output, report);

static void Run(string file, IEnumerable<string> arguments)
{
    var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardError = true };
    foreach (var a in arguments) psi.ArgumentList.Add(a);
    using var p = Process.Start(psi)!;
    var err = p.StandardError.ReadToEnd();
    p.WaitForExit();
    if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', psi.ArgumentList)} failed ({p.ExitCode}): {err}");
}

static unsafe class Pty
{
    [DllImport("libc", SetLastError = true)] private static extern int posix_openpt(int flags);
    [DllImport("libc")] private static extern int grantpt(int fd);
    [DllImport("libc")] private static extern int unlockpt(int fd);
    [DllImport("libc")] private static extern int ptsname_r(int fd, byte* buf, nint len);
    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags);
    [DllImport("libc")] private static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int stat(string path, byte* buf);

    /// <summary>A console pty; the slave is inheritable (criu restore takes it with --inherit-fd).</summary>
    public static (int Master, int Slave, string SlavePath) Open()
    {
        var master = posix_openpt(2 | 0x100 | 0x80000); // O_RDWR | O_NOCTTY | O_CLOEXEC
        grantpt(master); unlockpt(master);
        var buf = stackalloc byte[64];
        ptsname_r(master, buf, 64);
        var path = Marshal.PtrToStringAnsi((nint)buf)!;
        return (master, open(path, 2 | 0x100), path);
    }

    public static void Close(int fd) => close(fd);

    public static string TtyId(string path)
    {
        var st = stackalloc byte[256];
        if (stat(path, st) != 0) throw new InvalidOperationException($"stat {path}");
        var dev = *(ulong*)st;          // st_dev (x86-64 struct stat)
        var rdev = *(ulong*)(st + 40);  // st_rdev
        return $"tty[{rdev:x}:{dev:x}]";
    }
}
