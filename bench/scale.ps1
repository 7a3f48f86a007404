#Requires -Version 7.4
<#
.SYNOPSIS
    Scale benchmark (issue 17): N running busybox containers, PSContainers against LXC at the same
    count, in one run: create all, start all in sequence, stop all, start all again in parallel
    (Start-Container -ThrottleLimit), Get-Container vs lxc-ls --fancy (the first listing of the
    session, which parses every config, and the median of three after it), Measure-Container
    (one-off, and the per-sample cost of a -Wait stream), stop all in parallel, remove all;
    the supervisors' total RSS and PSS; and a leak check after the removal (no cgroup, mount,
    process or socket of the store left). Appends a markdown section to bench/results.md.

.EXAMPLE
    sudo pwsh bench/scale.ps1 -Count 50,200,500 -Lxc -ThrottleLimit 4

    With -Lxc, LXC gets the same count: created (the first -LxcCreateSample with lxc-create, the
    rest copied from the first), started in sequence with lxc-start -d, listed with lxc-ls --fancy,
    its monitors' RSS summed, stopped with lxc-stop -k and destroyed.
#>
param(
    # Bounded: through `pwsh -File`, "-Count 50,200" arrives as one string that [int[]] reads as 50200;
    # run one N per process there (or use -Command).
    [ValidateRange(1, 5000)] [int[]] $Count = @(50),
    [switch] $Lxc,
    # The parallel start and stop: 4 workers keep both cores of the bench machine busy.
    [int] $ThrottleLimit = 4,
    # lxc-create -t busybox runs the template script (seconds each on a loaded machine): the first
    # this many LXC containers are made by it (and timed); the rest are copies of the first with the
    # name replaced in their config, which is what lxc-create would have written for them.
    [int] $LxcCreateSample = 5,
    [string] $Output = (Join-Path $PSScriptRoot 'results.md')
)
$ErrorActionPreference = 'Stop'
Import-Module ($env:PSC_BENCH_MODULE ?? (Join-Path $PSScriptRoot '../out/PSContainers')) -Force
$id = [guid]::NewGuid().ToString('N').Substring(0, 8)
$root = "/tmp/psc-bench-scale-$id"
$store = "$root/store"
$lxcpath = "$root/lxc"
New-Item -ItemType Directory -Path $store, $lxcpath | Out-Null
$PSDefaultParameterValues['*-Container*:StorePath'] = $store
$PSDefaultParameterValues['*Container:StorePath'] = $store

