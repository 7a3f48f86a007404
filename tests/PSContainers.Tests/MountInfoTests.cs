using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Templates;

namespace PSContainers.Tests;

/// <summary>The one mountinfo reader: fields, optional fields and every escape the kernel writes.</summary>
public sealed class MountInfoTests
{
    [Fact]
    public void Parse_ReadsTheFieldsAroundOptionalOnes()
    {
        var m = Assert.Single(MountInfo.Parse(new[]
        {
            "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue",
            "garbage without separator",
        }));
        Assert.Equal((36, 35, "/mnt1", "/mnt/a b", "rw,noatime", "ext3", "/dev/root", "rw,errors=continue"),
            (m.Id, m.ParentId, m.Root, m.MountPoint, m.Options, m.FsType, m.Source, m.SuperOptions));
    }

    [Fact]
    public void Parse_UndoesEveryEscape()
    {
        var m = Assert.Single(MountInfo.Parse(new[] { @"1 0 0:1 / /x\011y\012z\134w\040v rw - tmpfs t rw" }));
        Assert.Equal("/x\ty\nz\\w v", m.MountPoint);
    }

    /// <summary>
    /// A real mount whose path holds a tab and a backslash (a path a container's own mounts can
    /// choose): found at its true path, and a failed debootstrap build holding it is unmounted and
    /// removed rather than recursed into.
    /// </summary>
    [Fact]
    public void RealMount_WithEscapedCharacters_IsFoundAndUnmounted()
    {
        var dir = Path.Combine(Path.GetTempPath(), "psc-test-mountinfo-" + Guid.NewGuid().ToString("N")[..8]);
        var point = Path.Combine(dir, "proc\tx\\y");
        Directory.CreateDirectory(point);
        try
        {
            FsNative.Mount("tmpfs", point, "tmpfs", 0, "size=1m");
            File.WriteAllText(Path.Combine(point, "inside"), "x");
            Assert.Contains(point, MountInfo.PointsBelow(MountInfo.Current(), dir));
            DebootstrapTemplate.RemoveBuildDirectory(dir);
            Assert.False(Directory.Exists(dir));
            Assert.DoesNotContain(MountInfo.Current(), m => m.MountPoint.StartsWith(dir, StringComparison.Ordinal));
        }
        finally
        {
            FsNative.UnmountBelow(dir);
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
