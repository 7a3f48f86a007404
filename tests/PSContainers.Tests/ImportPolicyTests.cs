using System.Text;
using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Migration;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Tests;

/// <summary>
/// Issue 11, item 4: an archive's config.yaml is untrusted. For every class of setting that widens
/// the container's access to the host, the escape is made for real with -KeepHostAccess (so the test
/// would see it) and shown gone without it, with a warning naming the key. Also: the same policy on
/// Move-Container's destination, and issue 13's name taken from the archive.
/// </summary>
[Collection("Containers")]
public sealed class ImportPolicyTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly List<string> _loops = new();
    private string? _base;

    public void Dispose()
    {
        foreach (var n in _store.Manager.Names().ToList()) try { _store.Manager.Remove(n, force: true); } catch (Exception) { }
        foreach (var loop in _loops) try { HostCommand.Run("losetup", "-d", loop); } catch (Exception) { }
        _store.Dispose();
    }

    /// <summary>An exported busybox container (made once per test).</summary>
    private string BaseArchive()
    {
        if (_base is not null) return _base;
        var name = TestStore.NewName("base");
        _store.Manager.Create(name, new CreateOptions { Template = "busybox" });
        _base = Path.Combine(_store.Root, "base.tar");
        ContainerArchive.Export(_store.Manager, name, _base, force: false);
        _store.Manager.Remove(name, force: true);
        return _base;
    }

    /// <summary>The base archive with config.yaml's empty mounts/network/limits replaced by <paramref name="yaml"/>.</summary>
    private string ArchiveWith(string yaml)
    {
        var path = Path.Combine(_store.Root, $"evil-{Guid.NewGuid():N}.tar");
        using var input = File.OpenRead(BaseArchive());
        using var output = File.Create(path);
        var reader = new PaxTarReader(input);
        var writer = new PaxTarWriter(output);
        while (reader.Next() is var (entry, data))
        {
            if (entry.Path == "config.yaml")
            {
                var text = new StreamReader(data).ReadToEnd();
                text = string.Join("\n", text.Split('\n').Where(l => l is not ("mounts: []" or "network: []" or "limits: {}"))) + "\n" + yaml + "\n";
                var bytes = Encoding.UTF8.GetBytes(text);
                entry.Size = bytes.Length;
                writer.WriteEntry(entry, new MemoryStream(bytes));
            }
            else writer.WriteEntry(entry, data);
        }
        writer.Finish();
        return path;
    }

    private (string Secret, int Major, int Minor) SecretLoopDevice()
    {
        var secret = "PSC-LOOP-SECRET-" + Guid.NewGuid().ToString("N");
        var image = Path.Combine(_store.Root, $"secret-{Guid.NewGuid():N}.img");
        using (var f = new FileStream(image, FileMode.CreateNew))
        {
            f.Write(Encoding.ASCII.GetBytes(secret));
            f.SetLength(1 << 20);
        }
        var loop = HostCommand.Run("losetup", "--find", "--show", image);
        _loops.Add(loop);
        var numbers = HostCommand.Run("stat", "-c", "%t %T", loop).Split(' ').Select(h => Convert.ToInt32(h, 16)).ToArray();
        return (secret, numbers[0], numbers[1]);
    }

    public static TheoryData<string> EscapeKinds => new()
    {
        "mounts", "capabilities", "seccomp-unconfined", "seccomp-profile-path", "proc-rw", "sys-rw", "masked-paths",
        "devices-unconfined", "device-rules", "nic-host-network",
    };

    /// <summary>
    /// Each kind: the config YAML, the command run in the container, and what its output is when
    /// the escape works. Kept (-KeepHostAccess) the escape must work; imported plainly it must not,
    /// and a warning names the key. Both imported privileged (-Privileged): the escapes are a
    /// privileged container's (a user-namespaced one's root could not use most of them anyway).
    /// </summary>
    [Theory]
    [MemberData(nameof(EscapeKinds))]
    public void WideningSetting_WorksOnlyWithKeepHostAccess_AndItsRemovalIsAWarningNamingTheKey(string kind)
    {
        var hostDir = Path.Combine(_store.Root, "host-" + kind);
        Directory.CreateDirectory(hostDir);
        (string Secret, int Major, int Minor) loop = kind is "devices-unconfined" or "device-rules" ? SecretLoopDevice() : default;
        var hostIfaces = Directory.GetDirectories("/sys/class/net").Select(Path.GetFileName).Where(n => n != "lo").ToList();
        var (yaml, key, script) = kind switch
        {
            "mounts" => ($"mounts:\n  - source: {hostDir}\n    target: /hostdir", "mounts[0]", "echo pwned > /hostdir/pwned && echo wrote"),
            "capabilities" => ("security:\n  capabilities:\n    drop: []", "security.capabilities.drop", "grep CapEff /proc/1/status"),
            "seccomp-unconfined" => ("security:\n  seccomp:\n    profile: unconfined", "security.seccomp.profile", "grep Seccomp: /proc/1/status"),
            "seccomp-profile-path" => ($"security:\n  seccomp:\n    profile: {hostDir}/no-such-profile.yaml", "security.seccomp.profile", "true"),
            "proc-rw" => ("security:\n  proc: rw", "security.proc", "cat /proc/sys/kernel/domainname > /tmp/d && cat /tmp/d > /proc/sys/kernel/domainname && echo wrote"),
            "sys-rw" => ("security:\n  sys: rw", "security.sys", "awk '$5==\"/sys\" {print $6}' /proc/self/mountinfo"),
            "masked-paths" => ("security:\n  maskedPaths: []", "security.maskedPaths", "head -c 20 /proc/timer_list"),
            "devices-unconfined" => ("security:\n  devices: unconfined", "security.devices", $"mknod /tmp/l b {loop.Major} {loop.Minor} && head -c {loop.Secret.Length} /tmp/l"),
            "device-rules" => ($"limits:\n  devices: [\"allow b {loop.Major}:{loop.Minor} r\"]", "limits.devices[0]", $"mknod /tmp/l b {loop.Major} {loop.Minor} && head -c {loop.Secret.Length} /tmp/l"),
            "nic-host-network" => ("network:\n  - type: none", "network[0]", "cat /proc/net/dev"),
            _ => throw new ArgumentException(kind),
        };
        bool Escaped(string output) => kind switch
        {
            "mounts" => output.Contains("wrote") && File.Exists(Path.Combine(hostDir, "pwned")),
            "capabilities" => (Convert.ToUInt64(output.Split('\t', ':').Last().Trim(), 16) & (1UL << 16)) != 0, // cap_sys_module
            "seccomp-unconfined" => output.Split('\t').Last().Trim() == "0",
            "proc-rw" => output.Contains("wrote"),
            "sys-rw" => output.StartsWith("rw", StringComparison.Ordinal),
            "masked-paths" => output.Contains("Timer List"),
            "devices-unconfined" or "device-rules" => output.Contains(loop.Secret),
            "nic-host-network" => hostIfaces.Any(i => output.Contains(i + ":")),
            _ => throw new ArgumentException(kind),
        };
        var archive = ArchiveWith(yaml);

        // Kept: the setting is there, and the escape works.
        var kept = ContainerArchive.Import(_store.Manager, archive, new ImportOptions { Name = TestStore.NewName("keep"), KeepHostAccess = true, Privileged = true });
        Assert.Contains(kept.Warnings, w => w.StartsWith($"Kept {key} ", StringComparison.Ordinal));
        if (kind == "seccomp-profile-path")
        {
            // The host path is read on start: a missing one is an error there.
            var ex = Assert.Throws<ContainerException>(() => _store.Manager.Start(kept.Container.Name));
            Assert.Equal("SeccompProfileNotFound", ex.ErrorId);
        }
        else
        {
            _store.Manager.Start(kept.Container.Name);
            var run = _store.Manager.Exec(kept.Container.Name, new[] { "/bin/sh", "-c", script });
            var output = string.Join("\n", run.Output);
            Assert.True(Escaped(output), $"with -KeepHostAccess the {kind} escape should work (the test would not see it otherwise): {output} {string.Join("\n", run.Error)}");
            _store.Manager.Remove(kept.Container.Name, force: true);
            if (kind == "mounts") File.Delete(Path.Combine(hostDir, "pwned"));
        }

        // Imported plainly: removed, with a warning naming the key; the escape fails.
        var plain = ContainerArchive.Import(_store.Manager, archive, new ImportOptions { Name = TestStore.NewName("plain"), Privileged = true });
        var warning = Assert.Single(plain.Warnings, w => w.StartsWith($"Removed {key} ", StringComparison.Ordinal));
        Assert.Contains("-KeepHostAccess", warning);
        Assert.Empty(UntrustedConfigPolicy.Find(ConfigLoader.Load(plain.Container.ConfigPath)));
        _store.Manager.Start(plain.Container.Name);
        var denied = _store.Manager.Exec(plain.Container.Name, new[] { "/bin/sh", "-c", script });
        var deniedOutput = string.Join("\n", denied.Output);
        if (kind != "seccomp-profile-path")
            Assert.False(Escaped(deniedOutput), $"without -KeepHostAccess the {kind} escape worked: {deniedOutput}");
        if (kind == "mounts") Assert.False(File.Exists(Path.Combine(hostDir, "pwned")));
    }

    [Fact]
    public void Policy_FindsEveryClass_IncludingNicsThatTakeHostDevices()
    {
        var config = ConfigLoader.Parse("""
            rootfs: /srv/other
            mounts:
              - {source: /, target: /host}
            storage: {backend: overlay, lower: /srv/lower, origin: other}
            console: {logMaxBytes: 0}
            security:
              capabilities: {keep: [sys_admin, sys_module]}
              seccomp: {profile: /etc/psc/profile.yaml, allow: [kexec_load]}
              proc: rw
              sys: rw
              maskedPaths: [/proc/kcore]
              devices: unconfined
            limits:
              devices: ["allow c 1:1 rw", "deny a", "allow b *:* m"]
              io: [{device: /dev/sda, readBps: 1M}, {device: "8:16", readBps: 1M}]
            network:
              - {type: phys, link: eth9}
              - {type: macvlan, link: eth9}
              - {type: ipvlan, link: eth9}
              - {type: vlan, link: eth9, vlanId: 7}
              - {type: veth, link: br-lan}
              - {type: veth, link: default, hostName: eth7}
              - {type: pasta, ports: ["8080"], hostPorts: ["5432"]}
            """, "test");
        var keys = UntrustedConfigPolicy.Sanitize(config).Select(f => f.Key).ToHashSet();
        foreach (var k in new[] { "rootfs", "mounts[0]", "storage.lower", "storage.origin", "security.capabilities.keep", "security.seccomp.profile",
                     "security.seccomp.allow", "security.proc", "security.sys", "security.maskedPaths", "security.devices", "limits.devices[0]",
                     "limits.io[0].device", "network[0]", "network[1]", "network[2]", "network[3]", "network[4]", "network[6].ports", "network[6].hostPorts", "network[5].hostName", "console.logMaxBytes" })
            Assert.Contains(k, keys);
        Assert.DoesNotContain("limits.devices[2]", keys); // mknod only, as the default rules
        Assert.DoesNotContain("network[5]", keys);        // the store's own bridge
        Assert.DoesNotContain("limits.io[1].device", keys);
        // What is left is the default everywhere, and passes the policy.
        Assert.Empty(UntrustedConfigPolicy.Find(config));
        Assert.True(config.Security.IsDefault);
        Assert.Equal(new[] { "veth", "pasta" }, config.Network.Select(n => n.Type));
        Assert.Equal(2, config.Limits.Devices.Count);
        // type none (the host's network namespace) is the only entry when present.
        var none = ConfigLoader.Parse("network:\n  - {type: none}\n", "test");
        Assert.Equal("network[0]", Assert.Single(UntrustedConfigPolicy.Sanitize(none)).Key);
        Assert.Empty(none.Network);
    }

    [Fact]
    public void ImportContainer_Cmdlet_WarnsPerKey_KeepsWithForce_AndTakesTheNameFromTheArchive()
    {
        var hostDir = Path.Combine(_store.Root, "host-cmdlet");
        Directory.CreateDirectory(hostDir);
        var archive = ArchiveWith($"mounts:\n  - source: {hostDir}\n    target: /hostdir\nsecurity:\n  proc: rw");
        using var ps = _store.OpenSession();
        var plain = TestStore.NewName("cp");
        var warnings = ps.Run("Import-Container $args[0] $args[1] -WarningVariable w -WarningAction SilentlyContinue | Out-Null; $w | ForEach-Object { \"$_\" }", archive, plain)
            .Select(o => o.ToString()).ToList();
        Assert.Contains(warnings, w => w.StartsWith("Removed mounts[0] (" + hostDir, StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.StartsWith("Removed security.proc (rw)", StringComparison.Ordinal));
        Assert.Empty(ConfigLoader.Load(_store.Manager.Store.ConfigPath(plain)).Mounts);

        var kept = TestStore.NewName("ck");
        ps.Run("Import-Container $args[0] $args[1] -KeepHostAccess -Force -WarningAction SilentlyContinue | Out-Null", archive, kept);
        Assert.Equal(hostDir, ConfigLoader.Load(_store.Manager.Store.ConfigPath(kept)).Mounts.Single().Source);

        // The name: Export-Container's mark (the source's name), else the file name.
        var src = TestStore.NewName("named");
        _store.Manager.Create(src, new CreateOptions { Template = "busybox" });
        var exported = Path.Combine(_store.Root, "some-file.tar.zst");
        ContainerArchive.Export(_store.Manager, src, exported, force: false);
        using var other = new TestStore();
        var imported = ps.Run("Import-Container $args[0] -StorePath $args[1]", exported, other.StorePath).Single().BaseObject as ContainerInfo;
        Assert.Equal(src, imported!.Name);
        var plainTar = Path.Combine(_store.Root, "psct-fromfile.tar");
        File.WriteAllBytes(plainTar, StripMark(File.ReadAllBytes(BaseArchive())));
        Assert.Equal("psct-fromfile", ContainerArchive.Survey(plainTar).SuggestedName);
        var bad = Path.Combine(_store.Root, "no good name!.tar");
        File.Copy(plainTar, bad);
        var r = ps.Invoke("Import-Container $args[0]", bad);
        Assert.Equal("ContainerNameRequired,PSContainers.Cmdlets.ImportContainerCommand", r.SingleError.FullyQualifiedErrorId);
    }

    /// <summary>The base archive without Export-Container's name mark (an archive of an older version).</summary>
    private static byte[] StripMark(byte[] tar)
    {
        var input = new MemoryStream(tar);
        var output = new MemoryStream();
        var reader = new PaxTarReader(input);
        var writer = new PaxTarWriter(output);
        while (reader.Next() is var (entry, data))
        {
            if (entry.Path == "config.yaml")
            {
                var text = string.Join("\n", new StreamReader(data).ReadToEnd().Split('\n').Where(l => !l.StartsWith("# psc-container:")));
                var bytes = Encoding.UTF8.GetBytes(text);
                entry.Size = bytes.Length;
                writer.WriteEntry(entry, new MemoryStream(bytes));
            }
            else writer.WriteEntry(entry, data);
        }
        writer.Finish();
        return output.ToArray();
    }

    [Fact]
    public void MoveContainer_RefusesToDropHostAccessSilently_AndKeepsItWhenAsked_AndStaysUserNamespaced()
    {
        var hostDir = Path.Combine(_store.Root, "host-move");
        Directory.CreateDirectory(hostDir);
        using var destination = new TestStore();
        var name = TestStore.NewName("mv");
        _store.Manager.Create(name, new CreateOptions { Template = "busybox" });
        var configPath = _store.Manager.Store.ConfigPath(name);
        var config = ConfigLoader.Load(configPath);
        config.Mounts.Add(new MountConfig { Source = hostDir, Target = "/hostdir" });
        File.WriteAllText(configPath, ConfigLoader.Serialize(config));

        var ex = Assert.Throws<ContainerException>(() => ContainerMigrator.Move(_store.Manager, name, MigrationDestination.Local(destination.StorePath), new MoveOptions()));
        Assert.Equal("HostAccessNotKept", ex.ErrorId);
        Assert.Contains("mounts[0]", ex.Message);
        Assert.True(_store.Manager.Exists(name));
        Assert.False(destination.Manager.Exists(name));

        var moved = ContainerMigrator.Move(_store.Manager, name, MigrationDestination.Local(destination.StorePath), new MoveOptions { KeepHostAccess = true });
        Assert.Contains(moved.Warnings, w => w.StartsWith("Kept mounts[0]", StringComparison.Ordinal));
        Assert.Equal(hostDir, ConfigLoader.Load(destination.Manager.Store.ConfigPath(name)).Mounts.Single().Source);

        // A user-namespaced container stays one (it used to arrive privileged).
        var un = TestStore.NewName("mvu");
        _store.Manager.Create(un, new CreateOptions { Template = "busybox", Unprivileged = true });
        ContainerMigrator.Move(_store.Manager, un, MigrationDestination.Local(destination.StorePath), new MoveOptions());
        Assert.NotNull(ConfigLoader.Load(destination.Manager.Store.ConfigPath(un)).IdMap);
        Assert.Equal(ContainerStatus.Running, destination.Manager.Start(un).State);
        Assert.Equal("0", destination.Manager.Exec(un, new[] { "id", "-u" }).Output.Single());
    }
}
