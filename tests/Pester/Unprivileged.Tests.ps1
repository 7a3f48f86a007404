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
        # The rootfs keeps the container's own ids (idmapped at start): root-owned on disk.
        (& stat -c '%u' $c.RootfsPath) | Should -Be '0'
        (Get-Content "/proc/$($c.Pid)/status" | Where-Object { $_ -like 'Uid:*' }) -split '\s+' | Select-Object -Index 1 | Should -Be "$($script:start)"
        (Invoke-ContainerCommand $name -Command id, -u).Output | Should -Be '0'
        Remove-Container $name -Force
    }

    It 'tells a story of an idmapped rootfs: written inside, cloned, exported and imported with container ids' {
        $name = "psct-idm-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $c = New-Container $name -ConfigPath $script:config -WarningVariable warned
        $warned | Should -BeNullOrEmpty
        Get-Content $c.ConfigPath | Should -Contain '  ids: idmapped'
        Start-Container $name
        (Invoke-ContainerCommand $name -Command sh, -c, 'stat -c %u /bin/busybox; mkdir /home/u; touch /home/u/f; chown -R 1000:1000 /home/u; stat -c %u /home/u/f').Output |
            Should -Be @('0', '1000')
        Stop-Container $name -Kill
        # The host sees what the container gave: 1000, not the host range.
        (& stat -c '%u' (Join-Path $c.RootfsPath 'home/u/f')) | Should -Be '1000'

        # A snapshot clone is an overlay layer over the same tree, and works as made.
        $clone = Copy-Container $name -NewName "$name-s" -Snapshot
        (Get-Content $clone.ConfigPath) | Should -Contain '  backend: overlay'
        Start-Container $clone.Name
        (Invoke-ContainerCommand $clone.Name -Command sh, -c, 'echo more >> /home/u/f; stat -c %u /home/u/f').Output | Should -Be '1000'
        Stop-Container $clone.Name -Kill

        # Export holds the container's ids; the import (on the same range) extracts them as they are.
        $archive = Join-Path $script:root 'idm.tar'
        Export-Container $name -Path $archive
        (& tar --numeric-owner -tvf $archive | Where-Object { $_ -like '*rootfs/home/u/f' }) | Should -Match ' 1000/1000 '
        Remove-Container $clone.Name -Force
        Remove-Container $name -Force
        $i = Import-Container $archive -Name "$name-i" -KeepHostAccess -WarningAction SilentlyContinue
        # Root's plain import is privileged (or unprivileged where that is the default): ids as archived either way.
        (& stat -c '%u' (Join-Path $i.RootfsPath 'home/u/f')) | Should -Be '1000'
        Remove-Container "$name-i" -Force
    }
}
