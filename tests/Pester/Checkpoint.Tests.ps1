#Requires -Version 7.4
<#
.SYNOPSIS
    Pester 5 end-to-end tests of checkpoint/restore: the user stories of
    tests/PSContainers.Tests/CheckpointTests.cs, driven from pwsh.

.NOTES
    Needs Linux, root, CRIU 4.2+ (.ci/install-criu) and the built module in out/PSContainers.
    Everything happens in a private store under /tmp/psc-test-<guid>, removed in AfterAll.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0') -and [bool](Get-Command criu -ErrorAction SilentlyContinue)
    if (-not $canRun) { Write-Warning 'Checkpoint tests skipped: they need root on Linux and criu 4.2+ on PATH (.ci/install-criu).' }
}

Describe 'Checkpoint and restore' -Tag 'E2E', 'Root', 'Criu' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')
        $counter = 'i=0; while [ ! -e /tmp/quit ]; do i=$((i+1)); echo $i > /tmp/count; echo tick $i; sleep 0.1; done; exit 7'

        function Get-Count([string] $Name) {
            [int](Get-Content (Join-Path (Get-Container $Name).RootfsPath 'tmp/count') -ErrorAction Stop)
        }
        # Where a checkpoint or save froze the counter: the console's last tick. /tmp/count may be empty
        # then (echo > truncates before it writes, and CRIU can freeze the shell in between).
        function Get-FrozenCount([string] $Name) {
            @(Get-ContainerConsoleLog $Name | Where-Object { $_ -like 'tick *' } | ForEach-Object { [int]$_.Substring(5) })[-1]
        }
        function Wait-Count([string] $Name, [int] $AtLeast) {
            $deadline = [DateTime]::UtcNow.AddSeconds(20)
            # Right after a start init may not have written its first count yet: no file counts as 0.
            $file = Join-Path (Get-Container $Name).RootfsPath 'tmp/count'
            while (-not (Test-Path $file) -or (Get-Count $Name) -lt $AtLeast) {
                if ([DateTime]::UtcNow -gt $deadline) { throw "$Name did not count to $AtLeast" }
                Start-Sleep -Milliseconds 50
            }
        }
    }

    AfterAll {
        Remove-TestStore
    }

    It 'keeps counting from where it stopped, under a supervisor, and records its exit code' {
        $name = "psct-cr-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        New-Container -Name $name -Command /bin/sh, -c, $counter -MemoryLimit 64MB -ErrorAction Stop | Start-Container -ErrorAction Stop
        Wait-Count $name 5
        $checkpoint = Checkpoint-Container -Name $name -Path (Join-Path $root $name) -ErrorAction Stop
        $checkpoint.Container | Should -Be $name
        $checkpoint.ProcessCount | Should -BeGreaterThan 0
        (Get-Container $name).State | Should -Be 'Stopped'
        (Get-Container $name).ExitCode | Should -BeNullOrEmpty
        $at = Get-FrozenCount $name

        $restored = $checkpoint | Restore-Container -PassThru -ErrorAction Stop
        $restored.State | Should -Be 'Running'
        Wait-Count $name ($at + 5)
        $ticks = @(Get-ContainerConsoleLog $name | Where-Object { $_ -like 'tick *' } | ForEach-Object { [int]$_.Substring(5) })
        $ticks | Should -Be (1..$ticks.Count)
        (Get-CgroupLimit $name -StorePath $store).MemoryMax | Should -Be 64MB

        { $checkpoint | Restore-Container -ErrorAction Stop } | Should -Throw -ErrorId 'ContainerAlreadyRunning*'

        $null = New-Item -ItemType File -Path (Join-Path $restored.RootfsPath 'tmp/quit')
        (Wait-Container $name -State Stopped -Timeout 20 -PassThru).ExitCode | Should -Be 7
    }

    It 'saves a container and resumes it with Start-Container' {
        $name = "psct-sv-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        New-Container -Name $name -Command /bin/sh, -c, $counter -ErrorAction Stop | Start-Container -ErrorAction Stop
        Wait-Count $name 3
        (Save-Container -Name $name -PassThru -ErrorAction Stop).State | Should -Be 'Saved'
        $at = Get-FrozenCount $name
        (Start-Container -Name $name -PassThru -ErrorAction Stop).State | Should -Be 'Running'
        Wait-Count $name ($at + 3)
        Remove-Container -Name $name -Force -Confirm:$false -ErrorAction Stop
    }

    It 'checkpoints and restores a user-namespaced container into the same id maps' {
        $name = "psct-crun-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $start = 1500000000 + (Get-Random -Maximum 4000) * 65536
        $config = Join-Path $root "$name.yaml"
        Set-Content -Path $config -Value "idMap: [u 0 $start 65536, g 0 $start 65536]"
        New-Container -Name $name -Command /bin/sh, -c, $counter -ConfigPath $config -ErrorAction Stop | Start-Container -ErrorAction Stop
        Wait-Count $name 5
        $checkpoint = Checkpoint-Container -Name $name -Path (Join-Path $root $name) -ErrorAction Stop
        $at = Get-FrozenCount $name
        $restored = $checkpoint | Restore-Container -PassThru -ErrorAction Stop
        (Get-Content "/proc/$($restored.Pid)/uid_map" -Raw).Trim() -split '\s+' -join ' ' | Should -Be "0 $start 65536"
        (Invoke-ContainerCommand $name -Command id, -u).Output | Should -Be '0'
        Wait-Count $name ($at + 5)
        Remove-Container -Name $name -Force -Confirm:$false -ErrorAction Stop
    }

    It 'restores a default (user-namespaced) container with a veth onto its bridge, and it restarts by its policy' {
        $name = New-TestName 'crvr'
        $ns = "psc-test-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        & ip netns add $ns
        try {
            & ip -n $ns link add psbr0 type bridge
            & ip -n $ns link set psbr0 up
            $nic = @{ type = 'veth'; link = 'psbr0'; linkNamespace = $ns; ipv4 = @('10.251.7.2/24') }
            New-Container -Name $name -Command /bin/sh, -c, $counter -Network $nic -ErrorAction Stop | Out-Null
            Add-Content -Path (Join-Path $store $name 'config.yaml') -Value 'restart: { policy: on-failure, backoff: 200ms }'
            Start-Container $name -ErrorAction Stop
            Wait-Count $name 3
            $checkpoint = Checkpoint-Container -Name $name -Path (Join-Path $root $name) -ErrorAction Stop
            @(& ip -n $ns -o link show master psbr0) | Should -HaveCount 0
            $restored = $checkpoint | Restore-Container -PassThru -ErrorAction Stop
            $restored.Mode | Should -Be 'Unprivileged'
            $restored.IPv4 | Should -Be '10.251.7.2'
            @(& ip -n $ns -o link show master psbr0) | Should -HaveCount 1

            Stop-Process -Id $restored.Pid -Force
            $deadline = [DateTime]::UtcNow.AddSeconds(30)
            while (-not (Get-ContainerEvent -Name $name -Kind RestartedByPolicy) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
            $again = Get-Container $name
            $again.State | Should -Be 'Running'
            $again.Restarts | Should -Be 1
            $again.Pid | Should -Not -Be $restored.Pid
            $again.IPv4 | Should -Be '10.251.7.2'
            @(& ip -n $ns -o link show master psbr0) | Should -HaveCount 1
            Remove-Container -Name $name -Force -Confirm:$false -ErrorAction Stop
            @(& ip -n $ns -o link show master psbr0) | Should -HaveCount 0
        }
        finally {
            if (Get-Container $name -ErrorAction SilentlyContinue) { Remove-Container -Name $name -Force -Confirm:$false -ErrorAction SilentlyContinue }
            & ip netns del $ns
        }
    }

    It 'refuses to checkpoint a stopped container, clearly' {
        $name = "psct-er-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $null = New-Container -Name $name -ErrorAction Stop
        { Checkpoint-Container -Name $name -Path (Join-Path $root $name) -ErrorAction Stop } | Should -Throw -ErrorId 'ContainerNotRunning*'
    }
}
