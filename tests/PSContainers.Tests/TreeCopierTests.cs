using PSContainers.Tests.Infrastructure;
using System.Diagnostics;
using System.Runtime.InteropServices;
using PSContainers.Runtime;
using PSContainers.Runtime.Storage;
using Xunit;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Tests;

public sealed class TreeCopierTests : IDisposable
{
    readonly string _root = Directory.CreateTempSubdirectory("psc-test-").FullName;
    string Src => Path.Combine(_root, "src");
    string Dst => Path.Combine(_root, "dst");

    public TreeCopierTests() => Directory.CreateDirectory(Src);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    static string Run(string file, params string[] args) => HostCommand.Run(file, args);

    /// <summary>stat(1) does not follow symlinks, so this sees exactly what lstat sees.</summary>
    static string Stat(string path, string format) => Run("stat", "-c", format, path);

    [Fact]
    public void CopiesOwnersModesAndTimes()
    {
        var file = Path.Combine(Src, "etc", "file.txt");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, "hello");
        File.WriteAllText(Path.Combine(Src, ".hidden"), "dot");
        Run("chown", "1234:5678", file);
        Run("chmod", "0640", file);
        var suid = Path.Combine(Src, "suid");
        File.WriteAllText(suid, "#!/bin/sh\n");
        Run("chown", "1000:1000", suid);
        Run("chmod", "4755", suid); // after chown: chown would clear it
        var sticky = Path.Combine(Src, "tmp");
        Directory.CreateDirectory(sticky);
        Run("chmod", "1777", sticky);
        Run("touch", "-h", "-d", "2001-02-03 04:05:06", file);
        Run("touch", "-h", "-d", "2002-03-04 05:06:07", Path.Combine(Src, "etc"));

        TreeCopier.Copy(Src, Dst);

