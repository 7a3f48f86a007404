#Requires -Version 7.4
<#
.SYNOPSIS
    Pester 5 version of tests/PSContainers.Tests/UnprivilegedContainerTests.cs: root's
    user-namespaced containers (an idMap in config.yaml) run as an unprivileged host uid.

.NOTES
    Needs Linux, root and the built module in out/PSContainers. Works in a private store under
    /tmp/psc-test-<guid>, removed in AfterAll also when tests fail. Root writes the maps itself, so
    the test range needs no /etc/subuid line.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'Unprivileged containers' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers') -Force
        $script:root = Join-Path ([IO.Path]::GetTempPath()) "psc-test-$([guid]::NewGuid().ToString('N').Substring(0, 12))"
        $script:store = Join-Path $script:root 'store'
        New-Item -ItemType Directory -Path $script:store | Out-Null
        # A copy in this scope: the caller's session keeps its own $PSDefaultParameterValues.
        $PSDefaultParameterValues = $PSDefaultParameterValues.Clone()
        $PSDefaultParameterValues['*-Container*:StorePath'] = $script:store
        $script:start = 1500000000 + (Get-Random -Maximum 4000) * 65536
        $script:config = Join-Path $script:root 'idmap.yaml'
        Set-Content -Path $script:config -Value "idMap: [u 0 $($script:start) 65536, g 0 $($script:start) 65536]"
    }

    AfterAll {
        Get-Container -StorePath $script:store -ErrorAction SilentlyContinue | Remove-Container -Force -ErrorAction SilentlyContinue
        Remove-Item -Recurse -Force $script:root -ErrorAction SilentlyContinue
    }

    It 'runs init as the mapped uid, with uid 0 inside' {
        $name = "psct-uns-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $c = New-Container $name -ConfigPath $script:config | Start-Container -PassThru
        (& stat -c '%u' $c.RootfsPath) | Should -Be "$($script:start)"
        (Get-Content "/proc/$($c.Pid)/status" | Where-Object { $_ -like 'Uid:*' }) -split '\s+' | Select-Object -Index 1 | Should -Be "$($script:start)"
        (Invoke-ContainerCommand $name -Command id, -u).Output | Should -Be '0'
        Remove-Container $name -Force
    }
}
