using System.Diagnostics;
using System.Text.Json;
using PSContainers.Runtime;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Tests;

public sealed class StateTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string[] Leftovers() => Directory.GetFiles(_dir.Path).Select(Path.GetFileName).Where(n => n!.EndsWith(".tmp")).ToArray()!;

    // ---- AtomicFile ----------------------------------------------------------------------------

    [Fact]
    public void AtomicFile_CreatesAndReplaces_LeavingNoTempFiles()
    {
        var file = _dir.Combine("state.json");
        AtomicFile.WriteAllText(file, "first");
        Assert.Equal("first", File.ReadAllText(file));
        AtomicFile.WriteAllText(file, "second, longer than the first");
        Assert.Equal("second, longer than the first", File.ReadAllText(file));
        AtomicFile.WriteAllText(file, "x");
        Assert.Equal("x", File.ReadAllText(file));
        AtomicFile.WriteAllText(file, "");
        Assert.Equal("", File.ReadAllText(file));
        Assert.Equal(new[] { "state.json" }, Directory.GetFileSystemEntries(_dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AtomicFile_WritesUtf8WithoutBom()
    {
        var file = _dir.Combine("f");
        AtomicFile.WriteAllText(file, "héllo");
        Assert.Equal(new byte[] { (byte)'h', 0xC3, 0xA9, (byte)'l', (byte)'l', (byte)'o' }, File.ReadAllBytes(file));
    }

    [Fact]
    public void AtomicFile_ReplacesTheInode_SoAnOpenReaderKeepsTheOldContent()
    {
        var file = _dir.Combine("f");
        AtomicFile.WriteAllText(file, "old");
        using var reader = new StreamReader(file);
        AtomicFile.WriteAllText(file, "new");
        Assert.Equal("old", reader.ReadToEnd());
        Assert.Equal("new", File.ReadAllText(file));
    }

    [Fact]
    public void AtomicFile_FailedRename_RemovesItsTempFile()
    {
        var target = _dir.Combine("adir");
        Directory.CreateDirectory(Path.Combine(target, "child")); // rename(file, non-empty dir) fails
        Assert.ThrowsAny<IOException>(() => AtomicFile.WriteAllText(target, "content"));
        Assert.Empty(Leftovers());
        Assert.Equal(new[] { "adir" }, Directory.GetFileSystemEntries(_dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AtomicFile_ConcurrentWritersNeverProduceATornRead()
    {
        var file = _dir.Combine("big");
        var a = new string('a', 1 << 20);
        var b = new string('b', 3 << 19) + "end";
        AtomicFile.WriteAllText(file, a);
        // Until enough writes and reads overlapped, not for a fixed time: on a loaded machine 1.5 s
        // gave the readers a handful of turns. The minute is only a bound.
        var bound = DateTime.UtcNow.AddSeconds(60);
        var torn = 0;
        var reads = 0;
        var writes = 0;
        bool Going() => (Volatile.Read(ref writes) < 40 || Volatile.Read(ref reads) < 40) && DateTime.UtcNow < bound;
        var writers = Enumerable.Range(0, 2).Select(w => Task.Run(() =>
        {
            for (var i = 0; Going(); i++)
            {
                AtomicFile.WriteAllText(file, (i + w) % 2 == 0 ? a : b);
                Interlocked.Increment(ref writes);
            }
        })).ToArray();
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            while (Going())
            {
                var text = File.ReadAllText(file);
                if (text != a && text != b) Interlocked.Increment(ref torn);
                Interlocked.Increment(ref reads);
            }
        })).ToArray();
        Task.WaitAll(writers.Concat(readers).ToArray());
        Assert.Equal(0, torn);
        Assert.True(writes > 10, $"only {writes} writes happened");
        Assert.True(reads > 10, $"only {reads} reads happened");
        Assert.Empty(Leftovers());
    }

    // ---- ContainerLock -------------------------------------------------------------------------

    /// <summary>
    /// Runs on a thread of its own that does not inherit this flow's execution context, like another
    /// runspace's pipeline thread: the lock is re-entrant only within the flow that took it. (Not a
    /// pool task: waiting for one may run it inline, in this flow.)
    /// </summary>
    private static T InAnotherFlow<T>(Func<T> body)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() => { try { result = body(); } catch (Exception ex) { error = ex; } });
        using (ExecutionContext.SuppressFlow()) thread.Start();
        thread.Join();
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        return result;
    }

    [Fact]
    public void Lock_SecondAcquireTimesOutWithContainerBusy_UntilTheFirstIsDisposed()
    {
        var locks = _dir.Combine(".locks");
        using (ContainerLock.Acquire(locks, "web", TimeSpan.FromSeconds(1)))
        {
            Assert.True(File.Exists(Path.Combine(locks, "web.lock")));
            var sw = Stopwatch.StartNew();
            var ex = Assert.Throws<ContainerException>(() => InAnotherFlow(() => ContainerLock.Acquire(locks, "web", TimeSpan.FromMilliseconds(300))));
            sw.Stop();
            Assert.Equal("ContainerBusy", ex.ErrorId);
            Assert.Equal(ContainerErrorKind.ResourceBusy, ex.Kind);
            Assert.Equal("web", ex.Target);
            Assert.Contains("web", ex.Message);
            Assert.InRange(sw.ElapsedMilliseconds, 250, 5000);
            // Other names are independent.
            using (ContainerLock.Acquire(locks, "db", TimeSpan.FromMilliseconds(100))) { }
        }
        using (ContainerLock.Acquire(locks, "web", TimeSpan.FromMilliseconds(100))) { }
    }

    [Fact]
    public void Lock_WaitsForARelease_WithinTheTimeout()
    {
        var locks = _dir.Combine(".locks");
        var first = ContainerLock.Acquire(locks, "web", TimeSpan.FromSeconds(1));
        var release = Task.Run(async () => { await Task.Delay(200); first.Dispose(); });
        var sw = Stopwatch.StartNew();
        using (InAnotherFlow(() => ContainerLock.Acquire(locks, "web", TimeSpan.FromSeconds(10))))
            Assert.InRange(sw.ElapsedMilliseconds, 150, 5000);
        release.Wait();
        first.Dispose(); // idempotent
    }

    [Fact]
    public void Lock_CreatesTheLockDirectoryOnDemand()
    {
        var store = new ContainerStore(_dir.Combine("store"));
        Assert.False(Directory.Exists(store.LockDirectory));
        using (store.Lock("c1", TimeSpan.FromSeconds(1)))
            Assert.True(File.Exists(Path.Combine(store.LockDirectory, "c1.lock")));
    }

    private static Process Bash(string script)
    {
        var psi = new ProcessStartInfo("/bin/bash") { RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        return Process.Start(psi)!;
    }

    [Fact]
    public void Lock_IsAnFlock_SharedWithOtherProcesses()
    {
        var locks = _dir.Combine(".locks");
        Directory.CreateDirectory(locks);
        var file = Path.Combine(locks, "web.lock");

        // Another process holds flock(2) on the file: we must wait, then time out.
        using (var holder = Bash($"exec 9>>'{file}'; flock 9; echo locked; exec sleep 30"))
        {
            try
            {
                Assert.Equal("locked", holder.StandardOutput.ReadLine());
                var ex = Assert.Throws<ContainerException>(() => ContainerLock.Acquire(locks, "web", TimeSpan.FromMilliseconds(300)));
                Assert.Equal("ContainerBusy", ex.ErrorId);
            }
            finally { holder.Kill(); holder.WaitForExit(); }
        }
        // The kernel released it when the holder died.
        using (ContainerLock.Acquire(locks, "web", TimeSpan.FromSeconds(2)))
        {
            // And the other way round: flock -n in another process fails while we hold it...
            using var probe = Bash($"exec 9>>'{file}'; flock -n 9 && echo got || echo busy");
            Assert.Equal("busy", probe.StandardOutput.ReadLine());
            probe.WaitForExit();
        }
        // ...and succeeds once we released it.
        using var after = Bash($"exec 9>>'{file}'; flock -n 9 && echo got || echo busy");
        Assert.Equal("got", after.StandardOutput.ReadLine());
        after.WaitForExit();
    }

    [Fact]
    public void Lock_IsReentrantWithinOneFlow_AndKeptUntilTheOutermostRelease_ButOtherFlowsWait()
    {
        var locks = _dir.Combine(".locks");
        Exception? FromAnotherFlow(string dir) => InAnotherFlow<Exception?>(() =>
        {
            try { using (ContainerLock.Acquire(dir, "web", TimeSpan.FromMilliseconds(300))) return null; }
            catch (ContainerException ex) { return ex; }
        });
        var outer = ContainerLock.Acquire(locks, "web", TimeSpan.FromSeconds(1));
        var inner = ContainerLock.Acquire(locks, "web", TimeSpan.FromMilliseconds(100)); // no wait for itself
        // Tasks this operation starts are part of it.
        Task.Run(() => { using (ContainerLock.Acquire(locks, "web", TimeSpan.FromMilliseconds(100))) { } }).Wait();
        Assert.Equal("ContainerBusy", Assert.IsType<ContainerException>(FromAnotherFlow(locks)).ErrorId);
        inner.Dispose();
        Assert.Equal("ContainerBusy", Assert.IsType<ContainerException>(FromAnotherFlow(locks)).ErrorId); // still the outer's
        // Another process sees the flock too.
        using (var probe = Bash($"exec 9>>'{Path.Combine(locks, "web.lock")}'; flock -n 9 && echo got || echo busy"))
        {
            Assert.Equal("busy", probe.StandardOutput.ReadLine());
            probe.WaitForExit();
        }
        outer.Dispose();
        Assert.Null(FromAnotherFlow(locks));
        // Released for this flow as well: taken afresh, so another flow is locked out again.
        using (ContainerLock.Acquire(locks, "web", TimeSpan.FromMilliseconds(100)))
            Assert.Equal("ContainerBusy", Assert.IsType<ContainerException>(FromAnotherFlow(locks)).ErrorId);
    }

    // ---- PersistedState ------------------------------------------------------------------------

    [Fact]
    public void PersistedState_RoundTrips()
    {
        var file = _dir.Combine("state.json");
        var state = new PersistedState
        {
            Created = new DateTimeOffset(2024, 5, 6, 7, 8, 9, 123, TimeSpan.FromHours(2)),
            StartedAt = new DateTimeOffset(2024, 5, 6, 8, 0, 0, TimeSpan.Zero),
            StoppedAt = new DateTimeOffset(2024, 5, 6, 9, 0, 0, TimeSpan.FromHours(-5)),
            SupervisorPid = 4242,
            SupervisorStartTime = 123456789012UL,
            InitPid = 4243,
            InitStartTime = ulong.MaxValue,
            ExitCode = 137,
            ExitSignal = 9,
            CgroupPath = "pscontainers/web",
        };
        state.Save(file);
        var loaded = PersistedState.Load(file);
        Assert.Equal(JsonSerializer.Serialize(state), JsonSerializer.Serialize(loaded));
        Assert.Equal(state.Created, loaded.Created);
        Assert.Equal(state.Created.Offset, loaded.Created.Offset);
        Assert.Equal(state.StoppedAt, loaded.StoppedAt);
        Assert.Equal(ulong.MaxValue, loaded.InitStartTime);
        Assert.Equal("pscontainers/web", loaded.CgroupPath);
        Assert.Empty(Leftovers());
    }

    [Fact]
    public void PersistedState_NullsAreOmittedAndLoadAsNull()
    {
        var file = _dir.Combine("state.json");
        new PersistedState { Created = DateTimeOffset.UnixEpoch }.Save(file);
        var json = File.ReadAllText(file);
        Assert.DoesNotContain("ExitCode", json);
        Assert.DoesNotContain("null", json);
        var loaded = PersistedState.Load(file);
        Assert.Equal(DateTimeOffset.UnixEpoch, loaded.Created);
        Assert.Null(loaded.SupervisorPid);
        Assert.Null(loaded.InitStartTime);
        Assert.Null(loaded.ExitCode);
        Assert.Null(loaded.CgroupPath);
    }

    [Fact]
    public void PersistedState_LoadOfAMissingFile_IsFileNotFound()
    {
        // ContainerManager relies on exactly this exception for containers without state.json.
        Assert.Throws<FileNotFoundException>(() => PersistedState.Load(_dir.Combine("nope.json")));
    }

    // ---- ContainerStore ------------------------------------------------------------------------

    private static T WithoutEnv<T>(string variable, Func<T> f)
    {
        var saved = Environment.GetEnvironmentVariable(variable);
        Environment.SetEnvironmentVariable(variable, null);
        try { return f(); }
        finally { Environment.SetEnvironmentVariable(variable, saved); }
    }

    private static string Parent(string path) => WithoutEnv("PSCONTAINERS_CGROUP_PARENT", () => new ContainerStore(path).CgroupParent);

    [Fact]
    public void Store_Paths()
    {
        var s = new ContainerStore("/srv/psc");
        Assert.Equal("/srv/psc", s.Root);
        Assert.Equal("/srv/psc/web", s.ContainerDirectory("web"));
        Assert.Equal("/srv/psc/web/config.yaml", s.ConfigPath("web"));
        Assert.Equal("/srv/psc/web/rootfs", s.RootfsPath("web"));
        Assert.Equal("/srv/psc/web/state.json", s.StatePath("web"));
        Assert.Equal("/srv/psc/web/exit", s.ExitRecordPath("web"));
        Assert.Equal("/srv/psc/web/console.log", s.ConsoleLogPath("web"));
        Assert.Equal("/srv/psc/.locks", s.LockDirectory);
        Assert.Equal("/srv/psc/.tmp", s.TempDirectory);
        Assert.Equal("/srv/psc/.trash", s.TrashDirectory);
        Assert.Equal("/srv/psc/.cache", s.CacheDirectory);
    }

    [Fact]
    public void Store_RootIsNormalized()
    {
        Assert.Equal("/srv/psc", new ContainerStore("/srv/psc/").Root);
        Assert.Equal("/srv/psc", new ContainerStore("/srv/./x/../psc").Root);
        Assert.Equal("/var/lib/pscontainers", new ContainerStore("/var/lib/pscontainers/").Root);
    }

    [Fact]
    public void Store_DefaultPath_FromEnvironment()
    {
        var saved = Environment.GetEnvironmentVariable(ContainerStore.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(ContainerStore.EnvironmentVariable, _dir.Combine("envstore"));
            Assert.Equal(_dir.Combine("envstore"), new ContainerStore().Root);
            Environment.SetEnvironmentVariable(ContainerStore.EnvironmentVariable, null);
            Assert.Equal(ContainerStore.SystemStorePath, ContainerStore.DefaultPath()); // tests run as root
        }
        finally { Environment.SetEnvironmentVariable(ContainerStore.EnvironmentVariable, saved); }
    }

    [Fact]
    public void Store_ListNames_OnlyCompleteContainers()
    {
        var store = new ContainerStore(_dir.Combine("store"));
        Assert.Empty(store.ListNames());
        foreach (var n in new[] { "web", "db", ".tmp", "half" }) Directory.CreateDirectory(store.ContainerDirectory(n));
        foreach (var n in new[] { "web", "db", ".tmp" }) File.WriteAllText(store.ConfigPath(n), "");
        Assert.Equal(new[] { "db", "web" }, store.ListNames());
        Assert.True(store.Exists("web"));
        Assert.False(store.Exists("half"));
    }

    [Fact]
    public void CgroupParent_SystemStoreIsPscontainers()
    {
        Assert.Equal("pscontainers", Parent("/var/lib/pscontainers"));
        Assert.Equal("pscontainers", Parent("/var/lib/pscontainers/"));
    }

    [Fact]
    public void CgroupParent_OtherStoresGetAStableHashedName()
    {
        var a = Parent("/tmp/psc-store-a");
        Assert.Matches("^pscontainers-[0-9a-f]{8}$", a);
        // First 4 bytes of SHA-256("/tmp/psc-store-a"): the same in every process and every version.
        Assert.Equal("pscontainers-dc1e8f2b", a);
        Assert.Equal(a, Parent("/tmp/psc-store-a"));
        Assert.Equal(a, Parent("/tmp/psc-store-a/"));
        Assert.Equal(a, Parent("/tmp/./psc-store-a"));
        var b = Parent("/tmp/psc-store-b");
        Assert.Matches("^pscontainers-[0-9a-f]{8}$", b);
        Assert.NotEqual(a, b);
        Assert.NotEqual(a, Parent("/var/lib/pscontainers2"));
    }

    [Fact]
    public void CgroupParent_EnvironmentOverride()
    {
        var saved = Environment.GetEnvironmentVariable("PSCONTAINERS_CGROUP_PARENT");
        try
        {
            Environment.SetEnvironmentVariable("PSCONTAINERS_CGROUP_PARENT", "/custom/parent/");
            Assert.Equal("custom/parent", new ContainerStore("/tmp/psc-store-a").CgroupParent);
        }
        finally { Environment.SetEnvironmentVariable("PSCONTAINERS_CGROUP_PARENT", saved); }
    }
}
