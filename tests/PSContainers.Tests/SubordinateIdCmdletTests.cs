using System.Management.Automation;
using PSContainers.Runtime.IdMapping;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.HostCheck;

namespace PSContainers.Tests;

/// <summary>
/// The subordinate-id cmdlets and Test-ContainerHost on the REAL /etc/subuid and /etc/subgid, for
/// a real account made for the test: what they write is what shadow-utils' getsubids and
/// newuidmap read, and removing the ranges leaves both files byte-identical to before.
/// </summary>
[Collection("Containers")]
public sealed class SubordinateIdCmdletTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;
    private readonly HostTestUser _user = new();
    private readonly byte[] _subuidBefore, _subgidBefore;

    public SubordinateIdCmdletTests()
    {
        _ps = _store.OpenSession();
        _subuidBefore = File.ReadAllBytes("/etc/subuid");
        _subgidBefore = File.ReadAllBytes("/etc/subgid");
    }

    public void Dispose()
    {
        // Whatever the test left for its user goes, even after a failure.
        try { new SubordinateIdDatabase().Remove(_user.Name); } catch (PSContainers.Runtime.ContainerException) { }
        _user.Dispose();
        _ps.Dispose();
        _store.Dispose();
    }

    private HostCheckFinding Finding(string name, string? user = null) =>
        _ps.Run("Test-ContainerHost -User $args[0]", user ?? _user.Name).Select(o => (HostCheckFinding)o.BaseObject).Single(f => f.Name == name);

    [Fact]
    public void AddGetRemove_OnTheRealFiles_ReadByGetsubidsAndNewuidmap_AndLeaveTheFilesByteIdentical()
    {
        // Before: no range, so the preflight fails with what to do.
        var missing = Finding("subuid range");
        Assert.Equal(HostCheckStatus.Fail, missing.Status);
        Assert.Contains($"Add-SubordinateIdRange -User {_user.Name}", missing.Remedy);
        Assert.Equal(HostCheckStatus.Fail, Finding("subgid range").Status);

        // -WhatIf writes nothing.
        Assert.Empty(_ps.Run("Add-SubordinateIdRange -User $args[0] -WhatIf", _user.Name));
        Assert.Equal(_subuidBefore, File.ReadAllBytes("/etc/subuid"));

        var added = _ps.Run("Add-SubordinateIdRange -User $args[0]", _user.Name).Select(o => (SubordinateIdRange)o.BaseObject).ToList();
        Assert.Equal(new[] { SubordinateIdKind.Uid, SubordinateIdKind.Gid }, added.Select(r => r.Kind));
        Assert.All(added, r => Assert.Equal((_user.Name, 65536u), (r.User, r.Count)));
        var start = added[0].Start;
        Assert.Equal(start, added[1].Start);
        Assert.InRange(start, 100000u, 600100000u - 65535);

        // shadow-utils' own reader (libsubid) sees exactly that.
        Assert.Equal($"0: {_user.Name} {start} 65536", HostCommand.Run("getsubids", _user.Name));
        Assert.Equal($"0: {_user.Name} {start} 65536", HostCommand.Run("getsubids", "-g", _user.Name));
        // No overlap with anyone else's range in either file.
        foreach (var kind in SubordinateIdDatabase.BothKinds)
        {
            var all = new SubordinateIdDatabase().GetRanges(kind).OrderBy(r => r.Start).ToList();
            for (int i = 1; i < all.Count; i++) Assert.True(all[i].Start > all[i - 1].End, $"{all[i - 1]} overlaps {all[i]}");
        }

        // newuidmap, run by the user itself, accepts the range for a user namespace it created.
        var (code, output, error) = _user.Run(
            "unshare --user sleep 30 & p=$!; " +
            "while [ \"$(readlink /proc/$p/ns/user)\" = \"$(readlink /proc/self/ns/user)\" ]; do sleep 0.01; done; " +
            $"newuidmap $p 0 {start} 65536 && newgidmap $p 0 {start} 65536 && cat /proc/$p/uid_map /proc/$p/gid_map; r=$?; kill $p; exit $r");
        Assert.True(code == 0, $"newuidmap/newgidmap failed ({code}): {error}");
        var maps = output.Split('\n').Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))).ToList();
        Assert.Equal(new[] { $"0 {start} 65536", $"0 {start} 65536" }, maps);

        // Adding again without -Start keeps the range; the preflight passes now.
        var again = _ps.Run("Add-SubordinateIdRange -User $args[0]", _user.Name).Select(o => (SubordinateIdRange)o.BaseObject).ToList();
        Assert.All(again, r => Assert.Equal(start, r.Start));
        Assert.Equal(HostCheckStatus.Pass, Finding("subuid range").Status);
        Assert.Equal(HostCheckStatus.Pass, Finding("subgid range").Status);

        // Get by name, and the pipeline into Remove, range by range.
        var got = _ps.Run("Get-SubordinateIdRange -User $args[0]", _user.Name).Select(o => (SubordinateIdRange)o.BaseObject).ToList();
        Assert.Equal(added.Select(r => (r.Kind, r.Start, r.Count)), got.Select(r => (r.Kind, r.Start, r.Count)));
        var removed = _ps.Run("Get-SubordinateIdRange -User $args[0] | Remove-SubordinateIdRange -PassThru", _user.Name);
        Assert.Equal(2, removed.Count);

        Assert.Equal(_subuidBefore, File.ReadAllBytes("/etc/subuid"));
        Assert.Equal(_subgidBefore, File.ReadAllBytes("/etc/subgid"));
        Assert.False(File.Exists("/etc/subuid.lock"));
    }

    [Fact]
    public void Errors_AreRecordsWithIdsCategoriesAndTargets()
    {
        var noUser = _ps.Invoke("Add-SubordinateIdRange -User psc-test-nosuchuser").SingleError;
        Assert.Equal("UserNotFound,PSContainers.Cmdlets.AddSubordinateIdRangeCommand", noUser.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ObjectNotFound, noUser.CategoryInfo.Category);
        Assert.Equal("psc-test-nosuchuser", noUser.TargetObject);

        var notFound = _ps.Invoke("Remove-SubordinateIdRange -User $args[0]", _user.Name).SingleError;
        Assert.Equal("SubordinateIdRangeNotFound,PSContainers.Cmdlets.RemoveSubordinateIdRangeCommand", notFound.FullyQualifiedErrorId);

        // An overlap with another user's range: refused, naming the line, files untouched.
        using var other = new HostTestUser();
        try
        {
            var first = (SubordinateIdRange)_ps.Run("Add-SubordinateIdRange -User $args[0] -Kind Uid -Count 10", other.Name)[0].BaseObject;
            var before = File.ReadAllBytes("/etc/subuid");
            var overlap = _ps.Invoke("Add-SubordinateIdRange -User $args[0] -Kind Uid -Start $args[1] -Count 10", _user.Name, first.Start + 5).SingleError;
            Assert.Equal("SubordinateIdRangeOverlap,PSContainers.Cmdlets.AddSubordinateIdRangeCommand", overlap.FullyQualifiedErrorId);
            Assert.Equal(ErrorCategory.ResourceExists, overlap.CategoryInfo.Category);
            Assert.Contains($"line {first.Line} of /etc/subuid", overlap.Exception.Message);
            Assert.Equal(before, File.ReadAllBytes("/etc/subuid"));
        }
        finally { new SubordinateIdDatabase().Remove(other.Name, kinds: SubordinateIdKind.Uid); }
        Assert.Equal(_subuidBefore, File.ReadAllBytes("/etc/subuid"));
    }

    /// <summary>While we hold /etc/subuid's lock, shadow-utils' usermod cannot write it (and says why).</summary>
    [Fact]
    public void OurLock_KeepsUsermodOut()
    {
        using (ShadowLock.Acquire(new[] { "/etc/subuid" }, passwdLock: null, TimeSpan.FromSeconds(5)))
        {
            var psi = new System.Diagnostics.ProcessStartInfo("usermod") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "--add-subuids", "700000-700009", _user.Name }) psi.ArgumentList.Add(a);
            using var p = System.Diagnostics.Process.Start(psi)!;
            var error = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.NotEqual(0, p.ExitCode);
            Assert.Contains("/etc/subuid", error);
        }
        Assert.Equal(_subuidBefore, File.ReadAllBytes("/etc/subuid"));
        Assert.False(File.Exists("/etc/subuid.lock"));

        // And once released, usermod's own change is one we read back.
        HostCommand.Run("usermod", "--add-subuids", "700000-700009", _user.Name);
        var r = Assert.Single(new SubordinateIdDatabase().GetRanges(_user.Name, _user.Uid, SubordinateIdKind.Uid));
        Assert.Equal((700000u, 10u), (r.Start, r.Count));
    }

    [Fact]
    public void TestContainerHost_ReportsThisHost()
    {
        var findings = _ps.Run("Test-ContainerHost").Select(o => (HostCheckFinding)o.BaseObject).ToList();
        HostCheckFinding F(string name) => findings.Single(f => f.Name == name);

        // What this machine has (the CI installs busybox-static and uidmap; the kernel is 6.x).
        Assert.Equal(HostCheckStatus.Pass, F("busybox").Status);
        Assert.Equal(HostCheckStatus.Pass, F("psc-helper").Status);
        foreach (var ns in new[] { "user", "mnt", "pid", "net", "uts", "ipc", "cgroup", "time" })
            Assert.Equal(HostCheckStatus.Pass, F($"{ns} namespace").Status);
        Assert.Equal(HostCheckStatus.Pass, F("seccomp").Status);
        Assert.Equal(HostCheckStatus.Pass, F("overlay filesystem").Status);
        Assert.Equal(HostCheckStatus.Pass, F("cgroup layout").Status);
        Assert.Equal(HostCheckStatus.Pass, F("cgroup delegation").Status); // root
        var newuidmap = F("newuidmap");
        Assert.Equal(HostCheckStatus.Pass, newuidmap.Status);
        Assert.Matches("setuid root|cap_setuid=ep", newuidmap.Detail);
        Assert.All(findings, f => Assert.Equal("root", f.User));
        Assert.All(findings.Where(f => f.Status != HostCheckStatus.Pass), f => Assert.False(string.IsNullOrWhiteSpace(f.Remedy), $"{f.Name}: no remedy"));

        // The new user has no login session, so no systemd user@UID.service subtree is delegated to it.
        var delegation = Finding("cgroup delegation");
        Assert.Equal(HostCheckStatus.Warn, delegation.Status);
        Assert.Contains(File.Exists("/sys/fs/cgroup/cgroup.controllers") || Directory.Exists("/sys/fs/cgroup/unified") ? "loginctl enable-linger" : "cgroup v2", delegation.Remedy);

        Assert.Equal("UserNotFound,PSContainers.Cmdlets.TestContainerHostCommand",
            _ps.Invoke("Test-ContainerHost -User psc-test-nosuchuser").SingleError.FullyQualifiedErrorId);
    }

    [Fact]
    public void UserCompletion_ListsAccountsFromThePasswordDatabase()
    {
        var matches = _ps.Run("(TabExpansion2 -inputScript $args[0] -cursorColumn $args[0].Length).CompletionMatches.CompletionText",
            $"Get-SubordinateIdRange -User {_user.Name[..12]}").Select(o => o.ToString()).ToList();
        Assert.Contains(_user.Name, matches);
    }
}
