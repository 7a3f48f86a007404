using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Native;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>The v2 driver against a fake tree of plain files (controller delegation, limits).</summary>
public sealed class CgroupV2DriverFakeTests : IDisposable
{
    private readonly TempDir _tree = new();

    public CgroupV2DriverFakeTests()
    {
        _tree.Write("cgroup.controllers", "cpu io memory pids");
        _tree.Write("cgroup.subtree_control", "");
    }

    public void Dispose() => _tree.Dispose();

    /// <summary>What the kernel shows in a child once its parent delegated controllers to it.</summary>
    private void FakeChild(string path, string controllers)
    {
        _tree.Write(Path.Combine(path, "cgroup.controllers"), controllers);
        _tree.Write(Path.Combine(path, "cgroup.subtree_control"), "");
    }

    [Fact]
    public void ReadsControllersOfTheRoot()
    {
        var driver = new CgroupV2Driver(_tree.Path);
        Assert.Equal(new[] { "cpu", "io", "memory", "pids" }, driver.Controllers.Order());
        Assert.Equal("v2", driver.Version);
    }

    [Fact]
    public void Create_EnablesExactlyTheRequestedControllersInEveryAncestor()
    {
        FakeChild("a", "memory pids");
        FakeChild("a/b", "memory pids");
        var driver = new CgroupV2Driver(_tree.Path);

        driver.Create("a/b/c", new[] { "memory", "pids" });

        Assert.True(Directory.Exists(_tree.Combine("a", "b", "c")));
        Assert.True(driver.Exists("a/b/c"));
        Assert.Equal("+memory +pids", _tree.Read("cgroup.subtree_control"));
        Assert.Equal("+memory +pids", _tree.Read("a/cgroup.subtree_control"));
        Assert.Equal("+memory +pids", _tree.Read("a/b/cgroup.subtree_control"));
        // Never in the leaf: a cgroup with processes cannot enable controllers for children.
        Assert.False(File.Exists(_tree.Combine("a", "b", "c", "cgroup.subtree_control")));
    }

    [Fact]
    public void Create_SingleController_WritesOnlyThatOne()
    {
        FakeChild("p", "memory");
        var driver = new CgroupV2Driver(_tree.Path);
        driver.Create("p/c", new[] { "memory" });
        Assert.Equal("+memory", _tree.Read("cgroup.subtree_control"));
        Assert.Equal("+memory", _tree.Read("p/cgroup.subtree_control"));
    }

    [Fact]
    public void Create_SkipsControllersAlreadyEnabled()
    {
        _tree.Write("cgroup.subtree_control", "memory");
        FakeChild("p", "memory pids");
        var driver = new CgroupV2Driver(_tree.Path);
        driver.Create("p/c", new[] { "memory", "pids" });
        // The kernel would now show "memory pids"; the driver wrote only the missing one.
        Assert.Equal("+pids", _tree.Read("cgroup.subtree_control"));
        Assert.Equal("+memory +pids", _tree.Read("p/cgroup.subtree_control"));
    }

    [Fact]
    public void Create_WithoutControllers_TouchesNoSubtreeControl()
    {
        var driver = new CgroupV2Driver(_tree.Path);
        driver.Create("x/y", Array.Empty<string>());
        Assert.True(Directory.Exists(_tree.Combine("x", "y")));
        Assert.Equal("", _tree.Read("cgroup.subtree_control"));
    }

    [Fact]
    public void Create_ControllerMissingAtRoot_ErrorsNamingIt_AndCreatesNothing()
    {
        var driver = new CgroupV2Driver(_tree.Path);
        var ex = Assert.Throws<ContainerException>(() => driver.Create("p/c", new[] { "memory", "hugetlb" }));
        Assert.Equal("CgroupControllerUnavailable", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.NotInstalled, ex.Kind);
        Assert.Contains("hugetlb", ex.Message);
        Assert.DoesNotContain("memory,", ex.Message);
        Assert.False(Directory.Exists(_tree.Combine("p")));
        Assert.Equal("", _tree.Read("cgroup.subtree_control"));
    }

