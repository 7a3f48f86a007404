using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// Copies and snapshots of a real non-root user's container, whose rootfs
/// belongs to the user's subordinate ids (shifted): files the user itself can neither read (0600 of
/// the container's root) nor chown. They are copied as root of a user namespace mapping those ids
/// (psc-helper userns-tree copy).
/// </summary>
[Collection("Containers")]
public sealed class NonRootStorageTests
{
    private static string Value(ScriptHost.Result r, string key) =>
        r.Lines.Where(l => l.StartsWith(key + "=", StringComparison.Ordinal)).Select(l => l[(key.Length + 1)..]).ToArray() is [var v]
            ? v : throw new Xunit.Sdk.XunitException($"no single {key}= line in:\n{r.StdOut}\n{r.StdErr}");

    // What the container sees of its two test files: owner, group, mode and content.
    const string Probe = "stat -c %u:%g:%a /home/alice/notes /root/secret; cat /root/secret";

    [Fact]
    public void NonRootUser_CopiesSnapshotsAndRestores_AShiftedContainer_WithOwnersModesAndCapabilities()
    {
        using var user = new TestUser();
        var name = TestStore.NewName("nrc");
        var run = user.Run($$"""
            $c = New-Container {{name}} -WarningAction SilentlyContinue
            "rootfs=$($c.RootfsPath)"
            Start-Container {{name}} -WarningAction SilentlyContinue
            # A file of container uid 1000, a 0600 file of its root (unreadable to the user on the host), a hard link.
            Invoke-ContainerCommand {{name}} -Command sh,-c,'mkdir -p /home/alice && echo a > /home/alice/notes && chown -R 1000:1000 /home/alice && echo s3cret > /root/secret && chmod 600 /root/secret && ln /root/secret /root/secret.link' | Out-Null
            Stop-Container {{name}} -Kill
            """);
        Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
        // A file capability of the container's root (v3, its root's host id): what setcap inside it writes.
        var rootfs = Value(run, "rootfs");
        HostCommand.Run("setcap", "-n", user.UidRange.Start.ToString(), "cap_net_raw+ep", Path.Combine(rootfs, "home/alice/notes"));
        run = user.Run($$"""
            Copy-Container {{name}} {{name}}-copy | Out-Null
            Copy-Container {{name}} {{name}}-clone -Snapshot -WarningAction SilentlyContinue | Out-Null
            $snap = New-ContainerSnapshot {{name}} -Comment before
            "snapshot=$($snap.Name)"
            foreach ($n in '{{name}}-copy', '{{name}}-clone') {
                Start-Container $n -WarningAction SilentlyContinue
                "probe-$n=$((Invoke-ContainerCommand $n -Command sh,-c,'{{Probe}}').Output -join ' ')"
                "links-$n=$((Invoke-ContainerCommand $n -Command stat,-c,%h,/root/secret).Output)"
                "hostname-$n=$((Invoke-ContainerCommand $n -Command cat,/etc/hostname).Output)"
                Stop-Container $n -Kill
            }
            "copyrootfs=$((Get-Container {{name}}-copy).RootfsPath)"
            "clonerootfs=$((Get-Container {{name}}-clone).RootfsPath)"
            """, timeout: TimeSpan.FromMinutes(5));
        Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
        var copied = run;
        // The capability stays the container root's in both copies (still v3 with the same root id).
        foreach (var key in new[] { "copyrootfs", "clonerootfs" })
            Assert.Contains($"cap_net_raw=ep [rootid={user.UidRange.Start}]", HostCommand.Run("getcap", "-n", Path.Combine(Value(run, key), "home/alice/notes")));
        run = user.Run($$"""
            # Change the container, then put the snapshot back.
            Start-Container {{name}} -WarningAction SilentlyContinue
            Invoke-ContainerCommand {{name}} -Command sh,-c,'rm /home/alice/notes; echo changed > /root/secret; touch /root/new' | Out-Null
            Stop-Container {{name}} -Kill
            Restore-ContainerSnapshot {{name}} snap0
            Restore-ContainerSnapshot {{name}} snap0 -NewName {{name}}-restored | Out-Null
            foreach ($n in '{{name}}', '{{name}}-restored') {
                Start-Container $n -WarningAction SilentlyContinue
                "probe-$n=$((Invoke-ContainerCommand $n -Command sh,-c,'{{Probe}}; ls /root/new 2>&1 | wc -l; ls /root').Output -join ' ')"
                "hostname-$n=$((Invoke-ContainerCommand $n -Command cat,/etc/hostname).Output)"
                Stop-Container $n -Kill
            }
            Remove-ContainerSnapshot {{name}} snap0
            "snapshots=$(@(Get-ContainerSnapshot {{name}}).Count)"
            Get-Container | Remove-Container -Force
            "left=$(@(Get-Container).Count)"
            """, timeout: TimeSpan.FromMinutes(5));
        try
        {
            Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
            const string expected = "1000:1000:644 0:0:600 s3cret";
            Assert.Equal(expected, Value(copied, $"probe-{name}-copy"));
            Assert.Equal(expected, Value(copied, $"probe-{name}-clone"));
            Assert.Equal("2", Value(copied, $"links-{name}-copy"));
            // The copies' etc/hostname has their own name (written in the namespace: the user cannot).
            Assert.Equal($"{name}-copy", Value(copied, $"hostname-{name}-copy"));
            Assert.Equal($"{name}-clone", Value(copied, $"hostname-{name}-clone"));
            var copyRootfs = Value(copied, "copyrootfs");
            Assert.Equal("snap0", Value(copied, "snapshot"));
            // Restored in place and as a new container: the snapshot's files, and /root/new is gone (ls prints one error line).
            Assert.StartsWith(expected + " 1 secret secret.link", Value(run, $"probe-{name}"));
            Assert.StartsWith(expected + " 1 secret secret.link", Value(run, $"probe-{name}-restored"));
            Assert.Equal(name, Value(run, $"hostname-{name}"));
            Assert.Equal($"{name}-restored", Value(run, $"hostname-{name}-restored"));
            Assert.Equal("0", Value(run, "snapshots"));
            Assert.Equal("0", Value(run, "left"));
            Assert.False(Directory.Exists(copyRootfs));
            Assert.Empty(user.Processes());
        }
        finally
        {
            user.Run("Get-Container | Remove-Container -Force");
        }
    }

