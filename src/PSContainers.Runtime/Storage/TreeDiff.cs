using System.Text;
using Tmds.Linux;
using PSContainers.Runtime.Filesystem;
using static Tmds.Linux.LibC;

namespace PSContainers.Runtime.Storage;

/// <summary>
/// One tree TreeDiff reads: entries by relative path ("" is the root, "a/b" below it). Read on the
/// host (<see cref="HostTree"/>) or, for a tree the caller cannot read itself, from the listing root
/// of a user namespace mapping its owners made (<see cref="TreeListing"/>): one diff algorithm, two sources.
/// </summary>
internal interface ITreeSource
{
    /// <summary>The names in directory <paramref name="rel"/>, ordinal order.</summary>
    IEnumerable<string> Names(string rel);
    bool TryLstat(string rel, out stat st);
    string? LinkTarget(string rel);
    SortedDictionary<string, byte[]> Xattrs(string rel);
}

/// <summary>A tree read directly (lstat, never following a link).</summary>
internal sealed class HostTree(string root) : ITreeSource
{
    static readonly EnumerationOptions List = new() { AttributesToSkip = 0, RecurseSubdirectories = false, IgnoreInaccessible = false };

    string Full(string rel) => rel.Length == 0 ? root : Path.Combine(root, rel);

    public IEnumerable<string> Names(string rel) =>
        Directory.EnumerateFileSystemEntries(Full(rel), "*", List).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal);

    public bool TryLstat(string rel, out stat st) => FsNative.TryLstat(Full(rel), out st);
    public string? LinkTarget(string rel) => new FileInfo(Full(rel)).LinkTarget;
    public SortedDictionary<string, byte[]> Xattrs(string rel) => FsNative.ReadXattrs(Full(rel));
}

/// <summary>Compares root filesystem trees (docker diff) without following any symlink.</summary>
internal static unsafe class TreeDiff
{
    internal static string TypeName(stat st) => (st.st_mode & S_IFMT) switch
    {
        var t when t == S_IFDIR => "Directory",
        var t when t == S_IFLNK => "SymbolicLink",
        var t when t == S_IFCHR => "CharacterDevice",
        var t when t == S_IFBLK => "BlockDevice",
        var t when t == S_IFIFO => "Fifo",
        var t when t == S_IFSOCK => "Socket",
        _ => "File",
    };

    static bool IsDir(stat st) => (st.st_mode & S_IFMT) == S_IFDIR;

    static string Join(string rel, string name) => rel.Length == 0 ? name : rel + "/" + name;

    static void Add(List<ContainerChange> result, string container, ChangeKind kind, string rel, stat st) =>
        result.Add(new ContainerChange { ContainerName = container, Kind = kind, Path = "/" + rel, Type = TypeName(st) });

    static void AddTree(List<ContainerChange> result, string container, ITreeSource tree, string rel)
    {
        foreach (var name in tree.Names(rel))
        {
            var path = Join(rel, name);
            if (!tree.TryLstat(path, out var st)) continue;
            Add(result, container, ChangeKind.Added, path, st);
            if (IsDir(st)) AddTree(result, container, tree, path);
        }
    }

    /// <summary>Overlay metadata the kernel keeps in the upper layer; not a user change.</summary>
    static bool UserXattr(string name) => !name.StartsWith("trusted.overlay.", StringComparison.Ordinal) && !name.StartsWith("user.overlay.", StringComparison.Ordinal);

    static bool SameXattrs(ITreeSource ta, string a, ITreeSource tb, string b)
    {
        var xa = ta.Xattrs(a).Where(kv => UserXattr(kv.Key)).ToList();
        var xb = tb.Xattrs(b).Where(kv => UserXattr(kv.Key)).ToList();
        return xa.Count == xb.Count && xa.Zip(xb).All(p => p.First.Key == p.Second.Key && p.First.Value.AsSpan().SequenceEqual(p.Second.Value));
    }

