using PSContainers.Runtime.Network;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// A non-root user's veth on a bridge (lxc-user-nic): root makes test bridges, installs
/// psc-usernic privileged with Install-ContainerUserNic (file capability and setuid copies) and
/// grants the real test user one veth on one bridge in /etc/pscontainers/usernet (its previous
/// content, or its absence, is restored). As that user, a container gets its veth, a second one
/// is refused with the quota line quoted, other bridges, other namespaces and other interfaces are
/// refused, and stopping the container frees the host end and the quota.
/// </summary>
[Collection("Containers")]
public sealed class UserNicTests
{
    /// <summary>Writes the real quota file for a test and puts back what was there (or nothing) on dispose.</summary>
    private sealed class UsernetFile : IDisposable
    {
        private const string Directory = "/etc/pscontainers";
        private readonly bool _directoryExisted = System.IO.Directory.Exists(Directory);
        private readonly byte[]? _previous = File.Exists(Runtime.Network.UsernetQuota.DefaultPath) ? File.ReadAllBytes(Runtime.Network.UsernetQuota.DefaultPath) : null;

        public UsernetFile(string content)
        {
            System.IO.Directory.CreateDirectory(Directory);
            File.WriteAllText(Runtime.Network.UsernetQuota.DefaultPath, content);
            File.SetUnixFileMode(Runtime.Network.UsernetQuota.DefaultPath, (UnixFileMode)0b110_100_100);
        }

        public void Dispose()
        {
            if (_previous is not null) File.WriteAllBytes(Runtime.Network.UsernetQuota.DefaultPath, _previous);
            else File.Delete(Runtime.Network.UsernetQuota.DefaultPath);
            if (!_directoryExisted) System.IO.Directory.Delete(Directory);
        }
    }

    private static string Value(ScriptHost.Result r, string key) =>
        r.Lines.Where(l => l.StartsWith(key + "=", StringComparison.Ordinal)).Select(l => l[(key.Length + 1)..]).ToArray() is [var v]
            ? v : throw new Xunit.Sdk.XunitException($"no single {key}= line in:\n{r.StdOut}\n{r.StdErr}");

    private static string[] Ports(string bridge) => Directory.GetFileSystemEntries($"/sys/class/net/{bridge}/brif").Select(Path.GetFileName).ToArray()!;

