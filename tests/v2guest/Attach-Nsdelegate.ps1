#Requires -Version 7.4
<#
.SYNOPSIS
    Attach on a pure cgroup-v2 host mounted as systemd does (nsdelegate): run inside the v2 guest.

.DESCRIPTION
    With nsdelegate the kernel refuses (ENOENT) to move a process into a cgroup once the mover is in a
    cgroup namespace that does not contain its own cgroup, so an attach must join the container's
    cgroups before its cgroup namespace (issue 19: "fork: No such file or directory"). This starts a
    busybox container with each module build given and attaches `cat /proc/self/cgroup`; it prints one
    RESULT line per build and exits 1 if any build failed. On this repository's hybrid development
    host the same order is checked with strace (AttachSecurityTests.Attach_JoinsEveryCgroup_BeforeTheCgroupNamespace),
    since nsdelegate is a global flag of the cgroup2 hierarchy there.

.EXAMPLE
    # ../shared/v2guest: make-v2-guest.sh once, then (about 3 minutes under user-mode Linux):
    sudo run-in-v2-guest.sh --share $PWD -- pwsh -NoProfile -File tests/v2guest/Attach-Nsdelegate.ps1 out/PSContainers
#>
param([Parameter(Mandatory, ValueFromRemainingArguments)] [string[]]$Module)
$mount = (Get-Content /proc/self/mountinfo | Select-String ' - cgroup2 ').Line
"cgroup2: $mount"
if ($mount -notmatch 'nsdelegate') { Write-Warning 'cgroup2 is not mounted with nsdelegate here: this does not test the ordering' }
$failed = 0
foreach ($m in $Module) {
    $m = (Resolve-Path $m).Path
    $store = "/tmp/psc-test-guest-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    $out = & pwsh -NoProfile -c @"
Import-Module '$m'
`$PSDefaultParameterValues['*:StorePath'] = '$store'
`$ProgressPreference = 'SilentlyContinue'
New-Container g1 -Template busybox | Out-Null
Start-Container g1
try { `$r = Invoke-ContainerCommand g1 -Command cat,/proc/self/cgroup -ErrorAction Stop; "RESULT exit=`$(`$r.ExitCode) `$(`$r.Output -join ';')" }
catch { "RESULT error: `$_" }
Stop-Container g1 -Kill
Remove-Container g1
"@
    $line = $out | Where-Object { $_ -like 'RESULT *' }
    "$m $line"
    if ($line -ne 'RESULT exit=0 0::/') { $failed++ }
    Remove-Item -Recurse -Force $store -ErrorAction SilentlyContinue
}
exit [int]($failed -gt 0)
