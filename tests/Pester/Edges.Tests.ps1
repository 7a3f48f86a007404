#Requires -Version 7.4
<#
.SYNOPSIS
    Pester 5 stories of the rough edges found walking through the README in real pwsh (issue 13),
    and the console log's escape sequences (issue 11): what a user sees at the prompt.

.NOTES
    Needs Linux, root and the built module in out/PSContainers. Everything happens in a private
    store under /tmp/psc-test-<guid> (TestStore.ps1); AfterAll removes its containers, jobs, network
    namespace, cgroup parent and directory, also when tests fail.
    The checkpoint -AsJob story also needs criu 4.2+ (.ci/install-criu).
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
    $hasCriu = $canRun -and [bool](Get-Command criu -ErrorAction SilentlyContinue)
    if (-not $canRun) { Write-Warning 'Edge tests skipped: they need root on Linux.' }
}

Describe 'Rough edges of the walk-through' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')
        $PSDefaultParameterValues['Get-NetworkLink:StorePath'] = $store
        $netns = "psct-ns-$([guid]::NewGuid().ToString('N').Substring(0, 8))"

        function Get-Completion([string] $Line) {
            (TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches.CompletionText
        }
    }

    AfterAll {
        Get-Job | Where-Object PSJobTypeName -eq 'PSContainersJob' | Remove-Job -Force -ErrorAction SilentlyContinue
        Remove-NetNamespace $netns -Confirm:$false -ErrorAction SilentlyContinue
        Remove-TestStore -OtherStore (Join-Path $root 'other')
    }

    It 'Get-ContainerCheckpoint /srv/ckpt/* lists the checkpoints the wildcard names, skipping the rest' {
        $ckpt = Join-Path $root 'ckpt'
        foreach ($c in 'web1', 'w2', 'odd[1]') {
            $dir = New-Item -ItemType Directory -Path (Join-Path $ckpt $c) -Force
            $manifest = [PSContainers.Runtime.Checkpoint.CheckpointManifest]::new()
            $manifest.Container = 'web1'
            $manifest.Time = [DateTimeOffset]::Now
            $manifest.Save($dir.FullName)
        }
        $null = New-Item -ItemType Directory -Path (Join-Path $ckpt 'notes') -Force
        Set-Content (Join-Path $ckpt 'README.txt') 'not a checkpoint'

        $found = Get-ContainerCheckpoint "$ckpt/*" -ErrorVariable err
        $err | Should -BeNullOrEmpty
        @($found.Path | Split-Path -Leaf) | Should -Be @('odd[1]', 'w2', 'web1')
        (Get-ContainerCheckpoint "$ckpt/w*").Count | Should -Be 2
        Get-ContainerCheckpoint "$ckpt/nothing*" -ErrorVariable none | Should -BeNullOrEmpty
        $none | Should -BeNullOrEmpty
        (Get-ContainerCheckpoint -LiteralPath (Join-Path $ckpt 'odd[1]')).Container | Should -Be 'web1'
        (Get-ChildItem $ckpt -Directory -Filter 'w*' | Get-ContainerCheckpoint).Count | Should -Be 2
        # A literal directory that is no checkpoint is still an error.
        Get-ContainerCheckpoint (Join-Path $ckpt 'notes') -ErrorAction SilentlyContinue -ErrorVariable bad
        $bad[0].FullyQualifiedErrorId | Should -BeLike 'CheckpointNotFound,*'
    }

    It 'Test-ContainerHost reads criu from $env:PSCONTAINERS_CRIU, the variable checkpointing reads' {
        $saved = $env:PSCONTAINERS_CRIU
        try {
            $env:PSCONTAINERS_CRIU = Join-Path $root 'no-such-criu'
            $finding = Test-ContainerHost | Where-Object Name -eq 'criu'
            $finding.Status | Should -Be 'Warn'
            $finding.Detail | Should -BeLike '*$PSCONTAINERS_CRIU*'
        } finally { $env:PSCONTAINERS_CRIU = $saved }
    }

    It 'Export-Container -PassThru returns the archive described, with a view, that Import-Container takes' {
        $name = New-TestName 'exp'
        New-Container $name -ErrorAction Stop | Out-Null
        $archive = Export-Container $name (Join-Path $root "$name.tar.zst") -PassThru -ErrorAction Stop
        $archive | Should -BeOfType ([PSContainers.Runtime.Storage.ContainerArchiveInfo])
        $archive.Container | Should -Be $name
        $archive.Compression | Should -Be 'zstd'
        $archive.Size | Should -Be (Get-Item $archive.Path).Length
        $archive.Duration | Should -BeGreaterThan ([TimeSpan]::Zero)
        $text = $archive | Out-String -Width 200
        $text | Should -Match "Container\s+Size\s+Compression\s+Duration\s+Path"
        $text | Should -Match ([regex]::Escape($name) + '\s+\d+(\.\d)?[KM]\s+zstd\s+\d+\.\d s\s+' + [regex]::Escape($archive.Path))
        $copy = New-TestName 'imp'
        ($archive | Import-Container -Name $copy -ErrorAction Stop).Name | Should -Be $copy
    }

    It 'Get-Container sizes its table to the names, and keeps Name and State in a narrow terminal' {
        $long = 'psct-' + ('n' * 50) + [guid]::NewGuid().ToString('N').Substring(0, 8)
        New-Container $long -ErrorAction Stop | Out-Null
        $wide = Get-Container $long | Out-String -Width 200
        $wide | Should -Match ([regex]::Escape($long) + '\s+Stopped\s')
        $wide | Should -Match 'Template\s+Memory\s+Mode\s+HostIds\s+Created'
        $wide | Should -Match 'Unprivileged\s+\d+-\d+\s'
        $narrow = Get-Container $long | Out-String -Width 75
        $narrow | Should -Match ([regex]::Escape($long) + '\s+Stopped')
        $narrow | Should -Not -Match 'Created'
    }

    It 'a stop the user asked for reads as Requested, not as a crash; an init that failed says so' {
        $name = New-TestName 'stop'
        New-Container $name -ErrorAction Stop | Start-Container -ErrorAction Stop
        $stopped = Stop-Container $name -Timeout 20 -PassThru -ErrorAction Stop
        $stopped.StopReason | Should -Be 'Requested'
        $stopped.ExitCode | Should -BeNullOrEmpty
        $stopped.ExitSignal | Should -BeNullOrEmpty
        ($stopped | Format-List | Out-String) | Should -Match 'StopReason\s*: Requested'
        (Get-Container $name | Out-String -Width 200) | Should -Match ([regex]::Escape($name) + '\s+Stopped\s')

        $bad = New-TestName 'bad'
        New-Container $bad -Command /bin/sh, -c, 'exit 3' -ErrorAction Stop | Start-Container -ErrorAction Stop
        Wait-Container $bad -State Stopped -Timeout 20 | Out-Null
        (Get-Container $bad | Out-String -Width 200) | Should -Match ([regex]::Escape($bad) + '\s+Stopped \(Failed\)')
        (Get-Container $bad).ExitCode | Should -Be 3
    }

    It 'Stop-Container says when it runs out of time and kills (a warning, and -Verbose)' {
        $name = New-TestName 'stubborn'
        New-Container $name -Command /bin/sh, -c, 'trap "" USR2 TERM INT; while :; do sleep 1; done' -ErrorAction Stop | Start-Container -ErrorAction Stop
        $verbose = Stop-Container $name -Timeout 1 -Verbose -WarningVariable warn -WarningAction SilentlyContinue 4>&1
        "$warn" | Should -BeLike "*did not stop within 1 s of SIGUSR2: killing every process with SIGKILL*"
        ($verbose | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n" | Should -Match 'SIGUSR2 to init'
        (Get-Container $name).StopReason | Should -Be 'Killed'
    }

    It 'unlimited values show as max everywhere, and scripts can compare them' {
        $free = New-TestName 'free'
        $capped = New-TestName 'capped'
        New-Container $free -ErrorAction Stop | Start-Container -ErrorAction Stop
        New-Container $capped -ErrorAction Stop | Start-Container -ErrorAction Stop
        Set-CgroupLimit $capped -PidsMax 50 -MemoryMax 64MB -ErrorAction Stop
        $u = Measure-Container $free
        $c = Measure-Container $capped
        ($u | Select-Object MemoryMax, PidsMax | Out-String) | Should -Match 'max\s+max'
        ($u | Format-List | Out-String) | Should -Match 'PidsMax\s+: max'
        ($u | Format-List | Out-String) | Should -Not -Match '9223372036854775807'
        $u.PidsMax -eq 'max' | Should -BeTrue
        $u.MemoryMax.IsUnlimited | Should -BeTrue
        $u.MemoryMax -gt 64MB | Should -BeTrue
        $c.MemoryMax -eq 64MB | Should -BeTrue
        $c.PidsMax -lt 100 | Should -BeTrue
        [long]$c.PidsMax | Should -Be 50
    }

    It 'Get-CgroupLimit shows unlimited values as max in Format-List and Select-Object *, typed so that scripts compare them' {
        $free = New-TestName 'lfree'
        $capped = New-TestName 'lcap'
        New-Container $free -ErrorAction Stop | Start-Container -ErrorAction Stop
        New-Container $capped -ErrorAction Stop | Start-Container -ErrorAction Stop
        Set-CgroupLimit $capped -PidsMax 50 -MemoryMax 64MB -ErrorAction Stop
        $l = Get-CgroupLimit $free -ErrorAction Stop
        $c = Get-CgroupLimit $capped -ErrorAction Stop
        foreach ($text in ($l | Format-List | Out-String), ($l | Select-Object * | Out-String)) {
            $text | Should -Not -Match '9223372036854775807'
            $text | Should -Match '(?m)^MemoryMax\s+: max\s*$'
            $text | Should -Match '(?m)^PidsMax\s+: max\s*$'
        }
        ($l | Select-Object * | Out-String) | Should -Match '(?m)^CpuQuota\s+: max\s*$'
        ($c | Format-List | Out-String) | Should -Match '(?m)^MemoryMax\s+: 64M\s*$'
        ($c | Select-Object * | Out-String) | Should -Match '(?m)^PidsMax\s+: 50\s*$'
        $l.MemoryMax -eq [PSContainers.Runtime.Cgroups.CgroupLimitValue]::Unlimited | Should -BeTrue
        $l.MemoryMax.IsUnlimited | Should -BeTrue
        $l.PidsMax -eq 'max' | Should -BeTrue
        $c.MemoryMax -eq 64MB | Should -BeTrue
        # The number on the left, as Pester's Should -Be puts it: PowerShell converts the limit.
        64MB -eq $c.MemoryMax | Should -BeTrue
        $c.MemoryMax | Should -Be 64MB
        1GB -eq $l.MemoryMax | Should -BeFalse
        $c.MemoryMax.IsUnlimited | Should -BeFalse
        [long]$c.PidsMax | Should -Be 50
        # What was read back is what Set-CgroupLimit takes: max stays max.
        Set-CgroupLimit $capped -MemoryMax $l.MemoryMax -PidsMax $l.PidsMax -ErrorAction Stop
        (Get-CgroupLimit $capped).MemoryMax.IsUnlimited | Should -BeTrue
        (Get-CgroupLimit $capped).PidsMax.IsUnlimited | Should -BeTrue
    }

    It 'Measure-Container treats a stopped container the same, bare or piped from Get-Container' {
        $prefix = "psct-m$([guid]::NewGuid().ToString('N').Substring(0, 6))"
        New-Container "$prefix-up" -ErrorAction Stop | Start-Container -ErrorAction Stop
        New-Container "$prefix-down" -ErrorAction Stop | Out-Null
        $bare = Measure-Container "$prefix-*" -ErrorVariable e1
        $piped = Get-Container "$prefix-*" | Measure-Container -ErrorVariable e2
        $named = Measure-Container "$prefix-down" -ErrorVariable e3 -Verbose 4>&1
        $e1 + $e2 + $e3 | Should -BeNullOrEmpty
        $bare.Name | Should -Be "$prefix-up"
        $piped.Name | Should -Be "$prefix-up"
        $named.Message | Should -BeLike "Skipping container '$prefix-down'*stopped*"
    }

    It 'Tab completion offers what the verb applies to, and completes network namespaces and links' {
        # The store is given on the command line here (the next story leaves it to $PSDefaultParameterValues).
        $prefix = "psct-t$([guid]::NewGuid().ToString('N').Substring(0, 6))"
        New-Container "$prefix-run" -ErrorAction Stop | Start-Container -ErrorAction Stop
        New-Container "$prefix-off" -ErrorAction Stop | Out-Null
        Get-Completion "Start-Container -StorePath $store $prefix-" | Should -Be @("$prefix-off")
        Get-Completion "Stop-Container -StorePath $store $prefix-" | Should -Be @("$prefix-run")
        Get-Completion "Invoke-ContainerCommand -StorePath $store $prefix-" | Should -Be @("$prefix-run")
        Get-Completion "Get-Container -StorePath $store $prefix-" | Should -Be @("$prefix-off", "$prefix-run")
        # Nothing of the right state among the matches: all matches, and the cmdlet says why not.
        Get-Completion "Stop-Container -StorePath $store $prefix-of" | Should -Be @("$prefix-off")

        New-NetNamespace $netns -ErrorAction Stop | Out-Null
        Get-Completion "Remove-NetNamespace $($netns.Substring(0, 10))" | Should -Contain $netns
        Get-Completion "Get-NetworkLink -Namespace $($netns.Substring(0, 10))" | Should -Contain $netns
        New-VethPair psct-tv0 psct-tv1 -Namespace $netns -ErrorAction Stop | Out-Null
        Get-Completion "Get-NetworkLink -Namespace $netns psct-tv" | Should -Be @('psct-tv0', 'psct-tv1')
        Get-Completion "Remove-NetworkLink -Namespace $netns psct-tv1" | Should -Be @('psct-tv1')
        Get-Completion "Get-NetworkLink -StorePath $store -Container $prefix-run l" | Should -Be @('lo')
    }

    It 'Tab completion uses the store $PSDefaultParameterValues gives the command when -StorePath is not typed' {
        $prefix = "psct-d$([guid]::NewGuid().ToString('N').Substring(0, 6))"
        New-Container "$prefix-run" -ErrorAction Stop | Start-Container -ErrorAction Stop
        New-Container "$prefix-off" -ErrorAction Stop | Out-Null
        # This file's defaults ('*-Container*:StorePath', '*-CgroupLimit:StorePath') name $store.
        Get-Completion "Get-Container $prefix-" | Should -Be @("$prefix-off", "$prefix-run")
        Get-Completion "Stop-Container $prefix-" | Should -Be @("$prefix-run")
        Get-Completion "Get-CgroupLimit $prefix-" | Should -Be @("$prefix-run")
        Get-Completion "Get-NetworkLink -Container $prefix-run l" | Should -Be @('lo')
        # The command line still wins.
        $other = Join-Path $root 'other'
        $null = New-Item -ItemType Directory -Path $other -Force
        Get-Completion "Get-Container -StorePath $other $prefix-" | Should -BeNullOrEmpty
        try {
            # Two keys for the command with different stores: PowerShell binds neither, nor does completion.
            $PSDefaultParameterValues['Get-Container:StorePath'] = $other
            Get-Completion "Get-Container $prefix-" | Should -BeNullOrEmpty
            Get-Completion "Stop-Container $prefix-" | Should -Be @("$prefix-run")
            # A script block value is computed, as when the command binds.
            $PSDefaultParameterValues['Get-Container:StorePath'] = { $store }
            Get-Completion "Get-Container $prefix-" | Should -Be @("$prefix-off", "$prefix-run")
            # Disabled defaults are used neither by the command nor by completion.
            $PSDefaultParameterValues['Disabled'] = $true
            Get-Completion "Stop-Container $prefix-" | Should -Not -Contain "$prefix-run"
        }
        finally {
            $PSDefaultParameterValues.Remove('Get-Container:StorePath')
            $PSDefaultParameterValues.Remove('Disabled')
        }
    }

    It 'Get-ContainerConsoleLog tags lines with their container, follows with -Wait, and the busybox log tells its story' {
        $a = New-TestName 'loga'
        $b = New-TestName 'logb'
        New-Container $a -ErrorAction Stop | Start-Container -ErrorAction Stop
        New-Container $b -ErrorAction Stop | Start-Container -ErrorAction Stop
        $deadline = [DateTime]::UtcNow.AddSeconds(10)
        while (@(Get-ContainerConsoleLog $a, $b | Where-Object { $_ -like '*: started*' }).Count -lt 2 -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
        $lines = Get-ContainerConsoleLog $a, $b -Tail 1
        $lines.Count | Should -Be 2
        $lines[0].ContainerName | Should -Be $a
        $lines[1].ContainerName | Should -Be $b
        "$($lines[0])" | Should -Be "${a}: started (busybox init, /etc/init.d/rcS)"
        # The README's example prints something.
        (Get-ContainerConsoleLog $a -Tail 20 | Out-String) | Should -Match 'started \(busybox init'

        $talker = New-TestName 'talk'
        New-Container $talker -Command /bin/sh, -c, 'echo one; sleep 2; echo two; sleep 1' -ErrorAction Stop | Start-Container -ErrorAction Stop
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $followed = Get-ContainerConsoleLog $talker -Wait
        $clock.Elapsed.TotalSeconds | Should -BeGreaterThan 1.5
        @($followed | ForEach-Object { "$_" }) | Should -Be @('one', 'two')
        $followed[1].ContainerName | Should -Be $talker
    }

    It 'Get-ContainerConsoleLog renders escape sequences harmless; -Raw gives them as written' {
        $name = New-TestName 'esc'
        New-Container $name -Command /bin/sh, -c, 'printf "\033]0;owned\007\033[2J\033[31mred\033[0m\n"; exec sleep 600' -ErrorAction Stop | Start-Container -ErrorAction Stop
        $deadline = [DateTime]::UtcNow.AddSeconds(10)
        while (-not (Get-ContainerConsoleLog $name) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
        $shown = Get-ContainerConsoleLog $name | Out-String
        $shown | Should -Match ([regex]::Escape("␛]0;owned␇␛[2J␛[31mred␛[0m"))
        $shown.ToCharArray() | Where-Object { [int]$_ -lt 32 -and $_ -notin "`n", "`r", "`t" } | Should -BeNullOrEmpty
        "$(Get-ContainerConsoleLog $name -Raw)" | Should -BeLike "*$([char]27)]0;owned$([char]7)*"
    }

    It 'Invoke-ContainerCommand -Command "ls -l /" says how to pass arguments' {
        $name = New-TestName 'cmd'
        New-Container $name -ErrorAction Stop | Start-Container -ErrorAction Stop
        Invoke-ContainerCommand $name -Command 'ls -l /' -ErrorAction SilentlyContinue
        $Error[0].FullyQualifiedErrorId | Should -Be 'CommandNotFound,PSContainers.Cmdlets.InvokeContainerCommandCommand'
        $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $Error[0].Exception.Message | Should -BeLike "*no program named 'ls -l /'*-Command ls,-l,/*"
    }

    It 'the long cmdlets run as jobs: Wait-Job, Receive-Job, the same objects, errors and progress in the job' {
        $name = New-TestName 'job'
        $job = New-Container $name -AsJob
        $job | Should -BeOfType ([System.Management.Automation.Job])
        $job.PSJobTypeName | Should -Be 'PSContainersJob'
        (Get-Job -Id $job.Id).Name | Should -Be "New-Container $name"
        $null = $job | Wait-Job -Timeout 120
        $job.State | Should -Be 'Completed'
        $job.Progress.Count | Should -BeGreaterThan 0
        $made = $job | Receive-Job
        $made | Should -BeOfType ([PSContainers.Runtime.Containers.ContainerInfo])
        $made.Name | Should -Be $name

        $path = Join-Path $root "$name.tar.gz"
        $export = Export-Container $name $path -PassThru -AsJob | Wait-Job -Timeout 120 | Receive-Job
        $export | Should -BeOfType ([PSContainers.Runtime.Storage.ContainerArchiveInfo])
        $export.Path | Should -Be $path

        $copy = New-TestName 'jobimp'
        (Import-Container $path $copy -AsJob | Wait-Job -Timeout 120 | Receive-Job).Name | Should -Be $copy

        $other = Join-Path $root 'other'
        $moved = Move-Container $copy $other -PassThru -AsJob | Wait-Job -Timeout 120 | Receive-Job
        $moved.Name | Should -Be $copy
        Get-Container $copy -StorePath $other | Should -Not -BeNullOrEmpty

        # A failure: the job ends Failed with the cmdlet's own error id and category.
        $failed = Export-Container psct-no-such-container (Join-Path $root 'x.tar') -AsJob | Wait-Job -Timeout 60
        $failed.State | Should -Be 'Failed'
        $failed | Receive-Job -ErrorAction SilentlyContinue -ErrorVariable jobErrors
        $jobErrors[0].FullyQualifiedErrorId | Should -BeLike 'ContainerNotFound*'
        $jobErrors[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        # -WhatIf makes no job.
        Export-Container $name (Join-Path $root 'y.tar') -AsJob -WhatIf | Should -BeNullOrEmpty
    }

    It 'Stop-Job cancels a job: the export stops, rolls back, and the job is Stopped' {
        $name = New-TestName 'jobstop'
        $info = New-Container $name -ErrorAction Stop
        # Enough files of incompressible data that the export is still running when Stop-Job comes
        # (the export checks for cancellation between entries).
        $big = New-Item -ItemType Directory -Path (Join-Path $info.RootfsPath 'big')
        & sh -c 'head -c 300000000 /dev/urandom | split -b 100000 -a 4 - "$1/f"' sh $big.FullName
        $path = Join-Path $root "$name.tar.gz"
        $job = Export-Container $name $path -AsJob
        $deadline = [DateTime]::UtcNow.AddSeconds(30)
        while ($job.Progress.Count -eq 0 -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 20 }
        $job.State | Should -Be 'Running'
        $job | Stop-Job
        $job.State | Should -Be 'Stopped'
        Test-Path $path | Should -BeFalse
        Get-ChildItem $root -Filter '*.partial' -Force | Should -BeNullOrEmpty
    }

    It 'Checkpoint-Container and Restore-Container run as jobs' -Skip:(-not $hasCriu) {
        $name = New-TestName 'ckjob'
        New-Container $name -Command /bin/sh, -c, 'while :; do sleep 1; done' -ErrorAction Stop | Start-Container -ErrorAction Stop
        $dir = Join-Path $root $name
        $ck = Checkpoint-Container $name $dir -AsJob | Wait-Job -Timeout 120 | Receive-Job
        $ck.Container | Should -Be $name
        (Get-Container $name).StopReason | Should -Be 'Checkpointed'
        $restored = Restore-Container $dir -PassThru -AsJob | Wait-Job -Timeout 120 | Receive-Job
        $restored.State | Should -Be 'Running'
    }
}
