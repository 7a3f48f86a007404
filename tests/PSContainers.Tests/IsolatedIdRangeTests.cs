using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.IdMapping;
using PSContainers.Runtime.IdRanges;
using PSContainers.Runtime.Storage;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// idMapIsolated: true: blocks of host ids of a container's own, cut from the caller's subordinate
/// ranges (copies of /etc/subuid and /etc/subgid here), never shared, freed on removal and when a
/// create fails, allocated under a store-wide lock by concurrent creators.
/// </summary>
[Collection("Containers")]
public sealed class IsolatedIdRangeTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly TempDir _ids = new();
    private readonly uint _base = 1_600_000_000u + (uint)Random.Shared.Next(0, 2000) * 65536u * 8;

    public IsolatedIdRangeTests()
    {
        // Root's range: five blocks; the first is the shared containers', four are for isolated ones.
        var paths = SubordinateIdPaths.InDirectory(_ids.Path);
        File.WriteAllText(paths.SubUid, $"root:{_base}:{5 * 65536}\n");
        File.WriteAllText(paths.SubGid, $"root:{_base}:{5 * 65536}\n");
        _store.Manager.SubordinateIds = new SubordinateIdDatabase(paths);
    }

    public void Dispose()
    {
        _store.Dispose();
        _ids.Dispose();
    }

    private string IsolatedConfig()
    {
        var path = Path.Combine(_store.Root, $"iso-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, "idMapIsolated: true\n");
        return path;
    }

    [Fact]
    public void ConcurrentAllocations_NeverOverlap_SkipTheSharedBlock_AndRunOut()
    {
        var names = Enumerable.Range(0, 8).Select(i => $"psct-iso{i}").ToArray();
        var results = new IsolatedIdRanges.Allocation?[names.Length];
        var errors = new ContainerException?[names.Length];
        using var go = new ManualResetEventSlim();
        var tasks = names.Select((n, i) => Task.Run(() =>
        {
            go.Wait();
            // Each its own instance, as separate commands would have.
            try { results[i] = new IsolatedIdRanges(_store.Manager.Store, _store.Manager.SubordinateIds).Allocate(n); }
            catch (ContainerException ex) { errors[i] = ex; }
        })).ToArray();
        go.Set();
        Task.WaitAll(tasks);
        var got = results.Where(r => r is not null).Select(r => r!).ToList();
        Assert.Equal(4, got.Count);
        Assert.All(errors.Where(e => e is not null), e => Assert.Equal("NoIsolatedIdRange", e!.ErrorId));
        Assert.Equal(4, got.Select(a => a.UidStart).Distinct().Count());
        Assert.All(got, a => Assert.InRange(a.UidStart, _base + 65536, _base + 4 * 65536));
        Assert.All(got, a => Assert.Equal(0u, (a.UidStart - _base) % 65536));
        // What was recorded is what was handed out.
        var recorded = _store.Manager.IsolatedIdRanges.List();
        Assert.Equal(got.OrderBy(a => a.UidStart), recorded.OrderBy(a => a.UidStart));
        // Freed, a block is handed out again.
        _store.Manager.IsolatedIdRanges.Free(got[0].Name);
        Assert.Equal(got[0].UidStart, _store.Manager.IsolatedIdRanges.Allocate("psct-again").UidStart);
    }

    [Fact]
    public void IsolatedContainers_RunOnBlocksOfTheirOwn_FreedOnRemoveAndOnAFailedCreate()
    {
        var m = _store.Manager;
        var a = m.Create(TestStore.NewName("isoa"), new CreateOptions { Template = "busybox", ConfigPath = IsolatedConfig() });
        var b = m.Create(TestStore.NewName("isob"), new CreateOptions { Template = "busybox", ConfigPath = IsolatedConfig() });
        var mapA = ConfigLoader.Load(a.ConfigPath).IdMap!;
        var mapB = ConfigLoader.Load(b.ConfigPath).IdMap!;
        Assert.True(ConfigLoader.Load(a.ConfigPath).IdMapIsolated);
        Assert.NotEqual(mapA.RootUid, mapB.RootUid);
        Assert.NotEqual(_base, mapA.RootUid);
        Assert.NotEqual(_base, mapB.RootUid);
        var started = m.Start(a.Name);
        Assert.Equal($"0 {mapA.RootUid} 65536", string.Join(' ', File.ReadAllText($"/proc/{started.Pid}/uid_map").Split(' ', StringSplitOptions.RemoveEmptyEntries)).Trim());
        m.Stop(a.Name, kill: true);

        // A copy of an (idmapped) isolated container gets a third block: only a new map.
        var copy = new StorageManager(m).Copy(a.Name, TestStore.NewName("isoc"), new CopyOptions { Snapshot = true });
        var mapC = ConfigLoader.Load(copy.ConfigPath).IdMap!;
        Assert.DoesNotContain(mapC.RootUid, new[] { mapA.RootUid, mapB.RootUid, _base });
        Assert.Equal(3, m.IsolatedIdRanges.List().Count);

        m.Remove(copy.Name);
        m.Remove(b.Name);
        Assert.Equal(new[] { a.Name }, m.IsolatedIdRanges.List().Select(x => x.Name));

        // A create that fails (the name is taken) gives back the block it allocated...
        var taken = m.Create(TestStore.NewName("plain"), new CreateOptions()).Name;
        var failed = Assert.Throws<ContainerException>(() => m.Create(taken, new CreateOptions { ConfigPath = IsolatedConfig() }));
        Assert.Equal("ContainerExists", failed.ErrorId);
        Assert.Equal(new[] { a.Name }, m.IsolatedIdRanges.List().Select(x => x.Name));
        // ...but never the block of the existing container of that name.
        Assert.Throws<ContainerException>(() => m.Create(a.Name, new CreateOptions { ConfigPath = IsolatedConfig() }));
        Assert.Equal(new[] { a.Name }, m.IsolatedIdRanges.List().Select(x => x.Name));
    }
}