    [Fact]
    public void Create_ControllerNotDelegatedToIntermediate_ErrorsNamingItAndTheDirectory()
    {
        FakeChild("p", "memory"); // pids was not delegated to p
        var driver = new CgroupV2Driver(_tree.Path);
        var ex = Assert.Throws<ContainerException>(() => driver.Create("p/c", new[] { "memory", "pids" }));
        Assert.Equal("CgroupControllerUnavailable", ex.ErrorId);
        Assert.Contains("pids", ex.Message);
        Assert.Contains(_tree.Combine("p"), ex.Message);
        Assert.False(Directory.Exists(_tree.Combine("p", "c")));
    }

    [Fact]
    public void SetMemoryMax_WritesBytesAndMax_GetMemoryMaxReadsBack()
    {
        var driver = new CgroupV2Driver(_tree.Path);
        driver.Create("c", Array.Empty<string>());
        _tree.Write("c/memory.max", "max");
        Assert.Null(driver.GetMemoryMax("c"));

        driver.SetMemoryMax("c", 268435456);
        Assert.Equal("268435456", _tree.Read("c/memory.max"));
        Assert.Equal(268435456L, driver.GetMemoryMax("c"));

        driver.SetMemoryMax("c", null);
        Assert.Equal("max", _tree.Read("c/memory.max"));
        Assert.Null(driver.GetMemoryMax("c"));

        driver.SetMemoryMax("c", 1048576);
        Assert.Equal("1048576", _tree.Read("c/memory.max"));
        Assert.Equal(1048576L, driver.GetMemoryMax("c"));
    }

    [Fact]
    public void SetMemoryMax_OnMissingCgroup_IsACgroupWriteError()
    {
        var driver = new CgroupV2Driver(_tree.Path);
        var ex = Assert.Throws<ContainerException>(() => driver.SetMemoryMax("nope", 1));
        Assert.Equal("CgroupWriteFailed", ex.ErrorId);
        Assert.Contains("memory.max", ex.Message);
    }

    [Fact]
    public void IsFrozen_ReadsFrozenLineOfCgroupEvents()
    {
        var driver = new CgroupV2Driver(_tree.Path);
        driver.Create("c", Array.Empty<string>());
        Assert.False(driver.IsFrozen("c")); // no cgroup.events at all
        _tree.Write("c/cgroup.events", "populated 1\nfrozen 0\n");
        Assert.False(driver.IsFrozen("c"));
        _tree.Write("c/cgroup.events", "populated 1\nfrozen 1\n");
        Assert.True(driver.IsFrozen("c"));
    }

    [Fact]
    public void Freeze_TimesOut_ThawsAgainAndReportsFreezeTimeout()
    {
        var driver = new CgroupV2Driver(_tree.Path);
        driver.Create("c", Array.Empty<string>());
        _tree.Write("c/cgroup.freeze", "0");
        _tree.Write("c/cgroup.events", "populated 1\nfrozen 0\n"); // a fake never freezes
        var ex = Assert.Throws<ContainerException>(() => driver.Freeze("c", TimeSpan.FromMilliseconds(100)));
        Assert.Equal("FreezeTimeout", ex.ErrorId);
        Assert.Equal("0", _tree.Read("c/cgroup.freeze"));
    }
}

/// <summary>The v2 driver against the real cgroup2 tree of this host, with a real process.</summary>
[Collection("Containers")]
public sealed class CgroupV2DriverRealTests : IDisposable
{
    private readonly string _mount;
    private readonly string _parent = "psc-test-" + Guid.NewGuid().ToString("N");
    private readonly CgroupV2Driver _driver;
    private readonly List<Sleeper> _processes = new();

    public CgroupV2DriverRealTests()
    {
        _mount = CgroupLayout.Detect().UnifiedMount ?? throw new InvalidOperationException("this host has no cgroup2 mount");
        _driver = new CgroupV2Driver(_mount);
    }

    private string Leaf => _parent + "/c1";

    public void Dispose()
    {
        foreach (var p in _processes) p.Dispose();
        foreach (var dir in new[] { Path.Combine(_mount, Leaf), Path.Combine(_mount, _parent) })
        {
            if (!Directory.Exists(dir)) continue;
            try { CgroupFiles_Write(Path.Combine(dir, "cgroup.freeze"), "0"); } catch (Exception) { }
            foreach (var pid in CgroupPids(dir)) try { Sys.Kill(pid, 9); } catch (Exception) { }
            for (var i = 0; i < 200 && Directory.Exists(dir); i++)
                try { Directory.Delete(dir); } catch (IOException) { Thread.Sleep(10); }
        }
    }

