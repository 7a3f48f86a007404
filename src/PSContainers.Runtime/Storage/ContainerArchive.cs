using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;
using Tmds.Linux;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Backends;
using PSContainers.Runtime.UserNamespaces;
using static Tmds.Linux.LibC;

namespace PSContainers.Runtime.Storage;

/// <summary>Progress of an export or import: entries and bytes done, and the total bytes when known.</summary>
public readonly record struct ArchiveProgress(long Entries, long Bytes, long? TotalBytes, string CurrentPath);

/// <summary>How Import-Container imports.</summary>
public sealed class ImportOptions
{
    /// <summary>The new container's name; null: the name the archive suggests (see <see cref="ArchiveSurvey.SuggestedName"/>).</summary>
    public string? Name { get; set; }
    /// <summary>The default, said explicitly: map the container into the caller's subordinate ids.</summary>
    public bool Unprivileged { get; set; }
    /// <summary>
    /// Root: import as a privileged container with the archive's owners. Only the importer can ask for
    /// it: an archive's own <c>privileged: true</c> is untrusted and never honoured by itself.
    /// </summary>
    public bool Privileged { get; set; }
    /// <summary>Keep the config settings that widen the container's access to the host (see <see cref="UntrustedConfigPolicy"/>).</summary>
    public bool KeepHostAccess { get; set; }
    /// <summary>Refuse an archive whose files add up to more bytes than this; null: only the store's free space bounds it.</summary>
    public long? MaximumSize { get; set; }
}

/// <summary>What an archive holds, read from its headers before anything is extracted.</summary>
public sealed class ArchiveSurvey
{
    public string Path { get; init; } = "";
    public long Entries { get; init; }
    /// <summary>The bytes its regular files add up to (what extraction writes, at most).</summary>
    public long Bytes { get; init; }
    public string? ConfigText { get; init; }
    public string? LxcConfig { get; init; }
    /// <summary>Export-Container's config.yaml, parsed; null for LXC archives and archives without one.</summary>
    public ContainerConfig? Config { get; set; }
    /// <summary>Settings of <see cref="Config"/> that widen the container's access to the host.</summary>
    public IReadOnlyList<HostAccessSetting> HostAccess { get; set; } = Array.Empty<HostAccessSetting>();
    /// <summary>The container name the archive suggests; null when none is valid.</summary>
    public string? SuggestedName { get; init; }
}

/// <summary>What Import-Container made, and what of the archive it could not carry over.</summary>
public sealed class ImportResult
{
    public ContainerInfo Container { get; init; } = null!;
    public IReadOnlyList<string> Warnings { get; init; } = Array.Empty<string>();
}

/// <summary>
/// Tar migration (seed 004): a container's config and rootfs as one archive (config.yaml + rootfs/),
/// numeric owners, modes, xattrs (file capabilities, ACLs) as PAX SCHILY.xattr records, hard links,
/// devices and symlinks as they are; streamed straight from the tree into the (compressed) file.
/// </summary>
public static unsafe class ContainerArchive
{
    // ---- export -----------------------------------------------------------------------------------

