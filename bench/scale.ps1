#Requires -Version 7.4
<#
.SYNOPSIS
    Scale benchmark (issue 17): N running busybox containers, PSContainers against LXC at the same
    count, in one run: create all, start all (in sequence), Get-Container vs lxc-ls --fancy,
    Measure-Container (one-off, and the per-sample cost of a -Wait stream), stop all, remove all;
    the supervisors' total RSS and PSS; and a leak check after the removal (no cgroup, mount,
    process or socket of the store left). Appends a markdown section to bench/results.md.

.EXAMPLE
    sudo pwsh bench/scale.ps1 -Count 50,200 -Lxc
#>
param(
    [int[]] $Count = @(50),
    [switch] $Lxc,
    [string] $Output = (Join-Path $PSScriptRoot 'results.md')
)
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot '../out/PSContainers') -Force
$id = [guid]::NewGuid().ToString('N').Substring(0, 8)
$root = "/tmp/psc-bench-scale-$id"
$store = "$root/store"
$lxcpath = "$root/lxc"
New-Item -ItemType Directory -Path $store, $lxcpath | Out-Null
$PSDefaultParameterValues['*-Container*:StorePath'] = $store
$PSDefaultParameterValues['*Container:StorePath'] = $store

function Time([scriptblock]$block) { $sw = [Diagnostics.Stopwatch]::StartNew(); & $block | Out-Null; $sw.Elapsed.TotalMilliseconds }
function Kb([string]$file, [string]$key) { [long](((Get-Content $file -ErrorAction SilentlyContinue) -match "^${key}:")[0] -replace '\D', '') }