    private static void CgroupFiles_Write(string file, string value)
    {
        if (File.Exists(file)) File.WriteAllText(file, value);
    }

    private static IEnumerable<int> CgroupPids(string dir)
    {
        var procs = Path.Combine(dir, "cgroup.procs");
        return File.Exists(procs) ? File.ReadAllLines(procs).Where(l => l.Length > 0).Select(int.Parse).ToArray() : Array.Empty<int>();
    }

    private Sleeper StartInCgroup()
    {
        var p = new Sleeper();
        _processes.Add(p);
        foreach (var procs in _driver.ProcsFiles(Leaf)) File.WriteAllText(procs, p.Pid.ToString());
        return p;
    }

    private string Events => File.ReadAllText(Path.Combine(_mount, Leaf, "cgroup.events"));

    [Fact]
    public void Lifecycle_CreateAttachFreezeThawKillRemove()
    {
        _driver.Create(Leaf, Array.Empty<string>());
        Assert.True(Directory.Exists(Path.Combine(_mount, Leaf)));
        Assert.True(_driver.Exists(Leaf));
        Assert.Equal(new[] { Path.Combine(_mount, Leaf) }, _driver.Directories(Leaf));
        Assert.Empty(_driver.Pids(Leaf));

        var p = StartInCgroup();
        Assert.Equal(new[] { p.Pid }, _driver.Pids(Leaf));
        Assert.Contains($"0::/{Leaf}", File.ReadAllLines($"/proc/{p.Pid}/cgroup"));
        Assert.False(_driver.IsFrozen(Leaf));

        _driver.Freeze(Leaf, TimeSpan.FromSeconds(5));
        Assert.True(_driver.IsFrozen(Leaf));
        Assert.Contains("frozen 1", Events.Split('\n'));
        Assert.False(p.Process.HasExited);

        _driver.Thaw(Leaf);
        Assert.True(CgroupFilesWait(() => !_driver.IsFrozen(Leaf)));
        Assert.Contains("frozen 0", Events.Split('\n'));

        _driver.KillAll(Leaf);
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(5)), "the process in the cgroup survived KillAll");
        Assert.Equal(137, p.Process.ExitCode); // 128 + SIGKILL
        Assert.True(CgroupFilesWait(() => _driver.Pids(Leaf).Count == 0));

        Assert.True(_driver.Remove(Leaf));
        Assert.False(Directory.Exists(Path.Combine(_mount, Leaf)));
        Assert.False(_driver.Exists(Leaf));
        Assert.True(_driver.Remove(_parent));
        Assert.False(Directory.Exists(Path.Combine(_mount, _parent)));
    }

    [Fact]
    public void KillAll_KillsAFrozenCgroup()
    {
        _driver.Create(Leaf, Array.Empty<string>());
        var a = StartInCgroup();
        var b = StartInCgroup();
        Assert.Equal(new[] { a.Pid, b.Pid }.Order(), _driver.Pids(Leaf).Order());
        _driver.Freeze(Leaf, TimeSpan.FromSeconds(5));
        _driver.KillAll(Leaf);
        Assert.True(a.WaitForExit(TimeSpan.FromSeconds(5)));
        Assert.True(b.WaitForExit(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void Remove_OfAPopulatedCgroup_FailsAndKeepsIt()
    {
        _driver.Create(Leaf, Array.Empty<string>());
        StartInCgroup();
        Assert.False(_driver.Remove(Leaf));
        Assert.True(Directory.Exists(Path.Combine(_mount, Leaf)));
    }

    [Fact]
    public void Create_ControllerNotDelegatedOnThisHost_FailsAndCreatesNothing()
    {
        // On this hybrid host memory is bound to v1, so the cgroup2 root does not offer it.
        var controller = _driver.Controllers.Contains("memory") ? "no_such_controller" : "memory";
        var ex = Assert.Throws<ContainerException>(() => _driver.Create(Leaf, new[] { controller }));
        Assert.Equal("CgroupControllerUnavailable", ex.ErrorId);
        Assert.Contains(controller, ex.Message);
        Assert.False(Directory.Exists(Path.Combine(_mount, _parent)));
    }

    private static bool CgroupFilesWait(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) return false;
            Thread.Sleep(10);
        }
        return true;
    }
}
