#Requires -Version 7.4
<#
.SYNOPSIS
    End-to-end Pester 5 tests of PSContainers: the user stories of
    tests/PSContainers.Tests/ContainerLifecycleTests.cs, driven the way a user drives them from pwsh.

.NOTES
    Needs Linux, root (namespaces, cgroups, pivot_root), a static busybox on PATH (or
    $env:PSCONTAINERS_BUSYBOX) and the built module in out/PSContainers: run ./build.ps1 first.
    Everything happens in private stores under /tmp/psc-test-<guid>; AfterAll removes their
    containers, their cgroups and the directory, also when tests fail.
#>

BeforeDiscovery {
    # Decided at discovery time, so that a non-root run reports every test as skipped
    # instead of failing in BeforeAll.
    $canRun = $IsLinux -and ((& id -u) -eq '0')
    if (-not $canRun) {
        Write-Warning 'PSContainers end-to-end tests skipped: they need root on Linux (namespaces, cgroups, pivot_root). Run them with sudo pwsh.'
    }
}

Describe 'PSContainers' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        # ---- helpers (defined first, so that AfterAll can clean up whatever BeforeAll got to) ----

        function New-TestName([string] $Hint = 'c') {
            "psct-$Hint-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        }

        function Get-TestContainer([string] $Name, [string] $StorePath = $store) {
            Get-Container -Name $Name -StorePath $StorePath -ErrorAction Stop
        }

        function Invoke-InContainer([string] $Name, [string[]] $Command) {
            Invoke-ContainerCommand -Name $Name -Command $Command -StorePath $store -ErrorAction Stop
        }

        # The cgroup directories of one cgroup path (relative to each hierarchy), v1 and v2.
        function Get-CgroupDirectory([string] $CgroupPath) {
            [PSContainers.Runtime.Cgroups.CgroupManager]::ForHost().Directories($CgroupPath)
        }

        # Runs the same script in several runspaces at once (like several pwsh windows on one
        # machine): each runspace imports the module first, then all are released together.
        # Returns, per runspace and in order, what its script wrote (and any errors it left).
        function Invoke-Racing([string] $Script, [object[]] $Arguments, [int] $Count = 2) {
            $gate = [System.Threading.ManualResetEventSlim]::new($false)
            $sessions = [System.Collections.Generic.List[object]]::new()
            try {
                foreach ($i in 1..$Count) {
                    $runspace = [runspacefactory]::CreateRunspace([System.Management.Automation.Runspaces.InitialSessionState]::CreateDefault2())
                    $runspace.Open()
                    $shell = [powershell]::Create()
                    $shell.Runspace = $runspace
                    $sessions.Add([pscustomobject]@{ Runspace = $runspace; Shell = $shell; Handle = $null })
                    $null = $shell.AddScript('param($ModulePath) Import-Module -Name $ModulePath -ErrorAction Stop').AddArgument($modulePath).Invoke()
                    $shell.Commands.Clear()
                    # Two statements: wait for the gate, then the racing script with its arguments.
                    $null = $shell.AddScript('param($Gate) $null = $Gate.Wait([timespan]::FromSeconds(30))').AddArgument($gate)
                    $null = $shell.AddStatement().AddScript($Script)
                    foreach ($argument in $Arguments) { $null = $shell.AddArgument($argument) }
                }
                foreach ($session in $sessions) { $session.Handle = $session.Shell.BeginInvoke() }
                $gate.Set()
                foreach ($session in $sessions) {
                    $output = $session.Shell.EndInvoke($session.Handle)
                    $errors = @($session.Shell.Streams.Error | ForEach-Object { "error: $($_.FullyQualifiedErrorId)" })
                    (@($output) + $errors) -join '; '
                }
            }
            finally {
                foreach ($session in $sessions) {
                    $session.Shell.Dispose()
                    $session.Runspace.Dispose()
                }
                $gate.Dispose()
            }
        }

        function Remove-CgroupTree([string] $Directory, [bool] $KeepRoot) {
            if (-not [System.IO.Directory]::Exists($Directory)) { return }
            $tree = @(Get-ChildItem -LiteralPath $Directory -Directory -Recurse -ErrorAction SilentlyContinue |
                    Sort-Object -Property { $_.FullName.Length } -Descending | ForEach-Object FullName)
            if (-not $KeepRoot) { $tree += $Directory }
            foreach ($dir in $tree) {
                # Thaw (a frozen v1 task never handles SIGKILL), kill what is left, then rmdir
                # (cgroupfs directories are removed with rmdir, never by deleting their files).
                foreach ($freeze in @((Join-Path $dir 'cgroup.freeze'), (Join-Path $dir 'freezer.state'))) {
                    if (Test-Path -LiteralPath $freeze) {
                        $value = if ($freeze.EndsWith('cgroup.freeze')) { '0' } else { 'THAWED' }
                        try { [System.IO.File]::WriteAllText($freeze, $value) } catch { }
                    }
                }
                $procs = Join-Path $dir 'cgroup.procs'
                if (Test-Path -LiteralPath $procs) {
                    foreach ($line in @(Get-Content -LiteralPath $procs -ErrorAction SilentlyContinue)) {
                        if ($line -match '^\d+$') { Stop-Process -Id ([int] $line) -Force -ErrorAction SilentlyContinue }
                    }
                }
                for ($try = 0; $try -lt 100 -and [System.IO.Directory]::Exists($dir); $try++) {
                    try { [System.IO.Directory]::Delete($dir) } catch { Start-Sleep -Milliseconds 20 }
                }
            }
        }

        # Removes every container of a store, the store's cgroups, and nothing else.
        function Remove-TestStore([string] $StorePath) {
            if (-not [System.IO.Directory]::Exists($StorePath)) { return }
            Remove-Container -Name '*' -StorePath $StorePath -Force -Confirm:$false -ErrorAction SilentlyContinue
            $parent = [PSContainers.Runtime.State.ContainerStore]::new($StorePath).CgroupParent
            $dirs = [System.Collections.Generic.List[string]]::new()
            try { foreach ($d in (Get-CgroupDirectory $parent)) { $dirs.Add($d) } } catch { }
            foreach ($d in @(Get-Item -Path "/sys/fs/cgroup/$parent", "/sys/fs/cgroup/*/$parent" -ErrorAction SilentlyContinue)) {
                $dirs.Add($d.FullName)
            }
            # The parent is named after a hash of this store's path (pscontainers-xxxxxxxx) and
            # holds nothing else; only when PSCONTAINERS_CGROUP_PARENT overrides it is it shared,
            # and then only this suite's containers (psct-*) are ours to remove.
            $ownParent = [string]::IsNullOrWhiteSpace($env:PSCONTAINERS_CGROUP_PARENT)
            foreach ($dir in ($dirs | Select-Object -Unique)) {
                if ($ownParent) { Remove-CgroupTree -Directory $dir -KeepRoot $false }
                else {
                    foreach ($child in @(Get-ChildItem -LiteralPath $dir -Directory -Filter 'psct-*' -ErrorAction SilentlyContinue)) {
                        Remove-CgroupTree -Directory $child.FullName -KeepRoot $false
                    }
                }
            }
        }

        # ---- the module and the private stores ----

        # Pester skips this block's setup when the block is skipped; should a Pester version not, do nothing.
        if (-not ($IsLinux -and ((& id -u) -eq '0'))) { return }

        $modulePath = Join-Path $PSScriptRoot '../../out/PSContainers/PSContainers.psd1'
        $root = Join-Path ([System.IO.Path]::GetTempPath()) "psc-test-$([guid]::NewGuid().ToString('N'))"
        $store = Join-Path $root 'store'
        # A second store for the pipeline stories, so that 'Get-Container | ...' sees exactly their containers.
        $pipeStore = Join-Path $root 'store-pipeline'
        # The destination of the Move-Container stories.
        $moveStore = Join-Path $root 'store-move'

        if (-not (Test-Path -LiteralPath $modulePath -PathType Leaf)) {
            throw "The module is not built: $modulePath does not exist. Run ./build.ps1 (or 'dotnet build -c Release') at the repository root first."
        }
        $modulePath = (Resolve-Path -LiteralPath $modulePath).ProviderPath
        Import-Module -Name $modulePath -Force -ErrorAction Stop

        $null = New-Item -ItemType Directory -Path $store, $pipeStore, $moveStore -Force
        # Every container cmdlet of this suite uses the private store, even where a test forgets
        # -StorePath. A copy in this scope: the session's own $PSDefaultParameterValues is untouched.
        $PSDefaultParameterValues = $PSDefaultParameterValues.Clone()
        $PSDefaultParameterValues['*-Container*:StorePath'] = $store

        $cgroupParent = [PSContainers.Runtime.State.ContainerStore]::new($store).CgroupParent
        $cgroups = [PSContainers.Runtime.Cgroups.CgroupManager]::ForHost()
    }

    AfterAll {
        if (-not (Get-Variable -Name root -ValueOnly -ErrorAction SilentlyContinue)) { return }
        foreach ($path in @($store, $pipeStore, $moveStore)) {
            try { Remove-TestStore -StorePath $path }
            catch { Write-Warning "Cleaning up ${path}: $_" }
        }
        # Never delete through a mount that leaked out of a container (it could be a host directory).
        $mounted = @(Get-Content -LiteralPath /proc/self/mountinfo | Where-Object { ($_ -split ' ')[4] -like "$root*" })
        if ($mounted.Count -gt 0) {
            Write-Warning "Left $root in place: mounts remain under it:`n$($mounted -join "`n")"
        }
        elseif ([System.IO.Directory]::Exists($root)) {
            try { [System.IO.Directory]::Delete($root, $true) }
            catch { Write-Warning "Could not remove ${root}: $_" }
        }
    }

    Context 'A busybox container from creation to removal' {
        BeforeAll {
            $name = New-TestName 'life'
            $cgroupPath = "$cgroupParent/$name"
            $marker = "rootfs-of-$name"
        }

        AfterAll {
            Remove-Container -Name $name -StorePath $store -Force -Confirm:$false -ErrorAction SilentlyContinue
        }

        It 'is created Stopped from the busybox template' {
            $info = New-Container -Name $name -Template busybox -StorePath $store -ErrorAction Stop
            $info.Name | Should -Be $name
            $info.State | Should -Be 'Stopped'
            $info.Template | Should -Be 'busybox'
            $info.Pid | Should -BeNullOrEmpty
            Join-Path $info.RootfsPath 'bin/busybox' | Should -Exist
            (Get-TestContainer $name).State | Should -Be 'Stopped'
            # A file written into the rootfs from the host, read from inside once it runs.
            Set-Content -LiteralPath (Join-Path $info.RootfsPath 'marker-of-rootfs') -Value $marker
        }

        It 'starts, and Get-Container sees it Running with its init in its cgroup' {
            $started = Start-Container -Name $name -StorePath $store -PassThru -ErrorAction Stop
            $started.State | Should -Be 'Running'
            $started.Pid | Should -BeGreaterThan 0

            $seen = Get-TestContainer $name
            $seen.State | Should -Be 'Running'
            $seen.Pid | Should -Be $started.Pid
            $seen.CgroupPath | Should -Be $cgroupPath
            $cgroups.Exists($cgroupPath) | Should -BeTrue
            # Its processes live in the inner cgroup, the root of its cgroup namespace.
            foreach ($procs in $cgroups.ProcsFiles($cgroups.JoinPathOf($cgroupPath))) {
                Get-Content -LiteralPath $procs | Should -Contain "$($started.Pid)"
            }
        }

        It 'runs busybox init as pid 1' {
            $r = Invoke-InContainer $name 'cat', '/proc/1/comm'
            $r.ExitCode | Should -Be 0
            $r.Output | Should -Be 'init'
        }

        It 'has the container name as its hostname' {
            $r = Invoke-InContainer $name 'hostname'
            $r.ExitCode | Should -Be 0
            $r.Output | Should -Be $name
        }

        It 'has its rootfs as /' {
            $r = Invoke-InContainer $name 'cat', '/marker-of-rootfs'
            $r.ExitCode | Should -Be 0
            $r.Output | Should -Be $marker
        }

        It 'is Frozen after Suspend-Container, and refuses commands' {
            Suspend-Container -Name $name -StorePath $store -ErrorAction Stop
            (Get-TestContainer $name).State | Should -Be 'Frozen'
            { Invoke-InContainer $name 'true' } | Should -Throw -ErrorId 'ContainerFrozen*'
        }

        It 'is Running again after Resume-Container' {
            Resume-Container -Name $name -StorePath $store -ErrorAction Stop
            (Get-TestContainer $name).State | Should -Be 'Running'
            (Invoke-InContainer $name 'true').ExitCode | Should -Be 0
        }

        It 'stops, leaving no pid and no cgroup' {
            $stopped = Stop-Container -Name $name -StorePath $store -Timeout 10 -PassThru -ErrorAction Stop
            $stopped.State | Should -Be 'Stopped'
            $stopped.Pid | Should -BeNullOrEmpty
            $seen = Get-TestContainer $name
            $seen.State | Should -Be 'Stopped'
            $seen.Pid | Should -BeNullOrEmpty
            $cgroups.Exists($cgroupPath) | Should -BeFalse
        }

        It 'is removed with its directory and its cgroup' {
            $directory = (Get-TestContainer $name).Path
            $directory | Should -Exist
            Remove-Container -Name $name -StorePath $store -ErrorAction Stop
            @(Get-Container -StorePath $store | Where-Object Name -EQ $name).Count | Should -Be 0
            { Get-Container -Name $name -StorePath $store -ErrorAction Stop } | Should -Throw -ErrorId 'ContainerNotFound*'
            $directory | Should -Not -Exist
            $cgroups.Exists($cgroupPath) | Should -BeFalse
            foreach ($dir in (Get-CgroupDirectory $cgroupPath)) { $dir | Should -Not -Exist }
        }
    }

    Context 'Invalid container names' {
        It 'rejects <BadName> with InvalidContainerName and creates nothing' -ForEach @(
            @{ BadName = '..' }
            @{ BadName = 'a/b' }
            @{ BadName = '-x' }
        ) {
            $before = @(Get-ChildItem -LiteralPath $store -Name) -join ','
            $err = { New-Container -Name $BadName -Template busybox -StorePath $store -ErrorAction Stop } |
                Should -Throw -ErrorId 'InvalidContainerName*' -PassThru
            $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
            @(Get-ChildItem -LiteralPath $store -Name) -join ',' | Should -Be $before
            Join-Path $store 'a' | Should -Not -Exist
        }
    }

    Context 'Precise errors for impossible transitions' {
        BeforeAll {
            $name = New-TestName 'twice'
            $null = New-Container -Name $name -Template busybox -StorePath $store -ErrorAction Stop
        }

        AfterAll {
            Remove-Container -Name $name -StorePath $store -Force -Confirm:$false -ErrorAction SilentlyContinue
        }

        It 'fails to create an existing name with ContainerExists, leaving its config alone' {
            $config = (Get-TestContainer $name).ConfigPath
            $text = Get-Content -LiteralPath $config -Raw
            $written = (Get-Item -LiteralPath $config).LastWriteTimeUtc
            $err = { New-Container -Name $name -Template busybox -Hostname other -StorePath $store -ErrorAction Stop } |
                Should -Throw -ErrorId 'ContainerExists*' -PassThru
            $err.CategoryInfo.Category | Should -Be 'ResourceExists'
            $err.TargetObject | Should -Be $name
            Get-Content -LiteralPath $config -Raw | Should -BeExactly $text
            (Get-Item -LiteralPath $config).LastWriteTimeUtc | Should -Be $written
        }

        It 'fails to stop a stopped container with ContainerNotRunning' {
            { Stop-Container -Name $name -StorePath $store -ErrorAction Stop } | Should -Throw -ErrorId 'ContainerNotRunning*'
        }

        It 'fails to start a started container with ContainerAlreadyRunning' {
            Start-Container -Name $name -StorePath $store -ErrorAction Stop
            $err = { Start-Container -Name $name -StorePath $store -ErrorAction Stop } |
                Should -Throw -ErrorId 'ContainerAlreadyRunning*' -PassThru
            $err.CategoryInfo.Category | Should -Be 'InvalidOperation'
            (Get-TestContainer $name).State | Should -Be 'Running'
        }

        It 'fails to remove a running container without -Force, and removes it with -Force' {
            { Remove-Container -Name $name -StorePath $store -ErrorAction Stop } | Should -Throw -ErrorId 'ContainerRunning*'
            Remove-Container -Name $name -StorePath $store -Force -ErrorAction Stop
            @(Get-Container -StorePath $store | Where-Object Name -EQ $name).Count | Should -Be 0
        }
    }

    Context 'Configuration files' {
        It 'names the file, line and column of a YAML error, and creates nothing' {
            $config = Join-Path $root 'bad.yaml'
            [System.IO.File]::WriteAllText($config, "hostname: ok`ninit:`n  comand: [/bin/sh]`n")
            $name = New-TestName 'yaml'
            $err = { New-Container -Name $name -ConfigPath $config -StorePath $store -ErrorAction Stop } |
                Should -Throw -ErrorId 'InvalidConfig*' -PassThru
            $err.CategoryInfo.Category | Should -Be 'ParserError'
            $err.Exception.Message | Should -BeLike "*${config}:3:3*"
            $err.Exception.Message | Should -BeLike '*comand*'
            @(Get-Container -StorePath $store | Where-Object Name -EQ $name).Count | Should -Be 0
        }
    }

    Context 'Pipelines and -WhatIf' {
        BeforeAll {
            $names = @((New-TestName 'pipe'), (New-TestName 'pipe')) | Sort-Object
            foreach ($n in $names) {
                $null = New-Container -Name $n -Template busybox -StorePath $pipeStore -ErrorAction Stop
            }
        }

        It 'Get-Container | Start-Container -PassThru starts every container' {
            $out = @(Get-Container -StorePath $pipeStore | Start-Container -StorePath $pipeStore -PassThru -ErrorAction Stop)
            ($out.Name | Sort-Object) -join ',' | Should -Be ($names -join ',')
            foreach ($info in $out) { $info.State | Should -Be 'Running' }
            @(Get-Container -StorePath $pipeStore -State Running).Count | Should -Be 2
        }

        It '-WhatIf changes nothing' {
            Get-Container -StorePath $pipeStore | Stop-Container -StorePath $pipeStore -Kill -WhatIf
            @(Get-Container -StorePath $pipeStore -State Running).Count | Should -Be 2
            Get-Container -StorePath $pipeStore | Suspend-Container -StorePath $pipeStore -WhatIf
            @(Get-Container -StorePath $pipeStore -State Running).Count | Should -Be 2
            Get-Container -StorePath $pipeStore | Remove-Container -StorePath $pipeStore -Force -WhatIf
            @(Get-Container -StorePath $pipeStore).Count | Should -Be 2
            $extra = New-TestName 'whatif'
            New-Container -Name $extra -Template busybox -StorePath $pipeStore -WhatIf
            @(Get-Container -StorePath $pipeStore).Count | Should -Be 2
            Join-Path $pipeStore $extra | Should -Not -Exist
        }

        It 'Get-Container | Stop-Container -PassThru stops every container and passes it on' {
            $out = @(Get-Container -StorePath $pipeStore | Stop-Container -StorePath $pipeStore -Timeout 10 -PassThru -ErrorAction Stop)
            ($out.Name | Sort-Object) -join ',' | Should -Be ($names -join ',')
            foreach ($info in $out) {
                $info.State | Should -Be 'Stopped'
                $info.Pid | Should -BeNullOrEmpty
            }
            @(Get-Container -StorePath $pipeStore -State Stopped).Count | Should -Be 2
        }

        It 'Get-Container | Remove-Container removes every container' {
            Get-Container -StorePath $pipeStore | Remove-Container -StorePath $pipeStore -ErrorAction Stop
            @(Get-Container -StorePath $pipeStore).Count | Should -Be 0
        }
    }

    Context 'Wait-Container' {
        It 'returns the exit code of an init that exits with 3' {
            $name = New-TestName 'exit'
            $null = New-Container -Name $name -Template busybox -Command '/bin/sh', '-c', 'exit 3' -StorePath $store -ErrorAction Stop
            Start-Container -Name $name -StorePath $store -ErrorAction Stop
            $done = Wait-Container -Name $name -State Stopped -Timeout 30 -PassThru -StorePath $store -ErrorAction Stop
            $done.State | Should -Be 'Stopped'
            $done.ExitCode | Should -Be 3
            $done.ExitSignal | Should -BeNullOrEmpty
            $cgroups.Exists("$cgroupParent/$name") | Should -BeFalse
            Remove-Container -Name $name -StorePath $store -ErrorAction Stop
        }

        It 'fails with WaitTimeout when the state is not reached in time' {
            $name = New-TestName 'wait'
            $null = New-Container -Name $name -Template busybox -StorePath $store -ErrorAction Stop
            { Wait-Container -Name $name -State Running -Timeout 1 -StorePath $store -ErrorAction Stop } |
                Should -Throw -ErrorId 'WaitTimeout*'
            Remove-Container -Name $name -StorePath $store -ErrorAction Stop
        }
    }

    Context 'Moving a container to another store (cold)' {
        BeforeAll {
            $name = New-TestName 'move'
            $taken = New-TestName 'taken'
        }

        AfterAll {
            foreach ($s in @($store, $moveStore)) {
                Remove-Container -Name $name, $taken -StorePath $s -Force -Confirm:$false -ErrorAction SilentlyContinue
            }
        }

        It 'runs a moved running container in the other store under the same config, and removes the source' {
            $null = New-Container -Name $name -Hostname moved-host -StorePath $store -ErrorAction Stop
            $null = Start-Container -Name $name -StorePath $store -ErrorAction Stop
            $result = Move-Container -Name $name -Destination $moveStore -StorePath $store -PassThru -ErrorAction Stop
            $result.Mode | Should -Be 'Cold'
            $result.State | Should -Be 'Running'
            $result.SourceRemoved | Should -BeTrue
            $result.BytesTransferred | Should -BeGreaterThan 0
            (Get-TestContainer $name -StorePath $moveStore).State | Should -Be 'Running'
            @(Get-Container -Name $name -StorePath $store -ErrorAction SilentlyContinue).Count | Should -Be 0
            (Invoke-ContainerCommand -Name $name -Command hostname -StorePath $moveStore -ErrorAction Stop).Output | Should -Be 'moved-host'
        }

        It 'refuses a name taken at the destination with ContainerExists, and leaves the source running' {
            $null = New-Container -Name $taken -StorePath $store -ErrorAction Stop
            $null = New-Container -Name $taken -StorePath $moveStore -ErrorAction Stop
            $running = Start-Container -Name $taken -StorePath $store -PassThru -ErrorAction Stop
            { Move-Container -Name $taken -Destination $moveStore -StorePath $store -ErrorAction Stop } |
                Should -Throw -ErrorId 'ContainerExists*'
            (Get-TestContainer $taken).Pid | Should -Be $running.Pid
        }
    }

    Context 'Sessions racing on one container' {
        BeforeAll {
            $name = New-TestName 'race'
        }

        AfterAll {
            Remove-Container -Name $name -StorePath $store -Force -Confirm:$false -ErrorAction SilentlyContinue
        }

        It 'lets exactly one of two runspaces create it' {
            $results = @(Invoke-Racing -Arguments $store, $name -Script '
                param($Store, $Name)
                try { $null = New-Container -Name $Name -Template busybox -StorePath $Store -ErrorAction Stop; "Created" }
                catch { $_.FullyQualifiedErrorId }')
            $because = "the runspaces reported: $($results -join ' | ')"
            $results.Count | Should -Be 2 -Because $because
            @($results | Where-Object { $_ -eq 'Created' }).Count | Should -Be 1 -Because $because
            @($results | Where-Object { $_ -like 'ContainerExists*' }).Count | Should -Be 1 -Because $because
            (Get-TestContainer $name).State | Should -Be 'Stopped'
        }

        It 'lets exactly one of two runspaces start it' {
            $results = @(Invoke-Racing -Arguments $store, $name -Script '
                param($Store, $Name)
                try { Start-Container -Name $Name -StorePath $Store -ErrorAction Stop; "Started" }
                catch { $_.FullyQualifiedErrorId }')
            $because = "the runspaces reported: $($results -join ' | ')"
            $results.Count | Should -Be 2 -Because $because
            @($results | Where-Object { $_ -eq 'Started' }).Count | Should -Be 1 -Because $because
            @($results | Where-Object { $_ -like 'ContainerAlreadyRunning*' }).Count | Should -Be 1 -Because $because
            (Get-TestContainer $name).State | Should -Be 'Running'
        }
    }
    Context 'Safe by default' {
        BeforeAll {
            $name = New-TestName 'sec'
            $null = New-Container -Name $name -Template busybox -StorePath $store -ErrorAction Stop
            Start-Container -Name $name -StorePath $store -ErrorAction Stop
        }

        AfterAll {
            Remove-Container -Name $name -StorePath $store -Force -Confirm:$false -ErrorAction SilentlyContinue
        }

        It 'drops the default capabilities and installs the seccomp filter in init and attached commands' {
            $c = Get-TestContainer $name
            $c.DroppedCapabilities | Should -Contain 'sys_module'
            $c.DroppedCapabilities | Should -Not -Contain 'sys_admin'
            $c.SeccompProfile | Should -Be 'default'
            (Invoke-InContainer $name 'cat', '/proc/1/status').Output -match '^Seccomp:\s+2$' | Should -Not -BeNullOrEmpty
            $self = (Invoke-InContainer $name 'cat', '/proc/self/status').Output
            $self -match '^NoNewPrivs:\s+1$' | Should -Not -BeNullOrEmpty
            $self -match '^Seccomp:\s+2$' | Should -Not -BeNullOrEmpty
        }

        It 'keeps /proc/sys read-only and starts attached commands in the container root' {
            $r = Invoke-InContainer $name 'sh', '-c', 'echo x > /proc/sys/kernel/hostname'
            $r.ExitCode | Should -Not -Be 0
            ($r.Error -join ' ') | Should -Match 'Read-only file system'
            (Invoke-InContainer $name 'readlink', '/proc/self/cwd').Output | Should -Be '/'
        }

        It 'names the line and column of an unknown capability in config.yaml' {
            $config = Join-Path $store 'bad-security.yaml'
            Set-Content -Path $config -Value "security:`n  capabilities: { drop: [sys_modul] }"
            $err = $null
            $null = New-Container -Name (New-TestName 'badsec') -ConfigPath $config -StorePath $store -ErrorAction SilentlyContinue -ErrorVariable err
            $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidConfig*'
            $err[0].Exception.Message | Should -Match ':2:26: unknown capability'
        }
    }
}
