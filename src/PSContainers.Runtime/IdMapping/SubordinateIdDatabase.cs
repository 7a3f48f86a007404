using PSContainers.Runtime.State;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Runtime.IdMapping;

/// <summary>Where the subordinate-id files live; tests point them at copies.</summary>
public sealed record SubordinateIdPaths(string SubUid, string SubGid, string? PasswdLock, string LoginDefs)
{
    public static readonly SubordinateIdPaths Default = new("/etc/subuid", "/etc/subgid", ShadowLock.PasswdLockPath, SubordinateIdDefaults.DefaultPath);

    /// <summary>Copies in one directory (subuid, subgid, .pwd.lock, login.defs there).</summary>
    public static SubordinateIdPaths InDirectory(string dir) => new(
        Path.Combine(dir, "subuid"), Path.Combine(dir, "subgid"),
        Path.Combine(dir, ".pwd.lock"), Path.Combine(dir, "login.defs"));

    public string Of(SubordinateIdKind kind) => kind == SubordinateIdKind.Uid ? SubUid : SubGid;
}

/// <summary>
/// Reads and changes /etc/subuid and /etc/subgid like shadow-utils: under its locks, a backup in
/// "file-", the new content written to "file+", fsync'ed and renamed over the file. Never writes an
/// overlapping range or a duplicate line; a change to both files is applied to both or to neither.
/// </summary>
public sealed class SubordinateIdDatabase
{
    public static readonly SubordinateIdKind[] BothKinds = { SubordinateIdKind.Uid, SubordinateIdKind.Gid };

    public SubordinateIdPaths Paths { get; }
    /// <summary>How long to wait for a lock another program holds (shadow-utils tries for 15 s).</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(15);

    public SubordinateIdDatabase(SubordinateIdPaths? paths = null) => Paths = paths ?? SubordinateIdPaths.Default;

    // ---- queries (no lock: the files are only ever replaced by rename, so a read is never torn) ----

    /// <summary>Every range of the given kinds, in file order (subuid first).</summary>
    public IReadOnlyList<SubordinateIdRange> GetRanges(params SubordinateIdKind[] kinds) =>
        Kinds(kinds).SelectMany(k => Read(k).Ranges()).ToList();

    /// <summary>The ranges of one user, whether a line names it by name or by numeric uid.</summary>
    public IReadOnlyList<SubordinateIdRange> GetRanges(string userName, uint uid, params SubordinateIdKind[] kinds) =>
        Kinds(kinds).SelectMany(k => Read(k).RangesOf(userName, uid)).ToList();

    public IReadOnlyList<SubordinateIdRange> GetRanges(UserAccount user, params SubordinateIdKind[] kinds) =>
        GetRanges(user.Name, user.Uid, kinds);

    /// <summary>The ranges of the user running this process (what newuidmap will allow it to map).</summary>
    public IReadOnlyList<SubordinateIdRange> ForCurrentUser(params SubordinateIdKind[] kinds) =>
        GetRanges(UserAccounts.Current(), kinds);

    /// <summary>Lines that look like ranges but are not valid (they are kept, and ignored, like shadow-utils does).</summary>
    public IReadOnlyList<(string Path, int Line, string Text, string Problem)> Problems(params SubordinateIdKind[] kinds) =>
        Kinds(kinds).SelectMany(k => { var f = Read(k); return f.Malformed.Select(m => (f.Path, m.Line, m.Text, m.Problem)); }).ToList();

    public SubordinateIdDefaults Defaults => SubordinateIdDefaults.Load(Paths.LoginDefs);

    // ---- changes ---------------------------------------------------------------------------------

