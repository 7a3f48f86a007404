#Requires -Version 7.4
<#
.SYNOPSIS
    Start-Container and Stop-Container -ThrottleLimit in real pwsh: a dozen containers started
    four at a time from the pipeline, each written once (-PassThru, completion order), errors per
    container as ErrorRecords of the pipeline ($Error, -ErrorVariable), -WhatIf starting nothing,
    the limit validated by PowerShell, and all stopped four at a time. The xunit ParallelStartTests
    count the workers in flight and race 30 starts many times.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'Start-Container -ThrottleLimit' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')
        $script:names = 1..12 | ForEach-Object { New-TestName 'thr' }
        foreach ($n in $script:names) { New-Container -Name $n -Template busybox -Network @{ type = 'empty' } | Out-Null }
    }

    AfterAll {
        Remove-TestStore
    }

    It 'validates the limit like any PowerShell parameter' {
        { Start-Container $script:names[0] -ThrottleLimit 0 -ErrorAction Stop } | Should -Throw -ErrorId 'ParameterArgumentValidationError,PSContainers.Cmdlets.StartContainerCommand'
        { Stop-Container $script:names[0] -ThrottleLimit 65 -ErrorAction Stop } | Should -Throw -ErrorId 'ParameterArgumentValidationError,PSContainers.Cmdlets.StopContainerCommand'
    }

    It 'starts nothing with -WhatIf' {
        $script:names | Start-Container -ThrottleLimit 4 -WhatIf
        Get-Container -Name $script:names | Where-Object State -ne 'Stopped' | Should -BeNullOrEmpty
    }

    It 'starts piped containers four at a time, each written once, with a missing one as its own error' {
        $missing = New-TestName 'none'
        $out = @($script:names + $missing) | Start-Container -ThrottleLimit 4 -PassThru -ErrorVariable failed -ErrorAction SilentlyContinue
        $out.Count | Should -Be 12
        ($out.Name | Sort-Object) | Should -Be ($script:names | Sort-Object)
        $out.State | Select-Object -Unique | Should -Be 'Running'
        $failed.Count | Should -Be 1
        $failed[0].FullyQualifiedErrorId | Should -Be 'ContainerNotFound,PSContainers.Cmdlets.StartContainerCommand'
        $failed[0].TargetObject | Should -Be $missing
        (Get-Container -Name $script:names -State Running).Count | Should -Be 12
    }

    It 'reports an already running container per container, and the others are untouched' {
        Start-Container -Name $script:names[0], $script:names[1] -ThrottleLimit 2 -ErrorVariable again -ErrorAction SilentlyContinue
        $again.Count | Should -Be 2
        $again.FullyQualifiedErrorId | Select-Object -Unique | Should -Be 'ContainerAlreadyRunning,PSContainers.Cmdlets.StartContainerCommand'
        ($again.TargetObject | Sort-Object) | Should -Be (@($script:names[0], $script:names[1]) | Sort-Object)
    }

    It 'stops them four at a time' {
        $stopped = Get-Container -Name $script:names | Stop-Container -Kill -ThrottleLimit 4 -PassThru
        $stopped.Count | Should -Be 12
        $stopped.State | Select-Object -Unique | Should -Be 'Stopped'
        (Get-Container -Name $script:names -State Stopped).Count | Should -Be 12
    }
}
