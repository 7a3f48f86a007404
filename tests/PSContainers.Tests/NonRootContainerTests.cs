using System.Net;
using System.Net.Sockets;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// The whole lifecycle as a real non-root user, in a separate pwsh-like process (psc-scripthost run
/// through setpriv): its store under ~/.local/share/pscontainers, its containers in user namespaces
/// on the subordinate ids root granted it with Add-SubordinateIdRange, the maps written by
/// newuidmap/newgidmap, the rootfs owned by those ids, and cgroups only where they are delegated.
/// </summary>
[Collection("Containers")]
public sealed class NonRootContainerTests
{
    private static string[] Values(ScriptHost.Result r, string key) =>
        r.Lines.Where(l => l.StartsWith(key + "=", StringComparison.Ordinal)).Select(l => l[(key.Length + 1)..]).ToArray();

    private static string Value(ScriptHost.Result r, string key) =>
        Values(r, key) is [var v] ? v : throw new Xunit.Sdk.XunitException($"no single {key}= line in:\n{r.StdOut}\n{r.StdErr}");

    [Fact]
    public void NonRootUser_CreatesStartsAttachesAndRemoves_AContainerOwnedByItsSubordinateIds()
    {
        using var user = new TestUser();
        var name = TestStore.NewName("nr");
        var run = user.Run($$"""
            $c = New-Container {{name}}
            "path=$($c.Path)"
            "rootfs=$($c.RootfsPath)"
            $s = Start-Container {{name}} -PassThru -WarningVariable w -WarningAction SilentlyContinue
            "state=$($s.State)"
            "pid=$($s.Pid)"
            "cgroup=$($s.CgroupPath)"
            "warning=$($w -join ' ')"
            "uid=$((Invoke-ContainerCommand {{name}} -Command id,-u).Output)"
            "gid=$((Invoke-ContainerCommand {{name}} -Command id,-g).Output)"
            "init=$((Invoke-ContainerCommand {{name}} -Command cat,/proc/1/cmdline).Output)"
            "lo=$((Invoke-ContainerCommand {{name}} -Command cat,/sys/class/net/lo/operstate).Output)"
            try { Suspend-Container {{name}} } catch { "freeze=$($_.FullyQualifiedErrorId)" }
            try { Checkpoint-Container {{name}} -Path "$HOME/ckpt" } catch { "checkpoint=$($_.FullyQualifiedErrorId)" }
            exit 0 # the errors above were caught on purpose
            """);
        Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
        Assert.Equal($"{user.Home}/.local/share/pscontainers/{name}", Value(run, "path"));
        Assert.Equal("Running", Value(run, "state"));
        // Root inside, an unprivileged subordinate uid outside.
        Assert.Equal("0", Value(run, "uid"));
        Assert.Equal("0", Value(run, "gid"));
        Assert.StartsWith("init", Value(run, "init"));
        Assert.Equal("unknown", Value(run, "lo")); // loopback is up (its operstate is "unknown" when up)
        var pid = int.Parse(Value(run, "pid"));
        var uidLine = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("Uid:")).Split('\t', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(user.UidRange.Start.ToString(), uidLine[1]);
        Assert.Equal($"0 {user.UidRange.Start} 65536", string.Join(' ', File.ReadAllText($"/proc/{pid}/uid_map").Split(' ', StringSplitOptions.RemoveEmptyEntries)).Trim());
        var rootfs = Value(run, "rootfs");
        Assert.Equal((user.UidRange.Start, user.GidRange.Start), (UnprivilegedContainerTests.StatOwner(rootfs).Uid, UnprivilegedContainerTests.StatOwner(rootfs).Gid));
        Assert.Equal(user.UidRange.Start, UnprivilegedContainerTests.StatOwner(Path.Combine(rootfs, "bin", "busybox")).Uid);
        // This host delegates no cgroup to the user: it runs without one, says so, and cannot be frozen.
        Assert.Equal("", Value(run, "cgroup"));
        Assert.Contains("without a cgroup of its own", Value(run, "warning"));
        Assert.StartsWith("ContainerHasNoCgroup,", Value(run, "freeze"));
        // CRIU needs root: refused up front, with nothing written.
        Assert.StartsWith("RootRequired,", Value(run, "checkpoint"));
        Assert.False(Directory.Exists(Path.Combine(user.Home, "ckpt")));

        var end = user.Run($$"""
            Stop-Container {{name}} -Kill
            "state=$((Get-Container {{name}}).State)"
            Remove-Container {{name}}
            "exists=$([IO.Directory]::Exists('{{Value(run, "path")}}'))"
            New-Container {{name}}-lim -MemoryLimit 64MB | Out-Null
            try { Start-Container {{name}}-lim } catch { "limits=$($_.FullyQualifiedErrorId)" }
            New-Container {{name}}-veth -Network @{ type = 'veth'; link = 'default' } | Out-Null
            try { Start-Container {{name}}-veth } catch { "veth=$($_.FullyQualifiedErrorId)" }
            Get-Container | Remove-Container
            "left=$(@(Get-Container).Count)"
            exit 0 # the errors above were caught on purpose
            """);
        Assert.True(end.ExitCode == 0, end.StdErr + end.StdOut);
        Assert.Equal("Stopped", Value(end, "state"));
        Assert.Equal("False", Value(end, "exists"));
        Assert.StartsWith("CgroupNotDelegated,", Value(end, "limits"));
        // The default bridge is not a user's to join (no usernet grant): refused before anything is made.
        Assert.StartsWith("NetworkNeedsRoot,", Value(end, "veth"));
        Assert.Equal("0", Value(end, "left"));
        Assert.False(Directory.Exists(Value(run, "path")));
        Assert.Empty(user.Processes());
    }