    /// <summary>
    /// Same entry? Type, mode, owner and xattrs always; for non-directories also size, mtime, device
    /// number and link target. A directory is not "changed" just because an entry in it was.
    /// </summary>
    static bool Same(ITreeSource ta, string a, stat sa, ITreeSource tb, string b, stat sb)
    {
        if (sa.st_mode != sb.st_mode || sa.st_uid != sb.st_uid || sa.st_gid != sb.st_gid) return false;
        if (!IsDir(sa))
        {
            if (sa.st_size != sb.st_size || sa.st_rdev != sb.st_rdev) return false;
            if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec) return false;
            if ((sa.st_mode & S_IFMT) == S_IFLNK && ta.LinkTarget(a) != tb.LinkTarget(b)) return false;
        }
        return SameXattrs(ta, a, tb, b);
    }

    /// <summary>Current tree <paramref name="now"/> against the saved tree <paramref name="then"/>.</summary>
    public static void Compare(string now, string then, string container, List<ContainerChange> result) =>
        Compare(new HostTree(now), new HostTree(then), container, result);

    /// <inheritdoc cref="Compare(string, string, string, List{ContainerChange})"/>
    public static void Compare(ITreeSource now, ITreeSource then, string container, List<ContainerChange> result) =>
        CompareDir(now, then, "", container, result);

    static void CompareDir(ITreeSource now, ITreeSource then, string rel, string container, List<ContainerChange> result)
    {
        var names = new SortedSet<string>(now.Names(rel), StringComparer.Ordinal);
        names.UnionWith(then.Names(rel));
        foreach (var name in names)
        {
            var path = Join(rel, name);
            var hasA = now.TryLstat(path, out var sa);
            var hasB = then.TryLstat(path, out var sb);
            if (hasA && !hasB)
            {
                Add(result, container, ChangeKind.Added, path, sa);
                if (IsDir(sa)) AddTree(result, container, now, path);
            }
            else if (!hasA && hasB) Add(result, container, ChangeKind.Deleted, path, sb);
            else if (hasA && hasB)
            {
                if (!Same(now, path, sa, then, path, sb)) Add(result, container, ChangeKind.Changed, path, sa);
                if (IsDir(sa) && IsDir(sb)) CompareDir(now, then, path, container, result);
                else if (IsDir(sa)) AddTree(result, container, now, path);
            }
        }
    }

    /// <summary>
    /// An overlay's changes read straight from its upper layer: a whiteout (character device 0:0) is a
    /// deletion, an opaque directory (trusted.overlay.opaque=y) hides everything below it in the lower
    /// layer, an entry also present below was changed (copied up), anything else was added.
    /// </summary>
    public static void Overlay(string upper, string lower, string container, List<ContainerChange> result) =>
        OverlayDir(new HostTree(upper), new HostTree(lower), "", container, result);

    static bool IsWhiteout(stat st) => (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0;

    static void OverlayDir(ITreeSource upper, ITreeSource? lower, string rel, string container, List<ContainerChange> result)
    {
        foreach (var name in upper.Names(rel))
        {
            var path = Join(rel, name);
            if (!upper.TryLstat(path, out var su)) continue;
            stat sl = default;
            var hasL = lower is not null && lower.TryLstat(path, out sl);
            if (IsWhiteout(su))
            {
                if (hasL) Add(result, container, ChangeKind.Deleted, path, sl);
                continue;
            }
            if (!hasL)
            {
                Add(result, container, ChangeKind.Added, path, su);
                if (IsDir(su)) AddTree(result, container, upper, path);
                continue;
            }
            if (IsDir(su) && IsDir(sl))
            {
                var opaque = upper.Xattrs(path).TryGetValue("trusted.overlay.opaque", out var v) && v is [(byte)'y', ..];
                if (!Same(upper, path, su, lower!, path, sl)) Add(result, container, ChangeKind.Changed, path, su);
                OverlayDir(upper, lower, path, container, result);
                if (opaque)
                    foreach (var hidden in lower!.Names(path))
                        if (!upper.TryLstat(Join(path, hidden), out _) && lower.TryLstat(Join(path, hidden), out var sh))
                            Add(result, container, ChangeKind.Deleted, Join(path, hidden), sh);
                continue;
            }
            Add(result, container, ChangeKind.Changed, path, su);
            if (IsDir(su)) AddTree(result, container, upper, path);
        }
    }
}

