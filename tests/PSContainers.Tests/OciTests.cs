using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Filesystem;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// New-Container -Template oci: images made offline with Debian's umoci and skopeo from local
/// trees (no registry), and hostile layers written by hand into a layout of our own.
/// </summary>
[Collection("Containers")]
public sealed class OciTests : IDisposable
{
    readonly TestStore _store = new();
    readonly ModuleSession _ps;
    readonly string _work;

    public OciTests()
    {
        _work = Path.Combine(_store.Root, "images");
        Directory.CreateDirectory(_work);
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    /// <summary>
    /// An image with three layers: a busybox tree (with /gone and /opq/lower), a whiteout of /gone,
    /// and a hand-made layer making /opq opaque with /opq/upper; Entrypoint, Cmd, Env, WorkingDir and
    /// an exposed port set with umoci config; and the same image as a docker save archive (skopeo).
    /// </summary>
    (string Layout, string DockerArchive) BuildImage()
    {
        var script = """
            set -e
            cd "$1"
            mkdir -p src1/bin src1/app/old src1/opq src1/etc src1/proc src1/sys src1/dev src1/tmp
            cp /bin/busybox src1/bin/busybox; ln -s busybox src1/bin/sh; ln -s busybox src1/bin/sleep; ln -s busybox src1/bin/cat
            echo old > src1/app/old/f; echo lower > src1/opq/lower; echo gone > src1/gone
            umoci init --layout img
            umoci new --image img:t
            umoci insert --image img:t src1 /
            umoci insert --image img:t --whiteout /gone
            mkdir -p src2/opq; echo upper > src2/opq/upper; : > src2/opq/.wh..wh..opq
            tar -C src2 --owner=0 --group=0 -cf opq.tar opq
            umoci raw add-layer --image img:t opq.tar
            umoci config --image img:t --config.entrypoint /bin/sh --config.cmd -c --config.cmd 'echo "$A $(pwd)" > /out; exec sleep 1000' \
                --config.env A=from-image --config.workingdir /app --config.exposedports 80/tcp
            skopeo copy -q oci:img:t docker-archive:d.tar:psct/x:t
            skopeo copy -q oci:img:t oci-archive:o.tar:t
            """;
        HostCommand.Run("bash", "-c", script, "bash", _work);
        return (Path.Combine(_work, "img"), Path.Combine(_work, "d.tar"));
    }

    string Exec(string name, string script) =>
        string.Join("\n", _ps.Run("(Invoke-ContainerCommand $args[0] -Command /bin/sh,-c,$args[1]).Output", name, script).Select(o => o.ToString()));

    string WaitForOut(string name)
    {
        var sw = Stopwatch.StartNew();
        string text = "";
        while (sw.Elapsed < TimeSpan.FromSeconds(20))
        {
            text = Exec(name, "cat /out 2>/dev/null || true");
            if (text.Length > 0) return text;
            Thread.Sleep(100);
        }
        return text;
    }

    // Only the container this test made before is in the store.
    void AssertNothingHalfMade2()
    {
        Assert.Single(_store.Manager.Names());
        var tmp = _store.Manager.Store.TempDirectory;
        Assert.True(!Directory.Exists(tmp) || !Directory.EnumerateFileSystemEntries(tmp).Any(), "a half-made container was left in .tmp");
    }

    void AssertNothingHalfMade()
    {
        Assert.Empty(_store.Manager.Names());
        var tmp = _store.Manager.Store.TempDirectory;
        Assert.True(!Directory.Exists(tmp) || !Directory.EnumerateFileSystemEntries(tmp).Any(), "a half-made container was left in .tmp");
    }

    [Fact]
    public void LayoutDirectory_RunsEntrypointAndCmd_WithEnvAndWorkingDir_WhiteoutsApplied()
    {
        var (layout, _) = BuildImage();
        var name = TestStore.NewName("oci");
        _ps.Run("New-Container $args[0] -Template oci -ImagePath $args[1] -ImageTag t | Start-Container", name, layout);
        Assert.Equal("from-image /app", WaitForOut(name));
        // The whiteout removed /gone; the opaque layer hid /opq/lower and kept its own /opq/upper.
        Assert.Equal("no-gone|upper|old", Exec(name, "test -e /gone && echo gone || echo no-gone; ls /opq; cat /app/old/f").Replace("\n", "|"));
        var config = ConfigLoader.Load(_store.Manager.Store.ConfigPath(name));
        Assert.Equal(new[] { "/bin/sh", "-c", "echo \"$A $(pwd)\" > /out; exec sleep 1000" }, config.Init.Command);
        Assert.Equal("from-image", config.Init.Environment["A"]);
        Assert.Equal("/app", config.Init.WorkingDirectory);
        Assert.Equal("oci", config.Template);
        Assert.NotNull(config.Oci);
        Assert.Equal("t", config.Oci!.Tag);
        Assert.StartsWith("sha256:", config.Oci.Digest);
        Assert.Equal(new[] { "80/tcp" }, config.Oci.ExposedPorts);
        // The manifest digest recorded is the one index.json names.
        Assert.Contains(config.Oci.Digest!, File.ReadAllText(Path.Combine(layout, "index.json")));
        // Get-Container shows the image (tag and short digest); its list view is checked in Oci.Tests.ps1.
        Assert.Equal($"t@{config.Oci.Digest![..19]}", _store.Manager.Get(name).Image);
    }

    [Fact]
    public void DockerArchive_CommandReplacesCmdAndKeepsEntrypoint_EnvironmentWins()
    {
        var (_, archive) = BuildImage();
        var name = TestStore.NewName("ocid");
        _ps.Run("New-Container $args[0] -ImagePath $args[1] -ImageTag x:t -Command '-c','echo $A-$B > /out; exec sleep 1000' -Environment @{ B = 'mine' } | Start-Container", name, archive);
        Assert.Equal("from-image-mine", WaitForOut(name));
        Assert.Equal("no-gone|upper", Exec(name, "test -e /gone && echo gone || echo no-gone; ls /opq").Replace("\n", "|"));

        var r = _ps.Invoke("New-Container $args[0] -ImagePath $args[1] -ImageTag nosuch", TestStore.NewName("ocid"), archive);
        Assert.Equal("OciImageTagNotFound,PSContainers.Cmdlets.NewContainerCommand", r.SingleError.FullyQualifiedErrorId);
        Assert.Contains("psct/x:t", r.SingleError.Exception.Message);
        r = _ps.Invoke("New-Container $args[0] -Template oci", TestStore.NewName("ocid"));
        Assert.Equal("OciImagePathRequired,PSContainers.Cmdlets.NewContainerCommand", r.SingleError.FullyQualifiedErrorId);
        r = _ps.Invoke("New-Container $args[0] -Template busybox -ImagePath $args[1]", TestStore.NewName("ocid"), archive);
        Assert.Equal("ConflictingParameters,PSContainers.Cmdlets.NewContainerCommand", r.SingleError.FullyQualifiedErrorId);
        AssertNothingHalfMade2();
    }

    [Fact]
    public void OciArchive_ATarOfALayout_IsReadInPlace()
    {
        BuildImage();
        var name = TestStore.NewName("ocia");
        _ps.Run("New-Container $args[0] -ImagePath $args[1] | Start-Container", name, Path.Combine(_work, "o.tar"));
        Assert.Equal("from-image /app", WaitForOut(name));
        Assert.Equal("no-gone|upper", Exec(name, "test -e /gone && echo gone || echo no-gone; ls /opq").Replace("\n", "|"));
    }

    static Tmds.Linux.stat Lstat(string path)
    {
        Assert.True(FsNative.TryLstat(path, out var st), $"{path} is missing");
        return st;
    }

    /// <summary>
    /// Overlay: one shared layer per image layer in the store's .layers, named by its diff_id; an
    /// unprivileged (idmapped) and a privileged container of the same image use the very same
    /// directories (never chowned), each writes only its own upper layer, OCI whiteouts became
    /// overlayfs's (a 0/0 character device, an opaque directory) and work across the stack; the
    /// layers stay while one container uses them and go with the last.
    /// </summary>
    [Fact]
    public void Overlay_LayersSharedBetweenContainers_WhiteoutsAcrossTheStack_FreedWithTheLast()
    {
        var (layout, _) = BuildImage();
        var (a, b) = (TestStore.NewName("ocio"), TestStore.NewName("ocio"));
        _ps.Run("New-Container $args[0] -ImagePath $args[1] -Backend overlay | Start-Container", a, layout);
        _ps.Run("New-Container $args[0] -ImagePath $args[1] -Backend overlay -Privileged | Start-Container", b, layout);
        Assert.Equal("from-image /app", WaitForOut(a));
        Assert.Equal("from-image /app", WaitForOut(b));
        var ca = ConfigLoader.Load(_store.Manager.Store.ConfigPath(a));
        var cb = ConfigLoader.Load(_store.Manager.Store.ConfigPath(b));
        Assert.Equal("overlay", ca.Storage.Backend);
        Assert.Null(ca.Storage.Lower);
        Assert.Equal(3, ca.Storage.Layers.Count);
        var layersRoot = Path.Combine(_store.Manager.Store.Root, ".layers");
        Assert.All(ca.Storage.Layers, l => Assert.Equal(layersRoot, Path.GetDirectoryName(l)));
        // Named by the config's diff_ids, topmost first.
        var configBlob = string.Join("\n", Directory.EnumerateFiles(Path.Combine(layout, "blobs", "sha256")).Select(File.ReadAllText).Where(t => t.Contains("\"diff_ids\"")));
        foreach (var l in ca.Storage.Layers) Assert.Contains("sha256:" + Path.GetFileName(l), configBlob);
        for (int i = 0; i < 3; i++)
        {
            var (sa, sb) = (Lstat(ca.Storage.Layers[i]), Lstat(cb.Storage.Layers[i]));
            Assert.Equal((sa.st_dev, sa.st_ino), (sb.st_dev, sb.st_ino));
        }
        var busybox = Path.Combine(ca.Storage.Layers[2], "bin", "busybox");
        Assert.Equal(0u, (uint)Lstat(busybox).st_uid); // never shifted for the user-namespaced one
        // The whiteout of /gone is overlayfs's: a 0/0 character device in the second layer.
        var gone = Lstat(Path.Combine(ca.Storage.Layers[1], "gone"));
        Assert.Equal(0x2000u, (uint)gone.st_mode & 0xF000u);
        Assert.Equal(0ul, (ulong)gone.st_rdev);
        Assert.Equal("y", Encoding.UTF8.GetString(FsNative.ReadXattrs(Path.Combine(ca.Storage.Layers[0], "opq"))["trusted.overlay.opaque"]));
        foreach (var n in new[] { a, b })
            Assert.Equal("no-gone|upper|old", Exec(n, "test -e /gone && echo gone || echo no-gone; ls /opq; cat /app/old/f").Replace("\n", "|"));
        // A write in one is not seen in the other, nor in the shared layers.
        Exec(a, "echo mine > /app/old/f; rm /opq/upper; echo new > /etc/mine");
        Assert.Equal("old|upper|no-mine", Exec(b, "cat /app/old/f; ls /opq; test -e /etc/mine && echo mine || echo no-mine").Replace("\n", "|"));
        Assert.Equal("mine|new", Exec(a, "cat /app/old/f; ls /opq; cat /etc/mine").Replace("\n", "|"));
        Assert.Equal("old", File.ReadAllText(Path.Combine(ca.Storage.Layers[2], "app", "old", "f")).Trim());
        // Get-ContainerDiff compares the upper layer with the image's layers as the one tree they make.
        _ps.Run("Stop-Container $args[0] -Kill", a);
        var diff = _ps.Run("Get-ContainerDiff $args[0] | ForEach-Object { \"$($_.Kind) $($_.Path)\" }", a).Select(o => o.ToString()).ToList();
        Assert.Contains("Changed /app/old/f", diff);
        Assert.Contains("Deleted /opq/upper", diff);
        Assert.Contains("Added /etc/mine", diff);
        Assert.DoesNotContain(diff, d => d.EndsWith("/opq/lower") || d.EndsWith("/gone"));

        _ps.Run("Remove-Container $args[0] -Force", a);
        Assert.All(cb.Storage.Layers, l => Assert.True(Directory.Exists(l), $"{l} went while {b} uses it"));
        _ps.Run("Restart-Container $args[0]", b);
        Assert.Equal("old", Exec(b, "cat /app/old/f; echo b-was-here > /etc/b"));
        // A snapshot clone uses the same shared layers (and copies only the upper layer): they stay for it.
        var c = TestStore.NewName("ocio");
        _ps.Run("Stop-Container $args[0] -Kill; Copy-Container $args[0] $args[1] -Snapshot", b, c);
        Assert.Equal(cb.Storage.Layers, ConfigLoader.Load(_store.Manager.Store.ConfigPath(c)).Storage.Layers);
        _ps.Run("Remove-Container $args[0] -Force", b);
        Assert.All(cb.Storage.Layers, l => Assert.True(Directory.Exists(l), $"{l} went while {c} uses it"));
        _ps.Run("Start-Container $args[0]", c);
        Assert.Equal("old|b-was-here", Exec(c, "cat /app/old/f /etc/b").Replace("\n", "|"));
        _ps.Run("Remove-Container $args[0] -Force", c);
        Assert.Empty(Directory.EnumerateDirectories(layersRoot).Where(d => !Path.GetFileName(d).StartsWith('.')));
    }

    /// <summary>
    /// The image's User, resolved in the image's own /etc/passwd and /etc/group (an absolute link
    /// inside it resolved inside it, not on the host), is whom init runs as: on dir and on overlay.
    /// </summary>
    [Theory]
    [InlineData("dir", "app", "1234 2345")]
    [InlineData("overlay", "app:grp2", "1234 3456")]
    [InlineData("dir", "4321:grp2", "4321 3456")]
    public void ImageUser_InitRunsAsThatUser(string backend, string user, string expected)
    {
        var script = """
            set -e
            cd "$1"
            mkdir -p u/bin u/etc/accounts u/proc u/sys u/dev u/tmp
            cp /bin/busybox u/bin/busybox; ln -s busybox u/bin/sh; ln -s busybox u/bin/sleep; ln -s busybox u/bin/cat
            printf 'root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n' > u/etc/accounts/passwd
            ln -s /etc/accounts/passwd u/etc/passwd
            printf 'root:x:0:\ngrp:x:2345:app\ngrp2:x:3456:\n' > u/etc/group
            umoci init --layout uimg
            umoci new --image uimg:u
            umoci insert --image uimg:u u /
            umoci config --image uimg:u --config.user "$2" --config.entrypoint /bin/sleep --config.cmd 1000
            """;
        HostCommand.Run("bash", "-c", script, "bash", _work, user);
        var name = TestStore.NewName("ociu");
        _ps.Run("New-Container $args[0] -ImagePath $args[1] -Backend $args[2] | Start-Container", name, Path.Combine(_work, "uimg"), backend);
        var config = ConfigLoader.Load(_store.Manager.Store.ConfigPath(name));
        Assert.Equal(expected, $"{config.Init.User} {config.Init.Group}");
        var status = Exec(name, "cat /proc/1/status").Split('\n');
        string Ids(string key) => string.Join(' ', status.Single(l => l.StartsWith(key + ":\t")).Split('\t', StringSplitOptions.RemoveEmptyEntries).Skip(1).Distinct());
        Assert.Equal(expected, $"{Ids("Uid")} {Ids("Gid")}");
        _ps.Run("Remove-Container $args[0] -Force", name);
    }

    [Fact]
    public void ImageUser_NotInTheImage_IsRefused_NothingMade()
    {
        var script = """
            set -e
            cd "$1"
            mkdir -p n/bin n/etc n/proc n/tmp
            cp /bin/busybox n/bin/busybox; ln -s busybox n/bin/sleep
            echo 'root:x:0:0::/root:/bin/sh' > n/etc/passwd
            umoci init --layout nimg
            umoci new --image nimg:n
            umoci insert --image nimg:n n /
            umoci config --image nimg:n --config.user nobody-here --config.entrypoint /bin/sleep --config.cmd 1000
            """;
        HostCommand.Run("bash", "-c", script, "bash", _work);
        var r = _ps.Invoke("New-Container $args[0] -ImagePath $args[1]", TestStore.NewName("ociu"), Path.Combine(_work, "nimg"));
        Assert.True("OciUserNotFound,PSContainers.Cmdlets.NewContainerCommand" == r.SingleError.FullyQualifiedErrorId, r.SingleError.Exception.Message);
        Assert.True(r.SingleError.Exception.Message.Contains("nobody-here"), r.SingleError.Exception.Message);
        AssertNothingHalfMade();
    }

    /// <summary>A busybox image in <c>_work/dir</c> whose accounts are the given passwd and group text, User set; its layout path.</summary>
    string AccountsImage(string dir, string user, string passwd, string group, string extra = "")
    {
        var script = $$"""
            set -e
            cd "$1"
            mkdir -p {{dir}}/r/bin {{dir}}/r/etc {{dir}}/r/proc {{dir}}/r/sys {{dir}}/r/dev {{dir}}/r/tmp
            cp /bin/busybox {{dir}}/r/bin/busybox
            for l in sh sleep cat id hostname; do ln -s busybox {{dir}}/r/bin/$l; done
            printf '%s' "$3" > {{dir}}/r/etc/passwd
            printf '%s' "$4" > {{dir}}/r/etc/group
            {{extra}}
            umoci init --layout {{dir}}/img
            umoci new --image {{dir}}/img:t
            umoci insert --image {{dir}}/img:t {{dir}}/r /
            umoci config --image {{dir}}/img:t --config.user "$2" --config.entrypoint /bin/sleep --config.cmd 1000
            """;
        HostCommand.Run("bash", "-c", script, "bash", _work, user, passwd, group);
        return Path.Combine(_work, dir, "img");
    }

    /// <summary>The supplementary groups in a /proc/PID/status, sorted (the kernel keeps them sorted anyway).</summary>
    static string GroupsOf(string status) =>
        string.Join(' ', status.Split('\n').Single(l => l.StartsWith("Groups:")).Split(new[] { '\t', ' ' }, StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(uint.Parse).Order());

    /// <summary>
    /// Init of an image whose User is a name gets that user's supplementary groups from the image's
    /// /etc/group (an OCI runtime's additionalGids), resolved again at each start from the
    /// container's own files; an exec -User of that name gets the same. A gid the user namespace does
    /// not map (70000 of a 65536-id map) is left out there, as podman leaves it out; a privileged
    /// container keeps it.
    /// </summary>
    [Theory]
    [InlineData("dir", true)]
    [InlineData("dir", false)]
    [InlineData("overlay", false)]
    [InlineData("overlay", true)]
    public void ImageUser_InitAndExec_GetTheUsersSupplementaryGroups(string backend, bool privileged)
    {
        var layout = AccountsImage("sg", "app",
            "root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\nother:x:1500:1500::/:/bin/sh\n",
            "root:x:0:\napp:x:2345:\nwheel:x:10:root,app\naudio:x:29:other,app\nvideo:x:44:other\nbig:x:70000:app\n");
        var name = TestStore.NewName("ocisg");
        _ps.Run("New-Container $args[0] -ImagePath $args[1] -Backend $args[2] -Privileged:$args[3] -Unprivileged:(-not $args[3]) | Start-Container", name, layout, backend, privileged);
        var config = ConfigLoader.Load(_store.Manager.Store.ConfigPath(name));
        Assert.Equal(privileged, config.IdMap is null);
        var expected = privileged ? "10 29 2345 70000" : "10 29 2345";
        var init = Exec(name, "cat /proc/1/status");
        Assert.Contains("Uid:\t1234\t", init);
        Assert.Equal(expected, GroupsOf(init));
        Assert.Equal(expected, GroupsOf(string.Join("\n", _ps.Run("(Invoke-ContainerCommand $args[0] -User app -Command cat, /proc/self/status).Output", name).Select(o => o.ToString()))));
        // Root's exec is not the image user's: its own groups (wheel), not app's.
        Assert.Equal("0 10", GroupsOf(string.Join("\n", _ps.Run("(Invoke-ContainerCommand $args[0] -User root -Command cat, /proc/self/status).Output", name).Select(o => o.ToString()))));
        // Read at each start from the container's own /etc/group: a group added inside counts from the next start.
        Exec(name, "echo 'games:x:60:app' >> /etc/group");
        _ps.Run("Restart-Container $args[0]", name);
        Assert.Equal(privileged ? "10 29 60 2345 70000" : "10 29 60 2345", GroupsOf(Exec(name, "cat /proc/1/status")));
        _ps.Run("Remove-Container $args[0] -Force", name);
    }

    /// <summary>
    /// A non-root user's container: its gid map is written by newgidmap from the user's /etc/subgid
    /// range, which leaves setgroups allowed, so init still gets the image user's groups.
    /// </summary>
    [Fact]
    public void NonRootUser_ImageUser_InitGetsTheUsersSupplementaryGroups()
    {
        var layout = AccountsImage("nr", "app", "root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n", "app:x:2345:\nwheel:x:10:app\n");
        using var user = new TestUser();
        var image = Path.Combine(user.Home, "img");
        HostCommand.Run("cp", "-a", layout, image);
        HostCommand.Run("chown", "-R", $"{user.Uid}", image);
        var name = TestStore.NewName("ocinr");
        var run = user.Run($$"""
            New-Container {{name}} -ImagePath {{image}} | Start-Container
            "groups=" + ((Invoke-ContainerCommand {{name}} -Command cat,/proc/1/status).Output | Where-Object { $_ -like 'Groups:*' })
            Remove-Container {{name}} -Force
            """);
        Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
        var line = run.Lines.Single(l => l.StartsWith("groups=", StringComparison.Ordinal));
        Assert.Equal("10 2345", GroupsOf(line["groups=".Length..]));
    }

    /// <summary>
    /// A hostile /etc/group does not reach the host or stop the start: an absolute link to a host file
    /// is resolved inside the container (where nothing is), a FIFO is not waited on, and one of 6 MiB
    /// of malformed lines is read up to its cap with only well-formed entries naming the user used.
    /// </summary>
    [Theory]
    [InlineData("link")]
    [InlineData("fifo")]
    [InlineData("junk")]
    public void ImageUser_HostileGroupFile_NeitherReachesTheHostNorHangs(string kind)
    {
        var hostFile = Path.Combine(_store.Root, "hostgroup");
        File.WriteAllText(hostFile, "evil:x:4242:app\n");
        var extra = kind switch
        {
            "link" => $"rm sgh{kind}/r/etc/group; ln -s {hostFile} sgh{kind}/r/etc/group",
            "fifo" => $"rm sgh{kind}/r/etc/group; mkfifo sgh{kind}/r/etc/group",
            _ => $$"""
                { printf 'nocolons\n::::::\nbad:x:abc:app\nneg:x:-5:app\nmax:x:4294967295:app\nok:x:50:,app,\n:x:51:app\n'
                  printf 'wide:x:52:%s\n' "$(head -c 200000 /dev/zero | tr '\0' ',')app"
                  head -c 6000000 /dev/zero | tr '\0' ':'; printf '\nlate:x:53:app\n'; } > sgh{{kind}}/r/etc/group
                """,
        };
        var layout = AccountsImage("sgh" + kind, "app", "root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n", "app:x:2345:\n", extra);
        var name = TestStore.NewName("ocish");
        var sw = Stopwatch.StartNew();
        _ps.Run("New-Container $args[0] -ImagePath $args[1] -Privileged | Start-Container", name, layout);
        var groups = GroupsOf(Exec(name, "cat /proc/1/status"));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"create and start took {sw.Elapsed}");
        // The image's own primary group resolved by name at create; nothing of the host file.
        Assert.Equal(kind == "junk" ? "50 51 52 2345" : "2345", groups);
        Assert.Equal("evil:x:4242:app\n", File.ReadAllText(hostFile));
        // The hostile file is really there as made.
        Assert.Equal(kind switch { "link" => hostFile, "fifo" => "fifo", _ => "big" },
            Exec(name, "if [ -L /etc/group ]; then readlink /etc/group; elif [ -p /etc/group ]; then echo fifo; elif [ $(wc -c < /etc/group) -gt 6000000 ]; then echo big; fi"));
        _ps.Run("Remove-Container $args[0] -Force", name);
    }

    /// <summary>
    /// Rename-Container of one of two containers of the same image on overlay, where the image's
    /// /etc/hostname (in a shared layer) names it: the new name goes into its own upper layer only;
    /// the other container and the shared layer still have the image's file.
    /// </summary>
    [Fact]
    public void Overlay_Rename_HostnameGoesIntoItsUpperLayer_SharedLayerUnchanged()
    {
        var (a, b, renamed) = (TestStore.NewName("ocirn"), TestStore.NewName("ocirn"), TestStore.NewName("ocirn"));
        var layout = AccountsImage("rn", "0", "root:x:0:0::/root:/bin/sh\n", "root:x:0:\n", $"echo {a} > rn/r/etc/hostname");
        _ps.Run("New-Container $args[0] -ImagePath $args[1] -Backend overlay", a, layout);
        _ps.Run("New-Container $args[0] -ImagePath $args[1] -Backend overlay -Privileged", b, layout);
        var layers = ConfigLoader.Load(_store.Manager.Store.ConfigPath(a)).Storage.Layers;
        Assert.Equal(layers, ConfigLoader.Load(_store.Manager.Store.ConfigPath(b)).Storage.Layers);
        var shared = Path.Combine(layers[0], "etc", "hostname");
        var before = Lstat(shared);
        _ps.Run("Rename-Container $args[0] $args[1]", a, renamed);
        var upper = Path.Combine(_store.Manager.Store.ContainerDirectory(renamed), "overlay", "upper", "etc", "hostname");
        Assert.Equal(renamed + "\n", File.ReadAllText(upper));
        Assert.Equal(a + "\n", File.ReadAllText(shared));
        var after = Lstat(shared);
        Assert.Equal((before.st_ino, before.st_mtim.tv_sec, before.st_mtim.tv_nsec, before.st_size), (after.st_ino, after.st_mtim.tv_sec, after.st_mtim.tv_nsec, after.st_size));
        _ps.Run("Start-Container $args[0]; Start-Container $args[1]", renamed, b);
        Assert.Equal($"{renamed}|{renamed}", Exec(renamed, "cat /etc/hostname; hostname").Replace("\n", "|"));
        Assert.Equal($"{a}|{b}", Exec(b, "cat /etc/hostname; hostname").Replace("\n", "|"));
        // Renamed back while stopped: the upper layer's file names it again, the image's stays.
        _ps.Run("Stop-Container $args[0] -Kill; Rename-Container $args[0] $args[1]", renamed, a);
        Assert.Equal(a + "\n", File.ReadAllText(Path.Combine(_store.Manager.Store.ContainerDirectory(a), "overlay", "upper", "etc", "hostname")));
        Assert.Equal(a + "\n", File.ReadAllText(shared));
        _ps.Run("Remove-Container $args[0],$args[1] -Force", a, b);
    }

    [Fact]
    public void Btrfs_ImageUnpackedIntoTheContainersSubvolume()
    {
        using var loop = new LoopFilesystem("btrfs", 512L << 20);
        var (layout, _) = BuildImage();
        using var store = new TestStore(Path.Combine(loop.MountPoint, "s"));
        using var ps = store.OpenSession();
        var name = TestStore.NewName("ocib");
        ps.Run("New-Container $args[0] -ImagePath $args[1] -Backend btrfs -Privileged | Start-Container", name, layout);
        var rootfs = store.Manager.Store.RootfsPath(name);
        Assert.True(FsNative.IsBtrfsSubvolume(rootfs));
        Assert.True(File.Exists(Path.Combine(rootfs, "opq", "upper")));
        Assert.False(File.Exists(Path.Combine(rootfs, "gone")));
        var sw = Stopwatch.StartNew();
        while (!File.Exists(Path.Combine(rootfs, "out")) && sw.Elapsed < TimeSpan.FromSeconds(20)) Thread.Sleep(100);
        Assert.Equal("from-image /app", File.ReadAllText(Path.Combine(rootfs, "out")).Trim());
        store.Manager.Remove(name, force: true);
    }

    [Fact]
    public void DigestMismatch_IsRefused_NothingMade()
    {
        var (layout, _) = BuildImage();
        // Flip one byte of the biggest blob (the busybox layer): same size, other digest.
        var blob = Directory.EnumerateFiles(Path.Combine(layout, "blobs", "sha256")).OrderByDescending(f => new FileInfo(f).Length).First();
        using (var f = new FileStream(blob, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = f.Length / 2;
            var b = f.ReadByte();
            f.Position = f.Length / 2;
            f.WriteByte((byte)(b ^ 0xFF));
        }
        var r = _ps.Invoke("New-Container $args[0] -ImagePath $args[1]", TestStore.NewName("ocim"), layout);
        Assert.Equal("OciDigestMismatch,PSContainers.Cmdlets.NewContainerCommand", r.SingleError.FullyQualifiedErrorId);
        Assert.Contains(Path.GetFileName(blob), r.SingleError.Exception.Message);
        AssertNothingHalfMade();
    }

    // ---- hostile layers, in a layout written by hand ----------------------------------------------

    static byte[] Tar(params (string Path, TarEntryType Type, string Content)[] entries)
    {
        var ms = new MemoryStream();
        var w = new PaxTarWriter(ms);
        foreach (var (path, type, content) in entries)
        {
            var data = Encoding.UTF8.GetBytes(content);
            var e = new TarEntry { Path = path, Type = type, Mode = type == TarEntryType.Directory ? 0b111_101_101 : 0b110_100_100 };
            if (type == TarEntryType.SymbolicLink) e.LinkPath = content;
            if (type == TarEntryType.Regular) e.Size = data.Length;
            w.WriteEntry(e, type == TarEntryType.Regular ? new MemoryStream(data) : null);
        }
        w.Finish();
        return ms.ToArray();
    }

    static string Digest(byte[] b) => "sha256:" + Convert.ToHexString(SHA256.HashData(b)).ToLowerInvariant();

    string Blob(string layout, byte[] bytes)
    {
        var d = Digest(bytes);
        File.WriteAllBytes(Path.Combine(layout, "blobs", "sha256", d[7..]), bytes);
        return $"{{\"mediaType\":\"MT\",\"digest\":\"{d}\",\"size\":{bytes.Length}}}";
    }

    string HandLayout(params byte[][] layers)
    {
        var layout = Path.Combine(_work, "hand-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(layout, "blobs", "sha256"));
        File.WriteAllText(Path.Combine(layout, "oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
        var diffIds = string.Join(",", layers.Select(l => $"\"{Digest(l)}\""));
        var config = Blob(layout, Encoding.UTF8.GetBytes("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[" + diffIds + "]}}"))
            .Replace("MT", "application/vnd.oci.image.config.v1+json");
        var layerDescs = layers.Select(l => Blob(layout, l).Replace("MT", "application/vnd.oci.image.layer.v1.tar"));
        var manifest = Encoding.UTF8.GetBytes($"{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{config},\"layers\":[{string.Join(",", layerDescs)}]}}");
        var m = Blob(layout, manifest).Replace("MT", "application/vnd.oci.image.manifest.v1+json");
        File.WriteAllText(Path.Combine(layout, "index.json"), $"{{\"schemaVersion\":2,\"manifests\":[{m}]}}");
        return layout;
    }

    [Fact]
    public void HostileLayers_AreRefused_NothingWrittenOutside_NothingHalfMade()
    {
        var outside = Path.Combine(_store.Root, "outside");
        Directory.CreateDirectory(outside);
        File.WriteAllText(Path.Combine(outside, "victim"), "host");
        var ok = Tar(("bin", TarEntryType.Directory, ""), ("bin/x", TarEntryType.Regular, "x"));
        var cases = new (string What, byte[][] Layers)[]
        {
            ("dot-dot entry", new[] { ok, Tar(("../escape", TarEntryType.Regular, "pwned")) }),
            ("absolute entry", new[] { Tar(($"{outside}/abs", TarEntryType.Regular, "pwned")) }),
            ("file through an absolute symlink", new[] { Tar(("link", TarEntryType.SymbolicLink, outside)), Tar(("link/pwned", TarEntryType.Regular, "pwned")) }),
            ("whiteout pointing out", new[] { ok, Tar(("../../.wh.etc", TarEntryType.Regular, "")) }),
            ("whiteout through a symlink", new[] { Tar(("d", TarEntryType.SymbolicLink, outside)), Tar(("d/.wh.victim", TarEntryType.Regular, "")) }),
            ("opaque marker through a symlink", new[] { Tar(("d", TarEntryType.SymbolicLink, outside)), Tar(("d/.wh..wh..opq", TarEntryType.Regular, "")) }),
            ("whiteout of '..'", new[] { ok, Tar(("bin/.wh...", TarEntryType.Regular, "")) }),
            ("hard link out", new[] { HardLinkTar("hl", "../outside/victim") }),
        };
        foreach (var (what, layers) in cases)
        {
            var layout = HandLayout(layers);
            var r = _ps.Invoke("New-Container $args[0] -ImagePath $args[1]", TestStore.NewName("ocih"), layout);
            var error = Assert.Single(r.Errors);
            Assert.True(error.FullyQualifiedErrorId == "OciLayerUnsafe,PSContainers.Cmdlets.NewContainerCommand", $"{what}: {error.FullyQualifiedErrorId}: {error.Exception.Message}");
            Assert.Contains("Layer ", error.Exception.Message);
            Assert.Equal(new[] { "victim" }, Directory.EnumerateFileSystemEntries(outside).Select(Path.GetFileName));
            Assert.Equal("host", File.ReadAllText(Path.Combine(outside, "victim")));
            Assert.False(File.Exists(Path.Combine(_store.Root, "escape")));
            AssertNothingHalfMade();
        }
    }

    [Fact]
    public void Overlay_HostileSecondLayer_IsRefused_TheFirstLayersExtractionIsNotKept()
    {
        var ok = Tar(("bin", TarEntryType.Directory, ""), ("bin/x", TarEntryType.Regular, "x"));
        var layout = HandLayout(ok, Tar(("../escape", TarEntryType.Regular, "pwned")));
        var r = _ps.Invoke("New-Container $args[0] -ImagePath $args[1] -Backend overlay -Privileged", TestStore.NewName("ocih"), layout);
        Assert.True(r.SingleError.FullyQualifiedErrorId == "OciLayerUnsafe,PSContainers.Cmdlets.NewContainerCommand", r.SingleError.Exception.Message);
        Assert.Contains("Layer 2", r.SingleError.Exception.Message);
        var layersRoot = Path.Combine(_store.Manager.Store.Root, ".layers");
        Assert.True(Directory.Exists(layersRoot));
        Assert.Empty(Directory.EnumerateFileSystemEntries(layersRoot).Where(d => !Path.GetFileName(d).StartsWith('.')));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(layersRoot, ".tmp")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(layersRoot, ".pins")));
        Assert.False(File.Exists(Path.Combine(_store.Root, "escape")));
        AssertNothingHalfMade();
    }

    [Fact]
    public void Overlay_MoreLayersThanOneOverlayTakes_IsRefusedBeforeExtracting_DirTakesThem()
    {
        var layers = Enumerable.Range(0, 65).Select(i => Tar(($"f{i}", TarEntryType.Regular, i.ToString()))).ToArray();
        var layout = HandLayout(layers);
        var r = _ps.Invoke("New-Container $args[0] -ImagePath $args[1] -Backend overlay -Command /f0", TestStore.NewName("ocil"), layout);
        Assert.True(r.SingleError.FullyQualifiedErrorId == "OverlayTooManyLayers,PSContainers.Cmdlets.NewContainerCommand", r.SingleError.Exception.Message);
        Assert.Contains("65 layers", r.SingleError.Exception.Message);
        var layersRoot = Path.Combine(_store.Manager.Store.Root, ".layers");
        Assert.True(!Directory.Exists(layersRoot) || !Directory.EnumerateDirectories(layersRoot).Any(d => !Path.GetFileName(d).StartsWith('.')));
        AssertNothingHalfMade();
        // dir applies them all into one tree.
        var name = TestStore.NewName("ocil");
        _ps.Run("New-Container $args[0] -ImagePath $args[1] -Backend dir -Command /f0", name, layout);
        Assert.Equal("64", File.ReadAllText(Path.Combine(_store.Manager.Store.RootfsPath(name), "f64")));
    }

    static byte[] HardLinkTar(string path, string target)
    {
        var ms = new MemoryStream();
        var w = new PaxTarWriter(ms);
        w.WriteEntry(new TarEntry { Path = path, Type = TarEntryType.HardLink, LinkPath = target, Mode = 0b110_100_100 }, null);
        w.Finish();
        return ms.ToArray();
    }
}
