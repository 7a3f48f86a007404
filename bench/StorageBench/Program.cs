// Storage benchmarks (run as root; needs btrfs-progs and xfsprogs for the loop filesystems):
//   dotnet run -c Release --project bench/StorageBench -- [--sizes 2,200] [--fs tmp,btrfs,xfs] [--no-tar]
// 1. Clone time vs rootfs size per backend: Copy-Container (full) and Copy-Container -Snapshot on a
//    dir store (/tmp), a btrfs store and an XFS store (loop devices made here and torn down after).
// 2. Export/import throughput vs GNU tar --numeric-owner on the same tree.
// 3. --idmap [rounds]: unprivileged (idmapped rootfs) vs privileged, interleaved round by round:
//    create + start of a busybox container, and snapshot clones of a Debian-like tree (many small
//    files) of two sizes on a dir store (overlay clone) and a btrfs store (btrfs snapshot); plus
//    what shifting (the old chown walk) of the bigger tree costs. Then exits.
using System.Diagnostics;
using System.Security.Cryptography;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Storage;

var sizes = new[] { 2, 200 };
var filesystems = new[] { "tmp", "btrfs", "xfs" };
var tar = true;
int? idmapRounds = null;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--idmap") { idmapRounds = i + 1 < args.Length && int.TryParse(args[i + 1], out var r) ? (++i > 0 ? r : r) : 9; continue; }
    if (args[i] == "--sizes") sizes = args[++i].Split(',').Select(int.Parse).ToArray();
    else if (args[i] == "--fs") filesystems = args[++i].Split(',');
    else if (args[i] == "--no-tar") tar = false;
}

