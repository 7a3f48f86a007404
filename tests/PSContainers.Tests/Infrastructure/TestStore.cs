using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Native;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// A container store of its own under /tmp/psc-test-*, whose containers get a cgroup parent of
/// their own. Dispose kills and removes whatever a test left, even when it failed, and deletes the
/// cgroup parent and the directory.
/// </summary>
public sealed class TestStore : IDisposable
{
    public string Root { get; }
    public string StorePath => Path.Combine(Root, "store");
    public ContainerManager Manager { get; }

    /// <param name="root">Where to make the store (a loop-mounted filesystem); default: a new /tmp/psc-test-* directory.</param>
    public TestStore(string? root = null)
    {
        Root = root ?? Path.Combine(Path.GetTempPath(), "psc-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(StorePath);
        Manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(StorePath);
    }

    public string CgroupParent => Manager.Store.CgroupParent;

    /// <summary>A unique container name with a test prefix.</summary>
    public static string NewName(string hint = "c") => $"psct-{hint}-{Guid.NewGuid().ToString("N")[..8]}";

    public ModuleSession OpenSession() => new(StorePath);

    public void Dispose()
    {
        foreach (var name in Manager.Names().ToList())
        {
            try { Manager.Remove(name, force: true); }
            catch (Exception) { /* best effort; the checks below catch what is left */ }
        }
        var cgroups = CgroupManager.ForHost();
        foreach (var dir in cgroups.Directories(CgroupParent))
        {
            if (!Directory.Exists(dir)) continue;
            // Containers' outer cgroups, their inner ones and anything below: deepest first.
            foreach (var child in Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).ToList())
            {
                try
                {
                    foreach (var pid in File.ReadAllLines(Path.Combine(child, "cgroup.procs")))
                        try { Sys.Kill(int.Parse(pid), 9); } catch (Exception) { }
                }
                catch (IOException) { }
                for (var i = 0; i < 100 && Directory.Exists(child); i++)
                    try { Directory.Delete(child); } catch (IOException) { Thread.Sleep(10); }
            }
            try { Directory.Delete(dir); } catch (IOException) { }
        }
        try { Directory.Delete(Root, recursive: true); } catch (Exception) { }
    }
}
