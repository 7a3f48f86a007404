#Requires -Version 7.4
<#
.SYNOPSIS
    NICs on running containers (issues 16 and 18, lxc-device add/del with an interface):
    Add-ContainerNetworkInterface plugs a NIC into a running container, made and configured as a
    start makes one; Remove-ContainerNetworkInterface takes it out; -Persist records it in config.yaml.

.NOTES
    Needs Linux, root and the built module. Every bridge and parent link lives in the test's own
    network namespace (psc-test-nic-<guid>, removed in AfterAll, also when tests fail): no host
    interface is touched. One container is made with New-Container's default (user-namespaced),
    one with -Privileged.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
    $hasCriu = [bool](Get-Command criu -ErrorAction SilentlyContinue)
}

Describe 'NICs: add and remove network interfaces on running containers' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')
        $PSDefaultParameterValues['Get-NetworkLink:StorePath'] = $store
        $script:ns = "psc-test-nic-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $null = New-NetNamespace -Name $script:ns
        $null = Set-NetworkLink -Namespace $script:ns -Name lo -Up
        $null = New-NetworkBridge -Namespace $script:ns -Name psbr0
        $null = Add-NetworkAddress -Namespace $script:ns -Name psbr0 -Address 10.233.7.1/24
        $null = Set-NetworkLink -Namespace $script:ns -Name psbr0 -Up
        # A parent for macvlan links: one end of a veth pair, inside the namespace too.
        $null = New-VethPair -Namespace $script:ns -Name psup0 -PeerName psup1
        $null = Set-NetworkLink -Namespace $script:ns -Name psup0 -Up
        $script:box = New-TestName nic
        $script:priv = New-TestName nicp
        New-Container $script:box -Network @{ type = 'empty' } | Out-Null
        New-Container $script:priv -Privileged -Network @{ type = 'empty' } | Out-Null
        Start-Container $script:box, $script:priv | Out-Null
        function LinksIn([string] $name) { (Get-NetworkLink -Container $name).Name | Sort-Object }
        function NsLinks { (Get-NetworkLink -Namespace $script:ns).Name | Sort-Object }
    }

    AfterAll {
        Remove-TestStore
        if ($script:ns) { Remove-NetNamespace -Name $script:ns -Confirm:$false -ErrorAction SilentlyContinue }
    }

    It 'plugs a veth on a bridge into a running unprivileged container, which reaches the bridge' {
        (Get-Container $script:box).Mode | Should -Be 'Unprivileged'
        $pid0 = (Get-Container $script:box).Pid
        $nic = Add-ContainerNetworkInterface $script:box -Link psbr0 -LinkNamespace $script:ns -IPv4 10.233.7.2/24 -Mtu 1400
        $nic.InterfaceName | Should -Be 'eth0'
        $nic.Live | Should -BeTrue
        $nic.Persisted | Should -BeFalse
        $eth0 = Get-NetworkLink -Container $script:box -Name eth0
        $eth0.Mtu | Should -Be 1400
        $eth0.Addresses | Should -Contain '10.233.7.2/24'
        (Get-NetworkLink -Namespace $script:ns -Name $nic.HostName).Master | Should -Be 'psbr0'
        (Invoke-ContainerCommand $script:box -Command ping, -c1, -W3, 10.233.7.1).ExitCode | Should -Be 0
        (Get-Container $script:box).Pid | Should -Be $pid0
        (Get-Container $script:box).IPv4 | Should -Be @('10.233.7.2')
        $added = @(Get-ContainerEvent -Name $script:box -Kind NetworkInterfaceAdded)
        $added[-1].Details['interface'] | Should -Be 'eth0'
        $added[-1].Details['type'] | Should -Be 'veth'
        $added[-1].Details['link'] | Should -Be 'psbr0'
        # A NIC is not a device node: its own kind, not DeviceAdded.
        @(Get-ContainerEvent -Name $script:box -Kind DeviceAdded) | Should -BeNullOrEmpty
        # Not recorded: config.yaml has only its 'empty' network.
        (Get-ContainerConfig $script:box).Network.Type | Should -Be @('empty')
    }

    It 'takes it out again from the piped object: the pair is gone on both sides' {
        $nic = Add-ContainerNetworkInterface $script:box -Link psbr0 -LinkNamespace $script:ns -InterfaceName lan1
        $removed = $nic | Remove-ContainerNetworkInterface -PassThru
        $removed.InterfaceName | Should -Be 'lan1'
        $removed.Live | Should -BeTrue
        LinksIn $script:box | Should -Not -Contain 'lan1'
        NsLinks | Should -Not -Contain $nic.HostName
        (Get-ContainerEvent -Name $script:box -Kind NetworkInterfaceRemoved)[-1].Details['interface'] | Should -Be 'lan1'
    }

    It 'plugs a macvlan into a privileged container with its name and MAC; -WhatIf changes nothing' {
        Add-ContainerNetworkInterface $script:priv macvlan -Link psup0 -LinkNamespace $script:ns -InterfaceName mv0 -WhatIf
        LinksIn $script:priv | Should -Be @('lo')
        $nic = Add-ContainerNetworkInterface $script:priv macvlan -Link psup0 -LinkNamespace $script:ns -InterfaceName mv0 -HwAddress 00:16:3e:12:34:56 -IPv4 10.233.8.2/24
        $nic.Type | Should -Be 'macvlan'
        $mv = Get-NetworkLink -Container $script:priv -Name mv0
        $mv.Kind | Should -Be 'macvlan'
        $mv.MacAddress | Should -Be '00:16:3e:12:34:56'
        $mv.IsUp | Should -BeTrue
        Remove-ContainerNetworkInterface $script:priv mv0
        LinksIn $script:priv | Should -Be @('lo')
        NsLinks | Should -Contain 'psup0'
    }

    It '-Persist records it in config.yaml, and the next start has it; Remove -Persist takes it out' {
        $nic = Add-ContainerNetworkInterface $script:priv -Link psbr0 -LinkNamespace $script:ns -IPv4 10.233.7.3/24 -InterfaceName data0 -Persist
        $nic.Persisted | Should -BeTrue
        (Get-ContainerConfig $script:priv).Network.Type | Should -Be @('empty', 'veth')
        Restart-Container $script:priv
        (Get-NetworkLink -Container $script:priv -Name data0).Addresses | Should -Contain '10.233.7.3/24'
        (Invoke-ContainerCommand $script:priv -Command ping, -c1, -W3, 10.233.7.1).ExitCode | Should -Be 0
        Remove-ContainerNetworkInterface $script:priv data0 -Persist -Confirm:$false
        (Get-ContainerConfig $script:priv).Network.Type | Should -Be @('empty')
        LinksIn $script:priv | Should -Be @('lo')
    }

    It 'a stopped container takes only -Persist, which just records it' {
        $stopped = New-TestName nics
        New-Container $stopped -Network @{ type = 'empty' } | Out-Null
        $Error.Clear()
        Add-ContainerNetworkInterface $stopped -Link psbr0 -LinkNamespace $script:ns -ErrorAction SilentlyContinue
        $Error[0].FullyQualifiedErrorId | Should -Be 'ContainerNotRunning,PSContainers.Cmdlets.AddContainerNetworkInterfaceCommand'
        $Error[0].Exception.Message | Should -Match '-Persist'
        $nic = Add-ContainerNetworkInterface $stopped -Link psbr0 -LinkNamespace $script:ns -Persist
        $nic.Live | Should -BeFalse
        (Get-ContainerConfig $stopped).Network.Type | Should -Be @('empty', 'veth')
        Remove-ContainerNetworkInterface $stopped eth0 -Persist
        (Get-ContainerConfig $stopped).Network.Type | Should -Be @('empty')
    }

    It 'refuses a name taken inside and a network decided at start, leaving nothing behind' {
        $null = Add-ContainerNetworkInterface $script:box -Link psbr0 -LinkNamespace $script:ns -InterfaceName used0
        $before = NsLinks
        $Error.Clear()
        Add-ContainerNetworkInterface $script:box -Link psbr0 -LinkNamespace $script:ns -InterfaceName used0 -Persist -ErrorAction SilentlyContinue
        $Error[0].FullyQualifiedErrorId | Should -Be 'NicNameInUse,PSContainers.Cmdlets.AddContainerNetworkInterfaceCommand'
        $Error[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        NsLinks | Should -Be $before
        (Get-ContainerConfig $script:box).Network.Type | Should -Be @('empty')
        Add-ContainerNetworkInterface $script:box pasta -ErrorAction SilentlyContinue
        $Error[0].FullyQualifiedErrorId | Should -Be 'NicNotHotpluggable,PSContainers.Cmdlets.AddContainerNetworkInterfaceCommand'
        Remove-ContainerNetworkInterface $script:box nosuch0 -ErrorAction SilentlyContinue
        $Error[0].FullyQualifiedErrorId | Should -Be 'NicNotInContainer,PSContainers.Cmdlets.RemoveContainerNetworkInterfaceCommand'
        Remove-ContainerNetworkInterface $script:box used0
    }

    It 'a NIC plugged live goes into a checkpoint and comes back with its restore; the restored stop undoes it' -Skip:(-not $hasCriu) {
        $nic = Add-ContainerNetworkInterface $script:box -Link psbr0 -LinkNamespace $script:ns -InterfaceName ck0 -IPv4 10.233.7.9/24
        $mac = (Get-NetworkLink -Container $script:box -Name ck0).MacAddress
        $checkpoint = Checkpoint-Container $script:box -Path (Join-Path $root "ckpt-$script:box") -ErrorAction Stop
        NsLinks | Should -Not -Contain $nic.HostName
        $checkpoint | Restore-Container -ErrorAction Stop
        $ck0 = Get-NetworkLink -Container $script:box -Name ck0
        $ck0.Addresses | Should -Contain '10.233.7.9/24'
        $ck0.MacAddress | Should -Be $mac
        (Get-NetworkLink -Namespace $script:ns -Name $nic.HostName).Master | Should -Be 'psbr0'
        (Invoke-ContainerCommand $script:box -Command ping, -c1, -W3, 10.233.7.1).ExitCode | Should -Be 0
        Stop-Container $script:box -Kill
        NsLinks | Should -Not -Contain $nic.HostName
        # Never persisted: the next start has only config.yaml's network.
        Start-Container $script:box
        LinksIn $script:box | Should -Be @('lo')
    }

    It 'a stop undoes what was plugged live: no host end is left' {
        $nic = Add-ContainerNetworkInterface $script:box -Link psbr0 -LinkNamespace $script:ns -InterfaceName tmp0
        NsLinks | Should -Contain $nic.HostName
        Stop-Container $script:box -Kill
        NsLinks | Should -Not -Contain $nic.HostName
    }

    It 'completes container names for -Name' {
        $line = "Add-ContainerNetworkInterface -Name $($script:priv.Substring(0, 10))"
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Contain $script:priv
    }
}
