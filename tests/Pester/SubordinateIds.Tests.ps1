#Requires -Version 7.4
<#
.SYNOPSIS
    Pester 5 tests of the subordinate-id cmdlets and Test-ContainerHost: the user stories of
    tests/PSContainers.Tests/SubordinateIdCmdletTests.cs, driven from pwsh.

.NOTES
    Needs Linux, root, shadow-utils (useradd, userdel, getsubids from uidmap) and the built module
    in out/PSContainers. Creates a real user psc-test-<guid> and gives it ranges in the REAL
    /etc/subuid and /etc/subgid; AfterAll removes the ranges and the user, also when tests fail,
    and the files end byte-identical to before.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0') -and [bool](Get-Command useradd, getsubids -ErrorAction SilentlyContinue)
    if (-not $canRun) {
        Write-Warning 'Subordinate-id tests skipped: they need root on Linux with useradd and getsubids (apt-get install passwd uidmap).'
    }
}

Describe 'Subordinate ids and host check' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers/PSContainers.psd1') -Force -ErrorAction Stop
        $subuidBefore = (Get-FileHash -LiteralPath /etc/subuid).Hash
        $subgidBefore = (Get-FileHash -LiteralPath /etc/subgid).Hash
        $user = 'psc-test-' + [guid]::NewGuid().ToString('N').Substring(0, 8)
        # No automatic allocation by useradd: the test decides what the files get.
        & useradd -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 -m -s /bin/sh $user
        if ($LASTEXITCODE -ne 0) { throw "useradd $user failed" }
    }

    AfterAll {
        if (-not (Get-Variable -Name user -ValueOnly -ErrorAction SilentlyContinue)) { return }
        Remove-SubordinateIdRange -User $user -Confirm:$false -ErrorAction SilentlyContinue
        & userdel -r -f $user 2>$null
    }

    It 'fails the preflight for a user without ranges, and says what to do' {
        $finding = Test-ContainerHost -User $user | Where-Object Name -eq 'subuid range'
        "$($finding.Status)" | Should -Be 'Fail'
        $finding.Remedy | Should -BeLike "*Add-SubordinateIdRange -User $user*"
    }

    It 'writes nothing with -WhatIf' {
        Add-SubordinateIdRange -User $user -WhatIf | Should -BeNullOrEmpty
        (Get-FileHash -LiteralPath /etc/subuid).Hash | Should -Be $subuidBefore
    }

    It 'adds a free range of 65536 uids and gids that getsubids reads' {
        $ranges = Add-SubordinateIdRange -User $user
        ($ranges | ForEach-Object { "$($_.Kind)" }) | Should -Be @('Uid', 'Gid')
        ($ranges | ForEach-Object { $_.Count }) | Should -Be @(65536, 65536)
        $start = $ranges[0].Start
        $ranges[1].Start | Should -Be $start
        (& getsubids $user) | Should -Be "0: $user $start 65536"
        (& getsubids -g $user) | Should -Be "0: $user $start 65536"
        (Test-ContainerHost -User $user | Where-Object Name -like 'sub?id range' | ForEach-Object { "$($_.Status)" }) | Should -Be @('Pass', 'Pass')
    }

    It 'keeps the range when added again without -Start' {
        $before = (Get-FileHash -LiteralPath /etc/subuid).Hash
        Add-SubordinateIdRange -User $user | Out-Null
        (Get-FileHash -LiteralPath /etc/subuid).Hash | Should -Be $before
    }

    It 'refuses an overlapping range with a precise error' {
        $taken = (Get-SubordinateIdRange -User $user -Kind Uid).Start
        Add-SubordinateIdRange -User root -Kind Uid -Start ($taken + 5) -Count 10 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'SubordinateIdRangeOverlap,*'
    }

    It 'removes the ranges from the pipeline and leaves the files byte-identical' {
        Get-SubordinateIdRange -User $user | Remove-SubordinateIdRange -Confirm:$false
        (Get-FileHash -LiteralPath /etc/subuid).Hash | Should -Be $subuidBefore
        (Get-FileHash -LiteralPath /etc/subgid).Hash | Should -Be $subgidBefore
    }

    It 'reports this host like lxc-checkconfig, with a remedy for everything that is not a pass' {
        $findings = Test-ContainerHost
        "$(($findings | Where-Object Name -eq 'user namespace').Status)" | Should -Be 'Pass'
        "$(($findings | Where-Object Name -eq 'psc-helper').Status)" | Should -Be 'Pass'
        $findings | Where-Object Status -ne 'Pass' | ForEach-Object { $_.Remedy | Should -Not -BeNullOrEmpty }
    }
}
