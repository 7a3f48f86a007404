#Requires -Version 7.4
<#
.SYNOPSIS
    Pester 5 part of the container/host boundary stories (issue 11 items 5, 6, 8): what a
    container root tries against its read-only bind mounts, its own cgroup limits and device
    rules, and what a long seccomp profile compiles to, answered by the real kernel.

.NOTES
    Needs Linux, root, a static busybox and the built module in out/PSContainers. Everything lives
    under /tmp/psc-test-<guid> (a store of its own and a tmpfs submount), removed in AfterAll.
    The xunit tests (ContainerSecurityTests, UserNicTests) go further: every hierarchy and every
    limit file, the bare cgroup2 device program, and psc-usernic killed mid-create.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'The container/host boundary: limits a container cannot lift' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers') -Force
        $script:root = Join-Path ([IO.Path]::GetTempPath()) "psc-test-$([guid]::NewGuid().ToString('N').Substring(0, 12))"
        $script:store = Join-Path $script:root 'store'
        New-Item -ItemType Directory -Path $script:store -Force | Out-Null
        $env:PSCONTAINERS_PATH = $script:store
        $script:names = [Collections.Generic.List[string]]::new()
        function script:New-TestContainer([string] $hint, [string] $yaml) {
            $name = "psct-$hint-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
            $config = Join-Path $script:root "$name.yaml"
            Set-Content -Path $config -Value $yaml
            $script:names.Add($name)
            New-Container -Name $name -Template busybox -ConfigPath $config | Start-Container -PassThru
        }
    }

    AfterAll {
        foreach ($n in $script:names) { Remove-Container -Name $n -Force -ErrorAction SilentlyContinue }
        if ($script:sub -and (Test-Path $script:sub)) { & umount -l $script:sub 2>$null }
        $env:PSCONTAINERS_PATH = $null
        Remove-Item -Recurse -Force $script:root -ErrorAction SilentlyContinue
    }

    It 'keeps a read-only bind mount read-only for a host mount below its source' {
        $source = Join-Path $script:root 'ro'
        $script:sub = Join-Path $source 'sub'
        New-Item -ItemType Directory -Path $script:sub -Force | Out-Null
        & mount -t tmpfs -o size=1m psct-rosub $script:sub
        $LASTEXITCODE | Should -Be 0
        Set-Content -Path (Join-Path $script:sub 'host.txt') -Value 'host file'
        $c = New-TestContainer 'pro' "mounts:`n  - { source: $source, target: /mnt/ro, readOnly: true }`n"
        (Invoke-ContainerCommand $c.Name -Command cat, /mnt/ro/sub/host.txt).Output | Should -Be 'host file'
        $write = Invoke-ContainerCommand $c.Name -Command sh, -c, 'echo changed > /mnt/ro/sub/host.txt'
        $write.ExitCode | Should -Not -Be 0
        ($write.Error -join "`n") | Should -Match 'Read-only file system'
        Get-Content (Join-Path $script:sub 'host.txt') | Should -Be 'host file'
    }

    It 'refuses a device the container''s own devices cgroup tries to re-allow, and keeps its limits' {
        $c = New-TestContainer 'plift' "limits: { pids: 40 }`n"
        $outer = Get-Cgroup | Where-Object Path -eq "/$($c.CgroupPath)" | Select-Object -First 1
        $outer | Should -Not -BeNullOrEmpty
        $devicesDir = $outer.Directories | Where-Object { $_ -match '/devices/' } | Select-Object -First 1
        $before = if ($devicesDir) { Get-Content (Join-Path $devicesDir 'devices.list') }
        $limitBefore = (Get-CgroupLimit $c.Name).PidsMax
        # From inside: mount the hierarchies (the cgroup namespace's root is the inner cgroup), re-allow, raise.
        $script = @'
mkdir -p /tmp/dev /tmp/pids /tmp/cg2
mount -t cgroup -o devices none /tmp/dev 2>/dev/null && { echo 'b 7:0 rwm' > /tmp/dev/devices.allow && echo allowed-loop; echo a > /tmp/dev/devices.allow && echo allowed-all; }
mount -t cgroup -o pids none /tmp/pids 2>/dev/null && echo max > /tmp/pids/pids.max && echo own-pids
mount -t cgroup2 none /tmp/cg2 2>/dev/null && [ -e /tmp/cg2/pids.max ] && echo max > /tmp/cg2/pids.max && echo own-pids2
true
'@
        $r = Invoke-ContainerCommand $c.Name -Command sh, -c, $script
        $r.Output | Should -Not -Contain 'allowed-loop'
        $r.Output | Should -Not -Contain 'allowed-all'
        if ($devicesDir) { Get-Content (Join-Path $devicesDir 'devices.list') | Should -Be $before }
        (Get-CgroupLimit $c.Name).PidsMax | Should -Be $limitBefore
        [long](Measure-Container $c.Name).PidsMax | Should -Be 40
        # The loop device (if any) stays shut: mknod is allowed, opening it is not.
        $read = Invoke-ContainerCommand $c.Name -Command sh, -c, 'mknod /tmp/l b 7 0 && head -c 1 /tmp/l'
        $read.ExitCode | Should -Not -Be 0
        ($read.Error -join "`n") | Should -Match 'Operation not permitted'
    }

    It 'freezes, stops and removes a container whose processes live in its inner cgroup' {
        $c = New-TestContainer 'pfrz' ''
        Suspend-Container $c.Name
        (Get-Container $c.Name).State | Should -Be 'Frozen'
        Resume-Container $c.Name
        Stop-Container $c.Name -Kill
        Get-Cgroup | Where-Object Path -like "/$($c.CgroupPath)*" | Should -BeNullOrEmpty
    }

    It 'compiles a rule too long for 8-bit jumps so the kernel answers as the profile says' {
        # 45 conditions (270 instructions) on kill's pid: EXDEV for pid 12345; the next rule gives
        # EACCES for 23456; other pids reach the kernel (no such process). Truncated jumps land
        # mid-rule instead. pid_t is an int: compared under a 32-bit mask.
        $conditions = (1..45 | ForEach-Object { '{ index: 0, op: maskedEq, mask: 4294967295, value: 12345 }' }) -join ', '
        $profilePath = Join-Path $script:root 'long.yaml'
        Set-Content -Path $profilePath -Value @"
defaultAction: allow
syscalls:
  - { names: [kill], action: errno, errno: EXDEV, args: [$conditions] }
  - { names: [kill], action: errno, errno: EACCES, args: [{ index: 0, op: maskedEq, mask: 4294967295, value: 23456 }] }
"@
        $c = New-TestContainer 'pseccomp' "security:`n  seccomp: { profile: $profilePath }`n"
        (Invoke-ContainerCommand $c.Name -Command kill, -0, 12345).Error -join "`n" | Should -Match 'Invalid cross-device link'
        (Invoke-ContainerCommand $c.Name -Command kill, -0, 23456).Error -join "`n" | Should -Match 'Permission denied'
        (Invoke-ContainerCommand $c.Name -Command kill, -0, 34567).Error -join "`n" | Should -Match 'No such process'
        (Invoke-ContainerCommand $c.Name -Command kill, -0, 1).ExitCode | Should -Be 0
    }

    It 'installs psc-usernic only along directories nobody but root can change, never through a symlink' {
        $base = Join-Path $script:root 'install'
        $real = Join-Path $base 'real'
        New-Item -ItemType Directory -Path $real -Force | Out-Null
        # An ancestor another user owns: that user could swap the directory below it between checks.
        $owned = Join-Path $base 'owned'
        New-Item -ItemType Directory -Path (Join-Path $owned 'sub') -Force | Out-Null
        & chown 65534 $owned
        $err = $null
        Install-ContainerUserNic -Path (Join-Path $owned 'sub/psc-usernic') -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'UserNicUnsafeDirectory,*'
        $err[0].Exception.Message | Should -BeLike "*$owned*"
        Test-Path (Join-Path $owned 'sub/psc-usernic') | Should -BeFalse
        # A group-writable ancestor (not sticky).
        $group = Join-Path $base 'group'
        New-Item -ItemType Directory -Path (Join-Path $group 'sub') -Force | Out-Null
        & chmod 0775 $group
        Install-ContainerUserNic -Path (Join-Path $group 'sub/psc-usernic') -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'UserNicUnsafeDirectory,*'
        # A symlink on the way is never followed.
        $link = Join-Path $base 'link'
        New-Item -ItemType SymbolicLink -Path $link -Target $real | Out-Null
        Install-ContainerUserNic -Path (Join-Path $link 'psc-usernic') -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'UserNicUnsafeDirectory,*'
        Test-Path (Join-Path $real 'psc-usernic') | Should -BeFalse
        # Along root's own directories (below the sticky /tmp) it installs.
        Install-ContainerUserNic -Path (Join-Path $real 'psc-usernic') -Confirm:$false
        (& getcap (Join-Path $real 'psc-usernic')) | Should -Match 'cap_net_admin=ep'
        (& stat -c '%u %a' (Join-Path $real 'psc-usernic')) | Should -Be '0 755'
        Install-ContainerUserNic -Path (Join-Path $real 'psc-usernic-suid') -Setuid -Confirm:$false
        (& stat -c '%u %a' (Join-Path $real 'psc-usernic-suid')) | Should -Be '0 4755'
        @(Get-ChildItem -Force $real | Where-Object Name -like '.*tmp') | Should -BeNullOrEmpty
    }
}
