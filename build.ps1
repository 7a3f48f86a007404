#Requires -Version 7.4
<#
.SYNOPSIS
    Builds PSContainers into out/PSContainers and optionally runs its test suites.

.DESCRIPTION
    1. dotnet build -c <Configuration> at the repository root (PSContainers.slnx): the module
       folder out/PSContainers, with the native helper.
    2. -Test: ./test.sh --no-build, the one test command (README "Tests"): the xunit suite, then
       every tests/Pester file in real pwsh, the leftover check and the "N passed, N failed" line.
       Needs root; a missing pwsh or Pester is a failure there, not a skip.
    3. -Pester: only the Pester suite, through the same runner test.sh uses
       (tools/Invoke-PesterSuite.ps1), in a fresh pwsh: a binary module cannot be unloaded, so a
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
    # Run every test: ./test.sh --no-build (xunit and Pester; needs root).
    [switch] $Test,
    # Run only the Pester suite (tools/Invoke-PesterSuite.ps1).
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

    # ---- tests: the same runners as test.sh and CI, so they cannot drift ----
    if ($Test) {
        Write-Step './test.sh --no-build'
        & (Join-Path $repoRoot 'test.sh') --no-build
        Add-Summary 'tests' $(if ($LASTEXITCODE -eq 0) { 'passed' } else { 'failed' }) "test.sh exited with $LASTEXITCODE (its last line counts both suites)"
        if ($LASTEXITCODE -ne 0) { $failed = $true }
    }
    elseif ($Pester) {
        $pwsh = Join-Path $PSHOME 'pwsh'
        if (-not (Test-Path -LiteralPath $pwsh -PathType Leaf)) {
            $pwsh = (Get-Command -Name pwsh -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
        }
        $resultFile = Join-Path ([System.IO.Path]::GetTempPath()) "psc-pester-$([guid]::NewGuid().ToString('N')).json"
        try {
            Write-Step 'pwsh -NoProfile -File tools/Invoke-PesterSuite.ps1'
            & $pwsh -NoProfile -NonInteractive -File (Join-Path $repoRoot 'tools/Invoke-PesterSuite.ps1') -ResultFile $resultFile
            $counts = if (Test-Path -LiteralPath $resultFile) { Get-Content -LiteralPath $resultFile -Raw | ConvertFrom-Json } else { $null }
            if ($null -eq $counts) {
                Add-Summary 'pester' 'failed' "the suite did not complete (pwsh exited with $LASTEXITCODE; tools/install-pwsh.sh installs Pester 5.9.1)"
                $failed = $true
            }
            else {
                $ok = $LASTEXITCODE -eq 0 -and $counts.Failed -eq 0
                Add-Summary 'pester' $(if ($ok) { 'passed' } else { 'failed' }) ('{0} passed, {1} failed in {2} files' -f $counts.Passed, $counts.Failed, $counts.Files)
                if (-not $ok) { $failed = $true }
            }
        }
        finally {
            Remove-Item -LiteralPath $resultFile -Force -ErrorAction SilentlyContinue
        }
    }
}
finally {
    Pop-Location
}

Write-Summary
if ($failed) { exit 1 }
exit 0