# Progress on the host (with the time of day), so a long run shows where it is.
function Time([scriptblock]$block) {
    Write-Host "$(Get-Date -Format HH:mm:ss) $($block.ToString().Trim().Split("`n")[0])"
    $sw = [Diagnostics.Stopwatch]::StartNew(); & $block | Out-Null; $sw.Elapsed.TotalMilliseconds
}
function Kb([string]$file, [string]$key) { [long](((Get-Content $file -ErrorAction SilentlyContinue) -match "^${key}:")[0] -replace '\D', '') }

$uptimeStart = (& uptime).Trim()
try {
$rows = foreach ($n in $Count) {
    $names = 1..$n | ForEach-Object { "psc-bench-s$id-$_" }
    $r = [ordered]@{ N = $n; Load = (Get-Content /proc/loadavg).Split(' ')[0] }
    $r.Create = Time { foreach ($c in $names) { New-Container -Name $c -Template busybox -Network @{ type = 'empty' } } }
    $r.Start = Time { foreach ($c in $names) { Start-Container $c } }
    $r.StopSeq = Time { foreach ($c in $names) { Stop-Container $c -Kill } }
    $r.StartPar = Time { Start-Container $names -ThrottleLimit $ThrottleLimit }
    $running = @(Get-Container -State Running).Count
    if ($running -ne $n) { Write-Warning "only $running of $n running after the parallel start" }
    $r.Running = $running
    $r.GetContainerCold = Time { Get-Container }
    $r.GetContainer = (1..3 | ForEach-Object { Time { Get-Container } } | Sort-Object)[1]
    $r.MeasureOnce = (1..3 | ForEach-Object { Time { Measure-Container } } | Sort-Object)[1]
    # The per-sample cost of a stream: 11 samples 50 ms apart, minus the waits, minus the first (which opens).
    $first = Time { Measure-Container -Count 1 }
    $eleven = Time { Measure-Container -Count 11 -Interval 0.05 }
    $r.MeasureSample = [math]::Max(0, ($eleven - $first - 500) / 10)
    $sup = Get-Container | ForEach-Object SupervisorPid
    $r.SupervisorRssKb = ($sup | ForEach-Object { Kb "/proc/$_/status" 'VmRSS' } | Measure-Object -Sum).Sum
    $r.SupervisorPssKb = ($sup | ForEach-Object { Kb "/proc/$_/smaps_rollup" 'Pss' } | Measure-Object -Sum).Sum
    $r.Stop = Time { Stop-Container $names -Kill -ThrottleLimit $ThrottleLimit }
    $r.Remove = Time { foreach ($c in $names) { Remove-Container $c -Force } }
    # Nothing leaks: no cgroup of the store, no mount under it, no supervisor, no socket.
    $parent = (Get-Item $store).FullName
    Write-Host "$(Get-Date -Format HH:mm:ss) leak check"
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
        $sample = [math]::Min($n, $LxcCreateSample)
        $r.LxcCreate = (Time { foreach ($c in $lnames[0..($sample - 1)]) { & lxc-create -t busybox -n $c -P $lxcpath -f $conf *> $null } }) * $n / $sample
        $first = $lnames[0]
        foreach ($c in $lnames[$sample..($n - 1)]) {
            if ($sample -ge $n) { break }
            & cp -a "$lxcpath/$first" "$lxcpath/$c"
            $text = (Get-Content -Raw "$lxcpath/$c/config") -replace [regex]::Escape($first), $c
            Set-Content -NoNewline -Path "$lxcpath/$c/config" -Value $text
        }
        $made = @(& lxc-ls -1 -P $lxcpath).Count
        if ($made -ne $n) { Write-Warning "LXC: $made of $n containers made" }
        $r.LxcStart = Time { foreach ($c in $lnames) { & lxc-start -n $c -P $lxcpath -d } }
        $r.LxcRunning = @(& lxc-ls --running -1 -P $lxcpath).Count
        # The median of three, or the one run when that took more than 5 s (it only grows with N).
        $one = Time { & lxc-ls --fancy -P $lxcpath }
        $r.LxcLs = if ($one -gt 5000) { $one } else { (@($one) + (1..2 | ForEach-Object { Time { & lxc-ls --fancy -P $lxcpath } }) | Sort-Object)[1] }
        $r.LxcRss = (@(Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$' | Where-Object {
            try { (Get-Content "/proc/$($_.Name)/cmdline" -Raw -ErrorAction Stop) -match "^\[lxc monitor\] $([regex]::Escape($lxcpath))" } catch { $false } }) |
            ForEach-Object { Kb "/proc/$($_.Name)/status" 'VmRSS' } | Measure-Object -Sum).Sum
        $r.LxcStop = Time { foreach ($c in $lnames) { & lxc-stop -k -n $c -P $lxcpath } }
        $r.LxcDestroy = Time { foreach ($c in $lnames) { & lxc-destroy -n $c -P $lxcpath *> $null } }
    }
    [pscustomobject]$r
}
} finally {
    # Whatever a failed round left: the store's containers, LXC's.
    Get-Container -ErrorAction SilentlyContinue | Remove-Container -Force -ErrorAction SilentlyContinue
    if ($Lxc) {
        foreach ($c in @(& lxc-ls -P $lxcpath 2>$null)) { & lxc-stop -k -n $c -P $lxcpath 2>$null; & lxc-destroy -n $c -P $lxcpath *> $null }
        # LXC's monitors leave their empty lxc.monitor.NAME (and lxc.payload.NAME) cgroups behind in
        # every hierarchy; an empty cgroup goes with rmdir (Directory.Delete, not recursive).
        Get-ChildItem /sys/fs/cgroup -Directory -Recurse -Depth 1 -ErrorAction SilentlyContinue |
            Where-Object Name -match "^lxc\.(monitor|payload)\.psc-bench-l$id-\d+$" |
            ForEach-Object { try { [IO.Directory]::Delete($_.FullName) } catch { Write-Warning "Could not remove LXC's cgroup $($_.FullName): $($_.Exception.Message)" } }
    }
}

$load = (Get-Content /proc/loadavg).Split(' ')[0..2] -join ' '
$uptime = (& uptime).Trim()
$others = @(Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$' | ForEach-Object {
    try { (Get-Content "/proc/$($_.Name)/comm" -ErrorAction Stop) } catch { } } | Where-Object { $_ -in 'psc-supervise', 'testhost', 'dotnet', 'pwsh', 'criu' } | Group-Object | ForEach-Object { "$($_.Name) x$($_.Count)" }) -join ', '
$header = "| N | load (1 min) | create ms/ct | start ms/ct (sequence) | start ms/ct (-ThrottleLimit $ThrottleLimit) | running | Get-Container ms, first / median (ms/ct) | Measure-Container once ms/ct | Measure -Wait sample ms/ct | supervisors RSS / PSS (KiB total) | stop -Kill ms/ct (sequence / -ThrottleLimit $ThrottleLimit) | remove ms/ct | leaks |"
$rule = "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
if ($Lxc) { $header += " LXC create ms/ct | LXC start ms/ct (sequence) | LXC running | lxc-ls --fancy ms | LXC monitors RSS (KiB total) | Get-Container vs lxc-ls (first / median) | parallel start vs LXC sequence |"; $rule += "---|---|---|---|---|---|---|" }
$md = [Collections.Generic.List[string]]@("", "## Scale: N running busybox containers ($(Get-Date -Format 'yyyy-MM-dd HH:mm') UTC, bench/scale.ps1)", "",
    "Machine state: at the start ``$uptimeStart``; at the end ``$uptime``; $(nproc) CPUs, $([math]::Round((Kb /proc/meminfo 'MemTotal') / 1MB, 1)) GiB RAM; other work running at the end: $others.", "", $header, $rule)
foreach ($r in $rows) {
    $line = "| $($r.N) | $($r.Load) | {0:N2} | {1:N2} | {2:N2} | {3} | {4:N0} / {5:N0} ({6:N3}) | {7:N3} | {8:N3} | {9:N0} / {10:N0} | {11:N2} / {12:N2} | {13:N2} | {14} |" -f ($r.Create / $r.N), ($r.Start / $r.N), ($r.StartPar / $r.N), $r.Running, $r.GetContainerCold, $r.GetContainer, ($r.GetContainer / $r.N), ($r.MeasureOnce / $r.N), ($r.MeasureSample / $r.N), $r.SupervisorRssKb, $r.SupervisorPssKb, ($r.StopSeq / $r.N), ($r.Stop / $r.N), ($r.Remove / $r.N), $r.Leaks
    if ($Lxc) { $line += " {0:N2} | {1:N2} | {2} | {3:N0} | {4:N0} | {5:N1}x / {6:N1}x | {7:N1}x |" -f ($r.LxcCreate / $r.N), ($r.LxcStart / $r.N), $r.LxcRunning, $r.LxcLs, $r.LxcRss, ($r.LxcLs / $r.GetContainerCold), ($r.LxcLs / $r.GetContainer), ($r.LxcStart / $r.StartPar) }
    $md.Add($line)
}
$md | Write-Output
Add-Content -Path $Output -Value ($md -join "`n")
Remove-Item -Recurse -Force $root -ErrorAction SilentlyContinue