        Assert.Equal("1234 5678 640 hello", Stat(Path.Combine(Dst, "etc", "file.txt"), "%u %g %a") + " " + File.ReadAllText(Path.Combine(Dst, "etc", "file.txt")));
        Assert.Equal("1000 1000 4755", Stat(Path.Combine(Dst, "suid"), "%u %g %a"));
        Assert.Equal("1777", Stat(Path.Combine(Dst, "tmp"), "%a"));
        Assert.Equal("dot", File.ReadAllText(Path.Combine(Dst, ".hidden")));
        Assert.Equal(Stat(file, "%Y"), Stat(Path.Combine(Dst, "etc", "file.txt"), "%Y"));
        // Directory times are set after their contents were copied.
        Assert.Equal(Stat(Path.Combine(Src, "etc"), "%Y"), Stat(Path.Combine(Dst, "etc"), "%Y"));
    }

    [Fact]
    public void CopiesFileCapabilities()
    {
        var setcap = new[] { "/usr/sbin/setcap", "/sbin/setcap" }.FirstOrDefault(File.Exists);
        Assert.True(setcap is not null, "setcap is missing: apt-get install libcap2-bin");
        var ping = Path.Combine(Src, "ping");
        File.WriteAllText(ping, "binary");
        Run(setcap, "cap_net_raw+ep", ping);

        TreeCopier.Copy(Src, Dst);

        var getcap = Path.Combine(Path.GetDirectoryName(setcap)!, "getcap");
        Assert.Contains("cap_net_raw=ep", Run(getcap, Path.Combine(Dst, "ping")));
    }

    [DllImport("libc", SetLastError = true)]
    static extern int lsetxattr(string path, string name, byte[] value, nuint size, int flags);
    [DllImport("libc", SetLastError = true)]
    static extern nint lgetxattr(string path, string name, byte[] value, nuint size);

    static byte[] GetXattr(string path, string name)
    {
        var buf = new byte[4096];
        var n = lgetxattr(path, name, buf, (nuint)buf.Length);
        Assert.True(n >= 0, $"lgetxattr {name} on {path}: errno {Marshal.GetLastPInvokeError()}");
        return buf[..(int)n];
    }

    /// <summary>A POSIX ACL in the kernel's xattr format: version 2, then (tag, perm, id) entries.</summary>
    static byte[] Acl(params (ushort Tag, ushort Perm, uint Id)[] entries)
    {
        var blob = new List<byte>(BitConverter.GetBytes(2u));
        foreach (var (tag, perm, id) in entries)
            blob.AddRange(BitConverter.GetBytes(tag).Concat(BitConverter.GetBytes(perm)).Concat(BitConverter.GetBytes(id)));
        return blob.ToArray();
    }

    [Fact]
    public void CopiesAclsAndUserXattrs()
    {
        const uint Undefined = uint.MaxValue;
        var file = Path.Combine(Src, "shared.txt");
        File.WriteAllText(file, "acl");
        var dir = Path.Combine(Src, "shared");
        Directory.CreateDirectory(dir);
        // user::rw- user:1000:rw- group::r-- mask::rw- other::---
        var access = Acl((1, 6, Undefined), (2, 6, 1000), (4, 4, Undefined), (0x10, 6, Undefined), (0x20, 0, Undefined));
        // default: user::rwx user:1000:rwx group::r-x mask::rwx other::r-x
        var dflt = Acl((1, 7, Undefined), (2, 7, 1000), (4, 5, Undefined), (0x10, 7, Undefined), (0x20, 5, Undefined));
        Assert.Equal(0, lsetxattr(file, "system.posix_acl_access", access, (nuint)access.Length, 0));
        Assert.Equal(0, lsetxattr(dir, "system.posix_acl_default", dflt, (nuint)dflt.Length, 0));
        var note = "hello"u8.ToArray();
        Assert.Equal(0, lsetxattr(file, "user.note", note, (nuint)note.Length, 0));
        var mode = Stat(file, "%a");

        TreeCopier.Copy(Src, Dst);

        Assert.Equal(access, GetXattr(Path.Combine(Dst, "shared.txt"), "system.posix_acl_access"));
        Assert.Equal(dflt, GetXattr(Path.Combine(Dst, "shared"), "system.posix_acl_default"));
        Assert.Equal(note, GetXattr(Path.Combine(Dst, "shared.txt"), "user.note"));
        Assert.Equal(mode, Stat(Path.Combine(Dst, "shared.txt"), "%a"));
    }

    [Fact]
    public void PreservesHardLinksSymlinksDevicesAndFifos()
    {
        var a = Path.Combine(Src, "a");
        File.WriteAllText(a, "shared");
        Directory.CreateDirectory(Path.Combine(Src, "sub"));
        Run("ln", a, Path.Combine(Src, "sub", "b"));
        File.CreateSymbolicLink(Path.Combine(Src, "outside"), "/etc/passwd");
        File.CreateSymbolicLink(Path.Combine(Src, "up"), "../../../..");
        File.CreateSymbolicLink(Path.Combine(Src, "dangling"), "/nonexistent/psc");
        Run("mknod", Path.Combine(Src, "null"), "c", "1", "3");
        Run("mkfifo", Path.Combine(Src, "fifo"));
        Run("chown", "-h", "42:43", Path.Combine(Src, "outside"));

        TreeCopier.Copy(Src, Dst);

        Assert.Equal(Stat(Path.Combine(Dst, "a"), "%i 2"), Stat(Path.Combine(Dst, "sub", "b"), "%i %h"));
        Assert.NotEqual(Stat(a, "%i"), Stat(Path.Combine(Dst, "a"), "%i"));
        Assert.Equal("symbolic link /etc/passwd 42 43", Stat(Path.Combine(Dst, "outside"), "%F") + " " +
            new FileInfo(Path.Combine(Dst, "outside")).LinkTarget + " " + Stat(Path.Combine(Dst, "outside"), "%u %g"));
        Assert.Equal("../../../..", new FileInfo(Path.Combine(Dst, "up")).LinkTarget);
        Assert.Equal("/nonexistent/psc", new FileInfo(Path.Combine(Dst, "dangling")).LinkTarget);
        Assert.Equal("character special file 1 3", Stat(Path.Combine(Dst, "null"), "%F %Hr %Lr"));
        Assert.Equal("fifo", Stat(Path.Combine(Dst, "fifo"), "%F"));
    }

    [Fact]
    public void KeepsSparseFilesSparse()
    {
        var sparse = Path.Combine(Src, "disk.img");
        using (var fs = new FileStream(sparse, FileMode.CreateNew))
        {
            fs.SetLength(256L << 20);
            fs.Position = 128L << 20;
            fs.Write("data"u8);
        }
        File.WriteAllBytes(Path.Combine(Src, "dense"), Enumerable.Range(0, 300_000).Select(i => (byte)i).ToArray());

        TreeCopier.Copy(Src, Dst);

        var copy = Path.Combine(Dst, "disk.img");
        Assert.Equal(256L << 20, new FileInfo(copy).Length);
        Assert.True(long.Parse(Stat(copy, "%b")) * 512 < (8L << 20), "the copy allocated the holes");
        using (var fs = File.OpenRead(copy))
        {
            fs.Position = 128L << 20;
            var buf = new byte[4];
            fs.ReadExactly(buf);
            Assert.Equal("data"u8.ToArray(), buf);
        }
        Assert.Equal(File.ReadAllBytes(Path.Combine(Src, "dense")), File.ReadAllBytes(Path.Combine(Dst, "dense")));
    }

    [Fact]
    public void RefusesNonEmptyDestination()
    {
        Directory.CreateDirectory(Dst);
        File.WriteAllText(Path.Combine(Dst, "x"), "x");
        var ex = Assert.Throws<ContainerException>(() => TreeCopier.Copy(Src, Dst));
        Assert.Equal("CopyDestinationNotEmpty", ex.ErrorId);
    }

    [Fact]
    public void CopiesIntoExistingEmptyDirectoryAndHonoursCancellation()
    {
        Directory.CreateDirectory(Dst);
        File.WriteAllText(Path.Combine(Src, "f"), "f");
        Run("chmod", "0711", Src);
        TreeCopier.Copy(Src, Dst);
        Assert.Equal("711", Stat(Dst, "%a"));

        var again = Path.Combine(_root, "again");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => TreeCopier.Copy(Src, again, cts.Token));
    }
}
