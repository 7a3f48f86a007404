using System.Diagnostics;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// A filesystem (btrfs, xfs, ext4) on a loop device backed by a sparse file, mounted under
/// /tmp/psc-test-*/mnt. Made with losetup and mkfs (btrfs-progs, xfsprogs, e2fsprogs); Dispose unmounts,
/// detaches the loop device and deletes the image, also when the test failed.
/// </summary>
public sealed class LoopFilesystem : IDisposable
{
    public string Directory { get; }
    public string MountPoint { get; }
    public string Image { get; }
    public string? LoopDevice { get; private set; }
    private bool _mounted;

    public LoopFilesystem(string type, long sizeBytes = 1L << 30)
    {
        Directory = Path.Combine(Path.GetTempPath(), "psc-test-" + Guid.NewGuid().ToString("N")[..12]);
        MountPoint = Path.Combine(Directory, "mnt");
        Image = Path.Combine(Directory, "fs.img");
        System.IO.Directory.CreateDirectory(MountPoint);
        try
        {
            using (var f = new FileStream(Image, FileMode.CreateNew)) f.SetLength(sizeBytes);
            LoopDevice = Run("losetup", "--find", "--show", Image).Trim();
            if (type == "btrfs") Run("mkfs.btrfs", "-q", "-f", LoopDevice);
            else if (type == "xfs") Run("mkfs.xfs", "-q", "-f", "-m", "reflink=1", LoopDevice);
            // No blocks reserved for root: "full" means full for the root-run tests too (the fault suite).
            else if (type == "ext4") Run("mkfs.ext4", "-q", "-F", "-m", "0", LoopDevice);
            else throw new ArgumentException(type);
            Run("mount", "-t", type, LoopDevice, MountPoint);
            _mounted = true;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Bytes in use on the filesystem (statvfs, after syncfs).</summary>
    public long UsedBytes
    {
        get
        {
            Run("sync", "-f", MountPoint); // count data still in the page cache too
            var d = new DriveInfo(MountPoint);
            return d.TotalSize - d.TotalFreeSpace;
        }
    }

    public static string Run(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed ({p.ExitCode}): {error}");
        return output;
    }

    public void Dispose()
    {
        if (_mounted)
        {
            try { Run("umount", MountPoint); }
            catch (InvalidOperationException) { try { Run("umount", "-l", MountPoint); } catch (InvalidOperationException) { } }
            _mounted = false;
        }
        if (LoopDevice is not null)
        {
            try { Run("losetup", "-d", LoopDevice); } catch (InvalidOperationException) { }
            LoopDevice = null;
        }
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (Exception) { }
    }
}