    [Fact]
    public void ExportOfAShiftedContainer_HasContainerIds_AndANonRootImportShiftsThemIntoItsRange()
    {
        using var store = new TestStore();
        using var root = store.OpenSession();
        var source = TestStore.NewName("exp");
        var config = Path.Combine(store.Root, "idmap.yaml");
        const uint hostStart = 1_400_000_000u;
        File.WriteAllText(config, $"idMap: [u 0 {hostStart} 65536, g 0 {hostStart} 65536]\n");
        root.Run("New-Container $args[0] -ConfigPath $args[1] | Out-Null", source, config);
        var rootfs = Path.Combine(store.StorePath, source, "rootfs");
        // Root's container is idmapped on this store; shifted as a container of an older store was
        // (or one on a filesystem that cannot be idmapped).
        PSContainers.Runtime.UserNamespaces.UserNamespace.Shift(rootfs, PSContainers.Runtime.UserNamespaces.IdMap.ForRanges(hostStart, hostStart));
        var configPath = Path.Combine(store.StorePath, source, "config.yaml");
        var shifted = PSContainers.Runtime.Config.ConfigLoader.Load(configPath);
        shifted.Storage.Ids = "shifted";
        File.WriteAllText(configPath, PSContainers.Runtime.Config.ConfigLoader.Serialize(shifted));
        Directory.CreateDirectory(Path.Combine(rootfs, "home", "alice"));
        HostCommand.Run("chown", $"{hostStart + 1000}:{hostStart + 1000}", Path.Combine(rootfs, "home", "alice"));
        using var user = new TestUser();
        var archive = Path.Combine(user.Folder, "shifted.tar");
        root.Run("Export-Container $args[0] -Path $args[1]", source, archive);
        HostCommand.Run("chmod", "a+r", archive);
        // The archive holds the ids the container sees, not the host range it happened to run on.
        var listing = HostCommand.Run("tar", "--numeric-owner", "-tvf", archive);
        Assert.True(listing.Split("\n").Any(l => l.Contains(" 1000/1000 ") && l.TrimEnd().TrimEnd('/').EndsWith("rootfs/home/alice")), listing.Split("\n").FirstOrDefault(l => l.Contains("alice")));
        Assert.Contains(listing.Split("\n"), l => l.Contains(" 0/0 ") && l.TrimEnd().EndsWith("rootfs/etc/passwd"));

        var name = TestStore.NewName("imp");
        var run = user.Run($$"""
            $c = Import-Container '{{archive}}' -Name {{name}} -WarningAction SilentlyContinue
            "rootfs=$($c.RootfsPath)"
            Start-Container {{name}} -WarningAction SilentlyContinue
            "alice=$((Invoke-ContainerCommand {{name}} -Command stat,-c,'%u:%g',/home/alice).Output)"
            Remove-Container {{name}} -Force
            """);
        Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
        Assert.Equal("1000:1000", Value(run, "alice"));
        Assert.Empty(user.Processes());
    }

