#Requires -Version 7.4
<#
.SYNOPSIS
    What the staged attach costs, and how fast an interactive attach shows its first prompt.

.DESCRIPTION
    1. `Invoke-ContainerCommand -Command true` through the cmdlets in real pwsh, for two builds of the
       module (-Before, -After), interleaved batch by batch in one run: each batch is a fresh pwsh
       (worker.ps1) that imports one build, warms up and times -Count attaches on a running busybox
       container of its own store. Medians, p90 and the after/before ratio.
    2. Time to first prompt of an interactive attach in a real terminal (tmux): from typing
       `Enter-Container` at a warm pwsh prompt (the -After build) until the container's shell has
       printed on the screen, against `lxc-attach` typed at a bash prompt, interleaved round by round.
    Writes (or replaces) the "Attach" section of -Output with the machine state.

.EXAMPLE
    git worktree add /tmp/attach-before e5c7a6d && (cd /tmp/attach-before && dotnet build -c Release)
    sudo pwsh bench/AttachBench/run.ps1 -Before /tmp/attach-before/out/PSContainers -After out/PSContainers
#>
param(
    [Parameter(Mandatory)] [string]$Before,
    [Parameter(Mandatory)] [string]$After,
    [int]$Rounds = 6,
    [int]$Count = 20,
    [int]$PromptRounds = 15,
    [string]$Output = (Join-Path $PSScriptRoot '../results.md')
)
$ErrorActionPreference = 'Stop'
$Before = (Resolve-Path $Before).Path; $After = (Resolve-Path $After).Path
$id = [guid]::NewGuid().ToString('N').Substring(0, 8)
$work = "/tmp/psc-bench-attach-$id"
$worker = Join-Path $PSScriptRoot 'worker.ps1'
$tmux = "psc-bench-attach-$id"
$builds = [ordered]@{ before = $Before; after = $After }
$lxcpath = "$work/lxc"; $lxcname = "psc-bench-lxc-$id"
$haveLxc = [bool](Get-Command lxc-attach -ErrorAction SilentlyContinue)

function Median([double[]]$v) { $s = $v | Sort-Object; if ($s.Count % 2) { $s[[int][math]::Floor($s.Count / 2)] } else { ($s[$s.Count / 2 - 1] + $s[$s.Count / 2]) / 2 } }
function P90([double[]]$v) { $s = $v | Sort-Object; $s[[int][math]::Ceiling(0.9 * $s.Count) - 1] }
function Fmt([double]$x) { $x.ToString('0.00', [Globalization.CultureInfo]::InvariantCulture) }
function InBuild([string]$module, [string]$store, [string]$script) {
    & pwsh -NoProfile -NonInteractive -c "Import-Module '$module'; `$PSDefaultParameterValues['*:StorePath'] = '$store'; $script"
    if ($LASTEXITCODE) { throw "pwsh ($module): $script failed" }
}
function Screen { (& tmux capture-pane -p -J -t $args[0]) -join "`n" }
function WaitScreen([string]$target, [string]$text, [int]$seconds = 30) {
    $deadline = [DateTime]::UtcNow.AddSeconds($seconds)
    while (-not (Screen $target).Contains($text)) {
        if ([DateTime]::UtcNow -gt $deadline) { throw "timed out waiting for '$text' in $target`n$(Screen $target)" }
    }
}

