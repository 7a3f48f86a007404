#Requires -Version 7.4
<#
.SYNOPSIS
    The same 20-container layout converged by Invoke-ContainerManifest and by an Ansible playbook
    (community.general.lxc_container): first apply, no-op re-apply, re-apply after one container's
    config was changed by hand. Writes the medians to bench/results.md (a section of its own).

.DESCRIPTION
    Layout: a bridge (no address: nothing is routed on the host) and two groups of 10 busybox
    containers, each with a veth NIC on the bridge and an IPv4 address inside; group a has a 64M
    memory limit, group b 32M, and b<N> depends on a<N> (Ansible: the a tasks run before the b tasks).
    PSContainers runs in this warm pwsh (the module imported once); ansible-playbook is a process per
    run, as a runbook runs it. Rounds interleave the two tools.

    Needs root, ansible and python3-lxc (Debian), lxc, busybox-static, the built module.
    community.general 6.6.2's lxc_container binds to its container without lxc_path
    (lxc.Container(name=...)), so a container made under another lxc_path is never found again and
    never starts: the Ansible side uses the default path /var/lib/lxc, with names psc-bench-*.
#>
param([int] $Rounds = 3, [string] $Results = (Join-Path $PSScriptRoot '../results.md'))
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers/PSContainers.psd1') -Force
$id = [guid]::NewGuid().ToString('N').Substring(0, 6)
$work = "/tmp/psc-bench-manifest-$id"
$store = "$work/store"
New-Item -ItemType Directory $store -Force | Out-Null
$PSDefaultParameterValues['*-Container*:StorePath'] = $store
$PSDefaultParameterValues['*-CgroupLimit:StorePath'] = $store
$n = 10
$mBridge = "pscbm$id"; $aBridge = "pscba$id"
$mNames = @(1..$n | ForEach-Object { 'a{0:00}' -f $_ }) + @(1..$n | ForEach-Object { 'b{0:00}' -f $_ }) | ForEach-Object { "psc-bench-m$id-$_" }
$aNames = @(1..$n | ForEach-Object { 'a{0:00}' -f $_ }) + @(1..$n | ForEach-Object { 'b{0:00}' -f $_ }) | ForEach-Object { "psc-bench-a$id-$_" }

# ---- the manifest --------------------------------------------------------------------------
$yaml = [Text.StringBuilder]::new("id: psc-bench-$id`nbridges:`n  ${mBridge}: {}`ncontainers:`n")
for ($i = 1; $i -le $n; $i++) {
    foreach ($g in 'a', 'b') {
        $name = "psc-bench-m$id-$g{0:00}" -f $i
        $ip = if ($g -eq 'a') { $i + 1 } else { $i + 101 }
        [void]$yaml.Append("  ${name}:`n    template: busybox`n    limits: { memory: $(if ($g -eq 'a') { '64M' } else { '32M' }) }`n")
        [void]$yaml.Append("    network: [{ type: veth, link: $mBridge, ipv4: [10.233.0.$ip/24] }]`n")
        if ($g -eq 'b') { [void]$yaml.Append("    dependsOn: [psc-bench-m$id-a{0:00}]`n" -f $i) }
    }
}
$manifest = "$work/layout.yaml"
Set-Content $manifest $yaml.ToString()

# ---- the playbook --------------------------------------------------------------------------
$items = { param($g, $mem, $base) (1..$n | ForEach-Object { "          - { name: psc-bench-a$id-$g$('{0:00}' -f $_), ip: 10.234.0.$($_ + $base)/24 }" }) -join "`n" }
Set-Content "$work/net.conf" "lxc.net.0.type = veth`nlxc.net.0.link = $aBridge`nlxc.net.0.flags = up"
$task = {
    param($g, $mem, $base)
@"
    - name: group $g
      community.general.lxc_container:
        name: "{{ item.name }}"
        template: busybox
        config: $work/net.conf
        state: started
        container_config:
          - "lxc.cgroup.memory.limit_in_bytes = $mem"
          - "lxc.net.0.ipv4.address = {{ item.ip }}"
      loop:
$(& $items $g $mem $base)
"@
}
Set-Content "$work/playbook.yml" @"
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: bridge
      ansible.builtin.shell: ip link show $aBridge >/dev/null 2>&1 && echo present || { ip link add $aBridge type bridge && ip link set $aBridge up && echo created; }
      register: br
      changed_when: br.stdout == 'created'
