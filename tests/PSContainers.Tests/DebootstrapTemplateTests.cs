using System.Diagnostics;
using PSContainers.Runtime;
using PSContainers.Runtime.Templates;
using Xunit;

namespace PSContainers.Tests;

/// <summary>
/// No real debootstrap here (it takes minutes): a shell script stands in for it, so the cache,
/// locking, failure and cancellation logic run for real against the filesystem.
/// </summary>
public sealed class DebootstrapTemplateTests : IDisposable
{
    readonly string _root = Directory.CreateTempSubdirectory("psc-test-").FullName;
    string Cache => Path.Combine(_root, "cache");
    string Calls => Path.Combine(_root, "calls");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>A fake debootstrap; its args are --variant= --arch= release target mirror, so the target is $4.</summary>
    string FakeDebootstrap(string body)
    {
        var path = Path.Combine(_root, "fake-debootstrap");
        File.WriteAllText(path, $"#!/bin/sh\necho \"$@\" >> '{Calls}'\n{body}\n");
        using var p = Process.Start("chmod", new[] { "0755", path })!;
        p.WaitForExit();
        return path;
    }

    const string SuccessBody = """
        echo "I: Retrieving InRelease"
        echo "I: Retrieving base-files 12.4"
        mkdir -p "$4/etc" "$4/bin" "$4/debootstrap"
        echo 'PRETTY_NAME="fake"' > "$4/etc/os-release"
        echo old > "$4/etc/hostname"
        ln -s /etc/passwd "$4/etc/host-link"
        echo "I: Extracting base-files..."
        echo "I: Configuring base-files..."
        echo "I: Base system installed successfully."
        """;

    TemplateOptions Options(string name = "c1") => new() { CacheDirectory = Cache, ContainerName = name, Release = "bookworm" };

    static string[] BuildDirectories(string cache) =>
        Directory.Exists(Path.Combine(cache, "debootstrap"))
            ? Directory.GetDirectories(Path.Combine(cache, "debootstrap"), "rootfs.tmp-*", SearchOption.AllDirectories)
            : Array.Empty<string>();

    [Fact]
    public void CacheKeyAndDefaults()
    {
        Assert.Equal("bookworm-amd64-minbase", DebootstrapTemplate.CacheKey("bookworm", "amd64", "minbase"));
        var s = DebootstrapTemplate.Resolve(new TemplateOptions { CacheDirectory = Cache });
        Assert.Equal(("bookworm", "http://deb.debian.org/debian", "minbase"), (s.Release, s.Mirror, s.Variant));
        Assert.Equal(Path.Combine(Cache, "debootstrap", $"bookworm-{s.Arch}-minbase", "rootfs"), s.CachedRootfs);
        Assert.Equal(Path.Combine(Cache, "debootstrap", $"bookworm-{s.Arch}-minbase.lock"), s.LockFile);
        Assert.Contains(s.Arch, new[] { "amd64", "arm64" });

        foreach (var bad in new[] { "../etc", "a/b", "", "Bookworm" })
        {
            if (bad.Length == 0) continue; // empty means the default
            var ex = Assert.Throws<ContainerException>(() => DebootstrapTemplate.Resolve(new TemplateOptions { CacheDirectory = Cache, Release = bad }));
            Assert.Equal(ContainerErrorKind.InvalidArgument, ex.Kind);
        }
        Assert.Equal("InvalidMirror", Assert.Throws<ContainerException>(() =>
            DebootstrapTemplate.Resolve(new TemplateOptions { CacheDirectory = Cache, Mirror = "deb.debian.org" })).ErrorId);
    }

