// Applying a full limit set to a live cgroup (what Set-CgroupLimit does for a running container)
// versus spawning one `cgset` (cgroup-tools) that sets a single value.
// Run as root: dotnet run -c Release --project bench/CgroupLimits [iterations]
using System.Diagnostics;
using PSContainers.Runtime.Cgroups;

var iterations = args.Length > 0 ? int.Parse(args[0]) : 200;
var cgroups = CgroupManager.ForHost();
var name = "psc-bench-" + Guid.NewGuid().ToString("N")[..8];
var limits = new CgroupLimits
{
    MemoryMax = 256L << 20,
    MemoryLow = 64L << 20,
    CpuWeight = 200,
    CpuQuota = 150_000,
    CpuPeriod = 100_000,
    CpusetCpus = "0-1",
    CpusetMems = "0",
    PidsMax = 100,
    IoDeviceLimits = { new IoDeviceLimit { Device = "/dev/vda", ReadBps = 100L << 20, WriteIops = 1000 } },
    Devices = { DeviceRule.Parse("c 1:3 rwm", allow: true) },
};
if (cgroups.V2 is { } v2 && v2.Controllers.Contains("hugetlb")) limits.HugetlbMax["2MB"] = 64L << 20;

// Enabling hugetlb in the unified root is a host-wide change: undo it afterwards if we made it.
var rootSubtree = cgroups.V2 is { } u ? Path.Combine(u.MountPoint, "cgroup.subtree_control") : null;
var hugetlbWasEnabled = rootSubtree is not null && File.ReadAllText(rootSubtree).Split(' ', '\n').Contains("hugetlb");
Process? sleeper = null;
try
{
    cgroups.Create(name, limits.Controllers());
    // A live member, as in a running container.
    sleeper = Process.Start("/bin/sleep", "600");
    cgroups.AddProcess(name, sleeper.Id);
    var plan = cgroups.ApplyLimits(name, limits);
    Console.WriteLine($"Layout {cgroups.Layout}; one full limit set = {plan.Count} writes:");
    foreach (var w in plan) Console.WriteLine("  " + w);

    var managed = Measure(iterations, () => cgroups.ApplyLimits(name, limits));
    var cgsetIterations = Math.Max(20, iterations / 5);
    var cgset = Measure(cgsetIterations, () =>
    {
        using var p = Process.Start(new ProcessStartInfo("cgset", new[] { "-r", "pids.max=100", name }) { RedirectStandardError = true });
        p!.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException("cgset failed: " + p.StandardError.ReadToEnd());
    });
    Console.WriteLine();
    Console.WriteLine($"{"",-38} {"median",10} {"mean",10} {"p95",10}");
    Report($"ApplyLimits, full set ({plan.Count} writes) x{iterations}", managed);
    Report($"spawn cgset -r pids.max (1 value) x{cgsetIterations}", cgset);
    Console.WriteLine($"\nfull limit set / one cgset (median): {managed[managed.Length / 2] / cgset[cgset.Length / 2]:P0}");
}
finally
{
    if (sleeper is not null) { sleeper.Kill(); sleeper.WaitForExit(); }
    foreach (var d in cgroups.Drivers) d.Remove(name);
    if (rootSubtree is not null && !hugetlbWasEnabled)
        try { File.WriteAllText(rootSubtree, "-hugetlb"); } catch (IOException) { }
}

static double[] Measure(int n, Action action)
{
    action(); // warm-up
    var times = new double[n];
    for (var i = 0; i < n; i++)
    {
        var sw = Stopwatch.StartNew();
        action();
        times[i] = sw.Elapsed.TotalMilliseconds;
    }
    Array.Sort(times);
    return times;
}

static void Report(string what, double[] t) =>
    Console.WriteLine($"{what,-38} {t[t.Length / 2],8:0.000}ms {t.Average(),8:0.000}ms {t[(int)(t.Length * 0.95)],8:0.000}ms");
