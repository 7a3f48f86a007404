#Requires -Version 7.4
<#
.SYNOPSIS
    Runs every tests/Pester/*.Tests.ps1 file with Pester 5, one file after the other in this
    pwsh, and writes the counts (passed, failed, skipped) to -ResultFile as JSON.

.DESCRIPTION
    Each file runs in its own Invoke-Pester call, so a file that fails to load or whose
    BeforeAll/AfterAll fails is reported by name. After each file the session's
    $PSDefaultParameterValues must be what it was before: a test file that changes the caller's
    session (for instance leaves -StorePath pointing at a store it deleted) is a failure.
    Skipped tests are counted as failed unless -AllowSkip: every story must run on a machine that
    setup.sh prepared.
    Used by test.sh (run it in a fresh pwsh: a binary module cannot be unloaded, so a session that
    imported an earlier build would test that build).
#>
[CmdletBinding()]
param(
    [string] $Path = (Join-Path $PSScriptRoot '../tests/Pester'),
    [Parameter(Mandatory)] [string] $ResultFile,
    [version] $PesterVersion = '5.9.1',
    [switch] $AllowSkip
)

$ErrorActionPreference = 'Stop'
Import-Module -Name Pester -RequiredVersion $PesterVersion

function Get-DefaultsText {
    ($global:PSDefaultParameterValues.GetEnumerator() | Sort-Object -Property Key |
        ForEach-Object { '{0}={1}' -f $_.Key, $_.Value }) -join '; '
}

$files = @(Get-ChildItem -LiteralPath $Path -Filter '*.Tests.ps1' -File | Sort-Object -Property Name)
if ($files.Count -eq 0) { throw "No *.Tests.ps1 files in $Path" }

$passed = 0; $failed = 0; $skipped = 0
$problems = [System.Collections.Generic.List[string]]::new()
foreach ($file in $files) {
    $before = Get-DefaultsText
    $config = New-PesterConfiguration
    $config.Run.Path = $file.FullName
    $config.Run.PassThru = $true
    $config.Output.Verbosity = 'Detailed'
    $result = Invoke-Pester -Configuration $config
    $passed += $result.PassedCount
    $failed += $result.FailedCount
    $skipped += $result.SkippedCount + $result.NotRunCount
    foreach ($test in $result.Failed) { $problems.Add("$($file.Name): $($test.ExpandedPath)") }
    # A file that does not load, or a BeforeAll/AfterAll that fails, fails no single test.
    if ($result.FailedContainersCount -gt 0 -or $result.FailedBlocksCount -gt 0) {
        $failed += $result.FailedContainersCount + $result.FailedBlocksCount
        $problems.Add("$($file.Name): $($result.FailedContainersCount) file and $($result.FailedBlocksCount) block failure(s) outside a test")
    }
    if ($result.SkippedCount + $result.NotRunCount -gt 0 -and -not $AllowSkip) {
        $failed += $result.SkippedCount + $result.NotRunCount
        $problems.Add("$($file.Name): $($result.SkippedCount + $result.NotRunCount) test(s) skipped or not run (counted as failed: a prerequisite is missing, see the warnings above)")
    }
    $after = Get-DefaultsText
    if ($after -ne $before) {
        $failed++
        $problems.Add("$($file.Name): left `$PSDefaultParameterValues changed in the caller's session (before: '$before', after: '$after')")
        $global:PSDefaultParameterValues.Clear()
    }
}

foreach ($problem in $problems) { Write-Host "FAILED: $problem" -ForegroundColor Red }
[pscustomobject]@{ Passed = $passed; Failed = $failed; Skipped = $skipped; Files = $files.Count } |
    ConvertTo-Json -Compress | Set-Content -LiteralPath $ResultFile -Encoding utf8NoBOM
Write-Host ("Pester: {0} passed, {1} failed in {2} files" -f $passed, $failed, $files.Count)