var root = Path.Combine(Path.GetTempPath(), "psc-bench-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(root);
var cleanups = new Stack<Action>();
try
{
    if (idmapRounds is { } rounds)
    {
        IdmapBench(rounds);
        return;
    }
    Console.WriteLine("Clone time vs rootfs size (busybox + N MiB of 1 MiB random files)");
    Console.WriteLine($"{"store",-8} {"backend",-8} {"size MiB",9} {"full copy ms",13} {"snapshot clone ms",18} {"snapshot backend",17}");
    foreach (var fs in filesystems)
    {
        var storeRoot = fs == "tmp" ? Path.Combine(root, "tmp-store") : Loop(fs);
        var backends = fs == "tmp" ? new[] { "dir", "overlay" } : fs == "btrfs" ? new[] { "btrfs" } : new[] { "dir" };
        foreach (var backend in backends)
        foreach (var size in sizes)
        {
            var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(Path.Combine(storeRoot, $"{backend}-{size}"));
            var storage = new StorageManager(manager);
            var src = manager.Create("src", new CreateOptions { Template = "busybox", Backend = backend });
            Fill(backend == "overlay" ? Path.Combine(src.Path, "overlay", "lower") : src.RootfsPath, size);
            Sync();
            var full = Time(() => storage.Copy("src", "full", new CopyOptions()));
            var snap = Time(() => storage.Copy("src", "snap", new CopyOptions { Snapshot = true }));
            var snapBackend = PSContainers.Runtime.Config.ConfigLoader.Load(manager.Store.ConfigPath("snap")).Storage.Backend;
            Console.WriteLine($"{fs,-8} {backend,-8} {size,9} {full,13:0.0} {snap,18:0.0} {snapBackend,17}");
            foreach (var n in new[] { "snap", "full", "src" }) manager.Remove(n, force: true);
        }
    }

    if (tar)
    {
        var size = sizes.Max();
        Console.WriteLine();
        Console.WriteLine($"Export/import vs GNU tar (busybox + {size} MiB, /tmp; page cache warm)");
        var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(Path.Combine(root, "tar-store"));
        var src = manager.Create("src", new CreateOptions { Template = "busybox" });
        Fill(src.RootfsPath, size);
        // Warm-up (JIT, page cache) so the first measured format is not penalised.
        var warm = Path.Combine(root, "warm.tar");
        ContainerArchive.Export(manager, "src", warm, force: false);
        ContainerArchive.Import(manager, warm, "warm");
        manager.Remove("warm", force: true);
        File.Delete(warm);
        foreach (var ext in new[] { ".tar", ".tar.gz", ".tar.zst" })
        {
            var ours = Path.Combine(root, "ours" + ext);
            var gnu = Path.Combine(root, "gnu" + ext);
            var export = Time(() => ContainerArchive.Export(manager, "src", ours, force: false));
            var compress = ext switch { ".tar.gz" => new[] { "-z" }, ".tar.zst" => new[] { "--zstd" }, _ => Array.Empty<string>() };
            var gnuCreate = Time(() => Run("tar", new[] { "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls" }.Concat(compress).Concat(new[] { "-cf", gnu, "-C", manager.Store.ContainerDirectory("src"), "config.yaml", "rootfs" }).ToArray()));
            var import = Time(() => ContainerArchive.Import(manager, ours, "imported"));
            var dir = Path.Combine(root, "gnu-x");
            Directory.CreateDirectory(dir);
            var gnuExtract = Time(() => Run("tar", new[] { "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-xpf", gnu, "-C", dir }));
            Console.WriteLine($"{ext,-9} export {export,8:0} ms  (tar -c {gnuCreate,8:0} ms)   import {import,8:0} ms  (tar -x {gnuExtract,8:0} ms)   size {new FileInfo(ours).Length >> 20} MiB (tar {new FileInfo(gnu).Length >> 20} MiB)");
            manager.Remove("imported", force: true);
            Directory.Delete(dir, recursive: true);
            File.Delete(ours);
            File.Delete(gnu);
        }
    }
}
finally
{
    while (cleanups.Count > 0) { try { cleanups.Pop()(); } catch (Exception ex) { Console.Error.WriteLine(ex.Message); } }
    try { Directory.Delete(root, recursive: true); } catch (Exception) { }
}

void IdmapBench(int rounds)
{
    // A range no one uses: root writes the maps itself, no /etc/subuid line is needed.
    var start = 1_700_000_000u + (uint)Random.Shared.Next(0, 1000) * 65536u;
    var idmapConfig = Path.Combine(root, "idmap.yaml");
    File.WriteAllText(idmapConfig, $"idMap: [u 0 {start} 65536, g 0 {start} 65536]\n");
    CreateOptions Options(bool unprivileged, string? backend = null) =>
        new() { Template = "busybox", ConfigPath = unprivileged ? idmapConfig : null, Backend = backend };
    static double Median(List<double> v) { var o = v.OrderBy(x => x).ToList(); return o.Count % 2 == 1 ? o[o.Count / 2] : (o[o.Count / 2 - 1] + o[o.Count / 2]) / 2; }

    Console.WriteLine($"Unprivileged (idmapped) vs privileged, {rounds} rounds interleaved (medians, ms)");
    var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(Path.Combine(root, "cycle-store"));
    var t = new Dictionary<string, List<double>>();
    void Add(string key, double ms) { if (!t.TryGetValue(key, out var l)) t[key] = l = new(); l.Add(ms); }
    for (var i = -2; i < rounds; i++) // two warm-up rounds
        foreach (var unpriv in new[] { false, true })
        {
            var kind = unpriv ? "unprivileged" : "privileged";
            var name = $"psc-bench-{kind[..4]}-{i + 2}";
            var create = Time(() => manager.Create(name, Options(unpriv)));
            var startMs = Time(() => manager.Start(name));
            manager.Stop(name, kill: true);
            manager.Remove(name, force: true);
            if (i >= 0) { Add($"create {kind}", create); Add($"start {kind}", startMs); Add($"create+start {kind}", create + startMs); }
        }
    foreach (var step in new[] { "create", "start", "create+start" })
    {
        double p = Median(t[$"{step} privileged"]), u = Median(t[$"{step} unprivileged"]);
        Console.WriteLine($"busybox {step,-13} privileged {p,8:0.0}  unprivileged {u,8:0.0}  ratio {u / p,5:0.00}x");
    }

    Console.WriteLine();
    Console.WriteLine("Snapshot clone of a Debian-like tree (16 KiB files, 64 per directory), medians, ms");
    foreach (var fs in new[] { "tmp", "btrfs" })
    {
        var storeRoot = fs == "tmp" ? Path.Combine(root, "clone-tmp") : Loop("btrfs");
        foreach (var size in sizes)
        {
            var m = PSContainers.Runtime.Composition.ContainerRuntime.Open(Path.Combine(storeRoot, $"s{size}"));
            var storage = new StorageManager(m);
            var sources = new Dictionary<bool, string>();
            foreach (var unpriv in new[] { false, true })
            {
                var src = m.Create(unpriv ? "src-unpriv" : "src-priv", Options(unpriv, fs == "btrfs" ? "btrfs" : "dir"));
                FillSmall(src.RootfsPath, size);
                sources[unpriv] = src.Name;
            }
            Sync();
            var clone = new Dictionary<bool, List<double>> { [false] = new(), [true] = new() };
            for (var i = -1; i < rounds; i++)
                foreach (var unpriv in new[] { false, true })
                {
                    var ms = Time(() => storage.Copy(sources[unpriv], "clone", new CopyOptions { Snapshot = true }));
                    // The clone must start: an unprivileged clone is usable as made.
                    if (i == 0) { m.Start("clone"); m.Stop("clone", kill: true); }
                    m.Remove("clone", force: true);
                    if (i >= 0) clone[unpriv].Add(ms);
                }
            var backend = fs == "btrfs" ? "btrfs snapshot" : "overlay layer";
            double pm = Median(clone[false]), um = Median(clone[true]);
            Console.WriteLine($"{fs,-6} {size,5} MiB ({backend,-14})  privileged {pm,7:0.0}  unprivileged {um,7:0.0}  ratio {um / pm,5:0.00}x");
            if (fs == "tmp" && size == sizes.Max())
            {
                // What the old way paid at create (and what a full copy of a shifted tree still pays).
                var shift = Time(() => PSContainers.Runtime.UserNamespaces.UserNamespace.Shift(m.Store.RootfsPath(sources[false]), PSContainers.Runtime.UserNamespaces.IdMap.ForRanges(start, start)));
                Console.WriteLine($"{fs,-6} {size,5} MiB: shifting the tree (the chown walk idmapped mounts avoid): {shift:0} ms");
            }
            foreach (var n in sources.Values) m.Remove(n, force: true);
        }
    }
}

static void FillSmall(string rootfs, int mib)
{
    var block = new byte[16 << 10];
    var files = mib * 64;
    for (int i = 0; i < files; i++)
    {
        var dir = Path.Combine(rootfs, "usr", "share", $"d{i / 64:D4}");
        if (i % 64 == 0) Directory.CreateDirectory(dir);
        RandomNumberGenerator.Fill(block);
        File.WriteAllBytes(Path.Combine(dir, $"f{i % 64:D2}"), block);
    }
}

string Loop(string type)
{
    var dir = Path.Combine(root, type);
    var mnt = Path.Combine(dir, "mnt");
    Directory.CreateDirectory(mnt);
    var image = Path.Combine(dir, "fs.img");
    using (var f = File.Create(image)) f.SetLength(4L << 30);
    var device = Run("losetup", "--find", "--show", image).Trim();
    cleanups.Push(() => Run("losetup", "-d", device));
    Run(type == "btrfs" ? "mkfs.btrfs" : "mkfs.xfs", type == "btrfs" ? new[] { "-q", "-f", device } : new[] { "-q", "-f", "-m", "reflink=1", device });
    Run("mount", device, mnt);
    cleanups.Push(() => Run("umount", mnt));
    return mnt;
}

static void Fill(string rootfs, int mib)
{
    var dir = Path.Combine(rootfs, "data");
    Directory.CreateDirectory(dir);
    var block = new byte[1 << 20];
    for (int i = 0; i < mib; i++)
    {
        RandomNumberGenerator.Fill(block);
        File.WriteAllBytes(Path.Combine(dir, $"f{i:D5}"), block);
    }
}

static void Sync() => Run("sync");

static double Time(Action action)
{
    var sw = Stopwatch.StartNew();
    action();
    return sw.Elapsed.TotalMilliseconds;
}

static string Run(string program, params string[] args)
{
    var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in args) psi.ArgumentList.Add(a);
    using var p = Process.Start(psi)!;
    var output = p.StandardOutput.ReadToEnd();
    var error = p.StandardError.ReadToEnd();
    p.WaitForExit();
    if (p.ExitCode != 0) throw new InvalidOperationException($"{program} {string.Join(' ', args)}: {error}");
    return output;
}
