#Requires -Version 7.4
<#
.SYNOPSIS
    Pester 5 story of init's kernel settings and typed mounts (issue 18): a container made from a
    config with limits.prlimit, sysctl, oomScoreAdj and a tmpfs entry shows them inside, the host
    keeps its own values, and a sysctl that is not namespaced is refused before anything is made.

.NOTES
    Needs Linux, root, a static busybox and the built module in out/PSContainers. Everything lives
    under /tmp/psc-test-<guid> (a store of its own), removed in AfterAll. The xunit tests
    (InitSettingsTests, MountEntryTests) go further: line:column errors, a lower OOM score, a
    failed sysctl that leaves nothing, a mount target through a link out of the root.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'Init''s kernel settings and typed mounts (lxc.prlimit, lxc.sysctl, lxc.proc.oom_score_adj, lxc.mount.entry)' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers') -Force
        $script:root = Join-Path ([IO.Path]::GetTempPath()) "psc-test-$([guid]::NewGuid().ToString('N').Substring(0, 12))"
        $script:store = Join-Path $script:root 'store'
        New-Item -ItemType Directory -Path $script:store -Force | Out-Null
        $env:PSCONTAINERS_PATH = $script:store
        $script:name = "psct-keys-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    }

    AfterAll {
        Remove-Container -Name $script:name -Force -ErrorAction SilentlyContinue
        $env:PSCONTAINERS_PATH = $null
        Remove-Item -Recurse -Force $script:root -ErrorAction SilentlyContinue
    }

    It 'refuses a sysctl that would change the host, naming it and where it is' {
        $bad = Join-Path $script:root 'bad.yaml'
        Set-Content -Path $bad -Value "sysctl:`n  kernel.panic: `"1`"`n"
        $err = $null
        New-Container -Name "$($script:name)x" -Template busybox -ConfigPath $bad -ErrorVariable err -ErrorAction SilentlyContinue | Out-Null
        $err | Should -Not -BeNullOrEmpty
        "$($err[0])" | Should -Match "bad\.yaml:2:3: sysctl 'kernel\.panic' is not namespaced"
        Get-Container -Name "$($script:name)x" -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'gives init its limits, sysctls, OOM score and tmpfs, and leaves the host''s alone' {
        $hostForward = (Get-Content /proc/sys/net/ipv4/ip_forward).Trim()
        $want = if ($hostForward -eq '1') { '0' } else { '1' }
        $config = Join-Path $script:root 'keys.yaml'
        Set-Content -Path $config -Value @"
init:
  command: [/bin/sleep, "600"]
limits:
  prlimit: { nofile: "1000:2000" }
sysctl:
  net.ipv4.ip_forward: "$want"
oomScoreAdj: 400
mounts:
  - { target: /run/cache, type: tmpfs, options: "nosuid,nodev,size=1m,mode=0700" }
"@
        $c = New-Container -Name $script:name -Template busybox -ConfigPath $config | Start-Container -PassThru
        (Invoke-ContainerCommand $c.Name -Command cat, /proc/sys/net/ipv4/ip_forward).Output | Should -Be $want
        (Invoke-ContainerCommand $c.Name -Command cat, /proc/1/oom_score_adj).Output | Should -Be '400'
        (Get-Content "/proc/$($c.Pid)/limits" | Where-Object { $_ -like 'Max open files*' }) | Should -Match '^Max open files\s+1000\s+2000\s'
        $tmpfs = (Invoke-ContainerCommand $c.Name -Command cat, /proc/mounts).Output | Where-Object { ($_ -split ' ')[1] -eq '/run/cache' }
        $tmpfs | Should -Match '^tmpfs /run/cache tmpfs rw,nosuid,nodev.*size=1024k.*mode=700'
        (Get-Content /proc/sys/net/ipv4/ip_forward).Trim() | Should -Be $hostForward
        (Get-Content (Join-Path $script:store "$($script:name)/config.yaml") -Raw) | Should -Match 'oomScoreAdj: 400'
    }
}