/// <summary>Rewrites /etc/hostname of a copied rootfs when it names the source container.</summary>
internal static unsafe class HostnameFile
{
    const ulong RESOLVE_IN_ROOT_ = 0x10;

    static int OpenIn(string root, string relative, int flags, int mode = 0)
    {
        int dir;
        fixed (byte* r = FsNative.Z(root)) dir = open(r, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (dir < 0) return -1;
        try
        {
            var how = new open_how { flags = (ulong)(flags | O_CLOEXEC | O_NOFOLLOW), mode = (ulong)mode, resolve = RESOLVE_IN_ROOT_ };
            fixed (byte* p = FsNative.Z(relative)) return openat2(dir, p, &how, (size_t)sizeof(open_how));
        }
        finally { close(dir); }
    }

    /// <summary>
    /// Looks for etc/hostname in <paramref name="layers"/> (top first, as overlay does) and, if it holds
    /// <paramref name="oldName"/>, writes <paramref name="newName"/> into <paramref name="writeRoot"/>
    /// with the same owner and mode (creating etc/ like the layer's for an overlay upper dir).
    /// Opened within the root (openat2 RESOLVE_IN_ROOT, no final symlink): a hostile rootfs cannot
    /// redirect the write to the host.
    /// </summary>
    public static void Rewrite(IReadOnlyList<string> layers, string writeRoot, string oldName, string newName)
    {
        foreach (var layer in layers)
        {
            int fd = OpenIn(layer, "etc/hostname", O_PATH);
            if (fd < 0) continue;
            stat st;
            try { if (fstat(fd, &st) != 0) return; }
            finally { close(fd); }
            if ((st.st_mode & S_IFMT) != S_IFREG || st.st_size > 4096) return; // a whiteout, or not a plain file
            string text;
            int rfd = OpenIn(layer, "etc/hostname", O_RDONLY);
            if (rfd < 0) return;
            using (var stream = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(rfd, true), FileAccess.Read))
            using (var reader = new StreamReader(stream, Encoding.UTF8))
                text = reader.ReadToEnd();
            if (text.Trim() != oldName) return;
            int efd = layer == writeRoot ? 0 : OpenIn(writeRoot, "etc", O_PATH | O_DIRECTORY);
            if (efd > 0) close(efd);
            if (efd < 0)
            {
                int lfd = OpenIn(layer, "etc", O_PATH | O_DIRECTORY);
                if (lfd < 0) return;
                stat est;
                try { fstat(lfd, &est); }
                finally { close(lfd); }
                var etc = Path.Combine(writeRoot, "etc");
                fixed (byte* e = FsNative.Z(etc))
                {
                    if (mkdir(e, est.st_mode & (mode_t)0xFFF) != 0) throw FsNative.Error("create", etc, FsNative.Errno);
                    lchown(e, est.st_uid, est.st_gid);
                    chmod(e, est.st_mode & (mode_t)0xFFF);
                }
            }
            int wfd = OpenIn(writeRoot, "etc/hostname", O_WRONLY | O_CREAT | O_TRUNC, (int)(st.st_mode & (mode_t)0xFFF));
            if (wfd < 0) throw FsNative.Error("write", Path.Combine(writeRoot, "etc/hostname"), FsNative.Errno);
            fchown(wfd, st.st_uid, st.st_gid);
            fchmod(wfd, st.st_mode & (mode_t)0xFFF);
            using var output = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(wfd, true), FileAccess.Write);
            output.Write(Encoding.UTF8.GetBytes(newName + "\n"));
            return;
        }
    }
}