    [Fact]
    public void NonRootUser_DiffsAShiftedContainer_ItCannotReadItself()
    {
        using var user = new TestUser();
        var name = TestStore.NewName("nrd");
        try
        {
            // /root is 0700 and /root/secret 0600 of the container's root: the user cannot list or
            // stat them on the host; the diff reads them as root of a namespace mapping their owners.
            var run = user.Run($$"""
                New-Container {{name}} -WarningAction SilentlyContinue | Out-Null
                Start-Container {{name}} -WarningAction SilentlyContinue
                Invoke-ContainerCommand {{name}} -Command sh,-c,'chmod 700 /root && echo s3cret > /root/secret && echo same > /root/keep && chmod 600 /root/secret /root/keep && echo x > /etc/removeme && mkdir -p /home/alice && chown 1000:1000 /home/alice' | Out-Null
                Stop-Container {{name}} -Kill
                New-ContainerSnapshot {{name}} | Out-Null
                Start-Container {{name}} -WarningAction SilentlyContinue
                Invoke-ContainerCommand {{name}} -Command sh,-c,'echo added > /root/added && echo changed! > /root/secret && rm /etc/removeme && chown 1001 /home/alice' | Out-Null
                Stop-Container {{name}} -Kill
                Get-ContainerDiff {{name}} | ForEach-Object { "change=$($_.Kind) $($_.Path) $($_.Type)" }
                "done"
                """, timeout: TimeSpan.FromMinutes(5));
            Assert.True(run.ExitCode == 0 && run.Lines.Contains("done"), run.StdErr + run.StdOut);
            var changes = run.Lines.Where(l => l.StartsWith("change=", StringComparison.Ordinal)).Select(l => l["change=".Length..]).ToList();
            Assert.Contains("Added /root/added File", changes);
            Assert.Contains("Changed /root/secret File", changes);
            Assert.Contains("Deleted /etc/removeme File", changes);
            // An owner change as the container sees it (uid 1000 -> 1001).
            Assert.Contains("Changed /home/alice Directory", changes);
            // Unchanged entries, unreadable to the user as well, are not reported.
            Assert.DoesNotContain(changes, c => c.Contains("/root/keep") || c == "Changed /root Directory" || c.Contains("/etc/passwd"));
        }
        finally
        {
            user.Run("Get-Container | Remove-Container -Force");
        }
    }

