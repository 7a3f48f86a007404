using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// A real Debian container from the debootstrap template (downloads from the Debian mirror, which
/// this machine reaches). The second container of the same release must come from the cache.
/// </summary>
[Collection("Containers")]
public sealed class DebootstrapContainerTests : IDisposable
{
    private readonly TestStore _store = new();

    public void Dispose() => _store.Dispose();

    [Fact]
    public void DebianContainer_BuildsOnce_ThenComesFromTheCache()
    {
        using var ps = _store.OpenSession();
        var first = TestStore.NewName("deb");
        var r1 = ps.Invoke("New-Container $args[0] -Template debootstrap -Release bookworm", first);
        Assert.Empty(r1.Errors);
        // Progress was shown while debootstrap ran.
        Assert.Contains(r1.Progress, p => p.StatusDescription.Contains("Retrieving", StringComparison.OrdinalIgnoreCase)
                                       || p.StatusDescription.Contains("Downloading", StringComparison.OrdinalIgnoreCase));
        var info = (ContainerInfo)r1.Output.Single().BaseObject;
        Assert.Equal("debootstrap", info.Template);
        Assert.True(File.Exists(Path.Combine(info.RootfsPath, "etc", "debian_version")));

        var second = TestStore.NewName("deb");
        var r2 = ps.Invoke("New-Container $args[0] -Template debootstrap -Release bookworm", second);
        Assert.Empty(r2.Errors);
        Assert.DoesNotContain(r2.Progress, p => p.StatusDescription.Contains("Retrieving", StringComparison.OrdinalIgnoreCase));

        ps.Run("Start-Container $args[0]", second);
        var version = (ContainerCommandResult)ps.Run("Invoke-ContainerCommand $args[0] cat,/etc/debian_version", second).Single().BaseObject;
        Assert.StartsWith("12", version.Output.Single());
        var hostname = (ContainerCommandResult)ps.Run("Invoke-ContainerCommand $args[0] hostname", second).Single().BaseObject;
        Assert.Equal(second, hostname.Output.Single());
        // The template's init exits cleanly on SIGTERM: a graceful stop, not a kill.
        var stopped = (ContainerInfo)ps.Run("Stop-Container $args[0] -Timeout 10 -PassThru", second).Single().BaseObject;
        Assert.Equal(ContainerStatus.Stopped, stopped.State);
        Assert.Equal(0, stopped.ExitCode);

        ps.Run("Remove-Container $args[0], $args[1]", first, second);
        Assert.Empty(ps.Run("Get-Container"));
    }

    [Fact]
    public void FailureHalfWay_LeavesNothingBehind()
    {
        using var ps = _store.OpenSession();
        // debootstrap really runs, and fails fetching from a closed loopback port.
        var r = ps.Invoke("New-Container $args[0] -Template debootstrap -Release bookworm -Mirror http://127.0.0.1:9/debian", TestStore.NewName("debfail"));
        var error = r.SingleError;
        Assert.Contains("debootstrap", error.Exception.Message);
        Assert.Empty(ps.Run("Get-Container"));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(_store.StorePath, ".tmp")));
        var cache = Path.Combine(_store.StorePath, ".cache", "debootstrap");
        Assert.Empty(Directory.Exists(cache)
            ? Directory.EnumerateDirectories(cache, "rootfs*", SearchOption.AllDirectories)
            : Array.Empty<string>()); // neither a cache nor a half-made build
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(_store.StorePath));
    }
}
