using System.Globalization;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Backends;

/// <summary>
/// The store's shared read-only layers (&lt;store&gt;/.layers/&lt;hex&gt;): an image layer extracted
/// once, named by the sha256 of its uncompressed tar (the image config's diff_id), and used as an
/// overlay lower layer by every container of every image that has it (storage.layers). A layer is
/// never written after it is complete and never chowned: user-namespaced containers see it through
/// idmapped mounts (psc-helper idmap.c).
/// <list type="bullet">
/// <item>Made atomically: extracted into .layers/.tmp/HEX.PID.GUID, the digest of what was extracted
/// checked, then renamed to HEX; a concurrent maker of the same layer loses the rename and drops its copy.</item>
/// <item>Kept while used: <see cref="Collect"/> (after Remove-Container) deletes only layers that no
/// container's config.yaml (in the store or being made in .tmp) names and no create in progress has
/// pinned (<see cref="Pin"/>), under the store-wide layer lock that pinning also takes.</item>
/// </list>
/// .layers is 0700: its trees hold what the images hold (setuid files owned by root included).
/// </summary>
public sealed class LayerStore
{
    /// <summary>The lock file's name in the store's .locks (not a valid container name, so never a container's).</summary>
    const string LockName = ".layers";
    readonly ContainerStore _store;

    public LayerStore(ContainerStore store) => _store = store;

    public string Root => Path.Combine(_store.Root, ".layers");
    string TempRoot => Path.Combine(Root, ".tmp");
    string PinRoot => Path.Combine(Root, ".pins");

    /// <summary>A layer's directory; <paramref name="digest"/> must be sha256:HEX (64 lowercase hex digits).</summary>
    public string PathOf(string digest) => Path.Combine(Root, Hex(digest));

