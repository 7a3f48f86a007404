#Requires -Version 7.4
<#
.SYNOPSIS
    Devices on running containers (issue 18, lxc-device add/del): Add-ContainerDevice binds a host
    node into the container's /dev and allows it in its device cgroup, Remove-ContainerDevice takes
    it out and denies it again, -Persist records it in config.yaml for the next start.

.NOTES
    Needs Linux, root and the built module. The device is a loop device over a file in the test's
    /tmp/psc-test-<guid> directory (detached in AfterAll, also when tests fail): a block device the
    default device rules do not allow, so reading it inside proves the rule Add-ContainerDevice made.
    Containers are made with New-Container's default (user-namespaced), plus one privileged.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0') -and (Get-Command losetup -ErrorAction SilentlyContinue)
}

Describe 'Devices: add and remove device nodes on running containers' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')
        $script:image = Join-Path $root 'disk.img'
        $bytes = [byte[]]::new(1MB)
        [Text.Encoding]::ASCII.GetBytes('PSCDEVICE').CopyTo($bytes, 0)
        [IO.File]::WriteAllBytes($script:image, $bytes)
        $script:loop = (& losetup --find --show $script:image).Trim()
        $numbers = (& stat -c '%t %T' $script:loop).Split(' ')
        $script:loopMajor = [Convert]::ToInt32($numbers[0], 16)
        $script:loopMinor = [Convert]::ToInt32($numbers[1], 16)
        $script:box = New-TestName dev
        New-Container $script:box | Out-Null
        Start-Container $script:box | Out-Null
        # Reads the device's first 9 bytes inside; the exit code says whether the open was allowed.
        function ReadInside([string] $name, [string] $path) {
            Invoke-ContainerCommand $name -Command sh, -c, "dd if=$path bs=9 count=1 2>/dev/null"
        }
    }

    AfterAll {
        Remove-TestStore
        if ($script:loop) { & losetup -d $script:loop 2>$null }
    }

    It 'adds a block device to a running unprivileged container, usable inside, and removes it again' {
        (ReadInside $script:box /dev/pscdisk).ExitCode | Should -Not -Be 0
        $d = Add-ContainerDevice $script:box -Path $script:loop -Destination /dev/pscdisk
        $d.Type | Should -Be 'Block'
        $d.Major | Should -Be 7
        $d.Live | Should -BeTrue
        $d.Persisted | Should -BeFalse
        $d.Rule | Should -BeLike 'allow b 7:* rw'
        $r = ReadInside $script:box /dev/pscdisk
        $r.ExitCode | Should -Be 0
        $r.Output | Should -Be 'PSCDEVICE'
        # The container writes through it too.
        (Invoke-ContainerCommand $script:box -Command sh, -c, 'printf HELLO | dd of=/dev/pscdisk bs=1 seek=16 conv=notrunc 2>/dev/null').ExitCode | Should -Be 0
        [Text.Encoding]::ASCII.GetString([IO.File]::ReadAllBytes($script:image), 16, 5) | Should -Be 'HELLO'
        (Get-ContainerEvent -Name $script:box -Kind DeviceAdded).Count | Should -BeGreaterOrEqual 1

        $removed = $d | Remove-ContainerDevice -PassThru
        $removed.Rule | Should -BeLike 'deny b 7:* rwm'
        (Invoke-ContainerCommand $script:box -Command test, -e, /dev/pscdisk).ExitCode | Should -Not -Be 0
        # Denied in the device cgroup, whatever node the container could reach it through.
        (Get-ContainerConfig $script:box).Mounts.Target | Should -Not -Contain '/dev/pscdisk'
    }

    It 'denies the device after removal even through a node bound again by hand' {
        $d = Add-ContainerDevice $script:box -Path $script:loop -Destination /dev/pscdisk2
        # A node anyone may open, bound by hand: only the device cgroup decides.
        $open = Join-Path $root 'open-node'
        & mknod $open b $d.Major $d.Minor
        & chmod 0666 $open
        $spec = [PSContainers.Runtime.Namespaces.DeviceSpec]@{ TargetPid = (Get-Container $script:box).Pid; SourceNode = $open; TargetPath = '/dev/pscdisk3' }
        [PSContainers.Runtime.Launcher.PscHelper]::Run($spec).ExitCode | Should -Be 0
        try {
            (ReadInside $script:box /dev/pscdisk3).Output | Should -Be 'PSCDEVICE'
            Remove-ContainerDevice $script:box -Path $script:loop -Destination /dev/pscdisk2
            (Invoke-ContainerCommand $script:box -Command test, -b, /dev/pscdisk3).ExitCode | Should -Be 0
            (ReadInside $script:box /dev/pscdisk3).ExitCode | Should -Not -Be 0
        }
        finally {
            $spec.SourceNode = $null
            [PSContainers.Runtime.Launcher.PscHelper]::Run($spec) | Out-Null
        }
    }

    It 'with -Persist records the device in config.yaml, so that it survives a restart' {
        # A user-namespaced container's start binds the host's node itself: one its ids may open.
        $open = Join-Path $root 'open-persist'
        & mknod $open b $script:loopMajor $script:loopMinor
        & chmod 0666 $open
        & chmod 0755 $root
        $d = Add-ContainerDevice $script:box -Path $open -Destination /dev/pscpersist -Persist
        $d.Persisted | Should -BeTrue
        $d.Live | Should -BeTrue
        (Get-ContainerConfig $script:box).Mounts.Target | Should -Contain '/dev/pscpersist'
        Get-Content (Join-Path $store $script:box 'config.yaml') -Raw | Should -Match "allow b $($script:loopMajor):$($script:loopMinor) rw"
        Stop-Container $script:box -Kill | Out-Null
        Start-Container $script:box | Out-Null
        (ReadInside $script:box /dev/pscpersist).Output | Should -Be 'PSCDEVICE'
        Remove-ContainerDevice $script:box -Path $open -Destination /dev/pscpersist -Persist
        (Get-ContainerConfig $script:box).Mounts.Target | Should -Not -Contain '/dev/pscpersist'
        (Invoke-ContainerCommand $script:box -Command test, -e, /dev/pscpersist).ExitCode | Should -Not -Be 0
        Stop-Container $script:box -Kill | Out-Null
        Start-Container $script:box | Out-Null
        (Invoke-ContainerCommand $script:box -Command test, -e, /dev/pscpersist).ExitCode | Should -Not -Be 0
    }

    It 'adds to a stopped container only with -Persist' {
        $stopped = New-TestName devs
        New-Container $stopped -Privileged | Out-Null
        { Add-ContainerDevice $stopped -Path $script:loop -ErrorAction Stop } |
            Should -Throw -ErrorId 'ContainerNotRunning,PSContainers.Cmdlets.AddContainerDeviceCommand'
        $d = Add-ContainerDevice $stopped -Path $script:loop -Destination /dev/pscpriv -Persist
        $d.Live | Should -BeFalse
        Start-Container $stopped | Out-Null
        (ReadInside $stopped /dev/pscpriv).Output | Should -Be 'PSCDEVICE'
    }

    It 'refuses <Case>' -ForEach @(
        @{ Case = 'a path with ..'; Path = '/dev/../dev/null'; Destination = $null; Id = 'InvalidDevicePath' }
        @{ Case = 'a relative path'; Path = 'dev/null'; Destination = $null; Id = 'InvalidDevicePath' }
        @{ Case = 'a file that is not a device node'; Path = '/etc/hostname'; Destination = '/dev/x'; Id = 'NotADeviceNode' }
        @{ Case = 'a missing node'; Path = '/dev/psc-test-missing'; Destination = $null; Id = 'DeviceNotFound' }
        @{ Case = 'a destination outside /dev'; Path = '/dev/null'; Destination = '/etc/null'; Id = 'DeviceDestinationOutsideDev' }
        @{ Case = 'a destination over the container''s devpts'; Path = '/dev/null'; Destination = '/dev/pts/0'; Id = 'DeviceDestinationOutsideDev' }
        @{ Case = 'a destination with ..'; Path = '/dev/null'; Destination = '/dev/../etc/x'; Id = 'InvalidDevicePath' }
    ) {
        $p = @{ Name = $script:box; Path = $Path; ErrorAction = 'Stop' }
        if ($Destination) { $p.Destination = $Destination }
        { Add-ContainerDevice @p } | Should -Throw -ErrorId "$Id,PSContainers.Cmdlets.AddContainerDeviceCommand"
    }

    It 'refuses a device the caller cannot read and write' {
        $node = Join-Path $root 'null-like'
        & mknod $node c 1 3
        & chmod 000 $node
        # Root passes access(2) on any node; run the check as nobody.
        $pwsh = (Get-Command pwsh).Source
        $module = (Resolve-Path (Join-Path $PSScriptRoot '../../out/PSContainers/PSContainers.psd1')).Path
        $script = Join-Path $root 'inspect.ps1'
        Set-Content -Path $script -Value "Import-Module '$module'; try { [PSContainers.Runtime.Devices.ContainerDevices]::new(`$null).Inspect('$node') } catch { `$_.Exception.InnerException.ErrorId }"
        & chmod 0755 $root
        & chmod 0644 $script
        $err = & setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp DOTNET_CLI_HOME=/tmp $pwsh -NoProfile -File $script
        $err | Should -Be 'DeviceAccessDenied'
    }

    It 'refuses a destination that is a link in the container, without following it' {
        $null = Invoke-ContainerCommand $script:box -Command ln, -s, /etc/hostname, /dev/psclink
        { Add-ContainerDevice $script:box -Path $script:loop -Destination /dev/psclink -ErrorAction Stop } |
            Should -Throw -ErrorId 'DeviceMountFailed,PSContainers.Cmdlets.AddContainerDeviceCommand'
        (Invoke-ContainerCommand $script:box -Command test, -b, /etc/hostname).ExitCode | Should -Not -Be 0
    }
}