    [Fact]
    public void InitSystemdIsCachedApartAndBootsSystemd()
    {
        var plain = DebootstrapTemplate.Resolve(new TemplateOptions { CacheDirectory = Cache });
        var systemd = DebootstrapTemplate.Resolve(new TemplateOptions { CacheDirectory = Cache, Init = "systemd" });
        Assert.Equal(plain.Key, DebootstrapTemplate.Resolve(new TemplateOptions { CacheDirectory = Cache, Init = "none" }).Key);
        Assert.Equal(plain.Key + "-init-systemd", systemd.Key);
        Assert.NotEqual(plain.CachedRootfs, systemd.CachedRootfs);

        var template = new DebootstrapTemplate();
        var init = ((IRootfsTemplate)template).InitFor(new TemplateOptions { Init = "systemd" });
        Assert.Equal(new[] { "/sbin/init" }, init.Command);
        Assert.Equal("SIGRTMIN+3", init.StopSignal);
        Assert.Equal("pscontainers", init.Environment["container"]);
        var none = ((IRootfsTemplate)template).InitFor(new TemplateOptions());
        Assert.Equal(template.DefaultInitCommand, none.Command);
        Assert.Equal("SIGTERM", none.StopSignal);
        Assert.Empty(none.Environment);

        Assert.Equal("InvalidInit", Assert.Throws<ContainerException>(() =>
            DebootstrapTemplate.Resolve(new TemplateOptions { CacheDirectory = Cache, Init = "openrc" })).ErrorId);
    }

    [Fact]
    public void PrerequisiteErrors()
    {
        var missing = new DebootstrapTemplate(Path.Combine(_root, "no-debootstrap"), () => true);
        var ex = Assert.Throws<ContainerException>(() => missing.CheckPrerequisites(Options()));
        Assert.Equal(ContainerErrorKind.NotInstalled, ex.Kind);
        Assert.Contains("apt-get install debootstrap", ex.Message);

        var notRoot = new DebootstrapTemplate(FakeDebootstrap("exit 0"), () => false);
        ex = Assert.Throws<ContainerException>(() => notRoot.CheckPrerequisites(Options()));
        Assert.Equal(ContainerErrorKind.PermissionDenied, ex.Kind);

        // The real one: installed on the test machines, and the tests run as root.
        var real = TemplateRegistry.Get("debootstrap");
        real.CheckPrerequisites(Options());
        Assert.Equal("SIGTERM", real.DefaultStopSignal);
        Assert.Equal("/bin/sh", real.DefaultInitCommand[0]);
    }

    [Fact]
    public void BuildsTheCacheOnceAndCopiesIt()
    {
        var template = new DebootstrapTemplate(FakeDebootstrap(SuccessBody), () => true);
        var reports = new List<TemplateProgress>();
        var progress = new SyncProgress(reports);
        var c1 = Path.Combine(_root, "c1");
        template.Build(c1, Options("c1"), progress, CancellationToken.None);
        var c2 = Path.Combine(_root, "c2");
        template.Build(c2, Options("c2"), null, CancellationToken.None);

        Assert.Single(File.ReadAllLines(Calls)); // the second container came from the cache
        Assert.StartsWith("--variant=minbase --arch=", File.ReadAllText(Calls));
        Assert.Equal("c1\n", File.ReadAllText(Path.Combine(c1, "etc", "hostname")));
        Assert.Equal("c2\n", File.ReadAllText(Path.Combine(c2, "etc", "hostname")));
        Assert.Contains("127.0.1.1\tc2", File.ReadAllText(Path.Combine(c2, "etc", "hosts")));
        Assert.Equal("/etc/passwd", new FileInfo(Path.Combine(c2, "etc", "host-link")).LinkTarget);
        var cached = DebootstrapTemplate.Resolve(Options()).CachedRootfs;
        Assert.Equal("old\n", File.ReadAllText(Path.Combine(cached, "etc", "hostname"))); // the cache stays pristine
        Assert.Empty(BuildDirectories(Cache));
        Assert.Equal(100, reports[^1].PercentComplete);
        Assert.Contains(reports, r => r.Status.StartsWith("Retrieving base-files"));
        Assert.True(reports.Select(r => r.PercentComplete).SequenceEqual(reports.Select(r => r.PercentComplete).Order()));
    }