    /// <summary>
    /// Gives <paramref name="user"/> count ids of each kind. With a start, exactly that range (an
    /// identical existing line is kept, not duplicated; an overlap with any line is an error). Without
    /// one, a user who already has ranges of that kind keeps them (like useradd), otherwise the lowest
    /// free range between SUB_UID_MIN and SUB_UID_MAX of login.defs is taken - for both kinds at
    /// once the same start in both files, so uids and gids line up.
    /// Returns the user's resulting ranges of the requested kinds.
    /// </summary>
    public IReadOnlyList<SubordinateIdRange> Add(string user, uint? count = null, uint? start = null, params SubordinateIdKind[] kinds)
    {
        var account = UserAccounts.Require(user);
        kinds = Kinds(kinds);
        var defaults = Defaults;
        foreach (var k in kinds) Validate(start, count ?? defaults.Count(k), account.Name);

        return Change(kinds, files =>
        {
            var result = new List<SubordinateIdRange>();
            var needed = new List<SubordinateIdFile>();
            foreach (var file in files)
            {
                var n = count ?? defaults.Count(file.Kind);
                var own = file.RangesOf(account.Name, account.Uid).ToList();
                if (start is { } s)
                {
                    if (own.FirstOrDefault(r => r.Start == s && r.Count == n) is { } same) { result.Add(same); continue; }
                    if (file.FirstOverlap(s, n) is { } clash)
                        throw Overlap(file, s, n, clash, SubordinateIdFile.FindFree(file.Ranges(), defaults.Min(file.Kind), defaults.Max(file.Kind), n));
                    result.Add(file.Append(account.Name, s, n));
                }
                else if (own.Count > 0) result.AddRange(own);
                else needed.Add(file);
            }
            if (needed.Count > 0)
            {
                // One start free in every file that needs a range; the bounds of the first kind.
                var k = needed[0].Kind;
                var n = count ?? defaults.Count(k);
                // A user who has a range of the other kind gets the same start here if it is free.
                var aligned = result.Select(r => (uint?)r.Start).FirstOrDefault(s => needed.All(f => f.FirstOverlap(s!.Value, n) is null));
                var free = aligned ?? SubordinateIdFile.FindFree(needed.SelectMany(f => f.Ranges()), needed.Min(f => (ulong)defaults.Min(f.Kind)), needed.Min(f => (ulong)defaults.Max(f.Kind)), n)
                    ?? throw new ContainerException("NoFreeSubordinateIdRange", ContainerErrorKind.InvalidOperation,
                        $"No {n} consecutive free ids between {defaults.Min(k)} and {defaults.Max(k)} in {string.Join(" and ", needed.Select(f => f.Path))}. " +
                        "Give -Start outside that window, a smaller -Count, or raise SUB_UID_MAX/SUB_GID_MAX in /etc/login.defs.", account.Name);
                foreach (var f in needed) result.Add(f.Append(account.Name, free, count ?? defaults.Count(f.Kind)));
            }
            return result;
        });
    }

    /// <summary>
    /// Takes ids away from a user (named by name or uid; the account need not exist any more). Without
    /// a start every range of the user goes; with a start and no count the range that starts there; with
    /// both, exactly those ids (shortening or splitting a range, as usermod --del-subuids does).
    /// Returns what was removed; nothing matched is an ObjectNotFound error.
    /// </summary>
    public IReadOnlyList<SubordinateIdRange> Remove(string user, uint? start = null, uint? count = null, params SubordinateIdKind[] kinds)
    {
        if (string.IsNullOrEmpty(user)) throw new ContainerException("InvalidUser", ContainerErrorKind.InvalidArgument, "A user name or uid is required.");
        if (count is not null && start is null)
            throw new ContainerException("InvalidSubordinateIdRange", ContainerErrorKind.InvalidArgument, "-Count needs -Start: which ids to remove.", user);
        if (start is { } s0 && count is { } c0) Validate(s0, c0, user);
        var account = UserAccounts.Find(user);
        var name = account?.Name ?? user;
        uint? uid = account?.Uid ?? (uint.TryParse(user, out var u) ? u : null);
        kinds = Kinds(kinds);

        var removed = Change(kinds, files =>
        {
            var result = new List<SubordinateIdRange>();
            foreach (var file in files)
            {
                bool IsOwner(string owner) => SubordinateIdFile.IsOwner(owner, name, uid);
                if (start is null) result.AddRange(file.Remove(IsOwner, 0, SubordinateIdFile.MaxId + 1));
                else if (count is { } c) result.AddRange(file.Remove(IsOwner, start.Value, c));
                else if (file.RangesOf(name, uid).FirstOrDefault(r => r.Start == start) is { } whole)
                    result.AddRange(file.Remove(IsOwner, whole.Start, whole.Count));
            }
            return result;
        });
        if (removed.Count == 0)
            throw new ContainerException("SubordinateIdRangeNotFound", ContainerErrorKind.ObjectNotFound,
                $"'{user}' has no {string.Join("/", kinds.Select(FileName))} range{(start is null ? "" : $" starting at {start}{(count is null ? "" : $" with {count} ids")}")}. Get-SubordinateIdRange -User {user} lists its ranges.", user);
        return removed;
    }

