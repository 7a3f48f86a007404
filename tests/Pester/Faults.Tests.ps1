#Requires -Version 7.4
<#
.SYNOPSIS
    Pester 5 user stories of faults (issue 12): what a user sees when a config is hostile or broken,
    a restore is given damaged images, or a size is out of range. The xunit classes ConfigLimitsTests,
    CheckpointFaultTests and FaultAnswersTests test the same on the runtime, with the races and kills.

.NOTES
    Needs Linux, root and the built module in out/PSContainers; the restore story also needs CRIU 4.2+.
    Everything happens in a private store under /tmp/psc-test-<guid>, removed in AfterAll.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
    $hasCriu = $canRun -and [bool](Get-Command criu -ErrorAction SilentlyContinue)
    if (-not $canRun) { Write-Warning 'Fault tests skipped: they need root on Linux.' }
}

Describe 'Faults a user can meet' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')
        $id = [guid]::NewGuid().ToString('N').Substring(0, 8)
    }

    AfterAll {
        Remove-TestStore
    }

    It 'refuses a 10,000-level nested config.yaml quickly, at its line and column, without crashing pwsh' {
        $file = Join-Path $root 'deep.yaml'
        Set-Content -Path $file -Value ('init: { command: ' + ('[' * 10000) + (']' * 10000) + ' }')
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $err = $null
        New-Container "psct-deep-$id" -ConfigPath $file -ErrorVariable err -ErrorAction SilentlyContinue
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 5
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfig,*'
        $err[0].Exception.Message | Should -BeLike "${file}:1:80: lists and mappings are nested more than 64 levels deep*"
        Get-Container "psct-deep-$id" -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'refuses a billion-laughs alias bomb at the alias that crosses the limit' {
        $file = Join-Path $root 'laughs.yaml'
        $lines = @('init:', '  environment:', '    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]')
        $prev = 'a'
        foreach ($n in 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j') {
            $lines += "    ${n}: &$n [" + ((1..10 | ForEach-Object { "*$prev" }) -join ', ') + ']'
            $prev = $n
        }
        Set-Content -Path $file -Value $lines
        $err = $null
        New-Container "psct-lol-$id" -ConfigPath $file -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfig,*'
        $err[0].Exception.Message | Should -Match "^$([regex]::Escape($file)):\d+:\d+: alias '\*[a-j]' takes the document past 20000 YAML nodes"
    }

    It 'lists a store with one broken config: the others as usual, that one as Broken with the reason' {
        $good = New-Container "psct-good-$id"
        $bad = New-Container "psct-bad-$id"
        Set-Content -Path $bad.ConfigPath -Value ('init: { command: ' + ('[' * 10000) + (']' * 10000) + ' }')

        $all = Get-Container -WarningVariable warned -WarningAction SilentlyContinue
        ($all | Where-Object Name -eq $good.Name).State | Should -Be 'Stopped'
        $broken = $all | Where-Object Name -eq $bad.Name
        $broken.State | Should -Be 'Broken'
        $broken.Problem | Should -BeLike '*config.yaml:1:80: lists and mappings are nested more than 64 levels deep*'
        $warned.Message | Should -BeLike "Container '$($bad.Name)' is broken: *nested more than 64 levels*"

        # The table shows it as Broken; Format-List shows the Problem line (only for it).
        $table = Get-Container -WarningAction SilentlyContinue | Out-String -Width 200
        $table | Should -Match "$($bad.Name)\s+Broken"
        $table | Should -Match "$($good.Name)\s+Stopped"
        (Get-Container $bad.Name -WarningAction SilentlyContinue | Format-List | Out-String -Width 300) | Should -Match 'Problem\s+: .*nested more than 64 levels'
        (Get-Container $good.Name | Format-List | Out-String) | Should -Not -Match 'Problem'
        (Get-Container -State Broken -WarningAction SilentlyContinue).Name | Should -Be $bad.Name

        # Starting it says why; removing it works.
        { Start-Container $bad.Name -ErrorAction Stop } | Should -Throw '*nested more than 64 levels*'
        Remove-Container $bad.Name -Confirm:$false
        Get-Container -WarningVariable none -WarningAction SilentlyContinue | Where-Object State -eq 'Broken' | Should -BeNullOrEmpty
        $none | Should -BeNullOrEmpty
    }

    It 'takes sizes as PowerShell numbers, and refuses one past 1 EiB instead of meaning "no limit"' {
        { New-Container "psct-huge-$id" -MemoryLimit 1e30 -ErrorAction Stop } | Should -Throw '*is not a size in bytes*'
        Get-Container "psct-huge-$id" -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $c = New-Container "psct-huge-$id" -MemoryLimit 256MB
        $c.MemoryLimit | Should -Be 256MB
        { Set-CgroupLimit $c.Name -MemoryMax 2e18 -Persist -ErrorAction Stop } | Should -Throw '*MemoryMax*'
        (Get-Container $c.Name).MemoryLimit | Should -Be 256MB
    }

    It 'gives up a restore from a damaged memory image within -Timeout, leaving nothing behind' -Skip:(-not $hasCriu) {
        $marker = "marker-$id"
        $c = New-Container "psct-dmg-$id" -Command /bin/sh, -c, "while true; do sleep 0.1; done # $marker"
        Start-Container $c.Name
        Start-Sleep -Milliseconds 500
        $dir = Join-Path $root 'ckpt-dmg'
        $null = Checkpoint-Container $c.Name -Path $dir
        $pages = Get-ChildItem $dir -Filter 'pages-*.img' | Sort-Object Length -Descending | Select-Object -First 1
        $stream = [IO.File]::Open($pages.FullName, 'Open'); $stream.SetLength(1000); $stream.Dispose()

        $clock = [Diagnostics.Stopwatch]::StartNew()
        $err = $null
        Restore-Container $dir -Timeout 8 -ErrorVariable err -ErrorAction SilentlyContinue
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 40
        $err[0].FullyQualifiedErrorId | Should -BeLike 'CriuTimeout,*'
        (Get-Container $c.Name).State | Should -Be 'Stopped'
        Get-Content /proc/self/mountinfo | Where-Object { $_ -like "*$dir*" } | Should -BeNullOrEmpty
        Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$' | Where-Object {
            try { (Get-Content -Raw "/proc/$($_.Name)/cmdline" -ErrorAction Stop) -like "*$marker*" } catch { $false }
        } | Should -BeNullOrEmpty
        # The lock is free: an ordinary command on the container runs at once.
        Start-Container $c.Name -PassThru | Select-Object -ExpandProperty State | Should -Be 'Running'
        Stop-Container $c.Name -Kill
    }
}