    [Fact]
    public void NonRootUser_ExportsAShiftedContainer_WithTheContainersIds_AndBothUserAndRootImportIt()
    {
        using var user = new TestUser();
        var name = TestStore.NewName("nrx");
        var archive = Path.Combine(user.Home, name + ".tar");
        try
        {
            var run = user.Run($$"""
                New-Container {{name}} -WarningAction SilentlyContinue | Out-Null
                Start-Container {{name}} -WarningAction SilentlyContinue
                Invoke-ContainerCommand {{name}} -Command sh,-c,'mkdir -p /home/alice && echo a > /home/alice/notes && chown -R 1000:1000 /home/alice && chmod 700 /root && echo s3cret > /root/secret && chmod 600 /root/secret && ln /root/secret /root/secret.link' | Out-Null
                Stop-Container {{name}} -Kill
                Export-Container {{name}} -Path '{{archive}}'
                Import-Container '{{archive}}' -Name {{name}}-imp -WarningAction SilentlyContinue | Out-Null
                Start-Container {{name}}-imp -WarningAction SilentlyContinue
                "probe=$((Invoke-ContainerCommand {{name}}-imp -Command sh,-c,'{{Probe}}; stat -c %h /root/secret').Output -join ' ')"
                Stop-Container {{name}}-imp -Kill
                "done"
                """, timeout: TimeSpan.FromMinutes(5));
            Assert.True(run.ExitCode == 0 && run.Lines.Contains("done"), run.StdErr + run.StdOut);
            Assert.Equal("1000:1000:644 0:0:600 s3cret 2", Value(run, "probe"));
            // The tar headers hold the ids and modes as the container sees them.
            var listing = HostCommand.Run("tar", "--numeric-owner", "-tvf", archive).Split('\n');
            Assert.Contains(listing, l => l.StartsWith("-rw-r--r-- 1000/1000 ") && l.EndsWith(" rootfs/home/alice/notes"));
            Assert.Contains(listing, l => l.StartsWith("-rw------- 0/0 ") && l.EndsWith(" rootfs/root/secret"));
            Assert.Contains(listing, l => l.StartsWith("drwx------ 0/0 ") && l.EndsWith(" rootfs/root/"));
            Assert.Contains(listing, l => l.Contains(" rootfs/root/secret.link link to rootfs/root/secret"));
            Assert.Contains(listing, l => l.Contains(" 0/0 ") && l.EndsWith(" rootfs/etc/passwd"));
            Assert.Equal("s3cret", HostCommand.Run("tar", "-xOf", archive, "rootfs/root/secret"));

            // Root imports the user's archive (readable to root though 0600) the same way.
            using var store = new TestStore();
            using var root = store.OpenSession();
            var imported = TestStore.NewName("nrxr");
            try
            {
                root.Run("Import-Container $args[0] -Name $args[1] -WarningAction SilentlyContinue | Out-Null; Start-Container $args[1] -WarningAction SilentlyContinue", archive, imported);
                var probe = string.Join(" ", root.Run("(Invoke-ContainerCommand $args[0] -Command sh,-c,$args[1]).Output", imported, Probe).Select(o => o.ToString()));
                Assert.Equal("1000:1000:644 0:0:600 s3cret", probe);
            }
            finally
            {
                root.Run("Remove-Container $args[0] -Force -ErrorAction SilentlyContinue", imported);
            }
        }
        finally
        {
            user.Run("Get-Container | Remove-Container -Force");
        }
    }
}
