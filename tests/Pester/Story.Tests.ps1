#Requires -Version 7.4
<#
.SYNOPSIS
    A new user's first container, in real pwsh, on whatever cgroup layout the host has (this file
    also runs inside the pure cgroup-v2 guest, see tools/test-v2-guest.sh): New, Start, Invoke,
    Measure, Stop, Remove; and New-Container with progress on a terminal that never answers.

.NOTES
    Needs root and the built module in out/PSContainers. Everything happens in a private store
    under /tmp/psc-test-story-<guid>, removed in AfterAll also when a test fails.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
    if (-not $canRun) { Write-Warning 'Story tests skipped: they need root on Linux.' }
}

Describe 'A first container' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        $modulePath = Join-Path $PSScriptRoot '../../out/PSContainers' -Resolve
        Import-Module -Name $modulePath -ErrorAction Stop
        $store = "/tmp/psc-test-story-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $name = "psct-story-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        # Restored in AfterAll: the caller's session is left as it was.
        $defaultsBefore = $PSDefaultParameterValues.Clone()
        $PSDefaultParameterValues['*-Container*:StorePath'] = $store
    }

    AfterAll {
        if (Test-Path -LiteralPath $store) {
            Get-Container -StorePath $store -ErrorAction SilentlyContinue | Remove-Container -StorePath $store -Force -Confirm:$false -ErrorAction SilentlyContinue
            Remove-Item -LiteralPath $store -Recurse -Force -ErrorAction SilentlyContinue
        }
        $PSDefaultParameterValues.Clear()
        foreach ($k in $defaultsBefore.Keys) { $PSDefaultParameterValues[$k] = $defaultsBefore[$k] }
    }

    It 'is created, started, entered, measured, stopped and removed' {
        $c = New-Container -Name $name -Template busybox
        $c.State | Should -Be 'Stopped'
        Start-Container -Name $name
        (Get-Container -Name $name).State | Should -Be 'Running'

        $r = Invoke-ContainerCommand -Name $name -Command 'cat', '/proc/self/cgroup'
        $r.ExitCode | Should -Be 0
        # At the root of its own cgroup namespace (with nsdelegate: joined before entering it).
        $r.Output | Should -Contain '0::/'
        (Invoke-ContainerCommand -Name $name -Command 'hostname').Output | Should -Be $name

        # Counted from the first moment, without any limit having been set.
        $m = Measure-Container -Name $name
        $m.MemoryCurrent | Should -BeGreaterThan 0
        $m.PidsCurrent | Should -BeGreaterOrEqual 1

        Stop-Container -Name $name
        (Get-Container -Name $name).State | Should -Be 'Stopped'
        Remove-Container -Name $name -Confirm:$false
        Get-Container -Name $name -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        [IO.Directory]::Exists((Join-Path $store $name)) | Should -BeFalse
    }

    It 'is created with progress on a terminal that never answers a cursor query, without waiting on it' {
        # pwsh's console host asks the terminal for the cursor position (ESC[6n) when it draws
        # progress and waits for the reply. Under `script` pwsh has a real pty whose other end
        # (script, writing to a file) never answers; stdin stays open and silent. Before the module
        # asked the terminal itself (once, briefly) this New-Container took about 29 s here.
        $slow = "psct-story-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $inner = Join-Path $store 'progress.ps1'
        New-Item -ItemType Directory -Force -Path $store | Out-Null
        @"
Import-Module '$modulePath'
`$ProgressPreference = 'Continue'
`$sw = [Diagnostics.Stopwatch]::StartNew()
New-Container -Name '$slow' -Template busybox -StorePath '$store' | Out-Null
"NEWCONTAINER-SECONDS=`$([int]`$sw.Elapsed.TotalSeconds)"
# What the module asked before the first draw, directly: no answer, and quickly.
`$sw.Restart()
"PROBE=`$([PSContainers.Runtime.Native.Terminal]::AnswersCursorQuery([timespan]::FromMilliseconds(500))) MS=`$([int]`$sw.Elapsed.TotalMilliseconds)"
Remove-Container -Name '$slow' -StorePath '$store' -Force -Confirm:`$false
"@ | Set-Content -LiteralPath $inner
        $transcript = Join-Path $store 'progress.out'
        $psi = [Diagnostics.ProcessStartInfo]::new('script')
        foreach ($a in '-qfec', "pwsh -NoProfile -NonInteractive -File $inner", $transcript) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardInput = $true
        $psi.RedirectStandardOutput = $true
        $psi.UseShellExecute = $false
        $psi.Environment['TERM'] = 'xterm-256color'
        $p = [Diagnostics.Process]::Start($psi)
        try {
            $null = $p.StandardOutput.ReadToEndAsync()
            # Generous: pwsh starting in a slow guest; the point is that it ends, not hangs on the terminal.
            $ended = $p.WaitForExit(120000)
            $ended | Should -BeTrue -Because 'pwsh under a silent terminal must finish'
        }
        finally {
            if (-not $p.HasExited) { $p.Kill($true); $p.WaitForExit() }
            $p.StandardInput.Close()
        }
        $out = Get-Content -LiteralPath $transcript -Raw
        $seconds = [regex]::Match($out, 'NEWCONTAINER-SECONDS=(\d+)')
        $seconds.Success | Should -BeTrue -Because "the script must have run: $out"
        [int]$seconds.Groups[1].Value | Should -BeLessThan 20
        $probe = [regex]::Match($out, 'PROBE=(\w+) MS=(\d+)')
        $probe.Groups[1].Value | Should -Be 'False'
        [int]$probe.Groups[2].Value | Should -BeLessThan 5000
        Test-Path -LiteralPath (Join-Path $store $slow) | Should -BeFalse
    }
}
