#Requires -Version 7.4
<#
.SYNOPSIS
    Pester 5 part of tests/PSContainers.Tests/UserNicTests.cs: root installs psc-usernic
    privileged (file capability, or setuid) and Test-ContainerHost reports it.

.NOTES
    Needs Linux, root, getcap (libcap2-bin) and the built module in out/PSContainers. Installs only
    under /tmp/psc-test-<guid>, removed in AfterAll. The non-root user's container with a veth on a
    granted bridge is the xunit story (it needs a real second account).
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
}
