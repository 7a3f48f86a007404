using System.Security.Cryptography;
using System.Text;
using PSContainers.Runtime.Storage;
using Tmds.Linux;
using PSContainers.Runtime.Filesystem;
using static Tmds.Linux.LibC;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// Puts every kind of file a rootfs holds into a directory (capabilities, setuid, ACLs, binary
/// xattrs, hard links, devices, fifos, sparse files, symlinks, foreign owners, long and non-ASCII
/// names) and fingerprints trees so two can be compared file by file.
/// </summary>
public static unsafe class TreeFixture
{
    // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_BIND_SERVICE (bit 10).
    public static readonly byte[] Capability = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };

    static byte[] Acl(bool withUser)
    {
        var ms = new MemoryStream();
        void U32(uint v) => ms.Write(BitConverter.GetBytes(v));
        void E(ushort tag, ushort perm, uint id) { ms.Write(BitConverter.GetBytes(tag)); ms.Write(BitConverter.GetBytes(perm)); U32(id); }
        U32(2);
        E(1, 6, uint.MaxValue);               // user::rw-
        if (withUser) E(2, 4, 1000);          // user:1000:r--
        E(4, 4, uint.MaxValue);               // group::r--
        if (withUser) E(0x10, 4, uint.MaxValue); // mask::r--
        E(0x20, 4, uint.MaxValue);            // other::r--
        return ms.ToArray();
    }

    public static readonly byte[] AclAccess = Acl(true);

    static void Check(int rc, string what)
    {
        if (rc != 0) throw new InvalidOperationException($"{what} failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
    }

    public static void Populate(string root)
    {
        var opt = Path.Combine(root, "opt", "fixture");
        Directory.CreateDirectory(opt);
        string P(string n) => Path.Combine(opt, n);

        File.WriteAllText(P("cap-bin"), "#!/bin/sh\necho cap\n");
        FsNative.SetXattr(-1, P("cap-bin"), "security.capability", Capability);

        File.WriteAllText(P("suid"), "setuid binary");
        File.SetUnixFileMode(P("suid"), (UnixFileMode)0b100_111_101_101); // 04755
        File.WriteAllText(P("sgid"), "setgid binary");
        fixed (byte* p = FsNative.Z(P("sgid"))) Check(chown(p, 1000, 1000), "chown");
        File.SetUnixFileMode(P("sgid"), (UnixFileMode)0b010_111_101_101); // 02755

        File.WriteAllText(P("acl"), "acl");
        FsNative.SetXattr(-1, P("acl"), "system.posix_acl_access", AclAccess);
        Directory.CreateDirectory(P("acl-dir"));
        FsNative.SetXattr(-1, P("acl-dir"), "system.posix_acl_default", AclAccess);
        File.WriteAllText(P("xattr"), "x");
        FsNative.SetXattr(-1, P("xattr"), "user.binary", new byte[] { 0, 0xFF, 0x80, (byte)'=', (byte)'\n', 1 });

        File.WriteAllText(P("hard1"), "linked twice");
        fixed (byte* a = FsNative.Z(P("hard1")), b = FsNative.Z(P("hard2"))) Check(link(a, b), "link");

        fixed (byte* d = FsNative.Z(P("null"))) Check(mknod(d, S_IFCHR | (mode_t)0b110_110_110, MakeDev(1, 3)), "mknod");
        fixed (byte* d = FsNative.Z(P("loop-blk"))) Check(mknod(d, S_IFBLK | (mode_t)0b110_110_000, MakeDev(259, 300)), "mknod");
        fixed (byte* d = FsNative.Z(P("fifo"))) Check(mknod(d, S_IFIFO | (mode_t)0b110_100_100, 0), "mkfifo");

        using (var f = new FileStream(P("sparse"), FileMode.CreateNew))
        {
            f.SetLength(16 << 20);
            f.Position = 8 << 20;
            f.Write(Encoding.ASCII.GetBytes("data in the middle of holes"));
        }

        File.CreateSymbolicLink(P("rel-link"), "../../etc/passwd");
        File.CreateSymbolicLink(P("abs-link"), "/etc/shadow");
        File.CreateSymbolicLink(P("dangling"), "/nowhere/at/all");

        File.WriteAllText(P("foreign"), "owned by someone else");
        fixed (byte* p = FsNative.Z(P("foreign"))) Check(chown(p, 123456, 654321), "chown");
        File.SetUnixFileMode(P("foreign"), (UnixFileMode)0b110_000_000);

        var deep = Path.Combine(opt, new string('d', 60), new string('e', 60), new string('f', 60));
        Directory.CreateDirectory(deep);
        File.WriteAllText(Path.Combine(deep, new string('g', 90) + ".txt"), "long path");
        File.WriteAllText(P("ünïcødé ✓"), "non-ascii name");
        File.WriteAllBytes(P("random"), RandomNumberGenerator.GetBytes(300_000));
    }

    /// <summary>path -> everything cp -a / tar --xattrs would preserve (hard links as "link to first path").</summary>
    public static SortedDictionary<string, string> Fingerprint(string root)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var inodes = new Dictionary<(ulong, ulong), string>();
        void Walk(string dir, string rel)
        {
            foreach (var path in Directory.EnumerateFileSystemEntries(dir, "*", new EnumerationOptions { AttributesToSkip = 0 }).Order(StringComparer.Ordinal))
            {
                var r = rel + "/" + Path.GetFileName(path);
                stat st;
                fixed (byte* p = FsNative.Z(path)) Check(lstat(p, &st), "lstat " + path);
                var type = st.st_mode & S_IFMT;
                var sb = new StringBuilder();
                sb.Append($"mode={Convert.ToString((uint)st.st_mode, 8)} uid={st.st_uid} gid={st.st_gid}");
                if (type != S_IFDIR) sb.Append($" mtime={st.st_mtim.tv_sec}.{st.st_mtim.tv_nsec}");
                if (type == S_IFLNK) sb.Append(" -> " + new FileInfo(path).LinkTarget);
                else foreach (var (k, v) in FsNative.ReadXattrs(path)) sb.Append($" {k}={Convert.ToHexString(v)}");
                if (type == S_IFCHR || type == S_IFBLK) sb.Append($" rdev={(ulong)st.st_rdev}");
                if (type != S_IFDIR && (ulong)st.st_nlink > 1)
                {
                    var key = ((ulong)st.st_dev, (ulong)st.st_ino);
                    if (inodes.TryGetValue(key, out var first)) sb.Append(" hardlink-to=" + first);
                    else inodes[key] = r;
                }
                if (type == S_IFREG)
                {
                    sb.Append($" size={st.st_size}");
                    using var f = File.OpenRead(path);
                    sb.Append(" sha256=" + Convert.ToHexString(SHA256.HashData(f)));
                }
                result[r] = sb.ToString();
                if (type == S_IFDIR) Walk(path, r);
            }
        }
        Walk(root, "");
        return result;
    }

    /// <param name="ignore">Paths (like "/etc/hostname") that are expected to differ.</param>
    public static void AssertSameTree(string expectedRoot, string actualRoot, params string[] ignore)
    {
        var expected = Fingerprint(expectedRoot);
        var actual = Fingerprint(actualRoot);
        foreach (var path in ignore) { expected.Remove(path); actual.Remove(path); }
        var missing = expected.Keys.Except(actual.Keys).ToList();
        var extra = actual.Keys.Except(expected.Keys).ToList();
        var differ = expected.Keys.Intersect(actual.Keys).Where(k => expected[k] != actual[k]).Select(k => $"{k}\n  expected {expected[k]}\n  actual   {actual[k]}").ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0 && differ.Count == 0,
            $"Trees differ.\nMissing: {string.Join(", ", missing)}\nExtra: {string.Join(", ", extra)}\nDifferent:\n{string.Join("\n", differ.Take(20))}");
    }

    public static dev_t MakeDev(ulong major, ulong minor) =>
        (dev_t)(((major & 0xFFF) << 8) | ((major & ~0xFFFUL) << 32) | (minor & 0xFF) | ((minor & ~0xFFUL) << 12));

    public static long AllocatedBytes(string path)
    {
        stat st;
        fixed (byte* p = FsNative.Z(path)) Check(lstat(p, &st), "lstat");
        return (long)st.st_blocks * 512;
    }
}
