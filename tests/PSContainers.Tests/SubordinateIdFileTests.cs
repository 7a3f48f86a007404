using System.Diagnostics;
using System.Runtime.InteropServices;
using PSContainers.Runtime;
using PSContainers.Runtime.IdMapping;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// /etc/subuid and /etc/subgid semantics on copies in a temp directory: what is kept, what is
/// refused, how free ranges are found, how the files are replaced and locked. The accounts used
/// (root, daemon, bin, sys) exist on every Debian system; nothing here touches the real files.
/// </summary>
public sealed class SubordinateIdFileTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly SubordinateIdDatabase _db;

    public SubordinateIdFileTests()
    {
        _db = new SubordinateIdDatabase(SubordinateIdPaths.InDirectory(_dir.Path)) { LockTimeout = TimeSpan.FromMilliseconds(400) };
        _dir.Write("login.defs", "# test defaults\nSUB_UID_MIN 100000\nSUB_UID_MAX 600100000\nSUB_UID_COUNT 65536\nSUB_GID_MIN 100000\nSUB_GID_MAX 600100000\nSUB_GID_COUNT 65536\n");
    }

    public void Dispose() => _dir.Dispose();

    private string SubUid => _dir.Combine("subuid");
    private string SubGid => _dir.Combine("subgid");

    private static void AssertNoOverlaps(IEnumerable<SubordinateIdRange> ranges)
    {
        var sorted = ranges.OrderBy(r => r.Start).ToList();
        for (int i = 1; i < sorted.Count; i++)
            Assert.True(sorted[i].Start > sorted[i - 1].End, $"{sorted[i - 1]} overlaps {sorted[i]}");
    }

    [Fact]
    public void Add_KeepsCommentsAndUnparsedLinesByteForByte_AndAppends()
    {
        var original = "# managed by hand\n\nroot:100000:65536\n+nis-entry\nbroken line\nbin:x:5\n";
        _dir.Write("subuid", original);
        _dir.Write("subgid", "");

        var added = _db.Add("daemon", kinds: SubordinateIdKind.Uid);

        var range = Assert.Single(added);
        Assert.Equal(("daemon", 165536u, 65536u, 231071u), (range.User, range.Start, range.Count, range.End));
        Assert.Equal(original + "daemon:165536:65536\n", File.ReadAllText(SubUid));
        // Lines that are not ranges are reported, not dropped.
        var problems = _db.Problems(SubordinateIdKind.Uid);
        Assert.Equal(new[] { 5, 6 }, problems.Select(p => p.Line));
        // The previous content is kept as subuid- (shadow-utils' backup).
        Assert.Equal(original, File.ReadAllText(SubUid + "-"));
    }

    [Fact]
    public void Add_BothKinds_TakesOneStartFreeInBothFiles()
    {
        _dir.Write("subuid", "root:100000:65536\n");
        _dir.Write("subgid", "root:100000:65536\nsys:165536:1000\n");

        var added = _db.Add("daemon");

        Assert.Equal(2, added.Count);
        Assert.All(added, r => Assert.Equal(166536u, r.Start));
        Assert.Equal("root:100000:65536\ndaemon:166536:65536\n", File.ReadAllText(SubUid));
        Assert.Equal("root:100000:65536\nsys:165536:1000\ndaemon:166536:65536\n", File.ReadAllText(SubGid));
    }

    [Fact]
    public void FreeRangeSearch_HonorsEntriesNamedByNumericUid_AndGapsBetweenRanges()
    {
        // "0" is root by uid; a gap of 1000 ids is too small for 65536, the next one is large enough.
        _dir.Write("subuid", "0:100000:65536\nsys:166536:65536\nbin:300000:10\n");
        _dir.Write("subgid", "");

        var added = Assert.Single(_db.Add("daemon", kinds: SubordinateIdKind.Uid));
        Assert.Equal(232072u, added.Start);
        AssertNoOverlaps(_db.GetRanges(SubordinateIdKind.Uid));

        // A small count fits into the first gap.
        var small = Assert.Single(_db.Add("bin", count: 1000, start: null, SubordinateIdKind.Gid));
        Assert.Equal(100000u, small.Start);
    }

    [Fact]
    public void FreeRangeSearch_StaysInsideLoginDefsWindow()
    {
        _dir.Write("login.defs", "SUB_UID_MIN 200000\nSUB_UID_MAX 265535\nSUB_UID_COUNT 65536\n");
        _dir.Write("subuid", "root:200000:10\n");
        var ex = Assert.Throws<ContainerException>(() => _db.Add("daemon", kinds: SubordinateIdKind.Uid));
        Assert.Equal("NoFreeSubordinateIdRange", ex.ErrorId);
        Assert.Equal("root:200000:10\n", File.ReadAllText(SubUid));

        Assert.Equal(SubordinateIdDefaults.Builtin with { UidMin = 200000, UidMax = 265535 }, _db.Defaults);
    }

    [Fact]
    public void Add_RefusesOverlaps_WithAnyOwner_AndSuggestsAFreeStart()
    {
        var original = "root:100000:65536\n";
        _dir.Write("subuid", original);

        var ex = Assert.Throws<ContainerException>(() => _db.Add("daemon", 1000, 165000, SubordinateIdKind.Uid));
        Assert.Equal("SubordinateIdRangeOverlap", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.ResourceExists, ex.Kind);
        Assert.Contains("165536", ex.Message);
        Assert.Equal(original, File.ReadAllText(SubUid));
        Assert.False(File.Exists(SubUid + ".lock"));
    }

    [Fact]
    public void Add_SameRangeTwice_WritesOneLine()
    {
        _dir.Write("subuid", "");
        _db.Add("daemon", 10, 500000, SubordinateIdKind.Uid);
        var before = File.ReadAllBytes(SubUid);
        var again = Assert.Single(_db.Add("daemon", 10, 500000, SubordinateIdKind.Uid));
        Assert.Equal(500000u, again.Start);
        Assert.Equal(before, File.ReadAllBytes(SubUid));
        Assert.Equal("daemon:500000:10\n", File.ReadAllText(SubUid));

        // Without -Start a user who has a range keeps it (useradd allocates only once).
        var kept = Assert.Single(_db.Add("daemon", kinds: SubordinateIdKind.Uid));
        Assert.Equal(500000u, kept.Start);
        Assert.Equal(before, File.ReadAllBytes(SubUid));
    }

    [Fact]
    public void Add_ValidatesUserAndBounds()
    {
        Assert.Equal("UserNotFound", Assert.Throws<ContainerException>(() => _db.Add("psc-test-nosuchuser")).ErrorId);
        Assert.Equal("InvalidSubordinateIdRange", Assert.Throws<ContainerException>(() => _db.Add("daemon", 0, 100000)).ErrorId);
        // 4294967295 is (uid_t)-1: a range may end at 4294967294 and no further.
        Assert.Equal("InvalidSubordinateIdRange", Assert.Throws<ContainerException>(() => _db.Add("daemon", 2, 4294967294u)).ErrorId);
        Assert.Equal(4294967294u, Assert.Single(_db.Add("daemon", 1, 4294967294u, SubordinateIdKind.Uid)).End);
        Assert.False(File.Exists(SubGid));
    }

    [Fact]
    public void Query_FindsRangesByNameAndByNumericUid()
    {
        _dir.Write("subuid", "1:300000:10\ndaemon:400000:10\nbin:500000:10\n");
        _dir.Write("subgid", "daemon:300000:10\n");
        var daemon = UserAccounts.Require("daemon");
        Assert.Equal(1u, daemon.Uid);

        var ranges = _db.GetRanges(daemon);
        Assert.Equal(new[] { (SubordinateIdKind.Uid, 300000u, "1"), (SubordinateIdKind.Uid, 400000u, "daemon"), (SubordinateIdKind.Gid, 300000u, "daemon") },
            ranges.Select(r => (r.Kind, r.Start, r.Owner)));
        Assert.All(ranges, r => Assert.Equal("daemon", r.User));
        Assert.Equal(new[] { 1, 2 }, ranges.Where(r => r.Kind == SubordinateIdKind.Uid).Select(r => r.Line));

        // The caller (root in these tests) is found through getuid + getpwuid.
        _dir.Write("subuid", "0:600000:5\n");
        Assert.Equal(600000u, Assert.Single(_db.ForCurrentUser(SubordinateIdKind.Uid)).Start);
    }

    [Fact]
    public void Remove_WholeRanges_PiecesAndByNumericOwner_LikeUsermodDelSubuids()
    {
        _dir.Write("subuid", "# keep\n1:100000:100\ndaemon:200000:100\nbin:300000:100\n");

        // The middle of a range: split in two, in place.
        var cut = Assert.Single(_db.Remove("daemon", 200010, 10, SubordinateIdKind.Uid));
        Assert.Equal((200010u, 10u), (cut.Start, cut.Count));
        Assert.Equal("# keep\n1:100000:100\ndaemon:200000:10\ndaemon:200020:80\nbin:300000:100\n", File.ReadAllText(SubUid));

        // A start alone removes the range that begins there; the numeric-uid line belongs to daemon too.
        _db.Remove("daemon", 100000, null, SubordinateIdKind.Uid);
        Assert.Equal("# keep\ndaemon:200000:10\ndaemon:200020:80\nbin:300000:100\n", File.ReadAllText(SubUid));

        // No start: everything of the user.
        Assert.Equal(2, _db.Remove("daemon", kinds: SubordinateIdKind.Uid).Count);
        Assert.Equal("# keep\nbin:300000:100\n", File.ReadAllText(SubUid));

        var ex = Assert.Throws<ContainerException>(() => _db.Remove("daemon", kinds: SubordinateIdKind.Uid));
        Assert.Equal("SubordinateIdRangeNotFound", ex.ErrorId);

        // An owner that is no account any more can still be cleaned up.
        _dir.Write("subuid", "psc-test-gone:100:5\n");
        Assert.Single(_db.Remove("psc-test-gone", kinds: SubordinateIdKind.Uid));
        Assert.Equal("", File.ReadAllText(SubUid));
    }

    [Fact]
    public void Write_ReplacesTheFileByRename_KeepingOwnerAndMode_AndLeavesNoTempFiles()
    {
        _dir.Write("subuid", "root:100000:65536\n");
        File.SetUnixFileMode(SubUid, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        HostCommand.Run("chown", "1:2", SubUid); // daemon:bin
        var inodeBefore = Inode(SubUid);

        _db.Add("daemon", kinds: SubordinateIdKind.Uid);

        Assert.NotEqual(inodeBefore, Inode(SubUid)); // a new file renamed over the old one
        Assert.Equal("1 2 640", HostCommand.Run("stat", "-c", "%u %g %a", SubUid));
        Assert.Equal("1 2 640", HostCommand.Run("stat", "-c", "%u %g %a", SubUid + "-"));
        Assert.Equal(new[] { ".pwd.lock", "login.defs", "subuid", "subuid-" }, Directory.GetFiles(_dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    private static string Inode(string path) => HostCommand.Run("stat", "-c", "%i", path);

    [Fact]
    public void Lock_HeldByALiveProcess_IsAClearErrorNamingIt_AndAStaleOneIsBroken()
    {
        _dir.Write("subuid", "");
        using var holder = new Sleeper();
        File.WriteAllText(SubUid + ".lock", holder.Pid + "\0");

        var ex = Assert.Throws<ContainerException>(() => _db.Add("daemon", kinds: SubordinateIdKind.Uid));
        Assert.Equal("SubordinateIdFileLocked", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.ResourceBusy, ex.Kind);
        Assert.Contains($"process {holder.Pid} (sleep)", ex.Message);
        Assert.Equal("", File.ReadAllText(SubUid));
        Assert.True(File.Exists(SubUid + ".lock")); // not ours to remove

        // Once the holder is gone its lock is stale: taken over, used and released.
        holder.Process.Kill();
        holder.WaitForExit(TimeSpan.FromSeconds(5));
        _db.Add("daemon", kinds: SubordinateIdKind.Uid);
        Assert.Equal("daemon:100000:65536\n", File.ReadAllText(SubUid));
        Assert.False(File.Exists(SubUid + ".lock"));
    }

    [Fact]
    public void Lock_WaitsForAHolderThatFinishes()
    {
        _dir.Write("subuid", "");
        var db = new SubordinateIdDatabase(SubordinateIdPaths.InDirectory(_dir.Path)) { LockTimeout = TimeSpan.FromSeconds(20) };
        using var holder = new Sleeper("1");
        File.WriteAllText(SubUid + ".lock", holder.Pid + "\0");
        db.Add("daemon", kinds: SubordinateIdKind.Uid);
        Assert.True(holder.Process.HasExited, "the change went ahead while the lock holder was alive");
        Assert.Equal("daemon:100000:65536\n", File.ReadAllText(SubUid));
    }

    [DllImport("libc")] private static extern int lckpwdf();
    [DllImport("libc")] private static extern int ulckpwdf();

    /// <summary>glibc's lckpwdf (what useradd/usermod/passwd take) excludes us, although both are in one process.</summary>
    [Fact]
    public void Lock_RespectsGlibcLckpwdf()
    {
        _dir.Write("subuid", "");
        var db = new SubordinateIdDatabase(SubordinateIdPaths.InDirectory(_dir.Path) with { PasswdLock = "/etc/.pwd.lock" }) { LockTimeout = TimeSpan.FromMilliseconds(300) };
        Assert.Equal(0, lckpwdf());
        try
        {
            var ex = Assert.Throws<ContainerException>(() => db.Add("daemon", kinds: SubordinateIdKind.Uid));
            Assert.Equal("SubordinateIdFileLocked", ex.ErrorId);
            Assert.Contains("lckpwdf", ex.Message);
        }
        finally { ulckpwdf(); }
        db.Add("daemon", kinds: SubordinateIdKind.Uid);
        Assert.Equal("daemon:100000:65536\n", File.ReadAllText(SubUid));
    }

    [Fact]
    public void ConcurrentAddersInThreads_NeverOverlap()
    {
        _dir.Write("subuid", "");
        _dir.Write("subgid", "");
        var users = new[] { "root", "daemon", "bin", "sys", "sync", "games", "man", "lp" };
        var db = new SubordinateIdDatabase(SubordinateIdPaths.InDirectory(_dir.Path)) { LockTimeout = TimeSpan.FromSeconds(30) };
        Parallel.ForEach(users, new ParallelOptions { MaxDegreeOfParallelism = users.Length }, u => db.Add(u, count: 1000));

        foreach (var kind in SubordinateIdDatabase.BothKinds)
        {
            var ranges = db.GetRanges(kind);
            Assert.Equal(users.Order(), ranges.Select(r => r.User).Order());
            AssertNoOverlaps(ranges);
        }
    }

    /// <summary>
    /// Another process writing the same file with shadow-utils itself (usermod --prefix takes the
    /// commonio link lock on DIR/etc/subuid): no update of either writer is lost.
    /// </summary>
    [Fact]
    public void ConcurrentWithUsermodInAnotherProcess_NoUpdateIsLost()
    {
        var etc = _dir.Combine("etc");
        Directory.CreateDirectory(etc);
        foreach (var f in new[] { "passwd", "group", "shadow", "gshadow", "login.defs" }) File.Copy("/etc/" + f, Path.Combine(etc, f));
        File.WriteAllText(Path.Combine(etc, "subuid"), "");
        File.WriteAllText(Path.Combine(etc, "subgid"), "");
        var db = new SubordinateIdDatabase(new SubordinateIdPaths(Path.Combine(etc, "subuid"), Path.Combine(etc, "subgid"), null, Path.Combine(etc, "login.defs")))
            { LockTimeout = TimeSpan.FromSeconds(30) };
        const int N = 15;

        var usermod = Task.Run(() =>
        {
            for (int i = 0; i < N; i++)
                HostCommand.Run("usermod", "-P", _dir.Path, "--add-subuids", $"{1000000 + i * 10}-{1000000 + i * 10 + 9}", "bin");
        });
        for (int i = 0; i < N; i++) db.Add("daemon", 10, (uint)(2000000 + i * 10), SubordinateIdKind.Uid);
        usermod.Wait();

        var ranges = db.GetRanges(SubordinateIdKind.Uid);
        Assert.Equal(N, ranges.Count(r => r.User == "bin"));
        Assert.Equal(N, ranges.Count(r => r.User == "daemon"));
        AssertNoOverlaps(ranges);
        Assert.False(File.Exists(Path.Combine(etc, "subuid.lock")));
    }

    [Fact]
    public void RangeFile_ParsesOnlyValidRanges()
    {
        var file = SubordinateIdFile.Parse(System.Text.Encoding.ASCII.GetBytes(
            "a:1:2\nb:1:0\nc:-1:5\nd:4294967294:2\ne:4294967294:1\nf::3\ng:1:2:3\n# h:1:2\n"), "x", SubordinateIdKind.Uid);
        Assert.Equal(new[] { "a", "e" }, file.Ranges().Select(r => r.Owner));
        Assert.Equal(new[] { 2, 3, 4, 6, 7 }, file.Malformed.Select(m => m.Line));
        Assert.Equal("a:1:2\nb:1:0\nc:-1:5\nd:4294967294:2\ne:4294967294:1\nf::3\ng:1:2:3\n# h:1:2\n", System.Text.Encoding.ASCII.GetString(file.ToBytes()));
    }
}
