#Requires -Version 7.4
<#
.SYNOPSIS
    Pester 5 part of tests/PSContainers.Tests/UserNicTests.cs: root installs psc-usernic
    privileged (file capability, or setuid) and Test-ContainerHost reports it.

.NOTES
    Needs Linux, root, getcap (libcap2-bin) and the built module in out/PSContainers. Installs only
    under /tmp/psc-test-<guid>, removed in AfterAll. The non-root user's container with a veth on a
    granted bridge is the xunit story (it needs a real second account), and so are its hot-plugged
    veth brought up by psc-helper nic-up; here nic-up runs as root on a namespace the test makes
    (unshare -n), joining only its network namespace (the user namespace is root's own).
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'psc-usernic installation' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers') -Force
        $script:root = Join-Path ([IO.Path]::GetTempPath()) "psc-test-$([guid]::NewGuid().ToString('N').Substring(0, 12))"
    }

    AfterAll {
        $env:PSC_USERNIC = $null
        Remove-Item -Recurse -Force $script:root -ErrorAction SilentlyContinue
    }

    It 'changes nothing with -WhatIf' {
        $path = Join-Path $script:root 'whatif/psc-usernic'
        Install-ContainerUserNic -Path $path -WhatIf
        Test-Path $path | Should -BeFalse
    }

    It 'installs a root-owned copy with cap_net_admin, which Test-ContainerHost accepts' {
        $path = Join-Path $script:root 'cap/psc-usernic'
        $file = Install-ContainerUserNic -Path $path -Confirm:$false -PassThru
        $file.FullName | Should -Be $path
        (& getcap $path) | Should -Match 'cap_net_admin=ep'
        (& stat -c '%u %a' $path) | Should -Be '0 755'
        $env:PSC_USERNIC = $path
        (Test-ContainerHost | Where-Object Name -eq 'psc-usernic').Status | Should -Be 'Pass'
    }

    It 'installs setuid root with -Setuid' {
        $path = Join-Path $script:root 'suid/psc-usernic'
        Install-ContainerUserNic -Path $path -Setuid -Confirm:$false
        (& stat -c '%u %a' $path) | Should -Be '0 4755'
    }

    It 'brings up a link with psc-helper nic-up only in the recorded process''s own network namespace' {
        $ns = [Diagnostics.Process]::Start('unshare', [string[]]@('-n', 'sleep', '120'))
        try {
            for ($i = 0; $i -lt 50 -and (& readlink "/proc/$($ns.Id)/ns/net") -eq (& readlink /proc/self/ns/net); $i++) { Start-Sleep -Milliseconds 100 }
            $start = [PSContainers.Runtime.Native.Sys]::ProcessStartTime($ns.Id)
            function Invoke-NicUp([int] $p, [ulong] $s, [string[]] $links) {
                $spec = [PSContainers.Runtime.Namespaces.NicUpSpec]::new()
                $spec.TargetPid = $p
                $spec.TargetStartTime = $s
                foreach ($l in $links) { $spec.LinksUp.Add($l) }
                [PSContainers.Runtime.Launcher.PscHelper]::Run($spec)
            }
            function Get-LoFlags { (& nsenter -t $ns.Id -n ip -o link show lo) -replace '^[^<]*<([^>]*)>.*$', '$1' }
            Get-LoFlags | Should -Not -Match '(^|,)UP(,|$)'
            $hostile = Invoke-NicUp $ns.Id $start @('lo/../x')
            $hostile.ExitCode | Should -Be 125
            $hostile.Error -join ' ' | Should -Match "'lo/../x' is not a valid interface name"
            $own = Invoke-NicUp $PID ([PSContainers.Runtime.Native.Sys]::ProcessStartTime($PID)) @('lo')
            $own.ExitCode | Should -Be 125
            $own.Error -join ' ' | Should -Match 'own network namespace'
            (Invoke-NicUp $ns.Id ($start + 1) @('lo')).ExitCode | Should -Be 125
            Get-LoFlags | Should -Not -Match '(^|,)UP(,|$)'
            (Invoke-NicUp $ns.Id $start @('lo')).ExitCode | Should -Be 0
            Get-LoFlags | Should -Match '(^|,)UP(,|$)'
        }
        finally { $ns.Kill(); $ns.WaitForExit() }
    }
}
