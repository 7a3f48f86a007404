#Requires -Version 7.4
<#
.SYNOPSIS
    What a user sees at the pwsh prompt: the default views (Out-String of the formatted output),
    -WhatIf text, tab completion (TabExpansion2), and $Error[0] of the main failures, with the main
    story of the cgroup, namespace and host-check cmdlets.

.NOTES
    Needs Linux, root and the built module in out/PSContainers. Works in a private store under
    /tmp/psc-test-<guid> and a cgroup named psc-test-<guid>; AfterAll removes both, also when tests
    fail. $PSDefaultParameterValues is changed only in a copy local to this file.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
    if (-not $canRun) { Write-Warning 'UserView tests skipped: they need root on Linux.' }
}

Describe 'What a user sees' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        $modulePath = Join-Path $PSScriptRoot '../../out/PSContainers/PSContainers.psd1'
        Import-Module $modulePath -Force
        $id = [guid]::NewGuid().ToString('N').Substring(0, 8)
        $root = Join-Path ([IO.Path]::GetTempPath()) "psc-test-$id"
        $store = Join-Path $root 'store'
        $null = New-Item -ItemType Directory -Path $store -Force
        # A copy in this scope: the caller's session keeps its own $PSDefaultParameterValues.
        $PSDefaultParameterValues = $PSDefaultParameterValues.Clone()
        $PSDefaultParameterValues['*:StorePath'] = $store
        $name = "psct-uv-$id"
        $container = New-Container -Name $name -ErrorAction Stop | Start-Container -PassThru -ErrorAction Stop

        # What the user reads: the default view of the objects, as wide as a terminal may be.
        function Show([Parameter(ValueFromPipeline)] $InputObject) {
            begin { $all = [System.Collections.Generic.List[object]]::new() }
            process { $all.Add($InputObject) }
            end { $all | Out-String -Width 200 }
        }

        # Runs a script in a new pwsh (the -WhatIf text goes to the host, not to a stream) and returns what it printed.
        function Invoke-Pwsh([string] $Script) {
            $pwsh = (Get-Command -Name pwsh -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
            $full = "Import-Module '$modulePath'; `$ErrorActionPreference = 'Stop'; $Script"
            & $pwsh -NoProfile -NonInteractive -Command $full 2>&1 | Out-String
        }

        function Complete([string] $Line) {
            @((TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches | ForEach-Object CompletionText)
        }
    }

    AfterAll {
        if ($store) {
            Get-Container -StorePath $store -ErrorAction SilentlyContinue | Remove-Container -Force -Confirm:$false -ErrorAction SilentlyContinue
            Remove-Item -LiteralPath $root -Recurse -Force -ErrorAction SilentlyContinue
        }
    }

    Context 'Containers' {
        It 'Get-Container shows the table of lxc-ls --fancy' {
            $text = Get-Container | Show
            $text | Should -Match '(?m)^Name\s+State\s+Pid\s+IPv4\s+Template\s+Memory\s+Mode\s+HostIds\s+Created\s*$'
            $text | Should -Match "(?m)^$name\s+Running\s+$($container.Pid)\s+-\s+busybox\s"
        }

        It 'Get-Container | Format-List shows what lxc-info shows' {
            $text = Get-Container $name | Format-List | Show
            foreach ($line in "Name\s+: $name", 'State\s+: Running', "Pid\s+: $($container.Pid)", "Hostname\s+: $name",
                'Template\s+: busybox', 'Command\s+: /sbin/init', "RootfsPath\s+: $([regex]::Escape($store))/$name/rootfs") {
                $text | Should -Match "(?m)^$line"
            }
        }

        It 'Measure-Container shows usage with the limit' {
            $text = Measure-Container $name | Show
            $text | Should -Match '(?m)^Name\s+Memory\s+Peak\s+Limit\s+CPU\(s\)\s+CPU%\s+Throttled\s+Pids\s+OOMKills\s+NetRx/Tx\s+BlockR/W\s*$'
            $text | Should -Match "(?m)^$name\s+\S+\s+\S+\s+max\s+[\d.]+\s+[\d.]+\s+\d+\s+[1-9]\d*\s+0\s+\S+/\S+\s+\S+/\S+\s*$"
        }

        It 'Get-Container of a missing name leaves ContainerNotFound in $Error, naming the store' {
            $Error.Clear()
            Get-Container -Name 'psct-missing' -ErrorAction SilentlyContinue
            $Error[0].FullyQualifiedErrorId | Should -Be 'ContainerNotFound,PSContainers.Cmdlets.GetContainerCommand'
            $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
            $Error[0].TargetObject | Should -Be 'psct-missing'
            $Error[0].Exception.Message | Should -BeLike "*'psct-missing'*$store*Get-Container*"
        }

        It 'Start-Container of a running container is ContainerAlreadyRunning, saying what to do' {
            $Error.Clear()
            Start-Container -Name $name -ErrorAction SilentlyContinue
            $Error[0].FullyQualifiedErrorId | Should -Be 'ContainerAlreadyRunning,PSContainers.Cmdlets.StartContainerCommand'
            $Error[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
            $Error[0].Exception.Message | Should -Match "init pid $($container.Pid).*Restart-Container"
        }

        It '-WhatIf says what would happen, and nothing happens' {
            $other = "psct-uvw-$id"
            $text = Invoke-Pwsh @"
New-Container -Name $other -StorePath '$store' -WhatIf
Stop-Container -Name $name -StorePath '$store' -WhatIf
Remove-Container -Name $name -StorePath '$store' -Force -WhatIf
Set-CgroupLimit -Name $name -StorePath '$store' -PidsMax 5 -Persist -WhatIf
"@
            $text | Should -Match "What if: Performing the operation `"Create container`" on target `"$other`"\."
            $text | Should -Match "What if: Performing the operation `"Stop container`" on target `"$name`"\."
            $text | Should -Match "What if: Performing the operation `"Remove container`" on target `"$name`"\."
            # A running container: the very file writes (v1 or v2 paths, whichever owns pids here).
            $text | Should -Match "What if: Performing the operation `"Set cgroup limits: /sys/fs/cgroup/\S+/$name/pids\.max <- 5 and save them in config\.yaml`" on target `"$name`"\."
            Get-Container -Name $other -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            (Get-Container -Name $name).State | Should -Be 'Running'
            (Get-CgroupLimit -Name $name).PidsMax | Should -Not -Be 5
        }

        It 'completes container names, templates, backends and states on Tab' {
            Complete "Stop-Container -StorePath '$store' psct-uv-" | Should -Contain $name
            Complete "Get-Container -StorePath '$store' -Name psct-u" | Should -Contain $name
            Complete 'New-Container x -Template ' | Should -Be @('busybox', 'debootstrap', 'oci')
            Complete 'New-Container x -Backend ' | Should -Be @('btrfs', 'dir', 'overlay')
            Complete 'Get-Container -State ' | Should -Contain 'Running'
            Complete 'Get-Container -State ' | Should -Contain 'Stopped'
        }
    }

    Context 'Copies, snapshots and differences (lxc-copy, lxc-snapshot, docker diff)' {
        It 'copies a container, snapshots it, shows what changed, and restores it' {
            $base = "psct-uvs-$id"
            $copy = "psct-uvc-$id"
            $null = New-Container -Name $base
            (Copy-Container -Name $base -NewName $copy | Show) | Should -Match "(?m)^$copy\s+Stopped\s+-\s+busybox\s"

            $text = New-ContainerSnapshot -Name $base -Comment 'before the change' | Show
            $text | Should -Match '(?m)^Container\s+Name\s+Created\s+Backend\s+Comment\s*$'
            $text | Should -Match "(?m)^$base\s+snap0\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+dir\s+before the change\s*$"

            $rootfs = (Get-Container -Name $base).RootfsPath
            Set-Content -LiteralPath (Join-Path $rootfs 'etc/motd') -Value 'hello'
            # -Force: owned by the container's root (a subordinate uid), so .NET calls it read-only for host root.
            Remove-Item -LiteralPath (Join-Path $rootfs 'etc/hostname') -Force
            $text = Get-ContainerDiff -Name $base | Show
            $text | Should -Match '(?m)^Kind\s+Type\s+Path\s*$'
            $text | Should -Match '(?m)^Added\s+File\s+/etc/motd\s*$'
            $text | Should -Match '(?m)^Deleted\s+File\s+/etc/hostname\s*$'

            $null = Restore-ContainerSnapshot -Name $base -SnapshotName snap0 -Confirm:$false
            Get-ContainerDiff -Name $base | Should -BeNullOrEmpty
            Test-Path -LiteralPath (Join-Path $rootfs 'etc/motd') | Should -BeFalse

            $Error.Clear()
            Restore-ContainerSnapshot -Name $base -SnapshotName snap7 -Confirm:$false -ErrorAction SilentlyContinue
            $Error[0].FullyQualifiedErrorId | Should -Be 'SnapshotNotFound,PSContainers.Cmdlets.RestoreContainerSnapshotCommand'
            $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
            $Error[0].Exception.Message | Should -Match 'Get-ContainerSnapshot'

            $Error.Clear()
            Copy-Container -Name $base -NewName $copy -ErrorAction SilentlyContinue
            $Error[0].FullyQualifiedErrorId | Should -Be 'ContainerExists,PSContainers.Cmdlets.CopyContainerCommand'
            $Error[0].CategoryInfo.Category | Should -Be 'ResourceExists'

            Remove-ContainerSnapshot -Name $base -SnapshotName snap0 -Confirm:$false
            Get-ContainerSnapshot -Name $base | Should -BeNullOrEmpty
            Remove-Container -Name $base, $copy -Confirm:$false
        }

        It 'Restart-Container gives a running container a new init' {
            $before = (Get-Container -Name $name).Pid
            $after = Restart-Container -Name $name -Timeout 5 -PassThru
            $after.State | Should -Be 'Running'
            $after.Pid | Should -Not -Be $before
        }
    }

    Context 'Namespaces and the host check' {
        It 'Get-ProcessNamespace shows init''s own namespaces, and the host''s user namespace' {
            $container = Get-Container -Name $name
            $text = Get-ProcessNamespace -Id $container.Pid | Show
            $text | Should -Match '(?m)^\s+Pid\s+Type\s+Inode\s+Isolated\s+Link\s*$'
            foreach ($type in 'ipc', 'mnt', 'net', 'pid', 'uts') {
                $text | Should -Match "(?m)^\s+$($container.Pid)\s+$type\s+\d+\s+.*$($type):\[\d+\]"
            }
            $mine = Get-ProcessNamespace -Id $PID | Where-Object Type -eq 'uts'
            $theirs = Get-ProcessNamespace -Id $container.Pid | Where-Object Type -eq 'uts'
            $theirs.Inode | Should -Not -Be $mine.Inode
        }

        It 'Get-ProcessNamespace of a missing process is ProcessNotFound' {
            $Error.Clear()
            Get-ProcessNamespace -Id 999999999 -ErrorAction SilentlyContinue
            $Error[0].FullyQualifiedErrorId | Should -Be 'ProcessNotFound,PSContainers.Cmdlets.GetProcessNamespaceCommand'
            $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        }

        It 'Test-ContainerHost shows one finding per check, grouped by category' {
            $text = Test-ContainerHost | Show
            $text | Should -Match '(?m)^\s+Category: Kernel\s*$'
            $text | Should -Match '(?m)^Status\s+Name\s+Detail\s*$'
            $text | Should -Match '(?m)^Pass\s+pid namespace\s'
            $text | Should -Match '(?m)^Pass\s+psc-helper\s'
        }
    }

    Context 'A cgroup of its own (cgcreate, cgclassify, cgset, cgdelete)' {
        BeforeAll {
            $cgroup = "psc-test-uv-$id"
            $sleeper = $null
        }

        AfterAll {
            if ($sleeper -and -not $sleeper.HasExited) { $sleeper.Kill(); $sleeper.WaitForExit() }
            Remove-Cgroup -Path $cgroup -Force -Confirm:$false -ErrorAction SilentlyContinue
        }

        It 'is created, shown, given a process and limits, frozen, thawed and removed' {
            (New-Cgroup -Path $cgroup | Show) | Should -Match "(?m)^/$cgroup\s+0\s+False\s"
            $sleeper = [System.Diagnostics.Process]::Start('sleep', '300')
            $null = Add-CgroupProcess -Path $cgroup -Id $sleeper.Id
            (Get-Cgroup -Path $cgroup).Pids | Should -Be @($sleeper.Id)
            (Get-Cgroup -Path $cgroup | Show) | Should -Match "(?m)^Path\s+Procs\s+Frozen\s+Controllers\s*$"
            (Get-Cgroup -Path $cgroup | Show) | Should -Match "(?m)^/$cgroup\s+1\s+False\s"
            (Set-CgroupLimit -Path $cgroup -PidsMax 50 -PassThru).PidsMax | Should -Be 50
            (Get-CgroupLimit -Path $cgroup).PidsMax | Should -Be 50
            (Suspend-Cgroup -Path $cgroup -PassThru).Frozen | Should -BeTrue
            (Resume-Cgroup -Path $cgroup -PassThru).Frozen | Should -BeFalse

            $Error.Clear()
            Remove-Cgroup -Path $cgroup -ErrorAction SilentlyContinue
            $Error[0].FullyQualifiedErrorId | Should -Be 'CgroupBusy,PSContainers.Cmdlets.RemoveCgroupCommand'
            $Error[0].CategoryInfo.Category | Should -Be 'ResourceBusy'
            $Error[0].Exception.Message | Should -Match "$($sleeper.Id).*-Force"

            $sleeper.Kill(); $sleeper.WaitForExit()
            Remove-Cgroup -Path $cgroup -Confirm:$false
            $Error.Clear()
            Get-Cgroup -Path $cgroup -ErrorAction SilentlyContinue
            $Error[0].FullyQualifiedErrorId | Should -Be 'CgroupNotFound,PSContainers.Cmdlets.GetCgroupCommand'
            $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        }
    }
}