    [Fact]
    public void NonRootUser_WithADelegatedCgroup_GetsCgroupsAndFreezes()
    {
        using var user = new TestUser();
        var unified = PSContainers.Runtime.Cgroups.CgroupLayout.Detect().UnifiedMount!;
        var delegated = Path.Combine(unified, "psc-test-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(delegated);
        try
        {
            // What systemd's Delegate=yes does: the directory and its interface files belong to the user.
            foreach (var f in new[] { "", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control" })
                HostCommand.Run("chown", user.Name, Path.Combine(delegated, f));
            var name = TestStore.NewName("dg");
            var run = user.Run($$"""
                New-Container {{name}} | Out-Null
                $s = Start-Container {{name}} -PassThru -WarningVariable w
                "cgroup=$($s.CgroupPath)"
                "warnings=$($w.Count)"
                "frozen=$((Suspend-Container {{name}} -PassThru).State)"
                "thawed=$((Resume-Container {{name}} -PassThru).State)"
                "uid=$((Invoke-ContainerCommand {{name}} -Command id,-u).Output)"
                "procs=$((Invoke-ContainerCommand {{name}} -Command cat,/proc/self/cgroup).Output -match '^0::')"
                Remove-Container {{name}} -Force
                """, cgroup: delegated);
            Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
            var cgroup = Value(run, "cgroup");
            Assert.StartsWith(Path.GetRelativePath(unified, delegated) + "/pscontainers-", cgroup);
            Assert.EndsWith("/" + name, cgroup);
            Assert.Equal("0", Value(run, "warnings"));
            Assert.Equal("Frozen", Value(run, "frozen"));
            Assert.Equal("Running", Value(run, "thawed"));
            Assert.Equal("0", Value(run, "uid"));
            Assert.Equal("0::/", Value(run, "procs"));
            Assert.False(Directory.Exists(Path.Combine(unified, cgroup)));
        }
        finally
        {
            user.Dispose();
            foreach (var dir in Directory.EnumerateDirectories(delegated, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length))
                try { Directory.Delete(dir); } catch (IOException) { }
            try { Directory.Delete(delegated); } catch (IOException) { }
        }
    }
    [Fact]
    public void NonRootUser_Pasta_ReachesTheHostLoopback_AndForwardsAHostPortIn_WhenTunIsOpenToAll()
    {
        using var user = new TestUser();
        // No udev on this host: /dev/net/tun stays 0600. Debian's udev rule makes it 0666; do the same for the test.
        using var tun = new DeviceMode("/dev/net/tun", DeviceMode.ReadWriteAll);
        var name = TestStore.NewName("nrp");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var hostPort = ((IPEndPoint)listener.LocalEndpoint).Port;
        int forwarded;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); forwarded = ((IPEndPoint)probe.LocalEndpoint).Port; }
        var config = Path.Combine(user.Folder, "pasta.yaml");
        File.WriteAllText(config, $"network:\n  - type: pasta\n    ports: [\"{forwarded}:8080\"]\n    hostPorts: [{hostPort}]\n");

        // Container -> host loopback (pasta -T): the host side reads one line and closes.
        var received = Task.Run(() =>
        {
            using var client = listener.AcceptTcpClient();
            return new StreamReader(client.GetStream()).ReadLine();
        });
        var run = user.Run($$"""
            $c = New-Container {{name}} -ConfigPath '{{config}}'
            "path=$($c.Path)"
            Start-Container {{name}} -WarningAction SilentlyContinue
            "eth0=$((Invoke-ContainerCommand {{name}} -Command cat,/sys/class/net/eth0/operstate).Output)"
            "sent=$((Invoke-ContainerCommand {{name}} -Command sh,-c,'echo hello-host | nc 127.0.0.1 {{hostPort}}; echo $?').Output)"
            # Host loopback -> container (pasta -t): a listener inside, left running for the test to call.
            Invoke-ContainerCommand {{name}} -Command sh,-c,'echo hello-container | nc -l -p 8080 >/dev/null 2>&1 &' | Out-Null
            """);
        try
        {
            Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
            var path = Value(run, "path");
            Assert.Contains(Value(run, "eth0"), new[] { "up", "unknown" });
            Assert.True(received.Wait(TimeSpan.FromSeconds(10)), "no connection reached the host listener: " + Value(run, "sent"));
            Assert.Equal("hello-host", received.Result);
            // pasta runs as the user (no privilege at all), not as root.
            var pastaPid = int.Parse(File.ReadAllText(Path.Combine(path, "pasta.pid")).Trim());
            var uid = File.ReadLines($"/proc/{pastaPid}/status").First(l => l.StartsWith("Uid:")).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1];
            Assert.Equal(user.Uid.ToString(), uid);

            string? line = null;
            for (var i = 0; i < 50 && line is null; i++)
            {
                try
                {
                    using var c = new TcpClient();
                    c.Connect(IPAddress.Loopback, forwarded);
                    line = new StreamReader(c.GetStream()).ReadLine();
                }
                catch (Exception ex) when (ex is SocketException or IOException) { }
                if (string.IsNullOrEmpty(line)) { line = null; Thread.Sleep(100); }
            }
            Assert.Equal("hello-container", line);

            var end = user.Run($$"""
                Stop-Container {{name}} -Kill
                "pidfile=$([IO.File]::Exists('{{path}}/pasta.pid'))"
                Remove-Container {{name}}
                """);
            Assert.True(end.ExitCode == 0, end.StdErr + end.StdOut);
            Assert.Equal("False", Value(end, "pidfile"));
            Assert.Null(PSContainers.Runtime.Native.Sys.ProcessStartTime(pastaPid));
            Assert.Empty(user.Processes());
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public void NonRootUser_Pasta_WithoutAccessToTun_FailsWithAClearError()
    {
        using var user = new TestUser();
        using var tun = new DeviceMode("/dev/net/tun", DeviceMode.OwnerOnly); // root's alone, as here without udev
        var name = TestStore.NewName("nrt");
        var run = user.Run($$"""
            New-Container {{name}} -Network @{ type = 'pasta' } | Out-Null
            try { Start-Container {{name}} -WarningAction SilentlyContinue } catch {
                "id=$($_.FullyQualifiedErrorId)"
                "category=$($_.CategoryInfo.Category)"
                "target=$($_.TargetObject)"
                "message=$($_.Exception.Message)"
            }
            "state=$((Get-Container {{name}}).State)"
            Remove-Container {{name}} -Force
            "left=$(@(Get-Container).Count)"
            exit 0 # the error above was caught on purpose
            """);
        Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
        Assert.StartsWith("TunUnavailable,", Value(run, "id"));
        Assert.Equal("PermissionDenied", Value(run, "category"));
        Assert.Equal(name, Value(run, "target"));
        Assert.Contains("/dev/net/tun", Value(run, "message"));
        Assert.Contains("chmod 0666 /dev/net/tun", Value(run, "message"));
        Assert.Equal("Stopped", Value(run, "state"));
        Assert.Equal("0", Value(run, "left"));
        Assert.Empty(user.Processes());
    }
    [Fact]
    public void NonRootUser_Defaults_FromConfigYaml_ApplyToNewContainers_AndAConfigPathReplacesThemKeyByKey()
    {
        using var user = new TestUser();
        var a = TestStore.NewName("nda");
        var b = TestStore.NewName("ndb");
        var c = TestStore.NewName("ndc");
        var over = Path.Combine(user.Folder, "over.yaml");
        File.WriteAllText(over, "init:\n  environment: { PSC_FROM: file }\n");
        var run = user.Run($$"""
            # The user's own defaults, written as that user: ~/.config/pscontainers/config.yaml.
            $dir = [IO.Directory]::CreateDirectory("$HOME/.config/pscontainers").FullName
            [IO.File]::WriteAllText("$dir/config.yaml", "hostname: from-defaults`nstop:`n  timeout: 7`ninit:`n  environment: { PSC_FROM: defaults, PSC_ONLY_DEFAULTS: yes }`n")
            "a=$((New-Container {{a}}).ConfigPath)"
            "b=$((New-Container {{b}} -ConfigPath '{{over}}').ConfigPath)"
            Start-Container {{a}} -WarningAction SilentlyContinue
            "hostname=$((Invoke-ContainerCommand {{a}} -Command hostname).Output)"
            "environ=$((Invoke-ContainerCommand {{a}} -Command sh,-c,'tr ''\0'' ''\n'' < /proc/1/environ | grep ^PSC_FROM=').Output)"
            Stop-Container {{a}} -Kill
            # XDG_CONFIG_HOME moves the file; the one under ~/.config is then not read.
            $env:XDG_CONFIG_HOME = "$HOME/xdg"
            [IO.Directory]::CreateDirectory("$HOME/xdg/pscontainers") | Out-Null
            [IO.File]::WriteAllText("$HOME/xdg/pscontainers/config.yaml", "hostname: from-xdg`n")
            "c=$((New-Container {{c}}).ConfigPath)"
            """);
        Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
        Assert.Equal("from-defaults", Value(run, "hostname"));
        Assert.Equal("PSC_FROM=defaults", Value(run, "environ"));

        var fromDefaults = PSContainers.Runtime.Config.ConfigLoader.Load(Value(run, "a"));
        Assert.Equal("from-defaults", fromDefaults.Hostname);
        Assert.Equal(7, fromDefaults.Stop.Timeout);
        Assert.Equal(new Dictionary<string, string> { ["PSC_FROM"] = "defaults", ["PSC_ONLY_DEFAULTS"] = "yes" }, fromDefaults.Init.Environment);
        Assert.NotNull(fromDefaults.IdMap); // the user's range, as without a defaults file

        // -ConfigPath replaces the keys it has (all of init:), the rest still comes from the defaults.
        var overridden = PSContainers.Runtime.Config.ConfigLoader.Load(Value(run, "b"));
        Assert.Equal(new Dictionary<string, string> { ["PSC_FROM"] = "file" }, overridden.Init.Environment);
        Assert.Equal("from-defaults", overridden.Hostname);
        Assert.Equal(7, overridden.Stop.Timeout);

        var fromXdg = PSContainers.Runtime.Config.ConfigLoader.Load(Value(run, "c"));
        Assert.Equal("from-xdg", fromXdg.Hostname);
        Assert.Equal(10, fromXdg.Stop.Timeout);
        Assert.Empty(fromXdg.Init.Environment);

        // A bad defaults file stops New-Container with the file, line and column of the mistake.
        var bad = user.Run($$"""
            [IO.File]::WriteAllText("$HOME/.config/pscontainers/config.yaml", "hostname: ok`nstop:`n  timeout: soon`n")
            try { New-Container {{a}}-bad | Out-Null } catch {
                "id=$($_.FullyQualifiedErrorId)"
                "category=$($_.CategoryInfo.Category)"
                "message=$($_.Exception.Message)"
            }
            "exists=$(@(Get-Container {{a}}-bad -ErrorAction SilentlyContinue).Count)"
            Get-Container | Remove-Container -Force
            exit 0 # the error above was caught on purpose
            """);
        Assert.True(bad.ExitCode == 0, bad.StdErr + bad.StdOut);
        Assert.StartsWith("InvalidConfig,", Value(bad, "id"));
        Assert.Equal("ParserError", Value(bad, "category"));
        Assert.StartsWith($"{user.Home}/.config/pscontainers/config.yaml:3:12: ", Value(bad, "message"));
        Assert.Equal("0", Value(bad, "exists"));
        Assert.Empty(user.Processes());
    }
}
