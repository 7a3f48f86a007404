#Requires -Version 7.4
<#
.SYNOPSIS
    The event cmdlets in real pwsh: Register-ContainerEvent runs its action per event with $Event
    and $EventArgs and is ended by Unregister-Event, like Register-ObjectEvent; two
    Get-ContainerEvent -Wait in separate pwsh processes (jobs) each see every event of rapid cycles.
    The xunit ContainerEventTests cover each kind, OOM kills and the restart policy.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'Container events in real pwsh' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')
        $script:module = Join-Path $PSScriptRoot '../../out/PSContainers/PSContainers.psd1'
    }

    AfterAll {
        Get-EventSubscriber | Where-Object SourceIdentifier -like 'psct-*' | Unregister-Event -ErrorAction SilentlyContinue
        Get-Job | Where-Object Name -like 'psct-*' | Remove-Job -Force -ErrorAction SilentlyContinue
        Remove-TestStore
    }

    It 'runs the action of Register-ContainerEvent once per event, and no more after Unregister-Event' {
        $name = New-TestName 'reg'
        $id = New-TestName 'sub'
        $global:PsctSeen = [Collections.Generic.List[object]]::new()
        $job = Register-ContainerEvent -Name $name -StorePath $store -SourceIdentifier $id -Action {
            $global:PsctSeen.Add([pscustomobject]@{ Kind = $EventArgs.Event.Kind; Container = $EventArgs.Event.Container; Source = $Event.SourceIdentifier })
        }
        $job | Should -BeOfType System.Management.Automation.PSEventJob
        (Get-EventSubscriber -SourceIdentifier $id).SourceIdentifier | Should -Be $id

        New-Container -Name $name -Template busybox -Command sh, -c, 'sleep 1000' | Out-Null
        Start-Container $name
        Stop-Container $name -Kill
        $deadline = [DateTime]::UtcNow.AddSeconds(30)
        while ($global:PsctSeen.Count -lt 3 -and [DateTime]::UtcNow -lt $deadline) { Wait-Event -Timeout 1 | Out-Null }
        $global:PsctSeen.Kind | Should -Be @('Created', 'Started', 'Stopped')
        $global:PsctSeen.Container | Select-Object -Unique | Should -Be $name
        $global:PsctSeen.Source | Select-Object -Unique | Should -Be $id

        Unregister-Event -SourceIdentifier $id
        Get-EventSubscriber -SourceIdentifier $id -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Start-Container $name
        Stop-Container $name -Kill
        Wait-Event -Timeout 2 | Out-Null
        $global:PsctSeen.Count | Should -Be 3
    }

    It 'streams every event of 25 start/stop cycles to two Get-ContainerEvent -Wait in separate processes' {
        $name = New-TestName 'wait'
        New-Container -Name $name -Template busybox -Command sh, -c, 'sleep 1000' | Out-Null
        $since = Get-Date
        $listen = {
            param($module, $store, $name, $count, $since)
            Import-Module $module
            # -Since a time before the cycles: whatever happened before this process got to follow
            # is read first, then the live events, with nothing lost in the hand-over.
            Get-ContainerEvent -Name $name -StorePath $store -Kind Started, Stopped -Since $since -Wait | Select-Object -First $count |
                ForEach-Object { "$($_.Kind)" }
        }
        $jobs = 1..2 | ForEach-Object { Start-Job -Name "psct-listen-$_" -ScriptBlock $listen -ArgumentList (Resolve-Path $module).Path, $store, $name, 50, $since }
        1..25 | ForEach-Object {
            Start-Container $name
            Stop-Container $name -Kill
        }
        $jobs | Wait-Job -Timeout 120 | Out-Null
        $expected = 1..25 | ForEach-Object { 'Started', 'Stopped' }
        foreach ($job in $jobs) {
            $job.State | Should -Be 'Completed'
            Receive-Job $job | Should -Be $expected
        }
    }
}