    [Fact]
    public void NonRootUser_GetsAVethOnAGrantedBridge_WithinItsQuota_AndNothingElse()
    {
        using var lab = new NetLab();
        var bridge = lab.HostLink("br");
        var other = lab.HostLink("bx");
        var foreign = "vu" + Guid.NewGuid().ToString("N")[..8]; // a "vu" host link root made, not psc-usernic
        var subnet = $"10.{200 + Random.Shared.Next(50)}.{Random.Shared.Next(250)}";
        using var user = new TestUser();
        try
        {
            using (var host = NetworkClient.Host())
            {
                host.CreateBridge(bridge);
                host.CreateBridge(other);
                host.SetLink(bridge, new LinkChanges { Up = true });
                host.AddAddress(bridge, subnet + ".1/24");
                host.CreateVeth(foreign, foreign + "p");
            }
            var capability = Path.Combine(user.Folder, "libexec", "psc-usernic");
            var setuid = Path.Combine(user.Folder, "libexec", "psc-usernic-suid");
            using (var root = new ModuleSession(Path.Combine(user.Folder, "unused-store")))
            {
                root.Run("Install-ContainerUserNic -Path $args[0] -WhatIf", capability);
                Assert.False(File.Exists(capability));
                root.Run("Install-ContainerUserNic -Path $args[0] -Confirm:$false", capability);
                root.Run("Install-ContainerUserNic -Path $args[0] -Setuid -Confirm:$false", setuid);
                // A directory others can write to could have the privileged file swapped under it.
                var open = Path.Combine(user.Folder, "open");
                Directory.CreateDirectory(open, (UnixFileMode)0b111_111_111);
                File.SetUnixFileMode(open, (UnixFileMode)0b111_111_111);
                var refusal = root.Invoke("Install-ContainerUserNic -Path $args[0] -Confirm:$false", Path.Combine(open, "psc-usernic")).SingleError;
                Assert.StartsWith("UserNicUnsafeDirectory,", refusal.FullyQualifiedErrorId);
                Assert.False(File.Exists(Path.Combine(open, "psc-usernic")));
            }
            Assert.Null(UserNic.InstallationProblem(capability));
            Assert.Null(UserNic.InstallationProblem(setuid));
            Assert.Contains("cap_net_admin=ep", HostCommand.Run("getcap", capability));
            Assert.True(File.GetUnixFileMode(setuid).HasFlag(UnixFileMode.SetUser));
            using var quota = new UsernetFile($"# test grant\n{user.Name} veth {bridge} 1\n");
            var name = TestStore.NewName("un");

            var start = user.Run($$"""
                $env:PSC_USERNIC = '{{capability}}'
                New-Container {{name}}a -Network @{ type = 'veth'; link = '{{bridge}}'; name = 'eth1' } | Out-Null
                $s = Start-Container {{name}}a -PassThru -WarningAction SilentlyContinue
                "pid=$($s.Pid)"
                $f = Test-ContainerHost | Where-Object Name -eq 'psc-usernic'
                "check=$($f.Status)|$($f.Detail)"
                "flags=$((Invoke-ContainerCommand {{name}}a -Command cat,/sys/class/net/eth1/flags).Output)"
                Invoke-ContainerCommand {{name}}a -Command ip,addr,add,{{subnet}}.2/24,dev,eth1 | Out-Null
                "ping=$((Invoke-ContainerCommand {{name}}a -Command ping,-c1,-W3,{{subnet}}.1).ExitCode)"
                """);
            Assert.True(start.ExitCode == 0, start.StdErr + start.StdOut);
            Assert.Equal(1, Convert.ToInt32(Value(start, "flags"), 16) & 1); // IFF_UP: init brought it up
            Assert.Equal("0", Value(start, "ping"));
            Assert.Equal($"Pass|{capability}; /etc/pscontainers/usernet grants {user.Name}: 1 on {bridge}", Value(start, "check"));
            // The host end: on the bridge, up, and marked as the user's.
            var port = Assert.Single(Ports(bridge));
            Assert.StartsWith("vu", port);
            Assert.Equal($"psc-usernic:uid={user.Uid}", File.ReadAllText($"/sys/class/net/{port}/ifalias").Trim());
            Assert.Equal(1, Convert.ToInt32(File.ReadAllText($"/sys/class/net/{port}/flags").Trim(), 16) & 1);

            var refused = user.Run($$"""
                $env:PSC_USERNIC = '{{capability}}'
                function Try-Start($n, $nic) {
                    New-Container $n -Network $nic | Out-Null
                    try { Start-Container $n -WarningAction SilentlyContinue; 'started' } catch { "$($_.FullyQualifiedErrorId.Split(',')[0])|$($_.Exception.Message)" }
                }
                "second=$(Try-Start {{name}}b @{ type = 'veth'; link = '{{bridge}}' })"
                "otherbridge=$(Try-Start {{name}}c @{ type = 'veth'; link = '{{other}}' })"
                "address=$(Try-Start {{name}}d @{ type = 'veth'; link = '{{bridge}}'; ipv4 = '10.9.9.9/24' })"
                $env:PSC_USERNIC = '{{user.ModuleFolder}}/psc-usernic'
                "unprivileged=$(Try-Start {{name}}e @{ type = 'veth'; link = '{{bridge}}' })"
                & '{{setuid}}' create 1 {{bridge}} eth9 vu{{user.Uid:x8}}1; "pid1=$LASTEXITCODE"
                & '{{setuid}}' create $PID {{bridge}} eth9 vu{{user.Uid:x8}}2; "hostns=$LASTEXITCODE"
                & '{{setuid}}' create {{start.Lines.First(l => l.StartsWith("pid="))[4..]}} {{bridge}} 'eth/9' vu{{user.Uid:x8}}3; "badname=$LASTEXITCODE"
                & '{{setuid}}' create {{start.Lines.First(l => l.StartsWith("pid="))[4..]}} {{bridge}} eth9 vu{{(user.Uid + 1):x8}}3; "otheruid=$LASTEXITCODE"
                & '{{setuid}}' create {{start.Lines.First(l => l.StartsWith("pid="))[4..]}} {{bridge}} eth9 vu3; "nouid=$LASTEXITCODE"
                & '{{setuid}}' delete {{foreign}}; "foreign=$LASTEXITCODE"
                & '{{setuid}}' delete {{bridge}}; "bridge=$LASTEXITCODE"
                exit 0
                """);
            Assert.True(refused.ExitCode == 0, refused.StdErr + refused.StdOut);
            var second = Value(refused, "second");
            Assert.StartsWith("UsernetQuotaExceeded|", second);
            Assert.Contains($"'{user.Name} veth {bridge} 1'", second);
            Assert.Contains($"{port}", second);
            Assert.StartsWith("UsernetQuotaExceeded|", Value(refused, "otherbridge"));
            Assert.Contains($"no line of /etc/pscontainers/usernet grants user {user.Name} veths on bridge {other}", Value(refused, "otherbridge"));
            Assert.StartsWith("InvalidNetworkConfig|", Value(refused, "address"));
            Assert.StartsWith("UserNicNotInstalled|", Value(refused, "unprivileged"));
            Assert.Equal("4", Value(refused, "pid1"));     // another user's process: not even openable
            Assert.Equal("4", Value(refused, "hostns"));   // the caller's own process, in the host's namespace
            Assert.Equal("2", Value(refused, "badname"));
            Assert.Equal("2", Value(refused, "otheruid")); // a name another user's start would need: never this user's
            Assert.Equal("2", Value(refused, "nouid"));
            Assert.Equal("4", Value(refused, "foreign"));  // a host link psc-usernic did not make for this user
            Assert.Equal("2", Value(refused, "bridge"));   // not even a name it would make
            Assert.True(Directory.Exists($"/sys/class/net/{foreign}"));
            Assert.Single(Ports(bridge));
            Assert.Empty(Ports(other));

            var stop = user.Run($$"""
                $env:PSC_USERNIC = '{{capability}}'
                Stop-Container {{name}}a -Kill
                "after=$([IO.Directory]::GetFileSystemEntries('/sys/class/net/{{bridge}}/brif').Count)"
                Start-Container {{name}}b -WarningAction SilentlyContinue
                "b=$((Get-Container {{name}}b).State)"
                Get-Container | Remove-Container -Force
                """);
            Assert.True(stop.ExitCode == 0, stop.StdErr + stop.StdOut);
            Assert.Equal("0", Value(stop, "after"));
            Assert.False(Directory.Exists($"/sys/class/net/{port}"));
            Assert.Equal("Running", Value(stop, "b")); // the quota was freed
            Assert.Empty(Ports(bridge));
        }
        finally
        {
            user.Dispose();
            try { using var host = NetworkClient.Host(); host.DeleteLinks([foreign]); } catch (Exception) { }
        }
    }