    public static void Export(IContainerLifecycle manager, string name, string path, bool force, IProgress<ArchiveProgress>? progress = null, CancellationToken ct = default)
    {
        ContainerNames.Validate(name);
        var kind = TarCompression.ForPath(path);
        // The lock for the whole export (freeze, archive, thaw re-enter it): nothing changes the
        // container meanwhile, and what an interrupted export left is undone first.
        using var _ = manager.Store.Lock(name);
        var info = manager.Get(name);
        manager.RecoverLocked(name);
        manager.CleanStaleTemp();
        info = manager.Get(name);
        var froze = false;
        if (info.State != ContainerStatus.Stopped)
        {
            if (!force)
                throw new ContainerException("ContainerNotStopped", ContainerErrorKind.InvalidOperation,
                    $"Container '{name}' is {info.State.ToString().ToLowerInvariant()}; its files may change while they are archived. " +
                    "Stop it first, or use -Force to freeze it for the duration of the export.", name);
            if (info.State == ContainerStatus.Running) froze = manager.FreezeForExport(name);
            info = manager.Get(name);
        }
        try
        {
            var config = ConfigLoader.Load(manager.Store.ConfigPath(name));
            var storage = new StorageManager(manager);
            // A running overlay container's merged tree exists only in its mount namespace: read it there.
            using var view = info.State != ContainerStatus.Stopped && info.Pid is { } pid && config.Storage.Backend == "overlay"
                ? new RootfsView($"/proc/{pid}/root")
                : storage.View(name, config);
            var full = Path.GetFullPath(path);
            // Named after this process: a partial file of an export that was killed is removed by the next export to that file.
            RemoveStalePartials(full);
            var temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.partial");
            try
            {
                // 0600: the archive holds the container's files (its /etc/shadow, its keys): its owner's only.
                using (var file = new FileStream(temp, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 1 << 20, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
                using (var output = TarCompression.Compress(file, kind))
                {
                    var writer = new PaxTarWriter(output);
                    var exportConfig = ConfigLoader.Parse(ConfigLoader.Serialize(config), "config");
                    exportConfig.Storage = new StorageConfig();
                    exportConfig.Rootfs = null;
                    var configBytes = Encoding.UTF8.GetBytes(NameComment + name + "\n" + ConfigLoader.Serialize(exportConfig));
                    var now = DateTimeOffset.Now.ToUnixTimeSeconds();
                    writer.WriteEntry(new TarEntry { Path = "config.yaml", Type = TarEntryType.Regular, Mode = 0x1A4, Size = configBytes.Length, MTimeSeconds = now }, new MemoryStream(configBytes));
                    var map = config.Rootfs is null ? config.IdMap : null;
                    if (RootfsIds.OutOfReach(map, config.Storage.IsIdmapped) && !view.Path.StartsWith("/proc/", StringComparison.Ordinal))
                    {
                        // A non-root user's shifted tree: read by root of a namespace mapping its
                        // owners, which sees them as the container does; this side writes the archive.
                        var walker = new ExportWalker(writer, progress, null, ct, new HashSet<string>(StringComparer.Ordinal));
                        TreeListing.Stream(view.Path, map!, manager.Store.TempDirectory, reader => walker.Listed(reader, map!.End(UserNamespaces.IdMapKind.Uid)));
                        walker.Done();
                    }
                    else
                    {
                        long? total = progress is null ? null : TotalSize(view.Path);
                        var walker = new ExportWalker(writer, progress, total, ct, MountPoints(view.Path), config.Storage.IsIdmapped ? null : config.IdMap);
                        // "/." so that /proc/PID/root (a link to the container's root) is read as the directory it leads to.
                        walker.Entry(view.Path.TrimEnd('/') + "/.", "rootfs");
                        walker.Done();
                    }
                    writer.Finish();
                }
                File.Move(temp, full, overwrite: true);
            }
            catch
            {
                File.Delete(temp);
                throw;
            }
        }
        finally
        {
            if (froze) manager.ThawAfterExport(name);
        }
    }

    /// <summary>
    /// Partial archives (".FILE.PID.GUID.partial") in <paramref name="full"/>'s directory whose
    /// exporting process is gone: a killed export's, of this file or another. A live export's stays.
    /// </summary>
    static void RemoveStalePartials(string full)
    {
        var dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) return;
        foreach (var path in Directory.EnumerateFiles(dir, ".*.partial"))
        {
            var parts = Path.GetFileName(path).Split('.');
            // "", FILE..., PID, GUID, "partial"
            if (parts.Length >= 5 && parts[^2].Length == 32 && int.TryParse(parts[^3], out var pid) && pid > 0 && Sys.ProcessStartTime(pid) is null)
                try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>
    /// For a running container read through /proc/PID/root: the mount points inside it (/proc, /sys,
    /// /dev, bind mounts) as archive paths. Their directories are archived, never their contents.
    /// </summary>
    static HashSet<string> MountPoints(string view)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        if (!view.StartsWith("/proc/", StringComparison.Ordinal)) return result;
        foreach (var mount in MountInfo.Read(view[..^"/root".Length] + "/mountinfo"))
            if (mount.MountPoint != "/") result.Add("rootfs" + mount.MountPoint);
        return result;
    }

    static long TotalSize(string root)
    {
        long total = 0;
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true };
        foreach (var f in new DirectoryInfo(root).EnumerateFiles("*", options)) total += f.Length;
        return total;
    }

    /// <param name="idMap">A user-namespaced container's map: owners are archived as the container sees them
    /// (host id 100000 is its 0), so the archive is the same whatever range it ran on; unmapped ids as 65534, nobody.</param>
    private sealed class ExportWalker(PaxTarWriter writer, IProgress<ArchiveProgress>? progress, long? total, CancellationToken ct, HashSet<string> mountPoints, UserNamespaces.IdMap? idMap = null)
    {
        readonly Dictionary<(ulong, ulong), string> _links = new();
        long _entries, _bytes;
        DateTime _lastReport;
        static readonly EnumerationOptions List = new() { AttributesToSkip = 0, RecurseSubdirectories = false, IgnoreInaccessible = false };

        public void Entry(string host, string archivePath)
        {
            ct.ThrowIfCancellationRequested();
            if (!FsNative.TryLstat(host, out var st)) return; // deleted meanwhile
            var type = st.st_mode & S_IFMT;
            if (type == S_IFSOCK) return;
            var mounted = mountPoints.Contains(archivePath);
            if (mounted && type != S_IFDIR) return; // a bind-mounted file (a device node from the host)
            var entry = new TarEntry
            {
                Path = archivePath,
                Mode = (int)(st.st_mode & (mode_t)0xFFF),
                Uid = idMap is null ? st.st_uid : idMap.ToContainer(UserNamespaces.IdMapKind.Uid, st.st_uid) ?? 65534,
                Gid = idMap is null ? st.st_gid : idMap.ToContainer(UserNamespaces.IdMapKind.Gid, st.st_gid) ?? 65534,
                MTimeSeconds = st.st_mtim.tv_sec,
                MTimeNanoseconds = st.st_mtim.tv_nsec,
            };
            if (type != S_IFLNK) AddXattrs(entry, FsNative.ReadXattrs(host));
            if (type != S_IFDIR && (ulong)st.st_nlink > 1)
            {
                var key = ((ulong)st.st_dev, (ulong)st.st_ino);
                if (_links.TryGetValue(key, out var first))
                {
                    entry.Type = TarEntryType.HardLink;
                    entry.LinkPath = first;
                    entry.Xattrs.Clear();
                    entry.AclAccess = entry.AclDefault = null;
                    writer.WriteEntry(entry, null);
                    Report(archivePath);
                    return;
                }
                _links[key] = archivePath;
            }
            if (type == S_IFDIR)
            {
                entry.Type = TarEntryType.Directory;
                writer.WriteEntry(entry, null);
                Report(archivePath);
                if (mounted) return;
                foreach (var child in Directory.EnumerateFileSystemEntries(host, "*", List).Order(StringComparer.Ordinal))
                    Entry(child, archivePath + "/" + Path.GetFileName(child));
                return;
            }
            if (type == S_IFREG)
            {
                int fd;
                fixed (byte* p = FsNative.Z(host)) fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
                if (fd < 0) throw FsNative.Error("read", host, FsNative.Errno);
                using var stream = new FileStream(new SafeFileHandle(fd, true), FileAccess.Read, 1);
                entry.Type = TarEntryType.Regular;
                entry.Size = st.st_size;
                writer.WriteEntry(entry, stream);
                _bytes += st.st_size;
            }
            else if (type == S_IFLNK)
            {
                entry.Type = TarEntryType.SymbolicLink;
                entry.LinkPath = new FileInfo(host).LinkTarget ?? "";
                writer.WriteEntry(entry, null);
            }
            else
            {
                SetDevice(entry, st);
                writer.WriteEntry(entry, null);
            }
            Report(archivePath);
        }

        static void AddXattrs(TarEntry entry, IEnumerable<KeyValuePair<string, byte[]>> xattrs)
        {
            foreach (var (k, v) in xattrs)
            {
                if (k.StartsWith("security.selinux", StringComparison.Ordinal)) continue;
                // ACLs the way GNU tar --acls stores them, so GNU tar restores them too.
                var text = k is "system.posix_acl_access" or "system.posix_acl_default" ? PosixAcl.ToText(v) : null;
                if (text is not null && k == "system.posix_acl_access") entry.AclAccess = text;
                else if (text is not null) entry.AclDefault = text;
                else entry.Xattrs[k] = v;
            }
        }

        static void SetDevice(TarEntry entry, stat st)
        {
            entry.Type = (st.st_mode & S_IFMT) == S_IFCHR ? TarEntryType.CharacterDevice : (st.st_mode & S_IFMT) == S_IFBLK ? TarEntryType.BlockDevice : TarEntryType.Fifo;
            entry.DevMajor = (int)(((ulong)st.st_rdev >> 8) & 0xFFF | ((ulong)st.st_rdev >> 32) & ~0xFFFUL);
            entry.DevMinor = (int)(((ulong)st.st_rdev & 0xFF) | (((ulong)st.st_rdev >> 12) & ~0xFFUL & 0xFFFFFFFF));
        }

        /// <summary>
        /// The same archive entries from a listing made in the container's user namespace
        /// (<see cref="TreeListing.Stream"/>): owners are already the container's; the caller's own id,
        /// mapped there at <paramref name="callerId"/>, is no container id and becomes 65534 as on
        /// root's export. Entries come in the helper's walk order, each directory before its contents.
        /// </summary>
        public void Listed(ListingReader reader, uint callerId)
        {
            var first = true;
            while (reader.Next() is { } rec)
            {
                ct.ThrowIfCancellationRequested();
                if (first != (rec.Path.Length == 0)) throw reader.Corrupt("the root's record not first");
                first = false;
                var st = rec.Stat;
                var type = st.st_mode & S_IFMT;
                var archivePath = rec.Path.Length == 0 ? "rootfs" : "rootfs/" + rec.Path;
                if (type == S_IFSOCK) continue;
                var entry = new TarEntry
                {
                    Path = archivePath,
                    Mode = (int)(st.st_mode & (mode_t)0xFFF),
                    Uid = st.st_uid == callerId ? 65534 : st.st_uid,
                    Gid = st.st_gid == callerId ? 65534 : st.st_gid,
                    MTimeSeconds = st.st_mtim.tv_sec,
                    MTimeNanoseconds = st.st_mtim.tv_nsec,
                };
                if (type != S_IFLNK) AddXattrs(entry, rec.Xattrs);
                if (type != S_IFDIR && rec.Links > 1)
                {
                    // One filesystem (the walk crosses no mount): the inode alone names the file.
                    var key = (0UL, rec.Inode);
                    if (_links.TryGetValue(key, out var firstPath))
                    {
                        entry.Type = TarEntryType.HardLink;
                        entry.LinkPath = firstPath;
                        entry.Xattrs.Clear();
                        entry.AclAccess = entry.AclDefault = null;
                        writer.WriteEntry(entry, null);
                        if (type == S_IFREG) reader.Content(st.st_size).CopyTo(Stream.Null);
                        Report(archivePath);
                        continue;
                    }
                    _links[key] = archivePath;
                }
                if (type == S_IFDIR)
                {
                    entry.Type = TarEntryType.Directory;
                    writer.WriteEntry(entry, null);
                }
                else if (type == S_IFREG)
                {
                    entry.Type = TarEntryType.Regular;
                    entry.Size = st.st_size;
                    writer.WriteEntry(entry, reader.Content(st.st_size));
                    _bytes += st.st_size;
                }
                else if (type == S_IFLNK)
                {
                    entry.Type = TarEntryType.SymbolicLink;
                    entry.LinkPath = rec.Link ?? "";
                    writer.WriteEntry(entry, null);
                }
                else
                {
                    SetDevice(entry, st);
                    writer.WriteEntry(entry, null);
                }
                Report(archivePath);
            }
            if (first) throw reader.Corrupt("no root record");
        }

        public void Done() => progress?.Report(new ArchiveProgress(_entries, _bytes, total, ""));

        void Report(string path)
        {
            _entries++;
            if (progress is null || (DateTime.UtcNow - _lastReport).TotalMilliseconds < 200) return;
            _lastReport = DateTime.UtcNow;
            progress.Report(new ArchiveProgress(_entries, _bytes, total, path));
        }
    }

    // ---- import -----------------------------------------------------------------------------------

    const ulong RESOLVE_NO_MAGICLINKS_ = 0x02;
    const ulong RESOLVE_NO_SYMLINKS_ = 0x04;
    const ulong RESOLVE_BENEATH_ = 0x08;

    static ContainerException Unsafe(string entry, string why) =>
        new("ArchiveEntryUnsafe", ContainerErrorKind.InvalidData,
            $"Refusing archive entry '{entry}': {why}. The archive may be hostile; nothing was imported.", entry);

    /// <summary>Recreates a container from an archive (see the overload with <see cref="ImportOptions"/>).</summary>
    public static ImportResult Import(IContainerLifecycle manager, string path, string name, IProgress<ArchiveProgress>? progress = null, CancellationToken ct = default, bool unprivileged = false) =>
        Import(manager, path, new ImportOptions { Name = name, Unprivileged = unprivileged }, null, progress, ct);

    /// <summary>
    /// The first of an import's two passes: reads the archive's headers only (an uncompressed file is
    /// seeked over; gzip and zstd are decompressed but nothing is written), and with them the
    /// config, the name the archive suggests, the bytes and entries it would extract, and the config
    /// settings that widen the container's access to the host. Unsafe entries are refused here
    /// already, before anything exists on disk.
    /// </summary>
    public static ArchiveSurvey Survey(string path, CancellationToken ct = default, IProgress<ArchiveProgress>? progress = null)
    {
        if (!File.Exists(path))
            throw new ContainerException("ArchiveNotFound", ContainerErrorKind.ObjectNotFound, $"The archive '{path}' does not exist.", path);
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Survey(file, path, ct, progress);
    }

    static ArchiveSurvey Survey(FileStream file, string path, CancellationToken ct, IProgress<ArchiveProgress>? progress = null)
    {
        file.Position = 0;
        using var input = new ArchiveInput(TarCompression.Decompress(new NonClosing(file)), path);
        var warnings = new List<string>();
        var extractor = new Extractor(null, warnings, progress, () => file.Position, file.Length, ct);
        var (configText, lxcConfig) = extractor.Run(new PaxTarReader(input));
        var survey = new ArchiveSurvey
        {
            Path = path,
            Entries = extractor.Entries,
            Bytes = extractor.Bytes,
            ConfigText = configText,
            LxcConfig = lxcConfig,
            SuggestedName = SuggestName(configText, extractor.Prefix, path),
        };
        if (configText is not null)
        {
            survey.Config = ConfigLoader.Parse(configText, $"{Path.GetFileName(path)}:config.yaml");
            survey.HostAccess = UntrustedConfigPolicy.Find(survey.Config);
        }
        return survey;
    }

    /// <summary>Marks the exported config with the container's name (a YAML comment: any reader ignores it).</summary>
    const string NameComment = "# psc-container: ";

    /// <summary>The name an archive suggests: Export-Container's mark in config.yaml, an LXC archive's
    /// directory (var/lib/lxc/NAME), else the file name without its extensions; null if none is valid.</summary>
    static string? SuggestName(string? configText, string[]? prefix, string path)
    {
        var candidates = new List<string>();
        if (configText is not null && configText.StartsWith(NameComment, StringComparison.Ordinal))
            candidates.Add(configText[NameComment.Length..].Split('\n')[0].Trim());
        if (prefix is { Length: > 0 }) candidates.Add(prefix[^1]);
        var file = Path.GetFileName(path);
        foreach (var ext in new[] { ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".tzst", ".tar" })
            if (file.EndsWith(ext, StringComparison.OrdinalIgnoreCase)) { file = file[..^ext.Length]; break; }
        candidates.Add(file);
        return candidates.FirstOrDefault(c => ContainerNames.IsValid(c, out _));
    }

    /// <summary>
    /// Recreates a container from an archive of <see cref="Export"/> or from an LXC archive
    /// (tar --numeric-owner -czf x.tgz /var/lib/lxc/NAME), in two passes over one open file: the
    /// survey (headers only, see <see cref="Survey(string, CancellationToken, IProgress{ArchiveProgress})"/>) decides before
    /// anything is written: the name, whether it fits (the store's free space and
    /// <see cref="ImportOptions.MaximumSize"/>) and what of its config is kept (an archive is
    /// untrusted: see <see cref="UntrustedConfigPolicy"/>). The second pass extracts, and stops if
    /// the archive turns out to hold more than the survey saw. Every entry is created relative to
    /// the new rootfs's directory fd, its parent resolved with openat2 RESOLVE_BENEATH (no '..', no
    /// absolute or escaping symlinks, no magic links) and the entry itself made with O_EXCL /
    /// O_NOFOLLOW: an archive cannot write outside the new rootfs. A refused entry aborts the whole
    /// import and the half-made container is deleted.
    /// </summary>
    /// <param name="survey">The caller's own survey of the same file (the cmdlet's, which asked for
    /// confirmation with it); when null the archive is surveyed here.</param>
    public static ImportResult Import(IContainerLifecycle manager, string path, ImportOptions options, ArchiveSurvey? survey = null, IProgress<ArchiveProgress>? progress = null, CancellationToken ct = default)
    {
        var store = manager.Store;
        if (!File.Exists(path))
            throw new ContainerException("ArchiveNotFound", ContainerErrorKind.ObjectNotFound, $"The archive '{path}' does not exist.", path);
        // One open file for both passes: renaming another archive into its place meanwhile changes nothing.
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        // The caller's survey (of an earlier open of the path) holds: the second pass stops at
        // anything more than it counted, and compares the config it decided on.
        survey ??= Survey(file, path, ct);
        var name = options.Name ?? survey.SuggestedName
            ?? throw new ContainerException("ContainerNameRequired", ContainerErrorKind.InvalidArgument,
                $"The archive '{path}' suggests no valid container name (no Export-Container mark, no LXC directory, and its file name is not one). Give one with -Name.", path);
        ContainerNames.Validate(name);
        manager.EnsureStoreSecure();
        store.EnsureRoot();
        CheckSize(store, survey, options.MaximumSize, path);
        var backend = StorageBackends.DefaultFor(store.Root);
        using var _ = store.Lock(name);
        if (store.Exists(name) || Directory.Exists(store.ContainerDirectory(name)))
            throw new ContainerException("ContainerExists", ContainerErrorKind.ResourceExists,
                $"A container named '{name}' already exists in {store.Root}. Choose another -Name, or remove it first.", name);
        manager.CleanStaleTemp();
        var temp = store.NewTempDirectory(name);
        var warnings = new List<string>();
        // User-namespaced unless the importer asks for privileged (see ContainerModes).
        var privileged = ContainerModes.Decide(new ContainerConfig(), options.Privileged, options.Unprivileged, manager.Host.IsRoot, name);
        // An isolated container (idMapIsolated in its config) gets a block of its own here too.
        var isolated = !privileged && survey.ConfigText is { } surveyed && ConfigLoader.Parse(surveyed, $"{Path.GetFileName(path)}:config.yaml").IdMapIsolated;
        var ranges = new IdRanges.IsolatedIdRanges(store, manager.SubordinateIds);
        var allocated = false;
        UserNamespaces.DefaultIdMap.Allocation? allocation = null;
        UserNamespaces.IdMap? idMap = null;
        string? notIdmapped = null;
        var idmapped = false;
        try
        {
            // Taken after every check: a range allocated for root goes again if the import fails.
            if (!privileged) idMap = isolated ? ranges.Allocate(name, out allocated).Map : (allocation = UserNamespaces.DefaultIdMap.Allocate(manager.SubordinateIds)).Map;
            // The archive holds the ids the container sees: where the store can be idmapped they are
            // extracted as they are (storage.ids idmapped); otherwise shifted into the container's range.
            idmapped = idMap is not null && UserNamespaces.RootfsIds.CanIdmap(store.Root, idMap, out notIdmapped);
            if (idMap is not null && !idmapped) backend = "dir";
            var storage = new StorageConfig { Backend = backend, Ids = idMap is null ? null : idmapped ? StorageConfig.IdsIdmapped : StorageConfig.IdsShifted };
            var rootfs = StorageBackends.Get(backend).CreateRootfs(temp, store.ContainerDirectory(name), storage);
            var fileSize = file.Length;
            file.Position = 0;
            using var input = new ArchiveInput(TarCompression.Decompress(new NonClosing(file)), path);
            // Shifted: extracted as the caller, owners recorded and applied in the container's user namespace.
            if (idMap is not null && !idmapped) UserNamespaces.RootfsIds.WarnOnce(rootfs, notIdmapped, warnings.Add);
            var owners = idMap is null || idmapped ? null : new StringBuilder();
            var extractor = new Extractor(rootfs, warnings, progress, () => file.Position, fileSize, ct, owners) { Budget = (survey.Bytes, survey.Entries), ArchivePath = path };
            var (configText, lxcConfig) = extractor.Run(new PaxTarReader(input));
            if (configText != survey.ConfigText) throw Changed(path);
            if (owners is not null)
            {
                var ownersFile = Path.Combine(temp, "owners");
                File.WriteAllText(ownersFile, owners!.ToString());
                UserNamespaces.UserNamespace.Shift(rootfs, idMap!, ownersFile);
                File.Delete(ownersFile);
            }
            ContainerConfig config;
            if (configText is not null) config = ConfigLoader.Parse(configText, $"{Path.GetFileName(path)}:config.yaml");
            else if (lxcConfig is not null) config = LxcConfig.Translate(lxcConfig, warnings);
            else
            {
                warnings.Add("The archive holds no config.yaml or LXC config: the container gets the default config (init /sbin/init).");
                config = new ContainerConfig();
            }
            // An archive is untrusted input: what widens the container's access to the host goes,
            // unless the caller keeps it. The store's own settings (rootfs, storage) are always replaced.
            if (options.KeepHostAccess)
            {
                foreach (var kept in UntrustedConfigPolicy.Find(config))
                    if (kept.Key is not ("rootfs" or "storage.lower" or "storage.origin"))
                        warnings.Add($"Kept {kept.Key} ({kept.Value}) from the archive (-KeepHostAccess): {kept.Reason}.");
            }
            else
                foreach (var removed in UntrustedConfigPolicy.Sanitize(config))
                    if (removed.Key is not ("rootfs" or "storage.lower" or "storage.origin"))
                        warnings.Add(UntrustedConfigPolicy.RemovedWarning(removed));
            config.Storage = storage;
            config.Rootfs = null;
            if (idMap is null && config.IdMap is not null)
                warnings.Add($"The archived container was user-namespaced (idMap {config.IdMap}); it is imported as a privileged one with the archived owners (-Privileged). Import it without -Privileged to map it.");
            else if (idMap is not null && config.Privileged == true)
                warnings.Add("The archive's config asks for a privileged container (privileged: true); it is imported user-namespaced on your ids: an archive cannot make its container privileged. Import it with -Privileged if you trust it.");
            // The importer's choice, recorded (see ContainerModes): never the archive's map or mode.
            config.IdMap = idMap;
            config.Privileged = privileged ? true : null;
            if (idMap is null) config.IdMapIsolated = false;
            File.WriteAllText(Path.Combine(temp, "config.yaml"), ConfigLoader.Serialize(config));
            new PersistedState { Created = DateTimeOffset.Now }.Save(Path.Combine(temp, "state.json"));
            ct.ThrowIfCancellationRequested();
            Directory.Move(temp, store.ContainerDirectory(name));
        }
        catch
        {
            try
            {
                if (idMap is not null && !manager.Host.IsRoot) UserNamespaces.UserNamespace.DeleteTree(temp, idMap);
                else FsNative.DeleteTree(temp);
            }
            finally
            {
                UserNamespaces.DefaultIdMap.Release(manager.SubordinateIds, allocation);
                if (allocated) ranges.Free(name);
            }
            throw;
        }
        if (allocation?.Notice is { } notice) warnings.Insert(0, notice);
        return new ImportResult { Container = manager.Get(name), Warnings = warnings };
    }

    static ContainerException Changed(string path) =>
        new("ArchiveChanged", ContainerErrorKind.InvalidData,
            $"The archive '{path}' changed while it was imported (it now holds more, or another config, than when it was first read). Nothing was imported; import it again when nothing writes to it.", path);

    /// <summary>
    /// Refuses, before anything is written, an archive whose files would not fit: larger than
    /// <paramref name="maximum"/>, or than the store filesystem's free space less a reserve (5%,
    /// at most 1 GiB, so an import never fills the filesystem), or with more entries than free inodes.
    /// </summary>
    static void CheckSize(ContainerStore store, ArchiveSurvey survey, long? maximum, string path)
    {
        // Directories, inodes and metadata take room too: a 4 KiB block per entry on top of the data.
        var needed = survey.Bytes + survey.Entries * 4096;
        if (maximum is { } max && survey.Bytes > max)
            throw new ContainerException("ArchiveTooLarge", ContainerErrorKind.LimitsExceeded,
                $"The archive '{path}' would extract {Human(survey.Bytes)} in {survey.Entries} entries, more than -MaximumSize {Human(max)}. Nothing was imported; raise -MaximumSize if you expect that much.", path);
        var (available, total, inodes) = FsNative.Space(store.Root);
        var reserve = Math.Min(total / 20, 1L << 30);
        if (needed > available - reserve)
            throw new ContainerException("ArchiveTooLarge", ContainerErrorKind.LimitsExceeded,
                $"The archive '{path}' would extract {Human(survey.Bytes)} in {survey.Entries} entries, but the store's filesystem ({store.Root}) has {Human(Math.Max(0, available))} free " +
                $"(of which {Human(reserve)} stays free). Nothing was imported; free space, or import into a store on another filesystem (-StorePath).", path);
        if (survey.Entries > inodes)
            throw new ContainerException("ArchiveTooLarge", ContainerErrorKind.LimitsExceeded,
                $"The archive '{path}' holds {survey.Entries} entries, but the store's filesystem ({store.Root}) has only {inodes} free inodes. Nothing was imported.", path);
    }

    static string Human(long bytes)
    {
        if (bytes < 1024) return $"{bytes} bytes";
        string[] units = { "KiB", "MiB", "GiB", "TiB", "PiB" };
        double v = bytes;
        int u = -1;
        while (v >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return v.ToString("0.0", CultureInfo.InvariantCulture) + " " + units[u];
    }

    /// <summary>Lets a decompressor close without closing the file (the import reads it twice).</summary>
    private sealed class NonClosing(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <param name="owners">When given, owners are not set but recorded here as NUL-terminated "uid gid
    /// rootfs-relative-path" records (the format psc-helper userns-tree reads) for entries not owned by 0:0.</param>
    /// <summary>
    /// Applies one image layer (a plain or gzip tar of root-relative paths, OCI's layer format) onto
    /// <paramref name="rootfs"/> with the import's checks: every path resolved beneath the rootfs
    /// (openat2 RESOLVE_BENEATH), no '..', no absolute names, no escaping links, device nodes only
    /// where this process may make them. Whiteouts (<c>.wh.NAME</c>) delete NAME from the layers
    /// below, <c>.wh..wh..opq</c> empties its directory of what the layers below put there.
    /// An unsafe entry throws ArchiveEntryUnsafe naming it; the caller deletes the half-made rootfs.
    /// </summary>
    /// With <paramref name="overlayWhiteouts"/> the layer is extracted alone, as an overlay lower
    /// layer (the shared layers of LayerStore): a whiteout becomes overlayfs's whiteout (a 0/0
    /// character device), an opaque marker its opaque directory (trusted.overlay.opaque "y"), and
    /// the kernel hides what the layers below hold.
    /// </summary>
    internal static void ApplyLayer(string rootfs, Stream tar, List<string> warnings, CancellationToken ct, bool overlayWhiteouts = false)
    {
        var extractor = new Extractor(rootfs, warnings, null, () => 0, 0, ct) { Layer = true, OverlayWhiteouts = overlayWhiteouts };
        extractor.Run(new PaxTarReader(tar));
    }

    private sealed class Extractor(string? rootfs, List<string> warnings, IProgress<ArchiveProgress>? progress, Func<long> position, long total, CancellationToken ct, StringBuilder? owners = null)
    {
        int _root = -1;
        string[]? _prefix;
        string? _configText, _lxcConfig;
        readonly Dictionary<string, string> _pendingConfigs = new();
        readonly List<(string Rel, TarEntry Entry)> _directories = new();
        TarEntry? _rootEntry;
        long _entries;
        DateTime _lastReport;
        readonly bool _isRoot = Host.HostContext.Current.IsRoot;
        long _bytes;

        /// <summary>Survey mode (no rootfs): nothing is written; entries and bytes are counted.</summary>
        bool DryRun => rootfs is null;
        public long Entries => _entries;
        /// <summary>The bytes of regular files (their sizes as the headers say).</summary>
        public long Bytes => _bytes;
        public string[]? Prefix => _prefix;
        /// <summary>Extraction stops (ArchiveChanged) past what the survey counted.</summary>
        public (long Bytes, long Entries)? Budget { get; init; }
        public string ArchivePath { get; init; } = "";
        /// <summary>An image layer: paths are rootfs-relative, whiteouts apply (see ApplyLayer).</summary>
        public bool Layer { get; init; }
        /// <summary>A layer extracted alone as an overlay lower layer: whiteouts in overlayfs's form (see ApplyLayer).</summary>
        public bool OverlayWhiteouts { get; init; }
        // What this layer made: a whiteout or opaque marker hides only what the layers below made.
        readonly HashSet<string> _madeHere = new(StringComparer.Ordinal);

        public (string? Config, string? Lxc) Run(PaxTarReader reader)
        {
            if (Layer) _prefix = Array.Empty<string>();
            if (!DryRun)
            {
                fixed (byte* p = FsNative.Z(rootfs!)) _root = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
                if (_root < 0) throw FsNative.Error("open", rootfs!, FsNative.Errno);
            }
            try
            {
                while (reader.Next() is var (entry, data))
                {
                    ct.ThrowIfCancellationRequested();
                    Handle(entry, data);
                    if (progress is not null && (DateTime.UtcNow - _lastReport).TotalMilliseconds >= 200)
                    {
                        _lastReport = DateTime.UtcNow;
                        progress.Report(new ArchiveProgress(_entries, position(), total, entry.Path));
                    }
                }
                progress?.Report(new ArchiveProgress(_entries, total, total, ""));
                if (_prefix is null)
                    throw new ContainerException("NotAContainerArchive", ContainerErrorKind.InvalidData,
                        "The archive holds no rootfs/ directory: it is neither an Export-Container archive nor an LXC container archive.");
                if (DryRun) return (_configText, _lxcConfig);
                // Directories last, deepest first: creating their entries would change their times.
                for (int i = _directories.Count - 1; i >= 0; i--) ApplyDirectory(_directories[i].Rel, _directories[i].Entry);
                if (_rootEntry is not null) ApplyDirectory("", _rootEntry);
                return (_configText, _lxcConfig);
            }
            finally { if (_root >= 0) close(_root); }
        }

        static string[] Components(string path, string what)
        {
            if (path.Contains('\0')) throw Unsafe(path, "it contains a NUL character");
            if (path.StartsWith('/')) throw Unsafe(path, $"its {what} is absolute");
            var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(c => c != ".").ToArray();
            if (parts.Contains("..")) throw Unsafe(path, $"its {what} contains '..'");
            return parts;
        }

        /// <summary>Maps an archive path to a rootfs-relative one; null for config and entries outside the rootfs.</summary>
        string[]? Map(string[] parts, TarEntry entry, bool isLink)
        {
            if (_prefix is null)
            {
                int i = Array.IndexOf(parts, "rootfs");
                if (i < 0)
                {
                    if (entry.Type == TarEntryType.Regular && parts.Length > 0 && parts[^1] is "config.yaml" or "config") return parts;
                    return null;
                }
                _prefix = parts[..i];
            }
            if (parts.Length <= _prefix.Length || !parts.AsSpan(0, _prefix.Length).SequenceEqual(_prefix)) return null;
            return parts[_prefix.Length..];
        }

        /// <summary>Record mode: remembers the entry's owner instead of setting it.</summary>
        bool Recorded(TarEntry entry)
        {
            if (owners is null) return false;
            var rel = Map(Components(entry.Path, "path"), entry, false);
            if (rel is null || rel.Length < 2 || (entry.Uid == 0 && entry.Gid == 0)) return true;
            owners.Append(CultureInfo.InvariantCulture, $"{entry.Uid} {entry.Gid} {string.Join('/', rel[1..])}\0");
            return true;
        }

        void Handle(TarEntry entry, Stream data)
        {
            _entries++;
            // A layer's root may be named "/" (umoci insert ... /): only exactly that, never "/x".
            if (Layer && entry.Type == TarEntryType.Directory && entry.Path.Split('/', StringSplitOptions.RemoveEmptyEntries).All(p => p == "."))
            {
                _rootEntry = entry;
                return;
            }
            var parts = Components(entry.Path, "path");
            if (Layer)
            {
                if (parts.Length == 0)
                {
                    if (entry.Type != TarEntryType.Directory) throw Unsafe(entry.Path, "the layer's root is not a directory");
                    _rootEntry = entry;
                    return;
                }
                if (parts[^1].StartsWith(".wh.", StringComparison.Ordinal))
                {
                    if (OverlayWhiteouts) OverlayWhiteout(parts, entry); else Whiteout(parts, entry);
                    return;
                }
                foreach (var key in entry.Xattrs.Keys.Where(k => k.StartsWith("trusted.overlay.", StringComparison.Ordinal) || k.StartsWith("user.overlay.", StringComparison.Ordinal)).ToList())
                {
                    entry.Xattrs.Remove(key);
                    warnings.Add($"Dropped the xattr '{key}' of '{entry.Path}': overlayfs's own attributes are not taken from an image.");
                }
                _madeHere.Add(string.Join('/', parts));
                Create(parts, entry, data);
                return;
            }
            var rel = Map(parts, entry, false);
            if (rel is null)
            {
                if (entry.Type != TarEntryType.Directory) warnings.Add($"Skipped '{entry.Path}': it is outside the container's rootfs/.");
                return;
            }
            if (_prefix is null || rel.Length == 0 || rel[0] != "rootfs")
            {
                // config.yaml (ours) or config (LXC) next to rootfs/; read in memory, at most 1 MiB.
                var leaf = rel.Length > 0 ? rel[^1] : "";
                if (entry.Type == TarEntryType.Regular && leaf is "config.yaml" or "config" && (_prefix is null ? rel.Length >= 1 : rel.Length == 1))
                {
                    if (entry.Size > 1 << 20) throw Unsafe(entry.Path, "a config file larger than 1 MiB");
                    var text = new StreamReader(data, Encoding.UTF8).ReadToEnd();
                    var dirKey = string.Join('/', rel[..^1]);
                    if (_prefix is null) { _pendingConfigs[dirKey + "|" + leaf] = text; return; }
                    if (leaf == "config.yaml") _configText = text; else _lxcConfig = text;
                }
                else if (entry.Type != TarEntryType.Directory)
                    warnings.Add($"Skipped '{entry.Path}': not part of a container (only config.yaml / config and rootfs/ are imported).");
                return;
            }
            if (_pendingConfigs.Count > 0)
            {
                var key = string.Join('/', _prefix);
                if (_pendingConfigs.TryGetValue(key + "|config.yaml", out var c)) _configText = c;
                if (_pendingConfigs.TryGetValue(key + "|config", out var l)) _lxcConfig = l;
                _pendingConfigs.Clear();
            }
            var inner = rel[1..];
            if (inner.Length == 0)
            {
                if (entry.Type != TarEntryType.Directory) throw Unsafe(entry.Path, "the rootfs itself is not a directory");
                _rootEntry = entry;
                return;
            }
            if (entry.Type == TarEntryType.Regular) _bytes += entry.Size;
            if (Budget is { } budget && (_bytes > budget.Bytes || _entries > budget.Entries)) throw Changed(ArchivePath);
            if (DryRun)
            {
                if (entry.Type == TarEntryType.HardLink) Components(entry.LinkPath, "hard link target");
                return;
            }
            Create(inner, entry, data);
        }

        /// <summary>
        /// A whiteout: <c>.wh..wh..opq</c> empties its directory of entries from the layers below;
        /// <c>.wh.NAME</c> deletes NAME. Resolved beneath the rootfs like every entry, and without
        /// following symlinks: a whiteout can never reach outside.
        /// </summary>
        void Whiteout(string[] parts, TarEntry entry)
        {
            if (entry.Type is not (TarEntryType.Regular or TarEntryType.HardLink))
                throw Unsafe(entry.Path, "a whiteout must be an empty regular file");
            var parent = string.Join('/', parts[..^1]);
            bool opaque = parts[^1] == ".wh..wh..opq";
            var name = opaque ? "" : parts[^1][4..];
            if (!opaque && (name.Length == 0 || name is "." or ".." || name.StartsWith(".wh.", StringComparison.Ordinal)))
                throw Unsafe(entry.Path, $"it is a whiteout of '{name}', which is not a name in its directory");
            int fd = OpenBeneath(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, RESOLVE_NO_SYMLINKS_, entry.Path);
            if (fd < 0) return; // nothing below to hide
            try
            {
                var prefix = parent.Length == 0 ? "" : parent + "/";
                var victims = opaque ? InRoot.List(fd, entry.Path) : new List<string> { name };
                foreach (var victim in victims)
                {
                    if (_madeHere.Contains(prefix + victim)) continue;
                    fixed (byte* leaf = FsNative.Z(victim))
                    {
                        stat st;
                        if (fstatat(fd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
                        if ((st.st_mode & S_IFMT) == S_IFDIR)
                            // Through our own descriptor of the parent: .NET deletes links, never follows them.
                            Directory.Delete($"/proc/self/fd/{fd}/{victim}", recursive: true);
                        else if (unlinkat(fd, leaf, 0) != 0) throw FsNative.Error("delete", entry.Path, FsNative.Errno);
                    }
                }
            }
            finally { close(fd); }
        }

        /// <summary>
        /// A whiteout in overlayfs's form, for a layer extracted alone: <c>.wh.NAME</c> becomes a 0/0
        /// character device NAME (unless this layer itself has NAME), <c>.wh..wh..opq</c> marks its
        /// directory (made if the layer did not list it) opaque. Resolved beneath the layer like every entry.
        /// </summary>
        void OverlayWhiteout(string[] parts, TarEntry entry)
        {
            if (entry.Type is not (TarEntryType.Regular or TarEntryType.HardLink))
                throw Unsafe(entry.Path, "a whiteout must be an empty regular file");
            bool opaque = parts[^1] == ".wh..wh..opq";
            var name = opaque ? "" : parts[^1][4..];
            if (!opaque && (name.Length == 0 || name is "." or ".." || name.StartsWith(".wh.", StringComparison.Ordinal)))
                throw Unsafe(entry.Path, $"it is a whiteout of '{name}', which is not a name in its directory");
            // The directory the marker is in: made (0755, like tar) where the layer did not list it.
            close(Parent(parts, entry.Path));
            var parent = string.Join('/', parts[..^1]);
            int fd = OpenBeneath(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, RESOLVE_NO_SYMLINKS_, entry.Path);
            if (fd < 0) throw Unsafe(entry.Path, "its directory vanished");
            try
            {
                if (opaque)
                {
                    FsNative.SetXattr(fd, entry.Path, "trusted.overlay.opaque", "y"u8.ToArray());
                    return;
                }
                fixed (byte* leaf = FsNative.Z(name))
                {
                    // The layer's own NAME (made before or after the marker) is what it shows; the marker only hides what is below.
                    if (_madeHere.Contains((parent.Length == 0 ? "" : parent + "/") + name)) return;
                    if (mknodat(fd, leaf, S_IFCHR, default) != 0 && FsNative.Errno != EEXIST)
                    {
                        int err = FsNative.Errno;
                        if (err == EPERM) throw Unsafe(entry.Path, "it is a whiteout, which in an overlay layer is a device node, and this process may not create device nodes (no CAP_MKNOD)");
                        throw FsNative.Error("create whiteout", entry.Path, err);
                    }
                }
            }
            finally { close(fd); }
        }

        /// <summary>openat2 below the rootfs: no '..', no absolute or escaping symlinks, no /proc magic links.</summary>
        int OpenBeneath(string relative, int flags, ulong resolve, string entryPath)
        {
            if (relative.Length == 0) return dup(_root);
            var how = new open_how { flags = (ulong)(flags | O_CLOEXEC), resolve = RESOLVE_BENEATH_ | RESOLVE_NO_MAGICLINKS_ | resolve };
            int fd;
            fixed (byte* p = FsNative.Z(relative)) fd = openat2(_root, p, &how, (size_t)sizeof(open_how));
            if (fd >= 0) return fd;
            int err = FsNative.Errno;
            if (err == EXDEV || err == ELOOP) throw Unsafe(entryPath, $"'{relative}' goes through a symbolic link that leads outside the new rootfs");
            if (err == ENOENT) return -1;
            if (err == ENOTDIR) throw Unsafe(entryPath, $"'{relative}' is not a directory");
            throw FsNative.Error("open", Path.Combine(rootfs!, relative), err);
        }

        /// <summary>The parent directory of an entry, created (0755, like tar) where the archive did not list it.</summary>
        int Parent(string[] inner, string entryPath)
        {
            var parent = string.Join('/', inner[..^1]);
            int fd = OpenBeneath(parent, O_PATH | O_DIRECTORY, 0, entryPath);
            if (fd >= 0) return fd;
            int dir = dup(_root);
            for (int i = 0; i < inner.Length - 1; i++)
            {
                int next;
                fixed (byte* c = FsNative.Z(inner[i]))
                {
                    if (mkdirat(dir, c, (mode_t)0b111_101_101) != 0 && FsNative.Errno != EEXIST) { var e = FsNative.Errno; close(dir); throw FsNative.Error("create directory", entryPath, e); }
                }
                next = OpenBeneath(string.Join('/', inner[..(i + 1)]), O_PATH | O_DIRECTORY, 0, entryPath);
                close(dir);
                if (next < 0) throw Unsafe(entryPath, "its parent directory vanished");
                dir = next;
            }
            return dir;
        }

        void Create(string[] inner, TarEntry entry, Stream data)
        {
            int parent = Parent(inner, entry.Path);
            try
            {
                var leafBytes = FsNative.Z(inner[^1]);
                fixed (byte* leaf = leafBytes)
                {
                    stat existing;
                    if (fstatat(parent, leaf, &existing, AT_SYMLINK_NOFOLLOW) == 0)
                    {
                        // A later member replaces an earlier one (tar semantics); a directory stays a directory.
                        bool isDir = (existing.st_mode & S_IFMT) == S_IFDIR;
                        if (isDir && entry.Type == TarEntryType.Directory) { _directories.Add((string.Join('/', inner), entry)); return; }
                        if (isDir) throw Unsafe(entry.Path, "it would replace a directory");
                        if (unlinkat(parent, leaf, 0) != 0) throw FsNative.Error("replace", entry.Path, FsNative.Errno);
                    }
                    switch (entry.Type)
                    {
                        case TarEntryType.Directory:
                            if (mkdirat(parent, leaf, (mode_t)0b111_000_000) != 0) throw FsNative.Error("create directory", entry.Path, FsNative.Errno);
                            _directories.Add((string.Join('/', inner), entry));
                            return;
                        case TarEntryType.Regular:
                            WriteFile(parent, leaf, entry, data);
                            return;
                        case TarEntryType.SymbolicLink:
                            // Stored as it is: it is resolved inside the container, and never followed here.
                            fixed (byte* target = FsNative.Z(entry.LinkPath))
                                if (symlinkat(target, parent, leaf) != 0) throw FsNative.Error("create symlink", entry.Path, FsNative.Errno);
                            Owner(parent, leaf, entry, AT_SYMLINK_NOFOLLOW);
                            Times(parent, leaf, entry);
                            return;
                        case TarEntryType.HardLink:
                            Link(parent, leaf, entry);
                            return;
                        default:
                            if (entry.Type != TarEntryType.Fifo && !_isRoot)
                                throw Unsafe(entry.Path, "it is a device node, and only root may create device nodes (import as root, or remove it from the archive)");
                            var type = entry.Type switch { TarEntryType.CharacterDevice => S_IFCHR, TarEntryType.BlockDevice => S_IFBLK, _ => S_IFIFO };
                            ulong major = (uint)entry.DevMajor, minor = (uint)entry.DevMinor;
                            var dev = (dev_t)(((major & 0xFFF) << 8) | ((major & ~0xFFFUL) << 32) | (minor & 0xFF) | ((minor & ~0xFFUL) << 12));
                            if (mknodat(parent, leaf, type | (mode_t)0b110_000_000, dev) != 0)
                            {
                                int err = FsNative.Errno;
                                // uid 0 without CAP_MKNOD (a user namespace): the same refusal as for non-root.
                                if (err == EPERM && type != S_IFIFO)
                                    throw Unsafe(entry.Path, "it is a device node, and this process may not create device nodes (no CAP_MKNOD)");
                                throw FsNative.Error("create device node", entry.Path, err);
                            }
                            Owner(parent, leaf, entry, AT_SYMLINK_NOFOLLOW);
                            XattrsByPath(parent, inner[^1], entry);
                            if (fchmodat(parent, leaf, (mode_t)(entry.Mode & 0xFFF), 0) != 0) throw FsNative.Error("chmod", entry.Path, FsNative.Errno);
                            Times(parent, leaf, entry);
                            return;
                    }
                }
            }
            finally { close(parent); }
        }

        void WriteFile(int parent, byte* leaf, TarEntry entry, Stream data)
        {
            int fd = openat(parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)0b110_000_000);
            if (fd < 0) throw FsNative.Error("create", entry.Path, FsNative.Errno);
            using var handle = new SafeFileHandle(fd, true);
            using (var output = new FileStream(handle, FileAccess.Write, 1))
            {
                // Blocks of zeros are skipped, not written: sparse files stay sparse.
                var buffer = new byte[1 << 20];
                long pos = 0;
                int n;
                while ((n = data.Read(buffer, 0, buffer.Length)) > 0)
                {
                    int off = 0;
                    while (off < n)
                    {
                        int chunk = Math.Min(65536, n - off);
                        if (buffer.AsSpan(off, chunk).ContainsAnyExcept((byte)0)) { output.Position = pos; output.Write(buffer, off, chunk); }
                        pos += chunk;
                        off += chunk;
                    }
                }
                output.SetLength(pos);
                output.Flush();
                Metadata(fd, entry);
            }
        }

        void Metadata(int fd, TarEntry entry)
        {
            if (!Recorded(entry) && fchown(fd, (uid_t)(uint)entry.Uid, (gid_t)(uint)entry.Gid) != 0 && (_isRoot || FsNative.Errno != EPERM)) throw FsNative.Error("chown", entry.Path, FsNative.Errno);
            foreach (var (k, v) in entry.Xattrs) FsNative.SetXattr(fd, entry.Path, k, v);
            if (fchmod(fd, (mode_t)(entry.Mode & 0xFFF)) != 0) throw FsNative.Error("chmod", entry.Path, FsNative.Errno);
            var times = stackalloc timespec[2];
            times[0] = new timespec { tv_sec = entry.MTimeSeconds, tv_nsec = (long_t)entry.MTimeNanoseconds };
            times[1] = times[0];
            futimens(fd, times);
        }

        void Link(int parent, byte* leaf, TarEntry entry)
        {
            var targetParts = Components(entry.LinkPath, "hard link target");
            var rel = Layer ? targetParts.Prepend("rootfs").ToArray() : _prefix is not null && targetParts.Length > _prefix.Length && targetParts.AsSpan(0, _prefix.Length).SequenceEqual(_prefix)
                ? targetParts[_prefix.Length..] : null;
            if (rel is null || rel.Length < 2 || rel[0] != "rootfs" || (Layer && targetParts.Length == 0))
                throw Unsafe(entry.Path, $"it is a hard link to '{entry.LinkPath}', outside the container's rootfs");
            var inner = rel[1..];
            int tparent = OpenBeneath(string.Join('/', inner[..^1]), O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS_, entry.Path);
            if (tparent < 0) throw Unsafe(entry.Path, $"its hard link target '{entry.LinkPath}' was not extracted before it");
            try
            {
                fixed (byte* t = FsNative.Z(inner[^1]))
                {
                    stat st;
                    if (fstatat(tparent, t, &st, AT_SYMLINK_NOFOLLOW) != 0)
                        throw Unsafe(entry.Path, $"its hard link target '{entry.LinkPath}' was not extracted before it");
                    if ((st.st_mode & S_IFMT) == S_IFDIR) throw Unsafe(entry.Path, "it is a hard link to a directory");
                    if (linkat(tparent, t, parent, leaf, 0) != 0) throw FsNative.Error("create hard link", entry.Path, FsNative.Errno);
                }
            }
            finally { close(tparent); }
        }

        void Owner(int parent, byte* leaf, TarEntry entry, int flags)
        {
            if (!Recorded(entry) && fchownat(parent, leaf, (uid_t)(uint)entry.Uid, (gid_t)(uint)entry.Gid, flags) != 0 && (_isRoot || FsNative.Errno != EPERM))
                throw FsNative.Error("chown", entry.Path, FsNative.Errno);
        }

        static void Times(int parent, byte* leaf, TarEntry entry)
        {
            var times = stackalloc timespec[2];
            times[0] = new timespec { tv_sec = entry.MTimeSeconds, tv_nsec = (long_t)entry.MTimeNanoseconds };
            times[1] = times[0];
            utimensat(parent, leaf, times, AT_SYMLINK_NOFOLLOW);
        }

        static void XattrsByPath(int parent, string leaf, TarEntry entry)
        {
            // Device nodes cannot be opened for fsetxattr; name them through our own directory fd.
            foreach (var (k, v) in entry.Xattrs) FsNative.SetXattr(-1, $"/proc/self/fd/{parent}/{leaf}", k, v);
        }

        void ApplyDirectory(string rel, TarEntry entry)
        {
            int fd = OpenBeneath(rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, RESOLVE_NO_SYMLINKS_, entry.Path);
            if (fd < 0) return;
            try { Metadata(fd, entry); }
            finally { close(fd); }
        }
    }

    [DllImport("libc", SetLastError = true)]
    static extern int futimens(int fd, timespec* times);
}

/// <summary>Translates an LXC container config (lxc.* keys) into ours; what has no equivalent is reported.</summary>
public static class LxcConfig
{
    public static ContainerConfig Translate(string text, List<string> warnings)
    {
        var config = new ContainerConfig();
        int lineNo = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            int eq = line.IndexOf('=');
            if (eq < 0) { warnings.Add($"LXC config line {lineNo} is not 'key = value': {line}"); continue; }
            var key = line[..eq].Trim();
            var value = line[(eq + 1)..].Trim();
            switch (key)
            {
                case "lxc.uts.name" or "lxc.utsname":
                    config.Hostname = value; break;
                case "lxc.init.cmd" or "lxc.init_cmd":
                    config.Init.Command = value.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList(); break;
                case "lxc.init.cwd":
                    config.Init.WorkingDirectory = value; break;
                case "lxc.environment":
                    var kv = value.Split('=', 2);
                    if (kv.Length == 2) config.Init.Environment[kv[0].Trim()] = kv[1].Trim();
                    else warnings.Add($"LXC config line {lineNo}: lxc.environment '{value}' passes a host variable through, which has no equivalent; skipped.");
                    break;
                case "lxc.cgroup.memory.limit_in_bytes" or "lxc.cgroup2.memory.max":
                    if (Sizes.TryParse(value, out var bytes)) config.Limits.Memory = bytes;
                    else warnings.Add($"LXC config line {lineNo}: memory limit '{value}' is not a size; skipped.");
                    break;
                case "lxc.signal.halt" or "lxc.haltsignal":
                    if (Signals.TryParse(value, out _)) config.Stop.Signal = value;
                    else warnings.Add($"LXC config line {lineNo}: unknown signal '{value}'; skipped.");
                    break;
                case "lxc.rootfs.path" or "lxc.rootfs" or "lxc.rootfs.backend":
                    break; // the rootfs is the archive's rootfs/, stored by this store's backend
                default:
                    warnings.Add($"LXC config line {lineNo}: '{key}' has no equivalent here and was not carried over.");
                    break;
            }
        }
        try { ConfigLoader.Validate(config); }
        catch (ContainerException ex)
        {
            warnings.Add($"The translated LXC config was not valid ({ex.Message}); the defaults are used instead.");
            return new ContainerConfig();
        }
        return config;
    }
}
