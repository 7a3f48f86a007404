using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Native;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>The v1 driver against this host's real v1 hierarchies, with real processes (skipped on a pure v2 host).</summary>
[Collection("Containers")]
public sealed class CgroupV1DriverTests : IDisposable
{
    private readonly CgroupV1Driver _driver;
    private readonly string _name = "psc-test-" + Guid.NewGuid().ToString("N");
    private readonly List<Sleeper> _processes = new();

    public CgroupV1DriverTests()
    {
        var mounts = CgroupLayout.Detect().V1Mounts;
        if (mounts.Count == 0) throw new InvalidOperationException("this host has no cgroup v1 hierarchies");
        _driver = new CgroupV1Driver(mounts);
    }

    private string Leaf => _name + "/c1";

    private IEnumerable<string> Roots => _driver.Mounts.Values.Distinct();

    public void Dispose()
    {
        foreach (var p in _processes) p.Dispose();
        foreach (var root in Roots)
        {
            foreach (var dir in new[] { Path.Combine(root, Leaf), Path.Combine(root, _name) })
            {
                if (!Directory.Exists(dir)) continue;
                var state = Path.Combine(dir, "freezer.state");
                if (File.Exists(state)) try { File.WriteAllText(state, "THAWED"); } catch (IOException) { }
                foreach (var line in File.ReadAllLines(Path.Combine(dir, "cgroup.procs")))
                    if (int.TryParse(line, out var pid)) try { Sys.Kill(pid, 9); } catch (Exception) { }
                for (var i = 0; i < 200 && Directory.Exists(dir); i++)
                    try { Directory.Delete(dir); } catch (IOException) { Thread.Sleep(10); }
            }
        }
    }

    private Sleeper StartInCgroup(string path)
    {
        var p = new Sleeper();
        _processes.Add(p);
        foreach (var procs in _driver.ProcsFiles(path)) File.WriteAllText(procs, p.Pid.ToString());
        return p;
    }

    private static string ControllerPath(int pid, string controller) =>
        File.ReadAllLines($"/proc/{pid}/cgroup").Select(l => l.Split(':', 3))
            .Single(f => f[1].Split(',').Contains(controller))[2];