    [Fact]
    public void KilledMidCreate_LeavesNothingUncountedOrUndeletable()
    {
        // lxc-user-nic's CVE-2017-5985 class: 300 creates, each SIGKILLed after a spread of delays
        // (before, during and after the kernel made the pair). After each, the owner deletes the
        // host end it asked for: that must always work and leave nothing behind; every pair that
        // exists meanwhile counts against the quota; and at the end the whole quota is still free.
        using var lab = new NetLab();
        var bridge = lab.HostLink("bk");
        using var user = new TestUser();
        var prefix = $"vu{user.Uid:x8}";
        try
        {
            using (var host = NetworkClient.Host())
            {
                host.CreateBridge(bridge);
                host.SetLink(bridge, new LinkChanges { Up = true });
            }
            var capability = Path.Combine(user.Folder, "libexec", "psc-usernic");
            using (var root = new ModuleSession(Path.Combine(user.Folder, "unused-store")))
                root.Run("Install-ContainerUserNic -Path $args[0] -Confirm:$false", capability);
            using var quota = new UsernetFile($"{user.Name} veth {bridge} 2\n");
            var run = user.Run($$"""
                $ns = [Diagnostics.Process]::Start('unshare', [string[]]@('-Urn', 'sleep', '600'))
                [Threading.Thread]::Sleep(300)
                $nsPid = $ns.Id
                function Usernic([string[]] $a) {
                    $psi = [Diagnostics.ProcessStartInfo]::new('{{capability}}')
                    foreach ($x in $a) { $psi.ArgumentList.Add($x) }
                    $psi.RedirectStandardError = $true
                    [Diagnostics.Process]::Start($psi)
                }
                $made = 0; $unaliased = 0; $bad = @()
                for ($i = 0; $i -lt 300; $i++) {
                    $name = '{{prefix}}' + ('{0:x5}' -f $i)
                    $p = Usernic @('create', "$nsPid", '{{bridge}}', ('e' + $i), $name)
                    $delay = [Diagnostics.Stopwatch]::StartNew()
                    $wait = ($i % 60) * 50  # 0 to 2.95 ms
                    while ($delay.Elapsed.TotalMicroseconds -lt $wait) { }
                    try { $p.Kill() } catch { }
                    $p.WaitForExit()
                    if ([IO.Directory]::Exists("/sys/class/net/$name")) {
                        $made++
                        $alias = try { [IO.File]::ReadAllText("/sys/class/net/$name/ifalias").Trim() } catch { '' }
                        if (-not $alias) { $unaliased++ }
                        $master = try { [IO.Path]::GetFileName([IO.FileInfo]::new("/sys/class/net/$name/master").LinkTarget) } catch { '' }
                        if ($master -ne '{{bridge}}') { $bad += "unattached:${name}" }
                    }
                    $d = Usernic @('delete', $name); $d.WaitForExit()
                    if ($d.ExitCode -ne 0) { $bad += "delete:${name}:$($d.ExitCode):$($d.StandardError.ReadToEnd().Trim())" }
                    if ([IO.Directory]::Exists("/sys/class/net/$name")) { $bad += "left:${name}" }
                }
                "made=$made"
                "unaliased=$unaliased"
                "bad=$($bad -join ' ')"
                # The whole quota (2) is free: two creates work, a third is refused.
                $codes = foreach ($n in 'ffff0', 'ffff1', 'ffff2') { $p = Usernic @('create', "$nsPid", '{{bridge}}', "q$n", ('{{prefix}}' + $n)); $p.WaitForExit(); $p.ExitCode }
                "quota=$($codes -join ',')"
                foreach ($n in 'ffff0', 'ffff1') { $p = Usernic @('delete', ('{{prefix}}' + $n)); $p.WaitForExit() }
                "ports=$([IO.Directory]::GetFileSystemEntries('/sys/class/net/{{bridge}}/brif').Count)"
                $ns.Kill()
                exit 0
                """, timeout: TimeSpan.FromMinutes(5));
            Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
            Assert.Equal("", Value(run, "bad"));
            // The loop did reach the kernel: some kills came after the pair was made.
            Assert.True(int.Parse(Value(run, "made")) > 0, run.StdOut);
            Assert.Equal("0,0,3", Value(run, "quota"));
            Assert.Equal("0", Value(run, "ports"));
            Assert.Empty(Directory.EnumerateFileSystemEntries("/sys/class/net").Select(Path.GetFileName).Where(n => n!.StartsWith(prefix)));
        }
        finally
        {
            try
            {
                using var host = NetworkClient.Host();
                host.DeleteLinks(Directory.EnumerateFileSystemEntries("/sys/class/net").Select(Path.GetFileName).Where(n => n!.StartsWith(prefix)).ToArray()!);
            }
            catch (Exception) { }
            user.Dispose();
        }
    }

