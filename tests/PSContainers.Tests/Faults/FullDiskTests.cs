using PSContainers.Runtime;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;
using PSContainers.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PSContainers.Tests.Faults;

/// <summary>
/// A store on a 64 MB ext4 loop device (no blocks reserved for root), filled to the last block.
/// Every operation must fail with an error and leave nothing behind; a start in particular must
/// never leave a container running that the state does not record.
/// </summary>
[Collection("Containers")]
public sealed class FullDiskTests : FaultTests
{
    private readonly LoopFilesystem _fs;
    private string Filler => Path.Combine(_fs.MountPoint, "filler");

    public FullDiskTests(ITestOutputHelper log) : this(log, new LoopFilesystem("ext4", 64L << 20)) { }

    private FullDiskTests(ITestOutputHelper log, LoopFilesystem fs) : base(log, StoreOn(fs))
    {
        _fs = fs;
        Check.ExtraDirectories.Add(Store.Root);
    }

    private static TestStore StoreOn(LoopFilesystem fs)
    {
        try { return new TestStore(Path.Combine(fs.MountPoint, "t")); }
        catch { fs.Dispose(); throw; }
    }

    public override void Dispose()
    {
        try { File.Delete(Filler); } catch (Exception) { }
        base.Dispose();
        _fs.Dispose();
    }

    /// <summary>Writes until ENOSPC, in ever smaller pieces down to one block.</summary>
    private void Fill()
    {
        using var f = new FileStream(Filler, FileMode.Append, FileAccess.Write, FileShare.None, 1);
        for (var size = 1 << 20; size >= 1024; size /= 4)
        {
            var block = new byte[size];
            try { while (true) { f.Write(block); f.Flush(flushToDisk: true); } }
            catch (IOException) { }
        }
        Log.WriteLine($"filled: {new DriveInfo(_fs.MountPoint).AvailableFreeSpace} bytes free");
    }

    private void Refused(string what, Action action)
    {
        var ex = Assert.ThrowsAny<Exception>(action);
        Log.WriteLine($"{what}: {(ex as ContainerException)?.ErrorId ?? ex.GetType().Name}: {ex.Message}");
        AssertTruth($"{what} on a full disk");
        Assert.Empty(Directory.EnumerateFileSystemEntries(M.Store.TempDirectory));
    }

    [Fact]
    public void OnAFullStore_EveryOperationFailsCleanly_AndNoContainerRunsUnrecorded()
    {
        var stopped = TestStore.NewName("fd");
        var running = TestStore.NewName("fdr");
        M.Create(stopped, new CreateOptions { Template = "busybox" });
        M.Create(running, new CreateOptions { Template = "busybox" });
        M.Start(running);
        var archive = Path.Combine(Store.Root, "in.tar");
        ContainerArchive.Export(M, stopped, archive, force: false);
        Directory.CreateDirectory(M.Store.TempDirectory);
        Fill();

        Refused("Start-Container", () => M.Start(stopped));
        Assert.Equal(ContainerStatus.Stopped, M.Get(stopped).State);
        // Through a real pwsh too: an error, and Get-Container in a new session says Stopped.
        var outcome = KilledPwsh.Run(Store.StorePath, $"Start-Container {stopped}");
        Assert.False(outcome.StdOut.Contains("DONE"), "Start-Container succeeded on a full disk");
        Log.WriteLine("pwsh: " + outcome.StdErr.Trim());
        Assert.Equal(ContainerStatus.Stopped, M.Get(stopped).State);
        Assert.Equal(ContainerStatus.Running, M.Get(running).State);

        Refused("New-Container", () => M.Create(TestStore.NewName("fdn"), new CreateOptions { Template = "busybox" }));
        Refused("Copy-Container", () => new StorageManager(M).Copy(stopped, TestStore.NewName("fdc"), new CopyOptions()));
        Refused("Import-Container", () => ContainerArchive.Import(M, archive, TestStore.NewName("fdi")));
        var exported = Path.Combine(Store.Root, "out.tar");
        Refused("Export-Container -Force", () => ContainerArchive.Export(M, running, exported, force: true));
        Assert.Equal(ContainerStatus.Running, M.Get(running).State); // thawed again
        Assert.Empty(Directory.EnumerateFiles(Store.Root, "*.partial", SearchOption.AllDirectories));

        // Room again: everything works, and nothing of the failures is left.
        File.Delete(Filler);
        Assert.Equal(ContainerStatus.Running, M.Start(stopped).State);
        M.Stop(stopped, kill: true);
        AssertNoLeaks("room again");
    }
}
