#Requires -Version 7.4
<#
.SYNOPSIS
    The network cmdlets as a user meets them (ip netns / ip link / ip addr / ip route): a named
    namespace with a veth pair, addresses and a route, a ping between the ends, the default views,
    and the main failures in $Error[0].

.NOTES
    Needs Linux, root and the built module in out/PSContainers. Everything happens inside two
    network namespaces named psc-test-<guid>a/b (the veth ends are created in them, never on the
    host); AfterAll removes them, also when tests fail.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
    if (-not $canRun) { Write-Warning 'Network tests skipped: they need root on Linux.' }
}

Describe 'A network namespace with a veth pair' -Tag 'E2E', 'Root', 'Network' -Skip:(-not $canRun) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers/PSContainers.psd1') -Force
        $id = [guid]::NewGuid().ToString('N').Substring(0, 8)
        $ns = "psc-test-$($id)a"
        $ns2 = "psc-test-$($id)b"
        function Show([Parameter(ValueFromPipeline)] $InputObject) {
            begin { $all = [System.Collections.Generic.List[object]]::new() }
            process { $all.Add($InputObject) }
            end { $all | Out-String -Width 200 }
        }
    }

    AfterAll {
        if ($id) { Remove-NetNamespace -Name $ns, $ns2 -Confirm:$false -ErrorAction SilentlyContinue }
    }

    It 'New-NetNamespace creates it where ip netns sees it' {
        $text = New-NetNamespace -Name $ns | Show
        $text | Should -Match '(?m)^Name\s+Inode\s+Pids\s*$'
        $text | Should -Match "(?m)^$ns\s+\d+"
        Test-Path -LiteralPath "/run/netns/$ns" | Should -BeTrue
        (Get-NetNamespace -Name $ns).Name | Should -Be $ns
        # The loopback interface of a new namespace is up.
        (Get-NetworkLink -Namespace $ns -Name lo).State | Should -Not -Be 'DOWN'
    }

    It 'a second New-NetNamespace of the name is NetNamespaceExists, saying what to do' {
        $Error.Clear()
        New-NetNamespace -Name $ns -ErrorAction SilentlyContinue
        $Error[0].FullyQualifiedErrorId | Should -Be 'NetNamespaceExists,PSContainers.Cmdlets.NewNetNamespaceCommand'
        $Error[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        $Error[0].Exception.Message | Should -Match 'Remove-NetNamespace'
    }

    It 'creates a veth pair, brings it up, and shows it like ip link' {
        $null = New-NetNamespace -Name $ns2
        $first = New-VethPair -Namespace $ns -Name psv0 -PeerName psv1 -PeerNamespace $ns2
        $first.Name | Should -Be 'psv0'
        $null = Set-NetworkLink -Namespace $ns2 -Name psv1 -Up
        $null = Set-NetworkLink -Namespace $ns -Name psv0 -Up
        # The kernel reports the operational state once the carrier is seen on both ends.
        $deadline = [DateTime]::UtcNow.AddSeconds(10)
        while ((Get-NetworkLink -Namespace $ns -Name psv0).State -ne 'UP' -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
        $text = Get-NetworkLink -Namespace $ns | Show
        $text | Should -Match '(?m)^Name\s+State\s+MacAddress\s+Mtu\s+Kind\s+Master\s+Addresses\s*$'
        $text | Should -Match '(?m)^psv0\s+UP\s+([0-9a-f]{2}:){5}[0-9a-f]{2}\s+1500\s+veth\s'
        $text | Should -Not -Match '(?m)^psv1\s'
        (Get-NetworkLink -Namespace $ns2 -Name psv1).State | Should -Be 'UP'
    }

    It 'adds addresses and a route, and a ping crosses the pair' {
        $null = Add-NetworkAddress -Namespace $ns -Name psv0 -Address 10.231.0.1/24
        $null = Add-NetworkAddress -Namespace $ns2 -Name psv1 -Address 10.231.0.2/24
        $text = Get-NetworkAddress -Namespace $ns -Name psv0 | Show
        $text | Should -Match '(?m)^Name\s+Family\s+Address\s+Scope\s*$'
        $text | Should -Match '(?m)^psv0\s+IPv4\s+10\.231\.0\.1/24\s+global\s*$'

        $route = Add-NetworkRoute -Namespace $ns -Destination 10.232.0.0/16 -Gateway 10.231.0.2 -PassThru
        $route.Destination | Should -Be '10.232.0.0/16'
        (Get-NetworkRoute -Namespace $ns | Show) | Should -Match '(?m)^10\.232\.0\.0/16\s+10\.231\.0\.2\s+psv0\s'

        # From the first namespace to the address of the other end, in the other namespace.
        $ping = Invoke-NetNamespaceCommand -Name $ns -Command busybox, ping, -c1, -W2, 10.231.0.2
        $ping.ExitCode | Should -Be 0
        $ping.Output -join "`n" | Should -Match '1 packets received'
    }

    It 'lists the other end in the neighbor table after the ping (ip neigh)' {
        $neighbor = Get-NetworkNeighbor -Namespace $ns -Name psv0 | Where-Object Address -eq '10.231.0.2'
        $neighbor | Should -Not -BeNullOrEmpty
        $neighbor.MacAddress | Should -Be (Get-NetworkLink -Namespace $ns2 -Name psv1).MacAddress
    }

    # vlan and ipvlan links are not in this story: this test machine's kernel has neither 8021q nor
    # ipvlan (the cmdlets then say which CONFIG_ option and module are missing).
    It 'makes a bridge with a port, and a macvlan link on a parent' {
        $null = New-NetworkBridge -Namespace $ns2 -Name psbr0
        $null = New-VethPair -Namespace $ns2 -Name psv2 -PeerName psv3
        $null = Set-NetworkLink -Namespace $ns2 -Name psv2 -Master psbr0
        (Get-NetworkLink -Namespace $ns2 -Name psbr0).Kind | Should -Be 'bridge'
        (Get-NetworkLink -Namespace $ns2 -Name psv2).Master | Should -Be 'psbr0'

        (New-MacvlanLink -Namespace $ns2 -Name psmv0 -Parent psv3).Kind | Should -Be 'macvlan'
        $text = Get-NetworkLink -Namespace $ns2 | Show
        $text | Should -Match '(?m)^psbr0\s+\S+\s+\S+\s+1500\s+bridge\s'
        $text | Should -Match '(?m)^psv2\s+\S+\s+\S+\s+1500\s+veth\s+psbr0\s'
        $text | Should -Match '(?m)^psmv0\s+\S+\s+\S+\s+1500\s+macvlan\s'

        $Error.Clear()
        New-MacvlanLink -Namespace $ns2 -Name psmv9 -Parent psv9 -ErrorAction SilentlyContinue
        $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $Error[0].Exception.Message | Should -Match 'psv9'
    }

    It 'an address on a missing link is LinkNotFound, naming the namespace' {
        $Error.Clear()
        Add-NetworkAddress -Namespace $ns -Name psv9 -Address 10.231.9.1/24 -ErrorAction SilentlyContinue
        $Error[0].FullyQualifiedErrorId | Should -Be 'LinkNotFound,PSContainers.Cmdlets.AddNetworkAddressCommand'
        $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $Error[0].Exception.Message | Should -Match "psv9.*$ns.*Get-NetworkLink"
    }

    It 'removes the route, the address and a link, then the namespace' {
        Remove-NetworkRoute -Namespace $ns -Destination 10.232.0.0/16 -Confirm:$false
        Get-NetworkRoute -Namespace $ns | Where-Object Destination -eq '10.232.0.0/16' | Should -BeNullOrEmpty
        Remove-NetworkAddress -Namespace $ns2 -Name psv1 -Address 10.231.0.2/24 -Confirm:$false
        Get-NetworkAddress -Namespace $ns2 -Name psv1 | Where-Object Address -eq '10.231.0.2/24' | Should -BeNullOrEmpty
        Remove-NetworkLink -Namespace $ns -Name psv0 -Confirm:$false
        # A veth goes with its peer, in the other namespace too.
        Get-NetworkLink -Namespace $ns | Where-Object Name -eq 'psv0' | Should -BeNullOrEmpty
        Get-NetworkLink -Namespace $ns2 | Where-Object Name -eq 'psv1' | Should -BeNullOrEmpty
        Remove-NetNamespace -Name $ns, $ns2 -Confirm:$false
        Test-Path -LiteralPath "/run/netns/$ns" | Should -BeFalse
        Test-Path -LiteralPath "/run/netns/$ns2" | Should -BeFalse
        $Error.Clear()
        Get-NetNamespace -Name $ns -ErrorAction SilentlyContinue
        $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }
}