try {
$rows = foreach ($n in $Count) {
    $names = 1..$n | ForEach-Object { "psc-bench-s$id-$_" }
    $r = [ordered]@{ N = $n }
    $r.Create = Time { foreach ($c in $names) { New-Container -Name $c -Template busybox -Network @{ type = 'empty' } } }
    $r.Start = Time { foreach ($c in $names) { Start-Container $c } }
    $r.GetContainer = (1..3 | ForEach-Object { Time { Get-Container } } | Sort-Object)[1]
    $r.MeasureOnce = (1..3 | ForEach-Object { Time { Measure-Container } } | Sort-Object)[1]
    # The per-sample cost of a stream: 11 samples 50 ms apart, minus the waits, minus the first (which opens).
    $first = Time { Measure-Container -Count 1 }
    $eleven = Time { Measure-Container -Count 11 -Interval 0.05 }
    $r.MeasureSample = [math]::Max(0, ($eleven - $first - 500) / 10)
    $sup = Get-Container | ForEach-Object SupervisorPid
    $r.SupervisorRssKb = ($sup | ForEach-Object { Kb "/proc/$_/status" 'VmRSS' } | Measure-Object -Sum).Sum
    $r.SupervisorPssKb = ($sup | ForEach-Object { Kb "/proc/$_/smaps_rollup" 'Pss' } | Measure-Object -Sum).Sum
    $r.Stop = Time { foreach ($c in $names) { Stop-Container $c -Kill } }
    $r.Remove = Time { foreach ($c in $names) { Remove-Container $c -Force } }
    # Nothing leaks: no cgroup of the store, no mount under it, no supervisor, no socket.
    $parent = (Get-Item $store).FullName
    $leaks = @()
    $leaks += @(Get-ChildItem /sys/fs/cgroup -Directory -Recurse -Depth 2 -ErrorAction SilentlyContinue | Where-Object Name -like "psc-bench-s$id-*").FullName
    $leaks += @((Get-Content /proc/self/mountinfo) -match [regex]::Escape($parent))
    $leaks += @(Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$' | Where-Object {
        try { (Get-Content "/proc/$($_.Name)/cmdline" -Raw -ErrorAction Stop) -match "psc-bench-s$id" } catch { $false } }).Name
    $leaks = @($leaks | Where-Object { $_ })
    $r.Leaks = $leaks.Count
    if ($leaks) { Write-Warning "leaks at N=${n}:`n$($leaks -join "`n")" }
    if ($Lxc) {
        $conf = "$root/lxc.conf"; Set-Content $conf 'lxc.net.0.type = empty'
        $lnames = 1..$n | ForEach-Object { "psc-bench-l$id-$_" }
        $r.LxcCreate = Time { foreach ($c in $lnames) { & lxc-create -t busybox -n $c -P $lxcpath -f $conf *> $null } }
        $r.LxcStart = Time { foreach ($c in $lnames) { & lxc-start -n $c -P $lxcpath -d } }
        $r.LxcLs = (1..3 | ForEach-Object { Time { & lxc-ls --fancy -P $lxcpath } } | Sort-Object)[1]
        $r.LxcStop = Time { foreach ($c in $lnames) { & lxc-stop -k -n $c -P $lxcpath } }
        $r.LxcDestroy = Time { foreach ($c in $lnames) { & lxc-destroy -n $c -P $lxcpath *> $null } }
    }
    [pscustomobject]$r
}
} finally {
    # Whatever a failed round left: the store's containers, LXC's.
    Get-Container -ErrorAction SilentlyContinue | Remove-Container -Force -ErrorAction SilentlyContinue
    if ($Lxc) { foreach ($c in @(& lxc-ls -P $lxcpath 2>$null)) { & lxc-stop -k -n $c -P $lxcpath 2>$null; & lxc-destroy -n $c -P $lxcpath *> $null } }
}

$load = (Get-Content /proc/loadavg).Split(' ')[0..2] -join ' '
$others = @(Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$' | ForEach-Object {
    try { (Get-Content "/proc/$($_.Name)/comm" -ErrorAction Stop) } catch { } } | Where-Object { $_ -in 'psc-supervise', 'testhost', 'dotnet', 'pwsh', 'criu' } | Group-Object | ForEach-Object { "$($_.Name) x$($_.Count)" }) -join ', '
$header = "| N | create ms/ct | start ms/ct | Get-Container ms (ms/ct) | Measure-Container once ms/ct | Measure -Wait sample ms/ct | supervisors RSS / PSS (KiB total) | stop ms/ct | remove ms/ct | leaks |"
$rule = "|---|---|---|---|---|---|---|---|---|---|"
if ($Lxc) { $header += " LXC start ms/ct | lxc-ls --fancy ms | Get-Container vs lxc-ls | start vs LXC |"; $rule += "---|---|---|---|" }
$md = [Collections.Generic.List[string]]@("", "## Scale: N running busybox containers ($(Get-Date -Format 'yyyy-MM-dd HH:mm') UTC, bench/scale.ps1)", "",
    "Machine state during the run: load average $load; $(nproc) CPUs; other work running: $others.", "", $header, $rule)
foreach ($r in $rows) {
    $line = "| $($r.N) | {0:N2} | {1:N2} | {2:N0} ({3:N3}) | {4:N3} | {5:N3} | {6:N0} / {7:N0} | {8:N2} | {9:N2} | {10} |" -f ($r.Create / $r.N), ($r.Start / $r.N), $r.GetContainer, ($r.GetContainer / $r.N), ($r.MeasureOnce / $r.N), ($r.MeasureSample / $r.N), $r.SupervisorRssKb, $r.SupervisorPssKb, ($r.Stop / $r.N), ($r.Remove / $r.N), $r.Leaks
    if ($Lxc) { $line += " {0:N2} | {1:N0} | {2:N1}x | {3:N1}x |" -f ($r.LxcStart / $r.N), $r.LxcLs, ($r.LxcLs / $r.GetContainer), ($r.LxcStart / $r.Start) }
    $md.Add($line)
}
$md | Write-Output
Add-Content -Path $Output -Value ($md -join "`n")
Remove-Item -Recurse -Force $root -ErrorAction SilentlyContinue
