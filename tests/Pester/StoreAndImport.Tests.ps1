#Requires -Version 7.4
<#
.SYNOPSIS
    The store and Import-Container as a user meets them (issue 11 items 3, 4, 9; issue 13's
    Import-Container without -Name): store permissions against a real non-root host user, the
    untrusted-config policy with its warnings and -KeepHostAccess, size caps and corrupt headers.

.NOTES
    Needs Linux, root, GNU tar, useradd/userdel and setpriv, and the built module in out/PSContainers.
    Works in a private store under /tmp/psc-test-<guid> and a host user psc-test-<hex>, both removed
    in AfterAll also when tests fail; $PSDefaultParameterValues is restored.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'The store and Import-Container' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers') -Force
        $script:root = Join-Path ([IO.Path]::GetTempPath()) "psc-test-$([guid]::NewGuid().ToString('N').Substring(0, 12))"
        $script:store = Join-Path $script:root 'store'
        $script:other = Join-Path $script:root 'other'
        New-Item -ItemType Directory -Path $script:store | Out-Null
        $script:savedDefaults = $PSDefaultParameterValues.Clone()
        $PSDefaultParameterValues['*-Container*:StorePath'] = $script:store
        $script:user = "psc-test-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        & useradd -M -s /bin/sh $script:user
        $script:uid = & id -u $script:user
        function script:AsUser([string]$command) {
            $out = & setpriv "--reuid=$($script:uid)" "--regid=$($script:uid)" --init-groups --reset-env /bin/sh -c "$command" 2>&1
            [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = ($out -join "`n") }
        }
        function script:NewName([string]$hint) { "psct-$hint-$([guid]::NewGuid().ToString('N').Substring(0, 8))" }
        # A busybox container's archive, and a copy whose config bind-mounts a host directory.
        $script:base = NewName 'base'
        New-Container $script:base | Out-Null
        $script:archive = Join-Path $script:root 'base.tar'
        Export-Container $script:base $script:archive
        $script:hostDir = Join-Path $script:root 'hostdir'
        New-Item -ItemType Directory -Path $script:hostDir | Out-Null
        $work = Join-Path $script:root 'edit'
        New-Item -ItemType Directory -Path $work | Out-Null
        & tar -C $work -xf $script:archive config.yaml
        $yaml = (Get-Content (Join-Path $work 'config.yaml')) -ne 'mounts: []'
        Set-Content (Join-Path $work 'config.yaml') -Value ($yaml + @('mounts:', "  - source: $($script:hostDir)", '    target: /hostdir'))
        $script:evil = Join-Path $script:root 'evil.tar'
        Copy-Item $script:archive $script:evil
        & tar --delete -f $script:evil config.yaml
        & tar -C $work -rf $script:evil config.yaml
    }

    AfterAll {
        foreach ($s in $script:store, $script:other) {
            Get-Container -StorePath $s -ErrorAction SilentlyContinue | Remove-Container -Force -ErrorAction SilentlyContinue
        }
        & userdel -f $script:user 2>$null
        Remove-Item -Recurse -Force $script:root -ErrorAction SilentlyContinue
        $PSDefaultParameterValues.Clear()
        foreach ($k in $script:savedDefaults.Keys) { $PSDefaultParameterValues[$k] = $script:savedDefaults[$k] }
    }

    It 'keeps host users out of containers: the store is 0711, a container 0700' {
        $c = Get-Container $script:base
        (& stat -c '%a' $script:store) | Should -Be '711'
        (& stat -c '%a' $c.Path) | Should -Be '700'
        (AsUser "ls $($script:store)").ExitCode | Should -Not -Be 0
        $r = AsUser "cat $($c.RootfsPath)/etc/passwd"
        $r.ExitCode | Should -Not -Be 0
        $r.Output | Should -Match 'Permission denied'
        # The user can pass through the parents: it is the container directory that stops it.
        (AsUser "test -x $($script:store)").ExitCode | Should -Be 0
    }

    It 'tightens a store an older version left open, with a warning that says what changed' {
        $c = Get-Container $script:base
        & chmod 755 $script:store $c.Path
        (AsUser "cat $($c.RootfsPath)/etc/passwd").ExitCode | Should -Be 0
        Get-Container -WarningVariable w -WarningAction SilentlyContinue | Out-Null
        "$w" | Should -Match 'tightened'
        "$w" | Should -Match "container directory '$($script:base)' 0755 -> 0700"
        (AsUser "cat $($c.RootfsPath)/etc/passwd").ExitCode | Should -Not -Be 0
        Get-Container -WarningVariable again -WarningAction SilentlyContinue | Out-Null
        $again | Should -BeNullOrEmpty
    }

    It 'imports without -Name under the name the archive records' {
        $c = Import-Container $script:archive -StorePath $script:other
        $c.Name | Should -Be $script:base
        $c.StorePath | Should -Be $script:other
    }

    It 'removes a bind mount from an imported config, with a warning naming the key' {
        $name = NewName 'plain'
        # Privileged: the escape would work in a privileged container; the removal is what stops it.
        $c = Import-Container $script:evil $name -Privileged -WarningVariable w -WarningAction SilentlyContinue
        ($w | Where-Object { "$_" -like 'Removed mounts`[0`]*' }) | Should -Not -BeNullOrEmpty
        "$w" | Should -Match '-KeepHostAccess'
        Get-Content $c.ConfigPath | Should -Not -Contain "  - source: $($script:hostDir)"
        Start-Container $name
        (Invoke-ContainerCommand $name -Command /bin/sh, -c, 'echo pwned > /hostdir/x').ExitCode | Should -Not -Be 0
        Test-Path (Join-Path $script:hostDir 'x') | Should -BeFalse
    }

    It 'keeps it with -KeepHostAccess -Force, and then the container writes on the host' {
        $name = NewName 'keep'
        Import-Container $script:evil $name -KeepHostAccess -Force -Privileged -WarningVariable w -WarningAction SilentlyContinue | Start-Container
        "$w" | Should -Match 'Kept mounts\[0\]'
        (Invoke-ContainerCommand $name -Command /bin/sh, -c, 'echo pwned > /hostdir/x').ExitCode | Should -Be 0
        Get-Content (Join-Path $script:hostDir 'x') | Should -Be 'pwned'
        Remove-Item (Join-Path $script:hostDir 'x')
    }

    It 'documents -KeepHostAccess and -MaximumSize, and -Name is optional' {
        $help = Get-Help Import-Container -Full | Out-String
        $help | Should -Match 'KeepHostAccess'
        $help | Should -Match 'MaximumSize'
        (Get-Command Import-Container).Parameters['Name'].Attributes.Where({ $_ -is [Parameter] }).Mandatory | Should -Not -Contain $true
    }

    It 'refuses a gzip bomb over -MaximumSize before writing anything' {
        $dir = Join-Path $script:root 'bomb'
        New-Item -ItemType Directory -Path (Join-Path $dir 'rootfs') | Out-Null
        & head -c 64M /dev/zero > (Join-Path $dir 'rootfs/zeros')
        $bomb = Join-Path $script:root 'bomb.tar.gz'
        & tar -C $dir -czf $bomb rootfs
        (Get-Item $bomb).Length | Should -BeLessThan 1MB
        { Import-Container $bomb -Name psct-bomb -MaximumSize 16MB -ErrorAction Stop } | Should -Throw
        $Error[0].FullyQualifiedErrorId | Should -Be 'ArchiveTooLarge,PSContainers.Cmdlets.ImportContainerCommand'
        $Error[0].CategoryInfo.Category | Should -Be 'LimitsExceeded'
        Test-Path (Join-Path $script:store 'psct-bomb') | Should -BeFalse
    }

    It 'reports a malformed PAX uid as ArchiveCorrupt naming the entry' {
        $dir = Join-Path $script:root 'pax'
        New-Item -ItemType Directory -Path (Join-Path $dir 'rootfs') | Out-Null
        Set-Content (Join-Path $dir 'rootfs/f') 'x'
        $pax = Join-Path $script:root 'pax.tar'
        & tar --format=pax --pax-option='uid:=abc' -C $dir -cf $pax rootfs 2>$null
        { Import-Container $pax -Name psct-pax -ErrorAction Stop } | Should -Throw
        $Error[0].FullyQualifiedErrorId | Should -Be 'ArchiveCorrupt,PSContainers.Cmdlets.ImportContainerCommand'
        $Error[0].TargetObject | Should -Be 'rootfs/'
        $Error[0].Exception.Message | Should -Match 'uid=abc'
    }
}
