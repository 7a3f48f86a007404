using System.Diagnostics;
using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// The host's real cgroup2 mount (/sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup on a pure
/// v2 one): eBPF device rules, hugetlb, the accounting controllers of a container's cgroups, freeze
/// and the plain cgroup cmdlets, on test cgroups of their own (removed even on failure).
/// </summary>
[Collection("Containers")]
public sealed class CgroupUnifiedTests : IDisposable
{
    private static readonly string Unified = HostCgroups.V2Mount;
    private readonly string _name = "psc-test-cg-" + Guid.NewGuid().ToString("N")[..8];
    private readonly List<Process> _processes = new();
    private readonly TestStore _store = new();
    private string? _rootSubtreeBefore;

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) p.Kill(); p.WaitForExit(2000); } catch (Exception) { }
            p.Dispose();
        }
        var host = CgroupManager.ForHost();
        foreach (var dir in host.Directories(_name).Concat(new[] { Path.Combine(Unified, _name) }).Distinct())
            foreach (var d in Directory.Exists(dir) ? Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories).Reverse().Append(dir) : Array.Empty<string>())
            {
                try { foreach (var pid in File.ReadAllLines(Path.Combine(d, "cgroup.procs"))) Sys.Kill(int.Parse(pid), 9); } catch (Exception) { }
                for (var i = 0; i < 100 && Directory.Exists(d); i++)
                    try { Directory.Delete(d); } catch (IOException) { Thread.Sleep(10); }
            }
        // Put the root's subtree_control back as we found it (controllers these tests enabled there).
        if (_rootSubtreeBefore is not null)
            foreach (var c in File.ReadAllText(Path.Combine(Unified, "cgroup.subtree_control")).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                         .Except(_rootSubtreeBefore.Split(' ')))
                try { File.WriteAllText(Path.Combine(Unified, "cgroup.subtree_control"), "-" + c); } catch (IOException) { }
        _store.Dispose();
    }

    /// <summary>A shell waiting for a line on stdin, then running <paramref name="script"/>.</summary>
    private Process Waiting(string script)
    {
        var p = new Process
        {
            StartInfo = new ProcessStartInfo("/bin/sh", new[] { "-c", "read x; " + script })
            {
                RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            },
        };
        p.Start();
        _processes.Add(p);
        return p;
    }

    private static string[] Finish(Process p)
    {
        p.StandardInput.WriteLine("go");
        p.StandardInput.Close();
        var output = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(10_000));
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    private const string DeviceProbe =
        "if echo x > /dev/null; then echo NULL-OK; else echo NULL-DENIED; fi; if [ \"$(head -c 1 /dev/zero | wc -c)\" = 1 ]; then echo ZERO-OK; else echo ZERO-DENIED; fi";

    [Fact]
    public void V2DeviceProgram_DeniesDevNull_KeepsDevZero_AndReadsBack()
    {
        Assert.True(CgroupDeviceProgram.IsCgroup2(Unified));
        // A v2-only manager on the real unified mount: device rules become an eBPF program.
        var v2 = new CgroupManager(null, new CgroupV2Driver(Unified));
        v2.Create(_name, Array.Empty<string>());
        var plan = v2.ApplyLimits(_name, new CgroupLimits { Devices = { DeviceRule.Parse("c 1:3 rwm", allow: false) } });
        Assert.NotNull(Assert.Single(plan).DeviceProgram);

        var denied = Waiting(DeviceProbe);
        File.WriteAllText(Path.Combine(Unified, _name, "cgroup.procs"), denied.Id.ToString());
        Assert.Equal(new[] { "NULL-DENIED", "ZERO-OK" }, Finish(denied));
        Assert.Contains("Operation not permitted", denied.StandardError.ReadToEnd());

        Assert.Equal(new[] { "deny c 1:3 rwm" }, v2.ReadLimits(_name).Devices.Select(d => d.ToString()));

        // Allowing again appends to the rules in force (the program is replaced, not stacked).
        v2.ApplyLimits(_name, new CgroupLimits { Devices = { DeviceRule.Parse("c 1:3 rw", allow: true) } });
        Assert.Equal(new[] { "deny c 1:3 rwm", "allow c 1:3 rw" }, v2.ReadLimits(_name).Devices.Select(d => d.ToString()));
        var allowed = Waiting(DeviceProbe);
        File.WriteAllText(Path.Combine(Unified, _name, "cgroup.procs"), allowed.Id.ToString());
        Assert.Equal(new[] { "NULL-OK", "ZERO-OK" }, Finish(allowed));
    }

    [Fact]
    public void V2DeviceProgram_DenyAllThenAllowOne()
    {
        var v2 = new CgroupManager(null, new CgroupV2Driver(Unified));
        v2.Create(_name, Array.Empty<string>());
        v2.ApplyLimits(_name, new CgroupLimits { Devices = { DeviceRule.Parse("a", false), DeviceRule.Parse("c 1:5 r", true) } });
        Assert.Equal(new[] { "deny a *:* rwm", "allow c 1:5 r" }, v2.ReadLimits(_name).Devices.Select(d => d.ToString()));
        var p = Waiting(DeviceProbe);
        File.WriteAllText(Path.Combine(Unified, _name, "cgroup.procs"), p.Id.ToString());
        Assert.Equal(new[] { "NULL-DENIED", "ZERO-OK" }, Finish(p));
    }

    [CgroupV2ControllerFact("hugetlb")]
    public void Hugetlb_OnTheRealUnifiedTree_ThroughTheCmdlets()
    {
        _rootSubtreeBefore = File.ReadAllText(Path.Combine(Unified, "cgroup.subtree_control")).Trim();
        using var ps = _store.OpenSession();
        ps.Run("New-Cgroup -Path $args[0]", _name);
        var report = (CgroupLimitReport)ps.Run("Set-CgroupLimit -Path $args[0] -HugetlbMax @{ '2MB' = '4M' } -PassThru", _name).Single().BaseObject;
        Assert.Equal("4194304", File.ReadAllText(Path.Combine(Unified, _name, "hugetlb.2MB.max")).Trim());
        Assert.Equal(4L << 20, report.HugetlbMax["2MB"].Value);
        Assert.Equal("v2", report.ControllerVersions["hugetlb"]);
    }

    [Fact]
    public void ContainerCgroups_GetTheAccountingControllersTheTreeHas_BeforeAnyProcess()
    {
        // A v2-only manager on the real cgroup2 mount: whatever of memory, pids, cpu and io it offers
        // (hybrid: usually none, they are bound to v1; pure v2: all) is on for the inner cgroup, with
        // no limit asking for it, and nothing it lacks is an error.
        _rootSubtreeBefore = File.ReadAllText(Path.Combine(Unified, "cgroup.subtree_control")).Trim();
        var v2 = new CgroupManager(null, new CgroupV2Driver(Unified));
        v2.CreateContainer(_name, new CgroupLimits());
        var inner = Path.Combine(Unified, _name, CgroupManager.InnerName);
        var innerControllers = File.ReadAllText(Path.Combine(inner, "cgroup.controllers")).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var expected = CgroupManager.AccountingControllers.Intersect(HostCgroups.V2RootControllers).Order().ToArray();
        Assert.Equal(expected, innerControllers.Intersect(CgroupManager.AccountingControllers).Order().ToArray());
        if (expected.Contains("memory"))
        {
            // Charged from the first moment: a process in the inner cgroup shows in the outer one's memory.current.
            var p = Waiting("cat /proc/self/status > /dev/null; head -c 4000000 /dev/zero | tail -c 1 > /dev/null");
            File.WriteAllText(Path.Combine(inner, "cgroup.procs"), p.Id.ToString());
            Finish(p);
            Assert.True(v2.Measure(_name).MemoryCurrent > 0, "memory.current of the outer cgroup");
        }
        Assert.True(v2.RemoveContainer(_name));
        Assert.False(Directory.Exists(Path.Combine(Unified, _name)));
    }

    [Fact]
    public void PlainCgroup_NewAddFreezeThawListRemove()
    {
        using var ps = _store.OpenSession();
        var created = (CgroupInfo)ps.Run("New-Cgroup $args[0]", _name).Single().BaseObject;
        Assert.Equal("/" + _name, created.Path);
        Assert.Contains("unified", created.Controllers);
        // Hybrid: the v1 hierarchies hold it too; pure v2: the one tree is all there is.
        if (HostCgroups.IsUnified) Assert.Equal(new[] { "unified" }, created.Controllers);
        else Assert.Contains(created.Controllers, c => c.Contains("memory"));

        var sleeper = Process.Start("/bin/sleep", "60");
        _processes.Add(sleeper);
        ps.Run("Add-CgroupProcess -Path $args[0] -Id $args[1]", _name, sleeper.Id);
        Assert.Contains(ProcessNamespaces.ReadCgroups(sleeper.Id), c => c.HierarchyId == 0 && c.Path == "/" + _name);
        if (!HostCgroups.IsUnified)
            Assert.Contains(ProcessNamespaces.ReadCgroups(sleeper.Id), c => c.Controllers.Contains("pids") && c.Path == "/" + _name);
        else Assert.Equal(new[] { "0::/" + _name }, File.ReadAllLines($"/proc/{sleeper.Id}/cgroup"));

        ps.Run("Suspend-Cgroup $args[0]", _name);
        var frozen = (CgroupInfo)ps.Run("Get-Cgroup $args[0]", _name).Single().BaseObject;
        Assert.True(frozen.Frozen);
        Assert.Equal(new[] { sleeper.Id }, frozen.Pids);
        ps.Run("Resume-Cgroup $args[0]", _name);
        Assert.False(((CgroupInfo)ps.Run("Get-Cgroup $args[0]", _name).Single().BaseObject).Frozen);
        // Tab completion offers it.
        var completions = ps.Run("(TabExpansion2 -inputScript $args[0] -cursorColumn $args[0].Length).CompletionMatches | ForEach-Object CompletionText",
            "Suspend-Cgroup " + _name[..^3]).Select(o => o.ToString());
        Assert.Contains(_name, completions);
        // lscgroup-like listing with a wildcard finds it.
        Assert.Contains(ps.Run("Get-Cgroup 'psc-test-cg-*'").Select(o => ((CgroupInfo)o.BaseObject).Path), p => p == "/" + _name);

        // A cgroup with processes is only removed with -Force.
        var busy = ps.Invoke("Remove-Cgroup $args[0] -Confirm:$false", _name);
        Assert.Equal("CgroupBusy", busy.SingleError.FullyQualifiedErrorId.Split(',')[0]);
        ps.Run("Remove-Cgroup $args[0] -Force -Confirm:$false", _name);
        Assert.False(CgroupManager.ForHost().Exists(_name));
        Assert.True(sleeper.WaitForExit(5000));
    }

    [Fact]
    public void PlainCgroup_Errors()
    {
        using var ps = _store.OpenSession();
        Assert.Equal("CgroupNotFound", ps.Invoke("Suspend-Cgroup $args[0]", _name).SingleError.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Equal("InvalidCgroupPath", ps.Invoke("New-Cgroup '../etc'").SingleError.FullyQualifiedErrorId.Split(',')[0]);
        ps.Run("New-Cgroup $args[0]", _name);
        Assert.Equal("CgroupExists", ps.Invoke("New-Cgroup $args[0]", _name).SingleError.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Equal("ProcessNotFound", ps.Invoke("Add-CgroupProcess $args[0] -Id 999999999", _name).SingleError.FullyQualifiedErrorId.Split(',')[0]);
        // net_cls is not mounted on this host: the error names it.
        var netcls = ps.Invoke("Set-CgroupLimit -Path $args[0] -NetClassId 0x100001", _name).SingleError;
        Assert.Equal("CgroupControllerUnavailable", netcls.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Contains("net_cls", netcls.Exception.Message);
    }

    private static string? TryLink(string path)
    {
        try { return new FileInfo(path).LinkTarget; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    [Fact]
    public void ProcessNamespace_OfThisProcess_ComparesWithPid1()
    {
        using var ps = _store.OpenSession();
        var ns = ps.Run("Get-ProcessNamespace -Id $args[0]", Environment.ProcessId).Select(o => (ProcessNamespace)o.BaseObject).ToList();
        var types = ns.Select(n => n.Type).ToList();
        foreach (var t in new[] { "mnt", "net", "pid", "uts", "ipc", "user", "cgroup" }) Assert.Contains(t, types);
        var net = ns.Single(n => n.Type == "net");
        Assert.Equal(new FileInfo($"/proc/{Environment.ProcessId}/ns/net").LinkTarget, net.Link);
        // pid 1 may be unreadable (a sandbox): then whether it differs is unknown, never guessed.
        var initLink = new FileInfo("/proc/1/ns/net").Exists ? TryLink("/proc/1/ns/net") : null;
        Assert.Equal(initLink is null ? null : initLink != net.Link, net.Isolated);
        // Compared with ourselves, nothing is isolated.
        var self = ps.Run("Get-ProcessNamespace -Id $args[0] -ReferenceId $args[0]", Environment.ProcessId).Select(o => (ProcessNamespace)o.BaseObject);
        Assert.All(self, n => Assert.False(n.Isolated));
        var only = ps.Run("Get-ProcessNamespace -Type net,uts").Select(o => ((ProcessNamespace)o.BaseObject).Type);
        Assert.Equal(new[] { "net", "uts" }, only.Order());
        Assert.Equal("ProcessNotFound", ps.Invoke("Get-ProcessNamespace -Id 999999999").SingleError.FullyQualifiedErrorId.Split(',')[0]);
    }
}