New-Item -ItemType Directory -Path $work | Out-Null
try {
    # ---- 1. Invoke-ContainerCommand -Command true, before and after ------------------------------
    foreach ($k in $builds.Keys) {
        InBuild $builds[$k] "$work/$k" "New-Item -ItemType Directory '$work/$k' -Force | Out-Null; New-Container psc-bench-$k-$id -Template busybox | Start-Container"
    }
    $samples = @{ before = [Collections.Generic.List[double]]::new(); after = [Collections.Generic.List[double]]::new() }
    foreach ($round in 1..$Rounds) {
        $order = if ($round % 2) { 'before', 'after' } else { 'after', 'before' }
        foreach ($k in $order) {
            $out = & pwsh -NoProfile -NonInteractive -File $worker -Module $builds[$k] -StorePath "$work/$k" -Name "psc-bench-$k-$id" -Count $Count
            if ($LASTEXITCODE) { throw "worker $k failed" }
            $out | ForEach-Object { $samples[$k].Add([double]::Parse($_, [Globalization.CultureInfo]::InvariantCulture)) }
        }
        Write-Host "round $round/${Rounds}: before $(Fmt (Median $samples.before)) ms, after $(Fmt (Median $samples.after)) ms"
    }

    # ---- 2. time to first prompt: Enter-Container vs lxc-attach, in tmux ------------------------
    $prompt = @{ psc = [Collections.Generic.List[double]]::new(); lxc = [Collections.Generic.List[double]]::new() }
    if ($haveLxc) {
        New-Item -ItemType Directory "$lxcpath" | Out-Null
        Set-Content "$work/lxc.conf" 'lxc.net.0.type = empty'
        & lxc-create -t busybox -n $lxcname -P $lxcpath -f "$work/lxc.conf" *> "$work/lxc-create.log"
        if ($LASTEXITCODE) { throw "lxc-create failed: $(Get-Content -Raw "$work/lxc-create.log")" }
        & lxc-start -n $lxcname -P $lxcpath -d
        if ($LASTEXITCODE) { throw 'lxc-start failed' }
        Set-Content "$work/init.ps1" "Import-Module '$After'; `$PSDefaultParameterValues['*:StorePath'] = '$work/after'"
        & tmux new-session -d -s $tmux -n psc -x 120 -y 40 "pwsh -NoProfile -NoLogo -NoExit -File $work/init.ps1"
        & tmux new-window -d -t $tmux -n lxc 'bash --norc --noprofile'
        WaitScreen "${tmux}:psc" 'PS ' 60
        for ($try = 1; ; $try++) {  # keys typed while pwsh still starts its line editor can be lost
            & tmux send-keys -t "${tmux}:psc" -l "`"up$try-`$(20+22)`""; & tmux send-keys -t "${tmux}:psc" Enter
            try { WaitScreen "${tmux}:psc" "up$try-42" 10; break } catch { if ($try -ge 5) { throw } }
        }
        $sw = [Diagnostics.Stopwatch]::new()
        foreach ($round in 0..$PromptRounds) {  # round 0 warms up
            foreach ($kind in $(if ($round % 2) { 'psc', 'lxc' } else { 'lxc', 'psc' })) {
                $target = "${tmux}:$kind"
                $shell = "echo R${round}X`$((6*7)); exec sh"
                $line = if ($kind -eq 'psc') { "Enter-Container psc-bench-after-$id -Command sh,-c,'$shell'" } else { "lxc-attach -n $lxcname -P $lxcpath -- sh -c '$shell'" }
                & tmux send-keys -t $target -l $line
                $sw.Restart()
                & tmux send-keys -t $target Enter
                WaitScreen $target "R${round}X42"
                $sw.Stop()
                if ($round -gt 0) { $prompt[$kind].Add($sw.Elapsed.TotalMilliseconds) }
                & tmux send-keys -t $target -l 'exit'; & tmux send-keys -t $target Enter
                # Back at the host prompt (typed again if the keys came while the attach was still ending).
                for ($try = 1; ; $try++) {
                    $back = if ($kind -eq 'psc') { "`"B${round}x$try-`$(1+1)`"" } else { "echo B${round}x$try-`$((1+1))" }
                    & tmux send-keys -t $target -l $back; & tmux send-keys -t $target Enter
                    try { WaitScreen $target "B${round}x$try-2" 5; break } catch { if ($try -ge 5) { throw } }
                }
                & tmux send-keys -t $target -l 'clear'; & tmux send-keys -t $target Enter
                Start-Sleep -Milliseconds 300
            }
        }
    }

    # ---- report -------------------------------------------------------------------------------
    $mb = Median $samples.before; $ma = Median $samples.after
    $cg = if ((& stat -f -c %T /sys/fs/cgroup) -eq 'cgroup2fs') { 'pure v2' } else { 'hybrid (v1 controllers, cgroup2 at /sys/fs/cgroup/unified)' }
    $lines = @(
        '## Attach: staged join and pty relay (bench/AttachBench)', '',
        "$(Get-Date -AsUTC -Format 'yyyy-MM-dd HH:mm') UTC, kernel $(& uname -r), $(& nproc) CPUs, $cg, load average at the end $((Get-Content /proc/loadavg).Split(' ')[0..2] -join ' '), pwsh $($PSVersionTable.PSVersion)$(if ($haveLxc) { ", $(& lxc-attach --version 2>$null | Select-Object -First 1) (lxc-attach)" }). The machine is shared with other jobs.", '',
        "``Invoke-ContainerCommand -Command true`` through the cmdlets in real pwsh (busybox container, default security), $Rounds interleaved batches of $Count per build, each batch a fresh pwsh after 3 warm-up calls:", '',
        '| Build | Median ms | p90 ms | n |', '|---|---:|---:|---:|',
        "| before (e5c7a6d: one fork into the pid namespace, constrained after) | $(Fmt $mb) | $(Fmt (P90 $samples.before)) | $($samples.before.Count) |",
        "| after (staged: relay, stager, constrained before the fork) | $(Fmt $ma) | $(Fmt (P90 $samples.after)) | $($samples.after.Count) |",
        '', "Ratio after/before (medians): **$(Fmt ($ma / $mb))x**.", '')
    if ($haveLxc) {
        $mp = Median $prompt.psc; $ml = Median $prompt.lxc
        $lines += @(
            "Interactive attach, time to first prompt in a real terminal (tmux 120x40): from the Enter key of the command line until the container's shell output is on the screen (screen polled continuously), $PromptRounds interleaved rounds after one warm-up:", '',
            '| Command | Median ms | p90 ms |', '|---|---:|---:|',
            "| ``Enter-Container`` at a warm pwsh prompt (pty in the container's devpts, relay) | $(Fmt $mp) | $(Fmt (P90 $prompt.psc)) |",
            "| ``lxc-attach`` at a bash prompt (LXC's own pty relay) | $(Fmt $ml) | $(Fmt (P90 $prompt.lxc)) |",
            '', "Enter-Container / lxc-attach: **$(Fmt ($mp / $ml))x**.", '')
    }
    $section = $lines -join "`n"
    Write-Host $section
    $text = if (Test-Path $Output) { Get-Content -Raw $Output } else { '' }
    $pattern = '(?s)## Attach: staged join and pty relay.*?(?=\n## |\z)'
    $text = if ($text -match $pattern) { [regex]::Replace($text, $pattern, $section.TrimEnd() + "`n") } else { $text.TrimEnd() + "`n`n" + $section }
    Set-Content -Path $Output -Value $text.TrimEnd() -NoNewline
    Add-Content -Path $Output -Value ''
}
finally {
    & tmux kill-session -t $tmux 2>$null
    if ($haveLxc -and (Test-Path $lxcpath)) {
        & lxc-stop -n $lxcname -P $lxcpath -k 2>$null
        & lxc-destroy -n $lxcname -P $lxcpath 2>$null
    }
    foreach ($k in $builds.Keys) {
        if (Test-Path "$work/$k") { & pwsh -NoProfile -NonInteractive -c "Import-Module '$($builds[$k])'; Get-Container -StorePath '$work/$k' | Remove-Container -Force -StorePath '$work/$k'" }
    }
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}