    // ---- the write path ------------------------------------------------------------------------

    private IReadOnlyList<SubordinateIdRange> Change(SubordinateIdKind[] kinds, Func<List<SubordinateIdFile>, List<SubordinateIdRange>> edit)
    {
        var paths = kinds.Select(Paths.Of).ToList();
        using var _ = ShadowLock.Acquire(paths, Paths.PasswdLock, LockTimeout);
        var before = paths.Select(p => File.Exists(p) ? File.ReadAllBytes(p) : null).ToList();
        var files = kinds.Select((k, i) => SubordinateIdFile.Parse(before[i] ?? Array.Empty<byte>(), paths[i], k)).ToList();
        var result = edit(files);
        var written = new List<int>();
        try
        {
            for (int i = 0; i < files.Count; i++)
            {
                var after = files[i].ToBytes();
                if (before[i] is { } old && old.AsSpan().SequenceEqual(after)) continue;
                Write(paths[i], before[i], after);
                written.Add(i);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ContainerException)
        {
            // All or nothing: put back what was already replaced.
            foreach (var i in written)
                if (before[i] is { } old) AtomicFile.WriteAllBytes(paths[i], old, tempPath: paths[i] + "+", ownershipFrom: paths[i]);
                else File.Delete(paths[i]);
            throw new ContainerException("SubordinateIdWriteFailed", ex is UnauthorizedAccessException ? ContainerErrorKind.PermissionDenied : ContainerErrorKind.InvalidOperation,
                $"Cannot write {string.Join(" and ", paths)}: {ex.Message} Nothing was changed.", paths[0], ex);
        }
        return result;
    }

    /// <summary>commonio_close: the old content to "file-", the new one to "file+", fsync, rename.</summary>
    private static void Write(string path, byte[]? old, byte[] content)
    {
        if (old is not null)
        {
            var backup = path + "-";
            var mtime = File.GetLastWriteTimeUtc(path);
            AtomicFile.WriteAllBytes(backup, old, tempPath: path + ".cio", ownershipFrom: path);
            File.SetLastWriteTimeUtc(backup, mtime);
        }
        AtomicFile.WriteAllBytes(path, content, tempPath: path + "+", ownershipFrom: old is null ? null : path);
    }

    // ---- validation ------------------------------------------------------------------------------

    private static void Validate(uint? start, uint count, string user)
    {
        if (count == 0)
            throw new ContainerException("InvalidSubordinateIdRange", ContainerErrorKind.InvalidArgument, "The count of a subordinate id range must be at least 1.", user);
        if (start is { } s && s + (ulong)count - 1 > SubordinateIdFile.MaxId)
            throw new ContainerException("InvalidSubordinateIdRange", ContainerErrorKind.InvalidArgument,
                $"{s} + {count} ids end beyond the highest id {SubordinateIdFile.MaxId} (uid_t; 4294967295 means 'no id'). Choose a lower -Start or a smaller -Count.", user);
    }

    private static ContainerException Overlap(SubordinateIdFile file, uint start, uint count, SubordinateIdRange clash, uint? free) =>
        new("SubordinateIdRangeOverlap", ContainerErrorKind.ResourceExists,
            $"{start}-{start + (ulong)count - 1} overlaps '{clash}' (line {clash.Line} of {file.Path}, {clash.Start}-{clash.End}); " +
            "two users sharing subordinate ids could reach each other's containers. " +
            (free is { } f ? $"The lowest free range of {count} ids starts at {f}; omit -Start to take it." : "Choose a -Start outside the existing ranges."),
            clash.User);

    private static string FileName(SubordinateIdKind k) => k == SubordinateIdKind.Uid ? "subuid" : "subgid";

    private SubordinateIdFile Read(SubordinateIdKind kind) => SubordinateIdFile.Read(Paths.Of(kind), kind);

    private static SubordinateIdKind[] Kinds(SubordinateIdKind[]? kinds) =>
        kinds is null || kinds.Length == 0 ? BothKinds : kinds.Distinct().OrderBy(k => k).ToArray();
}