    [Fact]
    public void FailedBuildLeavesNoCacheAndReportsOutputAndLog()
    {
        var template = new DebootstrapTemplate(FakeDebootstrap("""
            mkdir -p "$4/debootstrap"
            echo "dpkg: error processing package base-files" > "$4/debootstrap/debootstrap.log"
            echo "I: Retrieving InRelease"
            echo "E: Failed getting release file" >&2
            exit 1
            """), () => true);

        var ex = Assert.Throws<ContainerException>(() =>
            template.Build(Path.Combine(_root, "c1"), Options(), null, CancellationToken.None));

        Assert.Equal("DebootstrapFailed", ex.ErrorId);
        Assert.Contains("exit code 1", ex.Message);
        Assert.Contains("E: Failed getting release file", ex.Message);
        Assert.Contains("dpkg: error processing package base-files", ex.Message);
        Assert.False(Directory.Exists(DebootstrapTemplate.Resolve(Options()).CachedRootfs));
        Assert.Empty(BuildDirectories(Cache));
    }

    [Fact]
    public void FailedBuildUnmountsBeforeDeletingAndSparesBindMountedFiles()
    {
        // An interrupted debootstrap can leave the host's /dev bind-mounted in the target: a plain
        // recursive delete would remove the host's files. Here a sentinel directory stands in for /dev.
        var sentinel = Path.Combine(_root, "host-dev");
        Directory.CreateDirectory(sentinel);
        File.WriteAllText(Path.Combine(sentinel, "keep"), "keep");
        var template = new DebootstrapTemplate(FakeDebootstrap($"""
            mkdir -p "$4/dev" "$4/proc"
            mount --bind '{sentinel}' "$4/dev"
            mount -t tmpfs none "$4/proc"
            exit 1
            """), () => true);

        var ex = Assert.Throws<ContainerException>(() =>
            template.Build(Path.Combine(_root, "c1"), Options(), null, CancellationToken.None));

        Assert.Equal("DebootstrapFailed", ex.ErrorId);
        Assert.Equal("keep", File.ReadAllText(Path.Combine(sentinel, "keep")));
        Assert.Empty(BuildDirectories(Cache));
        Assert.DoesNotContain(_root, File.ReadAllText("/proc/self/mountinfo"));
    }

    [Fact]
    public void ConcurrentBuildersRunDebootstrapOnce()
    {
        var template = new DebootstrapTemplate(FakeDebootstrap("sleep 1\n" + SuccessBody), () => true);
        var builds = Enumerable.Range(1, 3).Select(i => Task.Run(() =>
            template.Build(Path.Combine(_root, $"c{i}"), Options($"c{i}"), null, CancellationToken.None))).ToArray();
        Task.WaitAll(builds);

        Assert.Single(File.ReadAllLines(Calls));
        for (int i = 1; i <= 3; i++)
            Assert.Equal($"c{i}\n", File.ReadAllText(Path.Combine(_root, $"c{i}", "etc", "hostname")));
    }

    [Fact]
    public void CancellationStopsDebootstrapAndCleansUp()
    {
        var template = new DebootstrapTemplate(FakeDebootstrap("""
            mkdir -p "$4/partial"
            echo "I: Retrieving InRelease"
            exec sleep 60
            """), () => true);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var sw = Stopwatch.StartNew();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            template.Build(Path.Combine(_root, "c1"), Options(), null, cts.Token));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"cancellation took {sw.Elapsed}");
        Assert.False(Directory.Exists(DebootstrapTemplate.Resolve(Options()).CachedRootfs));
        Assert.Empty(BuildDirectories(Cache));
    }

    [Fact]
    public void ProgressTrackerEstimatesPhases()
    {
        var reports = new List<TemplateProgress>();
        var tracker = new DebootstrapTemplate.ProgressTracker(new SyncProgress(reports), "debootstrap");
        tracker.OnLine("I: Retrieving InRelease ");
        Assert.Equal(2, tracker.Percent);
        tracker.OnLine("I: Retrieving libc6 2.36");
        tracker.OnLine("I: Retrieving tar 1.34");
        tracker.OnLine("I: Extracting libc6...");
        Assert.Equal(45 + 15 / 2, tracker.Percent);
        tracker.OnLine("I: Configuring tar...");
        tracker.OnLine("W: some warning");
        tracker.OnLine("I: Base system installed successfully.");
        Assert.Equal(98, tracker.Percent);
        Assert.Equal("Base system installed successfully.", reports[^1].Status);
    }

    sealed class SyncProgress(List<TemplateProgress> reports) : IProgress<TemplateProgress>
    {
        public void Report(TemplateProgress value) { lock (reports) reports.Add(value); }
    }
}
