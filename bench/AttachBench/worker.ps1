# One batch of the attach benchmark (see bench/AttachBench/run.ps1): imports a module build, runs
# `Invoke-ContainerCommand -Command true` on a running container -Warmup times untimed, then -Count
# times timed, and prints each time in milliseconds (one per line).
param(
    [Parameter(Mandatory)] [string]$Module,
    [Parameter(Mandatory)] [string]$StorePath,
    [Parameter(Mandatory)] [string]$Name,
    [int]$Count = 20,
    [int]$Warmup = 3
)
$ErrorActionPreference = 'Stop'
Import-Module $Module
$PSDefaultParameterValues['*:StorePath'] = $StorePath
foreach ($i in 1..$Warmup) { $null = Invoke-ContainerCommand $Name -Command true }
$sw = [Diagnostics.Stopwatch]::new()
foreach ($i in 1..$Count) {
    $sw.Restart()
    $r = Invoke-ContainerCommand $Name -Command true
    $sw.Stop()
    if ($r.ExitCode -ne 0) { throw "attach $i exited $($r.ExitCode): $($r.Error)" }
    $sw.Elapsed.TotalMilliseconds.ToString('0.000', [Globalization.CultureInfo]::InvariantCulture)
}
