// Storage benchmarks (run as root; needs btrfs-progs and xfsprogs for the loop filesystems):
//   dotnet run -c Release --project bench/StorageBench -- [--sizes 2,200] [--fs tmp,btrfs,xfs] [--no-tar]
// 1. Clone time vs rootfs size per backend: Copy-Container (full) and Copy-Container -Snapshot on a
//    dir store (/tmp), a btrfs store and an XFS store (loop devices made here and torn down after).
// 2. Export/import throughput vs GNU tar --numeric-owner on the same tree.
using System.Diagnostics;
using System.Security.Cryptography;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Storage;

var sizes = new[] { 2, 200 };
var filesystems = new[] { "tmp", "btrfs", "xfs" };
var tar = true;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--sizes") sizes = args[++i].Split(',').Select(int.Parse).ToArray();
    else if (args[i] == "--fs") filesystems = args[++i].Split(',');
    else if (args[i] == "--no-tar") tar = false;
}

var root = Path.Combine(Path.GetTempPath(), "psc-bench-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(root);
var cleanups = new Stack<Action>();
try
{
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