$(& $task 'a' '64M' 1)
$(& $task 'b' '32M' 101)
"@
$env:ANSIBLE_PYTHON_INTERPRETER = '/usr/bin/python3'
$env:ANSIBLE_NOCOLOR = '1'
function Invoke-Ansible {
    $out = & ansible-playbook -i 'localhost,' "$work/playbook.yml" 2>&1 | Out-String
    if ($LASTEXITCODE -ne 0) { throw "ansible-playbook failed:`n$out" }
    if ($out -match 'changed=(\d+)') { [int]$Matches[1] } else { -1 }
}
function Remove-Ansible {
    foreach ($c in $aNames) { & lxc-stop -k -n $c 2>$null; & lxc-destroy -n $c 2>$null | Out-Null }
    & ip link del $aBridge 2>$null
}
function Remove-Manifest {
    Get-Container | Remove-Container -Force
    & ip link del $mBridge 2>$null
}
function Time([scriptblock] $b) { $w = [Diagnostics.Stopwatch]::StartNew(); $r = & $b; $w.Stop(); [pscustomobject]@{ Seconds = $w.Elapsed.TotalSeconds; Result = $r } }

$rows = [Collections.Generic.List[object]]::new()
try {
    for ($round = 1; $round -le $Rounds; $round++) {
        # PSContainers
        $first = Time { @(Invoke-ContainerManifest $manifest -ThrottleLimit 4) }
        if ($first.Result | Where-Object { -not $_.Converged }) { throw "manifest apply failed: $($first.Result | Where-Object { -not $_.Converged } | Out-String)" }
        $noop = Time { @(Invoke-ContainerManifest $manifest) }
        $noopChanged = @($noop.Result | Where-Object Outcome -ne 'Unchanged').Count
        $cfg = Join-Path $store $mNames[$n + 4] 'config.yaml'
        (Get-Content -Raw $cfg).Replace('memory: 32M', 'memory: 100M') | Set-Content -NoNewline $cfg
        $hand = Time { @(Invoke-ContainerManifest $manifest) }
        $handChanged = @($hand.Result | Where-Object Outcome -ne 'Unchanged').Count
        $cold = Time { & pwsh -NoProfile -Command "Import-Module '$PSScriptRoot/../../out/PSContainers/PSContainers.psd1'; Invoke-ContainerManifest '$manifest' -StorePath '$store' | Out-Null" }
        Remove-Manifest
        $rows.Add([pscustomobject]@{ Tool = 'PSContainers'; Round = $round; First = $first.Seconds; NoOp = $noop.Seconds; Hand = $hand.Seconds; Cold = $cold.Seconds; NoOpChanged = $noopChanged; HandChanged = $handChanged })
        # Ansible
        $first = Time { Invoke-Ansible }
        $noop = Time { Invoke-Ansible }
        $cfg = "/var/lib/lxc/$($aNames[$n + 4])/config"
        (Get-Content -Raw $cfg).Replace('limit_in_bytes = 32M', 'limit_in_bytes = 100M') | Set-Content -NoNewline $cfg
        $hand = Time { Invoke-Ansible }
        Remove-Ansible
        $rows.Add([pscustomobject]@{ Tool = 'Ansible'; Round = $round; First = $first.Seconds; NoOp = $noop.Seconds; Hand = $hand.Seconds; Cold = $null; NoOpChanged = $noop.Result; HandChanged = $hand.Result })
        $rows | Select-Object -Last 2 | Format-Table | Out-String | Write-Host
    }
}
finally {
    Remove-Manifest
    Remove-Ansible
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

function Median([double[]] $v) { $s = $v | Sort-Object; if ($s.Count % 2) { $s[[int][math]::Floor($s.Count / 2)] } else { ($s[$s.Count / 2 - 1] + $s[$s.Count / 2]) / 2 } }
$p = $rows | Where-Object Tool -eq 'PSContainers'; $a = $rows | Where-Object Tool -eq 'Ansible'
$m = @{}
foreach ($k in 'First', 'NoOp', 'Hand') { $m["p$k"] = Median $p.$k; $m["a$k"] = Median $a.$k }
$m.pCold = Median $p.Cold
$load = (Get-Content /proc/loadavg).Split(' ')[0..2] -join ' '
$section = @"
## Manifests against Ansible (bench/ManifestBench, $(Get-Date -AsUTC -Format 'yyyy-MM-dd HH:mm') UTC)

$(& uname -r), $(& nproc) CPUs shared with other work (load average before the report: $load), cgroups $((Test-Path /sys/fs/cgroup/memory) ? 'hybrid (v1 controllers)' : 'v2'),
ansible-core $((& ansible --version | Select-Object -First 1) -replace '.*core ([0-9.]+).*', '$1'), community.general 6.6.2, LXC $(& lxc-start --version), $Rounds rounds, medians in seconds.
Layout: a bridge and 20 busybox containers in two groups of 10 (memory 64M / 32M, a veth NIC with an address on the bridge each), b<N> after a<N>.
PSContainers runs in a warm pwsh; ansible-playbook is one process per run. "Changed by hand": one container's memory limit edited in its config file.

| Run | Invoke-ContainerManifest | Ansible (lxc_container) | Ratio |
|---|---:|---:|---:|
| First apply (20 created and started) | $('{0:N2}' -f $m.pFirst) | $('{0:N2}' -f $m.aFirst) | $('{0:N1}x' -f ($m.aFirst / $m.pFirst)) |
| No-op re-apply | $('{0:N3}' -f $m.pNoOp) | $('{0:N2}' -f $m.aNoOp) | $('{0:N0}x' -f ($m.aNoOp / $m.pNoOp)) |
| Re-apply after a change by hand | $('{0:N3}' -f $m.pHand) | $('{0:N2}' -f $m.aHand) | $('{0:N0}x' -f ($m.aHand / $m.pHand)) |
| No-op re-apply, cold pwsh process (module import included) | $('{0:N2}' -f $m.pCold) | | |

Reported as changed on the no-op re-apply: PSContainers $(($p.NoOpChanged | Measure-Object -Maximum).Maximum) resources, Ansible changed=$(($a.NoOpChanged | Measure-Object -Maximum).Maximum).
After the change by hand: PSContainers changed $(($p.HandChanged | Measure-Object -Maximum).Maximum) resource (the limit, live and in config.yaml), Ansible changed=$(($a.HandChanged | Measure-Object -Maximum).Maximum)
(per the module's code, lxc_container inserts a second lxc.cgroup.memory.limit_in_bytes line after the edited one instead of replacing it, and stops and starts a running container to apply it).
Targets: no-op under 1 s: $(if ($m.pNoOp -lt 1) { 'met' } else { 'NOT met' }); no-op >= 10x faster: $(if ($m.aNoOp / $m.pNoOp -ge 10) { 'met' } else { 'NOT met' }); first apply >= 5x faster: $(if ($m.aFirst / $m.pFirst -ge 5) { 'met' } else { 'NOT met' }).
"@
Write-Host $section
$text = if (Test-Path $Results) { Get-Content -Raw $Results } else { '' }
$text = [regex]::Replace($text, '(?s)\n?## Manifests against Ansible.*?(?=\n## |\z)', '')
Set-Content $Results ($text.TrimEnd() + "`n`n" + $section.Trim() + "`n")