    [Fact]
    public void NonRootUser_PlugsAVethOnAGrantedBridgeIntoItsRunningContainer_AndTakesItOut()
    {
        using var lab = new NetLab();
        var bridge = lab.HostLink("bh");
        var subnet = $"10.{200 + Random.Shared.Next(50)}.{Random.Shared.Next(250)}";
        using var user = new TestUser();
        try
        {
            using (var host = NetworkClient.Host())
            {
                host.CreateBridge(bridge);
                host.SetLink(bridge, new LinkChanges { Up = true });
                host.AddAddress(bridge, subnet + ".1/24");
            }
            var capability = Path.Combine(user.Folder, "libexec", "psc-usernic");
            using (var root = new ModuleSession(Path.Combine(user.Folder, "unused-store")))
                root.Run("Install-ContainerUserNic -Path $args[0] -Confirm:$false", capability);
            using var quota = new UsernetFile($"{user.Name} veth {bridge} 1\n");
            var name = TestStore.NewName("uh");
            var run = user.Run($$"""
                $env:PSC_USERNIC = '{{capability}}'
                New-Container {{name}} -Network @{ type = 'empty' } | Out-Null
                Start-Container {{name}} -WarningAction SilentlyContinue | Out-Null
                $n = Add-ContainerNetworkInterface {{name}} -Link {{bridge}}
                "added=$($n.InterfaceName)|$($n.Live)|$($n.HostName)"
                try { Add-ContainerNetworkInterface {{name}} -Link {{bridge}} -IPv4 10.9.9.9/24 -ErrorAction Stop; 'x' } catch { "address=$($_.FullyQualifiedErrorId.Split(',')[0])" }
                try { Add-ContainerNetworkInterface {{name}} -Link {{bridge}} -ErrorAction Stop; 'x' } catch { "quota=$($_.FullyQualifiedErrorId.Split(',')[0])" }
                try { Add-ContainerNetworkInterface {{name}} macvlan -Link {{bridge}} -ErrorAction Stop; 'x' } catch { "macvlan=$($_.FullyQualifiedErrorId.Split(',')[0])" }
                # psc-usernic leaves it down and unaddressed: the container configures it, as at a start.
                Invoke-ContainerCommand {{name}} -Command ip,link,set,eth0,up | Out-Null
                Invoke-ContainerCommand {{name}} -Command ip,addr,add,{{subnet}}.2/24,dev,eth0 | Out-Null
                "ping=$((Invoke-ContainerCommand {{name}} -Command ping,-c1,-W3,{{subnet}}.1).ExitCode)"
                "ports=$([IO.Directory]::GetFileSystemEntries('/sys/class/net/{{bridge}}/brif').Count)"
                Remove-ContainerNetworkInterface {{name}} eth0
                "after=$([IO.Directory]::GetFileSystemEntries('/sys/class/net/{{bridge}}/brif').Count)"
                # The quota is free again: a second one fits.
                "again=$((Add-ContainerNetworkInterface {{name}} -Link {{bridge}}).InterfaceName)"
                Stop-Container {{name}} -Kill
                "stopped=$([IO.Directory]::GetFileSystemEntries('/sys/class/net/{{bridge}}/brif').Count)"
                Get-Container | Remove-Container -Force
                exit 0
                """);
            Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
            var added = Value(run, "added").Split('|');
            Assert.Equal("eth0", added[0]);
            Assert.Equal("True", added[1]);
            Assert.StartsWith($"vu{user.Uid:x8}", added[2]);
            Assert.Equal("InvalidNetworkConfig", Value(run, "address"));
            Assert.Equal("UsernetQuotaExceeded", Value(run, "quota"));
            Assert.Equal("NicNotHotpluggable", Value(run, "macvlan"));
            Assert.Equal("0", Value(run, "ping"));
            Assert.Equal("1", Value(run, "ports"));
            Assert.Equal("0", Value(run, "after"));
            Assert.Equal("eth0", Value(run, "again"));
            Assert.Equal("0", Value(run, "stopped"));
            Assert.Empty(Ports(bridge));
        }
        finally
        {
            user.Dispose();
        }
    }
}
