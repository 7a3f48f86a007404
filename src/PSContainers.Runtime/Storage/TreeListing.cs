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
        // NAME.PID.GUID: what a killed pwsh leaves is removed by the next CleanStaleTemp.
        var file = Path.Combine(tempDirectory, $"listing.{Environment.ProcessId}.{Guid.NewGuid():N}");
        using (File.Create(file, 1, FileOptions.None)) { }
        try
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            UserNamespace.ListTree(root, file, map);
            return new TreeListing(File.ReadAllBytes(file), root);
        }
        finally { File.Delete(file); }
    }

    /// <summary>
    /// Streams <paramref name="root"/> with its files' contents (userns-tree export) into
    /// <paramref name="consume"/>, through a FIFO in <paramref name="tempDirectory"/>: a whole rootfs is
    /// never written to disk twice. The helper's failure is thrown rather than the truncated stream it left.
    /// </summary>
    public static unsafe void Stream(string root, IdMap map, string tempDirectory, Action<ListingReader> consume)
    {
        Directory.CreateDirectory(tempDirectory);
        var fifo = Path.Combine(tempDirectory, $"export.{Environment.ProcessId}.{Guid.NewGuid():N}");
        fixed (byte* p = Filesystem.FsNative.Z(fifo))
            if (LibC.mknod(p, LibC.S_IFIFO | (mode_t)0x180, 0) != 0) throw Filesystem.FsNative.Error("create", fifo, Filesystem.FsNative.Errno);
        int reader = -1, guard = -1;
        try
        {
            // Read end first (non-blocking: no writer yet), then a writer of our own that is closed only
            // once the helper has exited: the reader sees the end of the stream when the helper is done,
            // or failed before it opened the FIFO at all, never before.
            fixed (byte* p = Filesystem.FsNative.Z(fifo))
            {
                reader = LibC.open(p, LibC.O_RDONLY | LibC.O_NONBLOCK | LibC.O_CLOEXEC);
                if (reader >= 0) guard = LibC.open(p, LibC.O_WRONLY | LibC.O_CLOEXEC);
            }
            if (reader < 0 || guard < 0 || LibC.fcntl(reader, LibC.F_SETFL, LibC.O_RDONLY) != 0)
                throw Filesystem.FsNative.Error("open", fifo, Filesystem.FsNative.Errno);
            var closeGuard = guard;
            var helper = Task.Run(() =>
            {
                try { UserNamespace.ExportTree(root, fifo, map); }
                finally { LibC.close(closeGuard); }
            });
            guard = -1;
            Exception? consumerError = null;
            try
            {
                using var input = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(reader, true), FileAccess.Read, 1 << 16);
                reader = -1;
                consume(new ListingReader(input, root));
            }
            catch (Exception ex) { consumerError = ex; }
            // The read end is closed now: a helper still writing gets EPIPE and ends, so this wait ends too.
            try { helper.GetAwaiter().GetResult(); }
            catch when (consumerError is not null && !CutStream(consumerError)) { }
            // A stream cut short is the helper's failure, thrown above; anything else (cancellation,
            // the archive's disk full) is the consumer's own.
            if (consumerError is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(consumerError);
        }
        finally
        {
            if (reader >= 0) LibC.close(reader);
            if (guard >= 0) LibC.close(guard);
            File.Delete(fifo);
        }
    }

    /// <summary>The stream ended early or broken: what a helper that failed midway leaves (a closed FIFO reads as its end).</summary>
    static bool CutStream(Exception ex) => ex is ContainerException { ErrorId: "TreeListingInvalid" };

    TreeListing(byte[] data, string root)
    {
        var r = new ListingReader(new MemoryStream(data), root);
        while (r.Next() is { } rec)
        {
            var path = rec.Path;
            var slash = path.LastIndexOf('/');
            var parent = slash < 0 ? "" : path[..slash];
            if (path.Length == 0 || !children.TryGetValue(parent, out var list) || !entries.TryAdd(path, new Entry(rec.Stat, rec.Link, rec.Xattrs)))
                throw r.Corrupt($"entry '{path}' out of order");
            list.Add(path[(slash + 1)..]);
            if ((rec.Stat.st_mode & LibC.S_IFMT) == LibC.S_IFDIR) children[path] = new();
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
}

/// <summary>One entry of a listing: see tree_list.c.</summary>
internal sealed record ListingRecord(string Path, stat Stat, string? Link, SortedDictionary<string, byte[]> Xattrs, ulong Inode, uint Links);

/// <summary>
/// Reads psc-helper's listing (tree_list.c): little-endian, length-prefixed fields, and with contents
/// (userns-tree export) a regular file's bytes right after its record, which the caller reads with
/// <see cref="Content"/> before the next record.
/// </summary>
internal sealed class ListingReader(Stream input, string root)
{
    readonly Stream _input = input;
    readonly byte[] _buf = new byte[8];
    long _pos;

    public ContainerException Corrupt(string what) => new("TreeListingInvalid", ContainerErrorKind.InvalidData,
        $"The listing of {root} made by psc-helper is invalid ({what} at byte {_pos}). Check that psc-helper matches this module's version.", root);

    void Fill(Span<byte> into)
    {
        try { _input.ReadExactly(into); }
        catch (EndOfStreamException) { throw Corrupt("truncated"); }
        _pos += into.Length;
    }

    uint U32() { Fill(_buf.AsSpan(0, 4)); return BinaryPrimitives.ReadUInt32LittleEndian(_buf); }
    ulong U64() { Fill(_buf.AsSpan(0, 8)); return BinaryPrimitives.ReadUInt64LittleEndian(_buf); }

    byte[] Bytes()
    {
        var n = U32();
        // No field is longer than a path or an xattr value (64 KiB): anything bigger is a broken stream.
        if (n > 1 << 20) throw Corrupt($"a field of {n} bytes");
        var b = new byte[n];
        Fill(b);
        return b;
    }

    string Text() => Encoding.UTF8.GetString(Bytes());

    /// <summary>The next record, or null at the end of the listing.</summary>
    public ListingRecord? Next()
    {
        int first = _input.ReadByte();
        if (first < 0) return null;
        Fill(_buf.AsSpan(1, 3));
        _buf[0] = (byte)first;
        var n = BinaryPrimitives.ReadUInt32LittleEndian(_buf);
        if (n > 1 << 20) throw Corrupt($"a path of {n} bytes");
        var pathBytes = new byte[n];
        Fill(pathBytes);
        var st = new stat { st_mode = (mode_t)U32(), st_uid = U32(), st_gid = U32(), st_size = (long)U64(), st_rdev = U64() };
        st.st_mtim.tv_sec = (long)U64();
        st.st_mtim.tv_nsec = (long_t)(long)U64();
        var link = Text();
        var xattrs = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        for (uint count = U32(), i = 0; i < count; i++) xattrs[Text()] = Bytes();
        var inode = U64();
        var links = U32();
        st.st_ino = inode;
        st.st_nlink = links;
        return new ListingRecord(Encoding.UTF8.GetString(pathBytes), st, (st.st_mode & LibC.S_IFMT) == LibC.S_IFLNK ? link : null, xattrs, inode, links);
    }

    /// <summary>A regular file's content that follows its record (exactly its recorded size).</summary>
    public Stream Content(long size) => new Filesystem.ExactLengthStream(_input, size, () => Corrupt("a file's content truncated"), consumed: n => _pos += n);
}
