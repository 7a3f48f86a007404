#Requires -Version 7.4
<#
.SYNOPSIS
    Builds PSContainers into out/PSContainers and optionally runs its test suites.

.DESCRIPTION
    1. dotnet build -c <Configuration> at the repository root (PSContainers.slnx): the module
       folder out/PSContainers, with the native helper.
    2. -Test: dotnet test tests/PSContainers.Tests (xunit; the end-to-end tests need root),
       then the Pester suite too when Pester 5 or later is installed.
    3. -Pester: the Pester suite tests/Pester (requires Pester 5 or later).

    The Pester suite runs in a fresh pwsh process: a binary module cannot be unloaded, so a
    session that imported an earlier build would otherwise test that build.
    Exits 1 when the build or any test fails.

.EXAMPLE
    ./build.ps1
.EXAMPLE
    sudo pwsh ./build.ps1 -Test
.EXAMPLE
    ./build.ps1 -Pester -Configuration Debug
#>
[CmdletBinding()]
param(
    # Run the xunit suite, and the Pester suite when Pester 5+ is installed.
    [switch] $Test,
    # Run the Pester suite (fails when Pester 5+ is not installed).
    [switch] $Pester,
    [ValidateNotNullOrEmpty()]
    [string] $Configuration = 'Release'
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
# Exit codes of native commands are checked below, one by one.
$PSNativeCommandUseErrorActionPreference = $false

$repoRoot = $PSScriptRoot
$summary = [System.Collections.Generic.List[object]]::new()
$failed = $false

function Add-Summary([string] $Step, [string] $Outcome, [string] $Detail = '') {
    $summary.Add([pscustomobject]@{ Step = $Step; Outcome = $Outcome; Detail = $Detail })
}

function Write-Summary {
    Write-Host ''
    Write-Host 'Summary' -ForegroundColor Cyan
    foreach ($item in $summary) {
        $color = switch ($item.Outcome) { 'passed' { 'Green' } 'failed' { 'Red' } default { 'Yellow' } }
        $line = '  {0,-8} {1,-8} {2}' -f $item.Step, $item.Outcome, $item.Detail
        Write-Host $line.TrimEnd() -ForegroundColor $color
    }
}

# Native commands are run at statement level, never inside a function whose output is used:
# their output then goes straight to the console (with its colors) and $LASTEXITCODE says how they ended.
function Write-Step([string] $CommandLine) {
    Write-Host "> $CommandLine" -ForegroundColor Cyan
}

if (-not (Get-Command -Name dotnet -CommandType Application -ErrorAction SilentlyContinue)) {
    throw 'dotnet was not found on PATH: install the .NET SDK (https://dot.net) to build PSContainers.'
}

# Pester 5 or later, newest first; $null when not installed (Windows PowerShell's Pester 3 does not count).
$pesterModule = Get-Module -Name Pester -ListAvailable -ErrorAction SilentlyContinue |
    Where-Object { $_.Version -ge [version] '5.0' } |
    Sort-Object -Property Version -Descending |
    Select-Object -First 1
$runPester = $Pester -or ($Test -and $null -ne $pesterModule)
if ($Pester -and $null -eq $pesterModule) {
    throw 'Pester 5 or later is not installed: Install-Module -Name Pester -MinimumVersion 5.0 -Scope CurrentUser'
}

Push-Location -LiteralPath $repoRoot
try {
    # ---- build ----
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    Write-Step "dotnet build -c $Configuration"
    dotnet build -c $Configuration
    if ($LASTEXITCODE -ne 0) {
        Add-Summary 'build' 'failed' "dotnet build exited with $LASTEXITCODE"
        Write-Summary
        exit 1
    }
    Add-Summary 'build' 'passed' ("out/PSContainers ({0:N0}s)" -f $watch.Elapsed.TotalSeconds)

    # ---- xunit ----
    if ($Test) {
        $watch.Restart()
        Write-Step "dotnet test tests/PSContainers.Tests -c $Configuration --no-build"
        dotnet test tests/PSContainers.Tests -c $Configuration --no-build
        if ($LASTEXITCODE -eq 0) {
            Add-Summary 'xunit' 'passed' ("{0:N0}s" -f $watch.Elapsed.TotalSeconds)
        }
        else {
            Add-Summary 'xunit' 'failed' "dotnet test exited with $LASTEXITCODE"
            $failed = $true
        }
    }

    # ---- Pester ----
    if ($runPester) {
        $watch.Restart()
        $pwsh = Join-Path $PSHOME 'pwsh'
        if (-not (Test-Path -LiteralPath $pwsh -PathType Leaf)) {
            $pwsh = (Get-Command -Name pwsh -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
        }
        $tag = [guid]::NewGuid().ToString('N')
        $runner = Join-Path ([System.IO.Path]::GetTempPath()) "psc-pester-$tag.ps1"
        $resultFile = Join-Path ([System.IO.Path]::GetTempPath()) "psc-pester-$tag.json"
        Set-Content -LiteralPath $runner -Encoding utf8NoBOM -Value @'
param([string] $PesterManifest, [string] $TestPath, [string] $ResultFile)
Import-Module -Name $PesterManifest -Force -ErrorAction Stop
$result = Invoke-Pester -Path $TestPath -Output Detailed -PassThru
[pscustomobject]@{
    Result           = "$($result.Result)"
    Passed           = $result.PassedCount
    Failed           = $result.FailedCount
    Skipped          = $result.SkippedCount
    NotRun           = $result.NotRunCount
    FailedBlocks     = $result.FailedBlocksCount
    FailedContainers = $result.FailedContainersCount
} | ConvertTo-Json | Set-Content -LiteralPath $ResultFile -Encoding utf8NoBOM
if ($result.Result -ne 'Passed') { exit 1 }
exit 0
'@
        try {
            $testPath = Join-Path $repoRoot 'tests/Pester'
            Write-Step "pwsh -NoProfile -File <runner>: Invoke-Pester -Path $testPath -Output Detailed -PassThru"
            & $pwsh -NoProfile -NonInteractive -File $runner -PesterManifest $pesterModule.Path -TestPath $testPath -ResultFile $resultFile
            $ran = $LASTEXITCODE -eq 0
            $counts = if (Test-Path -LiteralPath $resultFile) { Get-Content -LiteralPath $resultFile -Raw | ConvertFrom-Json } else { $null }
            if ($null -eq $counts) {
                Add-Summary 'pester' 'failed' "Pester $($pesterModule.Version) did not complete (pwsh exited with $LASTEXITCODE)"
                $failed = $true
            }
            else {
                $detail = '{0} passed, {1} failed, {2} skipped, {3} not run, {4} failed blocks, {5} failed files ({6:N0}s, Pester {7})' -f
                    $counts.Passed, $counts.Failed, $counts.Skipped, $counts.NotRun, $counts.FailedBlocks, $counts.FailedContainers,
                    $watch.Elapsed.TotalSeconds, $pesterModule.Version
                $ok = $ran -and $counts.Result -eq 'Passed' -and $counts.Failed -eq 0 -and $counts.FailedBlocks -eq 0 -and $counts.FailedContainers -eq 0
                Add-Summary 'pester' $(if ($ok) { 'passed' } else { 'failed' }) $detail
                if (-not $ok) { $failed = $true }
            }
        }
        finally {
            Remove-Item -LiteralPath $runner, $resultFile -Force -ErrorAction SilentlyContinue
        }
    }
    elseif ($Test) {
        Add-Summary 'pester' 'skipped' 'Pester 5+ is not installed (Install-Module Pester -MinimumVersion 5.0)'
    }
}
finally {
    Pop-Location
}

Write-Summary
if ($failed) { exit 1 }
exit 0