    private static bool WaitFor(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) return false;
            Thread.Sleep(10);
        }
        return true;
    }

    [CgroupV1Fact]
    public void Create_MakesTheCgroupInEveryHierarchy()
    {
        Assert.Contains("memory", _driver.Controllers);
        Assert.Contains("freezer", _driver.Controllers);
        Assert.DoesNotContain("name=systemd", _driver.Controllers);
        Assert.False(_driver.Exists(Leaf));

        _driver.Create(Leaf, new[] { "memory", "pids" });

        var dirs = _driver.Directories(Leaf);
        Assert.Equal(Roots.Count(), dirs.Count);
        foreach (var root in Roots)
        {
            Assert.Contains(Path.Combine(root, Leaf), dirs);
            Assert.True(Directory.Exists(Path.Combine(root, Leaf)), $"missing in {root}");
            Assert.True(File.Exists(Path.Combine(root, Leaf, "cgroup.procs")), $"{root} is not a cgroup hierarchy");
        }
        Assert.True(_driver.Exists(Leaf));
        Assert.Equal(dirs.Select(d => Path.Combine(d, "cgroup.procs")), _driver.ProcsFiles(Leaf));
    }

    [CgroupV1Fact]
    public void Create_MissingController_ErrorsNamingItAndCreatesNothing()
    {
        var ex = Assert.Throws<ContainerException>(() => _driver.Create(Leaf, new[] { "memory", "rdma_nope" }));
        Assert.Equal("CgroupControllerUnavailable", ex.ErrorId);
        Assert.Contains("rdma_nope", ex.Message);
        Assert.False(_driver.Exists(_name));
    }

    [CgroupV1Fact]
    public void Create_CpusetInheritsCpusAndMems_SoAProcessCanJoin()
    {
        var cpusetRoot = _driver.Mounts["cpuset"];
        _driver.Create(Leaf, Array.Empty<string>());
        foreach (var file in new[] { "cpuset.cpus", "cpuset.mems" })
        {
            var expected = File.ReadAllText(Path.Combine(cpusetRoot, file)).Trim();
            Assert.NotEqual("", expected);
            Assert.Equal(expected, File.ReadAllText(Path.Combine(cpusetRoot, _name, file)).Trim());
            Assert.Equal(expected, File.ReadAllText(Path.Combine(cpusetRoot, Leaf, file)).Trim());
        }
        var p = StartInCgroup(Leaf);
        Assert.Equal("/" + Leaf, ControllerPath(p.Pid, "cpuset"));
        Assert.Equal("/" + Leaf, ControllerPath(p.Pid, "memory"));
        Assert.Equal("/" + Leaf, ControllerPath(p.Pid, "freezer"));
        Assert.Equal(new[] { p.Pid }, _driver.Pids(Leaf));
    }

    [CgroupV1Fact]
    public void FreezeThaw_ThroughFreezerState()
    {
        _driver.Create(Leaf, Array.Empty<string>());
        var p = StartInCgroup(Leaf);
        var state = Path.Combine(_driver.Mounts["freezer"], Leaf, "freezer.state");
        Assert.True(_driver.CanFreeze);
        Assert.False(_driver.IsFrozen(Leaf));
        Assert.Equal("THAWED", File.ReadAllText(state).Trim());

        _driver.Freeze(Leaf, TimeSpan.FromSeconds(5));
        Assert.True(_driver.IsFrozen(Leaf));
        Assert.Equal("FROZEN", File.ReadAllText(state).Trim());
        Assert.False(p.Process.HasExited);

        _driver.Thaw(Leaf);
        Assert.False(_driver.IsFrozen(Leaf));
        Assert.Equal("THAWED", File.ReadAllText(state).Trim());
        Assert.False(p.Process.HasExited);
    }

    [CgroupV1Fact]
    public void KillAll_KillsEveryProcess_AlsoWhenFrozen()
    {
        _driver.Create(Leaf, Array.Empty<string>());
        var a = StartInCgroup(Leaf);
        var b = StartInCgroup(Leaf);
        Assert.Equal(new[] { a.Pid, b.Pid }.Order(), _driver.Pids(Leaf).Order());
        _driver.Freeze(Leaf, TimeSpan.FromSeconds(5));

        _driver.KillAll(Leaf);

        Assert.True(a.WaitForExit(TimeSpan.FromSeconds(5)), "a survived KillAll");
        Assert.True(b.WaitForExit(TimeSpan.FromSeconds(5)), "b survived KillAll");
        Assert.Empty(_driver.Pids(Leaf));
        Assert.True(_driver.Remove(Leaf));
    }

    [CgroupV1Fact]
    public void MemoryLimit_WrittenToLimitInBytes_AndReadBack()
    {
        _driver.Create(Leaf, new[] { "memory" });
        var file = Path.Combine(_driver.Mounts["memory"], Leaf, "memory.limit_in_bytes");
        Assert.Null(_driver.GetMemoryMax(Leaf));

        _driver.SetMemoryMax(Leaf, 268435456);
        Assert.Equal("268435456", File.ReadAllText(file).Trim());
        Assert.Equal(268435456L, _driver.GetMemoryMax(Leaf));

        _driver.SetMemoryMax(Leaf, null);
        Assert.Equal(long.MaxValue & ~0xFFFL, long.Parse(File.ReadAllText(file).Trim()));
        Assert.Null(_driver.GetMemoryMax(Leaf));
    }

    [CgroupV1Fact]
    public void Remove_RemovesFromEveryHierarchy_AndFailsWhilePopulated()
    {
        _driver.Create(Leaf, Array.Empty<string>());
        // Only in the freezer hierarchy, so only that rmdir stays busy (each waits 2 s before giving up).
        var p = new Sleeper();
        _processes.Add(p);
        File.WriteAllText(Path.Combine(_driver.Mounts["freezer"], Leaf, "cgroup.procs"), p.Pid.ToString());
        Assert.False(_driver.Remove(Leaf));
        Assert.True(_driver.Exists(Leaf));
        Assert.True(Directory.Exists(Path.Combine(_driver.Mounts["freezer"], Leaf)));
        Assert.False(Directory.Exists(Path.Combine(_driver.Mounts["memory"], Leaf)));

        p.Dispose();
        Assert.True(_driver.Remove(Leaf));
        Assert.True(_driver.Remove(_name));
        foreach (var root in Roots)
            Assert.False(Directory.Exists(Path.Combine(root, _name)), $"left behind in {root}");
        Assert.False(_driver.Exists(_name));
    }
}
