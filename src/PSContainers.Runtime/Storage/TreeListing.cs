using System.Buffers.Binary;
using System.Text;
using Tmds.Linux;
using PSContainers.Runtime.UserNamespaces;

namespace PSContainers.Runtime.Storage;

/// <summary>
/// A tree the caller cannot read itself (a non-root user's shifted rootfs: 0600 files and 0700
/// directories of its subordinate ids) as listed by root of a user namespace mapping its owners
/// (psc-helper userns-tree list, tree_list.c): owners as that namespace sees them, i.e. the
/// container's ids. Read whole into memory, then served to <see cref="TreeDiff"/> like a host tree.
/// </summary>
internal sealed class TreeListing : ITreeSource
{
    sealed record Entry(stat Stat, string? Link, SortedDictionary<string, byte[]> Xattrs);

    readonly Dictionary<string, Entry> entries = new(StringComparer.Ordinal);
    readonly Dictionary<string, List<string>> children = new(StringComparer.Ordinal) { [""] = new() };

    /// <summary>Lists <paramref name="root"/> as root of a namespace mapping <paramref name="map"/>, through a file in <paramref name="tempDirectory"/>.</summary>
    public static TreeListing Read(string root, IdMap map, string tempDirectory)
    {
        Directory.CreateDirectory(tempDirectory);
        var file = Path.Combine(tempDirectory, $"listing-{Guid.NewGuid():N}");
        using (File.Create(file, 1, FileOptions.None)) { }
        try
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            UserNamespace.ListTree(root, file, map);
            return new TreeListing(File.ReadAllBytes(file), root);
        }
        finally { File.Delete(file); }
    }

    TreeListing(byte[] data, string root)
    {
        var r = new Reader(data, root);
        while (!r.AtEnd)
        {
            var path = r.String();
            var st = new stat
            {
                st_mode = (mode_t)r.U32(),
                st_uid = r.U32(),
                st_gid = r.U32(),
                st_size = (long)r.U64(),
                st_rdev = r.U64(),
            };
            st.st_mtim.tv_sec = (long)r.U64();
            st.st_mtim.tv_nsec = (long_t)(long)r.U64();
            var link = r.String();
            var xattrs = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
            for (uint n = r.U32(), i = 0; i < n; i++) xattrs[r.String()] = r.Bytes();
            var slash = path.LastIndexOf('/');
            var parent = slash < 0 ? "" : path[..slash];
            if (path.Length == 0 || !children.TryGetValue(parent, out var list) || !entries.TryAdd(path, new Entry(st, (st.st_mode & LibC.S_IFMT) == LibC.S_IFLNK ? link : null, xattrs)))
                throw r.Corrupt($"entry '{path}' out of order");
            list.Add(path[(slash + 1)..]);
            if ((st.st_mode & LibC.S_IFMT) == LibC.S_IFDIR) children[path] = new();
        }
        foreach (var list in children.Values) list.Sort(StringComparer.Ordinal);
    }

    public IEnumerable<string> Names(string rel) => children.TryGetValue(rel, out var list) ? list : [];

    public bool TryLstat(string rel, out stat st)
    {
        var found = entries.TryGetValue(rel, out var e);
        st = found ? e!.Stat : default;
        return found;
    }

    public string? LinkTarget(string rel) => entries.TryGetValue(rel, out var e) ? e.Link : null;

    public SortedDictionary<string, byte[]> Xattrs(string rel) => entries.TryGetValue(rel, out var e) ? e.Xattrs : new(StringComparer.Ordinal);

    /// <summary>The listing's little-endian, length-prefixed fields (see tree_list.c).</summary>
    sealed class Reader(byte[] data, string root)
    {
        int pos;
        public bool AtEnd => pos == data.Length;

        public ContainerException Corrupt(string what) => new("TreeListingInvalid", ContainerErrorKind.InvalidData,
            $"The listing of {root} made by psc-helper is invalid ({what} at byte {pos}). Check that psc-helper matches this module's version.", root);

        ReadOnlySpan<byte> Take(int n) => n < 0 || n > data.Length - pos ? throw Corrupt("truncated") : data.AsSpan((pos += n) - n, n);
        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        public byte[] Bytes() => Take(checked((int)U32())).ToArray();
        public string String() => Encoding.UTF8.GetString(Take(checked((int)U32())));
    }
}
