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
    public void NicUp_BringsUpLinksOnlyInTheRecordedProcesssNamespace_AndRefusesHostileNames()
    {
        // psc-helper nic-up, unprivileged, as a non-root user on a namespace of its own (unshare -Urn,
        // holding a veth pair it made there): the named link comes up; hostile names, a pid whose
        // start time is not the one recorded, the user's own process in the host's network
        // namespace and another user's process are refused, and nothing changes.
        using var user = new TestUser();
        var run = user.Run("""
            $ns = [Diagnostics.Process]::Start('unshare', [string[]]@('-Urn', 'sh', '-c', 'ip link add d0 type veth peer name d1 && exec sleep 600'))
            try {
                $nsPid = $ns.Id
                for ($i = 0; $i -lt 50 -and -not ((& nsenter -t $nsPid -U -n --preserve-credentials ip -o link show d0 2>$null) -match 'd0'); $i++) { [Threading.Thread]::Sleep(100) }
                function Flags($if) { if ((& nsenter -t $nsPid -U -n --preserve-credentials ip -o link show $if) -match '<([^>]*)>') { $Matches[1] } }
                function NicUp([int] $p, [ulong] $start, [string[]] $links) {
                    $spec = [PSContainers.Runtime.Namespaces.NicUpSpec]::new()
                    $spec.TargetPid = $p
                    $spec.TargetStartTime = $start
                    foreach ($l in $links) { $spec.LinksUp.Add($l) }
                    $r = [PSContainers.Runtime.Launcher.PscHelper]::Run($spec)
                    "$($r.ExitCode)|$($r.Error -join ' ')"
                }
                $start = [PSContainers.Runtime.Native.Sys]::ProcessStartTime($nsPid)
                "before=$(Flags d0)"
                foreach ($bad in '../d0', 'd0/x', 'a b', 'd0:1', "d0`n", '.', '..') { "hostile=$(NicUp $nsPid $start @($bad))" }
                "mixed=$(NicUp $nsPid $start @('d1', 'x/y'))"
                "stale=$(NicUp $nsPid ($start + 1) @('d0'))"
                "hostns=$(NicUp $PID ([PSContainers.Runtime.Native.Sys]::ProcessStartTime($PID)) @('lo'))"
                "otheruser=$(NicUp 1 ([PSContainers.Runtime.Native.Sys]::ProcessStartTime(1)) @('lo'))"
                "missing=$(NicUp $nsPid $start @('d9'))"
                "unchanged=$(Flags d0)|$(Flags d1)"
                "good=$(NicUp $nsPid $start @('d0'))"
                "after=$(Flags d0)|$(Flags d1)"
            }
            finally { $ns.Kill() }
            exit 0
            """);
        Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
        static bool Up(string flags) => flags.Split(',').Contains("UP");
        Assert.Contains("BROADCAST", Value(run, "before")); // the flags are read
        Assert.False(Up(Value(run, "before")));
        var hostile = run.Lines.Where(l => l.StartsWith("hostile=", StringComparison.Ordinal)).ToList();
        Assert.Equal(7, hostile.Count);
        Assert.All(hostile, h => Assert.Contains("is not a valid interface name", h));
        Assert.All(hostile, h => Assert.StartsWith("hostile=125|", h));
        // Every name is checked before anything is done: a good one beside a bad one stays down.
        Assert.StartsWith("125|", Value(run, "mixed"));
        Assert.Contains("'x/y' is not a valid interface name", Value(run, "mixed"));
        Assert.StartsWith("125|", Value(run, "stale"));
        Assert.Contains("is not the container's init any more", Value(run, "stale"));
        Assert.StartsWith("125|", Value(run, "hostns"));
        Assert.Contains("own network namespace", Value(run, "hostns"));
        Assert.StartsWith("125|", Value(run, "otheruser"));
        Assert.StartsWith("125|", Value(run, "missing"));
        Assert.Contains("d9", Value(run, "missing"));
        var unchanged = Value(run, "unchanged").Split('|');
        Assert.Contains("BROADCAST", unchanged[0]);
        Assert.False(Up(unchanged[0]));
        Assert.False(Up(unchanged[1]));
        Assert.Equal("0|", Value(run, "good"));
        var after = Value(run, "after").Split('|');
        Assert.True(Up(after[0]), Value(run, "after"));
        Assert.False(Up(after[1])); // only what was named
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
                # Up inside, as a start's init brings it up (psc-helper nic-up): read from inside.
                function State($if) {
                    $flags = (Invoke-ContainerCommand {{name}} -Command cat,/sys/class/net/$if/flags).Output
                    # operstate follows the carrier asynchronously (the kernel's linkwatch): wait for it a little.
                    for ($i = 0; $i -lt 50; $i++) {
                        $oper = (Invoke-ContainerCommand {{name}} -Command cat,/sys/class/net/$if/operstate).Output
                        if ($oper -eq 'up') { break }
                        [Threading.Thread]::Sleep(100)
                    }
                    "$(([Convert]::ToInt32($flags, 16)) -band 1)|$oper"
                }
                "state=$(State eth0)"
                try { Add-ContainerNetworkInterface {{name}} -Link {{bridge}} -IPv4 10.9.9.9/24 -ErrorAction Stop; 'x' } catch { "address=$($_.FullyQualifiedErrorId.Split(',')[0])" }
                try { Add-ContainerNetworkInterface {{name}} -Link {{bridge}} -ErrorAction Stop; 'x' } catch { "quota=$($_.FullyQualifiedErrorId.Split(',')[0])" }
                try { Add-ContainerNetworkInterface {{name}} macvlan -Link {{bridge}} -ErrorAction Stop; 'x' } catch { "macvlan=$($_.FullyQualifiedErrorId.Split(',')[0])" }
                # Addresses stay the container's business: its root sets one, and traffic flows over the link.
                Invoke-ContainerCommand {{name}} -Command ip,addr,add,{{subnet}}.2/24,dev,eth0 | Out-Null
                "ping=$((Invoke-ContainerCommand {{name}} -Command ping,-c1,-W3,{{subnet}}.1).ExitCode)"
                "ports=$([IO.Directory]::GetFileSystemEntries('/sys/class/net/{{bridge}}/brif').Count)"
                Remove-ContainerNetworkInterface {{name}} eth0
                "after=$([IO.Directory]::GetFileSystemEntries('/sys/class/net/{{bridge}}/brif').Count)"
                # A hostile interface name is refused before anything is made.
                try { Add-ContainerNetworkInterface {{name}} -Link {{bridge}} -InterfaceName 'x/../y' -ErrorAction Stop; 'x' } catch { "hostile=$($_.FullyQualifiedErrorId.Split(',')[0])|$($_.Exception.Message)" }
                "hostileports=$([IO.Directory]::GetFileSystemEntries('/sys/class/net/{{bridge}}/brif').Count)"
                # A record whose init is not the process under that pid any more (as after a pid was
                # reused): psc-usernic plugs the veth, nic-up refuses that process, and the veth is taken out again.
                $statePath = [IO.Path]::Combine((Get-Container {{name}}).Path, "state.json")
                $recorded = [IO.File]::ReadAllText($statePath)
                [IO.File]::WriteAllText($statePath, ($recorded -replace '"InitStartTime": (\d+)', { '"InitStartTime": ' + ([ulong]$_.Groups[1].Value + 1) }))
                try { Add-ContainerNetworkInterface {{name}} -Link {{bridge}} -ErrorAction Stop; 'x' } catch { "stale=$($_.FullyQualifiedErrorId.Split(',')[0])|$($_.Exception.Message)" }
                [IO.File]::WriteAllText($statePath, $recorded)
                "staleports=$([IO.Directory]::GetFileSystemEntries('/sys/class/net/{{bridge}}/brif').Count)"
                "stalelinks=$((Invoke-ContainerCommand {{name}} -Command ls,/sys/class/net).Output -join ',')"
                # The quota is free again: a second one fits, and comes up too.
                "again=$((Add-ContainerNetworkInterface {{name}} -Link {{bridge}}).InterfaceName)"
                "againstate=$(State eth0)"
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
            Assert.Equal("1|up", Value(run, "state")); // IFF_UP, and the carrier through the bridge's up host end
            Assert.Equal("0", Value(run, "ping"));
            Assert.Equal("1", Value(run, "ports"));
            Assert.Equal("0", Value(run, "after"));
            Assert.StartsWith("InvalidArgument|", Value(run, "hostile"));
            Assert.Contains("invalid interface name 'x/../y'", Value(run, "hostile"));
            Assert.Equal("0", Value(run, "hostileports"));
            var stale = Value(run, "stale");
            Assert.StartsWith("NicUpFailed|", stale);
            Assert.Contains("is not the container's init any more", stale);
            Assert.Contains("taken out again", stale);
            Assert.Equal("0", Value(run, "staleports"));
            Assert.Equal("lo", Value(run, "stalelinks")); // nothing half-made inside either
            Assert.Equal("eth0", Value(run, "again"));
            Assert.Equal("1|up", Value(run, "againstate"));
            Assert.Equal("0", Value(run, "stopped"));
            Assert.Empty(Ports(bridge));
        }
        finally
        {
            user.Dispose();
        }
    }
}