    static string Hex(string digest)
    {
        if (!digest.StartsWith("sha256:", StringComparison.Ordinal) || digest.Length != 71 || !digest[7..].All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f'))
            throw new ContainerException("LayerDigestInvalid", ContainerErrorKind.InvalidData,
                $"'{digest}' is not a sha256 digest (sha256: and 64 lowercase hex digits); a shared layer is named by one.", digest);
        return digest[7..];
    }

    /// <summary>Whether <paramref name="path"/> is a layer directory of this store (what Collect may delete).</summary>
    public bool Owns(string path) =>
        Path.GetDirectoryName(Path.GetFullPath(path)) == Root && Path.GetFileName(path) is { Length: 64 } hex && hex.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f');

    void EnsureDirectories()
    {
        _store.EnsureRoot();
        ContainerStore.CreatePrivateDirectory(Root);
        ContainerStore.CreatePrivateDirectory(TempRoot);
        ContainerStore.CreatePrivateDirectory(PinRoot);
    }

    /// <summary>
    /// Keeps the layers <paramref name="digests"/> from <see cref="Collect"/> until the lease is
    /// disposed: a create holds it from before its first layer is looked at until its config.yaml is
    /// in the store. A lease whose process died is void (its pin is cleared by the next Collect).
    /// </summary>
    public IDisposable Pin(IEnumerable<string> digests)
    {
        var hexes = digests.Select(Hex).ToList();
        EnsureDirectories();
        var start = Sys.ProcessStartTime(Environment.ProcessId) ?? 0;
        var pin = Path.Combine(PinRoot, $"{Environment.ProcessId}.{start.ToString(CultureInfo.InvariantCulture)}.{Guid.NewGuid():N}");
        using (_store.Lock(LockName))
            AtomicFile.WriteAllText(pin, string.Join('\n', hexes) + "\n");
        return new Lease(() => { try { File.Delete(pin); } catch (IOException) { } });
    }

    sealed class Lease(Action release) : IDisposable
    {
        Action? _release = release;
        public void Dispose() => Interlocked.Exchange(ref _release, null)?.Invoke();
    }

    /// <summary>
    /// The layer <paramref name="digest"/>'s directory, extracted by <paramref name="extract"/> if the
    /// store does not have it yet. <paramref name="extract"/> fills the (empty) directory it is given
    /// and returns the sha256 of the tar it extracted; the layer is kept only when that is
    /// <paramref name="digest"/>. Call with the digest pinned (<see cref="Pin"/>).
    /// </summary>
    public string Ensure(string digest, Func<string, string> extract)
    {
        var final = PathOf(digest);
        if (Directory.Exists(final)) return final;
        EnsureDirectories();
        var temp = Path.Combine(TempRoot, $"{Hex(digest)}.{Environment.ProcessId}.{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            var actual = extract(temp);
            if (actual != digest)
                throw new ContainerException("LayerDigestMismatch", ContainerErrorKind.InvalidData,
                    $"The layer extracted for {digest} hashed to {actual} (the sha256 of its uncompressed tar must be the image config's diff_id). The image is damaged or was tampered with; nothing was kept. Copy it again.", digest);
            // 0755 like any image's root directory; .layers (0700) keeps host users out.
            File.SetUnixFileMode(temp, (UnixFileMode)0b111_101_101);
            try { Directory.Move(temp, final); }
            catch (IOException) when (Directory.Exists(final)) { FsNative.DeleteTree(temp); }
            return final;
        }
        catch
        {
            try { FsNative.DeleteTree(temp); } catch (Exception ex) when (ex is ContainerException or IOException or UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>
    /// Deletes every layer no container uses: not named by the storage.layers of any config.yaml in
    /// the store or in .tmp (containers being made, copied or imported), nor pinned by a live create.
    /// Also clears abandoned extractions and pins of dead processes. Returns the digests deleted.
    /// </summary>
    public IReadOnlyList<string> Collect()
    {
        var deleted = new List<string>();
        if (!Directory.Exists(Root)) return deleted;
        using var _ = _store.Lock(LockName);
        // The containers' configs, read until the set of directories holding them did not change
        // meanwhile (a Rename-Container or a create moving its directory in would hide one otherwise).
        HashSet<string>? used = null;
        for (int attempt = 0; attempt < 5 && used is null; attempt++)
        {
            var before = ConfigDirectories();
            used = Referenced(before);
            if (used is not null && !before.SequenceEqual(ConfigDirectories())) used = null;
        }
        if (used is null) return deleted; // keep everything rather than guess
        if (Directory.Exists(PinRoot))
            foreach (var pin in Directory.EnumerateFiles(PinRoot))
            {
                if (PinIsLive(Path.GetFileName(pin))) used.UnionWith(File.ReadAllLines(pin).Where(l => l.Length > 0));
                else File.Delete(pin);
            }
        foreach (var dir in Directory.EnumerateDirectories(Root))
        {
            var hex = Path.GetFileName(dir);
            if (!Owns(dir) || used.Contains(hex)) continue;
            FsNative.DeleteTree(dir);
            deleted.Add("sha256:" + hex);
        }
        if (Directory.Exists(TempRoot))
            foreach (var dir in Directory.EnumerateDirectories(TempRoot))
            {
                var parts = Path.GetFileName(dir).Split('.');
                if (parts.Length == 3 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && Sys.ProcessStartTime(pid) is null)
                    FsNative.DeleteTree(dir);
            }
        return deleted;
    }

    List<string> ConfigDirectories()
    {
        var dirs = _store.ListNames().Select(_store.ContainerDirectory).ToList();
        if (Directory.Exists(_store.TempDirectory)) dirs.AddRange(Directory.EnumerateDirectories(_store.TempDirectory).Order(StringComparer.Ordinal));
        return dirs;
    }

    /// <summary>The layers (hex names) the configs in <paramref name="dirs"/> use; null when one cannot be read (it might name some).</summary>
    static HashSet<string>? Referenced(IEnumerable<string> dirs)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var dir in dirs)
        {
            var configPath = Path.Combine(dir, "config.yaml");
            if (!File.Exists(configPath)) continue;
            try
            {
                foreach (var layer in ConfigLoader.Load(configPath).Storage.Layers) used.Add(Path.GetFileName(layer));
            }
            catch (Exception ex) when (ex is ContainerException or IOException)
            {
                return null;
            }
        }
        return used;
    }

    static bool PinIsLive(string name)
    {
        var parts = name.Split('.');
        return parts.Length == 3 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) &&
               ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var start) &&
               Sys.ProcessStartTime(pid) is { } now && (start == 0 || now == start);
    }
}
