#Requires -Version 7.4
<#
.SYNOPSIS
    Autostart (issue 16): Set-ContainerAutostart, Start-/Stop-ContainerAutostart (lxc-autostart's
    order, delays, groups, the reverse stop, a failure among the others), the systemd unit of
    Install-ContainerAutostartService (its content, and the exact commands it runs, parsed back from
    the file and run against real containers), and the PSContainer class-based DSC resource driven
    through Get, Test and Set.

.NOTES
    Needs root and the built module in out/PSContainers. Containers live in a private store under
    /tmp/psc-test-<guid> (TestStore.ps1), removed in AfterAll also when a test fails. Works with
    privileged and unprivileged containers alike (nothing here depends on the mode).
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'Autostart, the boot unit and the DSC resource' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')

        # Splits one systemd command line (or Environment= value) as systemd does: words separated by
        # blanks, "..." with \\ and \" escapes, %% for %; with -Command also $$ for $ and a leading '-'.
        function ConvertFrom-SystemdLine([string] $Line, [switch] $Command) {
            if ($Command -and $Line.StartsWith('-')) { $Line = $Line.Substring(1) }
            $words = [Collections.Generic.List[string]]::new()
            $i = 0
            while ($i -lt $Line.Length) {
                while ($i -lt $Line.Length -and [char]::IsWhiteSpace($Line[$i])) { $i++ }
                if ($i -ge $Line.Length) { break }
                $sb = [Text.StringBuilder]::new()
                if ($Line[$i] -eq '"') {
                    $i++
                    while ($Line[$i] -ne '"') {
                        if ($Line[$i] -eq '\') { $i++ }
                        [void]$sb.Append($Line[$i]); $i++
                    }
                    $i++
                }
                else {
                    while ($i -lt $Line.Length -and -not [char]::IsWhiteSpace($Line[$i])) { [void]$sb.Append($Line[$i]); $i++ }
                }
                $word = $sb.ToString().Replace('%%', '%')
                if ($Command) { $word = $word.Replace('$$', '$') }
                $words.Add($word)
            }
            , $words.ToArray()
        }

        function Get-UnitValue([string] $Text, [string] $Key) {
            $line = @($Text -split "`n" | Where-Object { $_.StartsWith("$Key=") })
            $line.Count | Should -Be 1 -Because "the unit has one $Key= line"
            $line[0].Substring($Key.Length + 1)
        }

        $script:pwsh = if ((Split-Path -Leaf ([Environment]::ProcessPath)) -eq 'pwsh') { [Environment]::ProcessPath } else { (Get-Command pwsh -CommandType Application | Select-Object -First 1).Source }

        # Names sort (ordinally) in the order the test expects ties to be broken.
        $script:a = New-TestName 'a'; $script:b = 'psct-b-' + $script:a.Substring(7); $script:c = 'psct-c-' + $script:a.Substring(7)
        $script:off = New-TestName 'off'; $script:grp = New-TestName 'grp'
        foreach ($n in $a, $b, $c, $off, $grp) { New-Container -Name $n -Template busybox | Out-Null }
        Set-ContainerAutostart -Name $a -Enabled -Order 30 -Delay 2
        Set-ContainerAutostart -Name $b -Enabled -Order 20
        Set-ContainerAutostart -Name $c -Enabled -Order 20
        Set-ContainerAutostart -Name $grp -Enabled -Order 99 -Group psct-other
        $script:marked = @($grp, $a, $b, $c)
    }

    AfterAll {
        Remove-TestStore
    }

    It 'keeps the settings in config.yaml and shows them in Get-Container' {
        $info = Get-Container -Name $a
        $info.Autostart | Should -BeTrue
        $info.AutostartOrder | Should -Be 30
        $info.AutostartDelay | Should -Be 2
        $info.Groups | Should -BeNullOrEmpty
        (Get-Container -Name $grp).Groups | Should -Be @('psct-other')
        (Get-Container -Name $off).Autostart | Should -BeFalse
        $yaml = Get-Content -Raw -LiteralPath $info.ConfigPath
        $yaml | Should -Match "(?m)^autostart:\n  enabled: true\n  delay: 2\n  order: 30\n  groups: \[\]$"
        ((Get-Container -Name $a | Format-List | Out-String) -replace '\s+', ' ') | Should -Match 'Autostart : yes \(order 30, then wait 2 s\)'
    }

    It 'changes only what is given, leaves the file alone with -WhatIf, and refuses a bad group with InvalidArgument' {
        $path = (Get-Container -Name $off).ConfigPath
        $before = Get-Content -Raw -LiteralPath $path
        Set-ContainerAutostart -Name $off -Enabled -Order 1 -WhatIf
        Get-Content -Raw -LiteralPath $path | Should -BeExactly $before
        Set-ContainerAutostart -Name $off -Group 'bad group' -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidArgument,*'
        $err[0].Exception.Message | Should -Match "invalid group name 'bad group' for autostart.groups\[0\]"
        Get-Content -Raw -LiteralPath $path | Should -BeExactly $before
        $changed = Set-ContainerAutostart -Name $off -Delay 3 -PassThru
        $changed.AutostartDelay | Should -Be 3
        $changed.Autostart | Should -BeFalse
        Set-ContainerAutostart -Name $off -Delay 0
        (Get-Container -Name $off).AutostartDelay | Should -Be 0
    }

    It 'lists the start order with -WhatIf and starts nothing' {
        # In a pwsh of its own, whose host writes the What if: lines to stdout.
        $module = Join-Path $PSScriptRoot '../../out/PSContainers/PSContainers.psd1' -Resolve
        $out = & $pwsh -NoProfile -NonInteractive -Command "Import-Module '$module'; Start-ContainerAutostart -StorePath '$store' -WhatIf"
        $lines = @($out | Where-Object { $_ -like 'What if:*' })
        $lines.Count | Should -Be 4
        $lines[0] | Should -Be "What if: Performing the operation ""Start container (order 99)"" on target ""$grp""."
        $lines[1] | Should -Be "What if: Performing the operation ""Start container (order 30), then wait 2 s"" on target ""$a""."
        $lines[2] | Should -Be "What if: Performing the operation ""Start container (order 20)"" on target ""$b""."
        $lines[3] | Should -Be "What if: Performing the operation ""Start container (order 20)"" on target ""$c""."
        (Get-Container -Name $marked | Where-Object State -eq Running) | Should -BeNullOrEmpty
    }

    It 'starts the marked containers, higher order first, ties by name, waiting the delay; stops them in reverse' {
        $started = @(Start-ContainerAutostart)
        $started.Name | Should -Be $marked
        $started.Result | Should -Be @('Started', 'Started', 'Started', 'Started')
        $started.Action | Should -Be @('Start', 'Start', 'Start', 'Start')
        $times = $marked | ForEach-Object { (Get-Container -Name $_).StartedAt }
        for ($i = 1; $i -lt $times.Count; $i++) { $times[$i] | Should -BeGreaterThan $times[$i - 1] }
        # a has a 2 s delay: b starts no earlier than 2 s after a (loosely: the clock is shared, the machine is busy).
        ($times[2] - $times[1]).TotalSeconds | Should -BeGreaterOrEqual 1.9
        (Get-Container -Name $off).State | Should -Be 'Stopped'

        $again = @(Start-ContainerAutostart)
        $again.Result | Should -Be @('AlreadyRunning', 'AlreadyRunning', 'AlreadyRunning', 'AlreadyRunning')

        $stopped = @(Stop-ContainerAutostart -Timeout 10)
        $reverse = $marked.Clone(); [array]::Reverse($reverse)
        $stopped.Name | Should -Be $reverse
        $stopped.Result | Should -Be @('Stopped', 'Stopped', 'Stopped', 'Stopped')
        $ends = $stopped.Name | ForEach-Object { (Get-Container -Name $_).StoppedAt }
        for ($i = 1; $i -lt $ends.Count; $i++) { $ends[$i] | Should -BeGreaterThan $ends[$i - 1] }
    }

    It 'selects groups in the order given, the NULL group as '''', and -All' {
        $only = @(Start-ContainerAutostart -Group psct-other)
        $only.Name | Should -Be @($grp)
        (Get-Container -Name $a).State | Should -Be 'Stopped'
        $plan = @(Stop-ContainerAutostart -Group '' -All -Kill)
        # The NULL group: everything but grp, in reverse start order; none of them runs.
        $plan.Name | Should -Be @($off, $c, $b, $a)
        $plan.Result | Should -Be @('AlreadyStopped', 'AlreadyStopped', 'AlreadyStopped', 'AlreadyStopped')
        $plan.Action | Should -Be @('Kill', 'Kill', 'Kill', 'Kill')
        $killed = @(Stop-ContainerAutostart -Group psct-other -Kill)
        $killed.Result | Should -Be 'Stopped'
        (Get-Container -Name $grp).State | Should -Be 'Stopped'
    }

    It 'carries on after a container fails to start, with an ErrorRecord for it' {
        $broken = New-TestName 'broken'
        New-Container -Name $broken -Template busybox | Out-Null
        Set-ContainerAutostart -Name $broken -Enabled -Order 25
        # Its root filesystem is gone: the start fails, the containers after it still start.
        $cfg = (Get-Container -Name $broken).ConfigPath
        Add-Content -LiteralPath $cfg -Value "rootfs: $root/psct-no-such-rootfs"
        $results = @(Start-ContainerAutostart -ErrorVariable err -ErrorAction SilentlyContinue)
        $results.Name | Should -Be @($grp, $a, $broken, $b, $c)
        $failed = $results | Where-Object Name -eq $broken
        $failed.Result | Should -Be 'Failed'
        $failed.ErrorId | Should -Not -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike "$($failed.ErrorId),*"
        ($results | Where-Object Name -ne $broken).Result | Should -Be @('Started', 'Started', 'Started', 'Started')
        @(Stop-ContainerAutostart -Kill).Where({ $_.Result -eq 'Stopped' }).Count | Should -Be 4
        Remove-Container -Name $broken -Force
    }

    Context 'the systemd unit' {
        BeforeAll {
            $script:unit = Join-Path $root 'pscontainers-autostart.service'
            $script:systemd = Test-Path -LiteralPath '/run/systemd/system'
        }

        It 'says so where systemd does not run this machine, and writes nothing without -Force' {
            if ($systemd) {
                # A unit outside systemd's directories is written but never enabled.
                $info = Install-ContainerAutostartService -Path $unit -WarningVariable warn -WarningAction SilentlyContinue
                $info.Enabled | Should -BeFalse
                $warn | Should -Not -BeNullOrEmpty
                Uninstall-ContainerAutostartService -Path $unit | Out-Null
            }
            else {
                Install-ContainerAutostartService -Path $unit -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
                $err[0].FullyQualifiedErrorId | Should -BeLike 'SystemdNotRunning,*'
                $err[0].Exception.Message | Should -Match '/run/systemd/system does not exist'
                Test-Path -LiteralPath $unit | Should -BeFalse
            }
        }

        It 'writes a oneshot unit that remains active, after the network, for this store' {
            $info = Install-ContainerAutostartService -Path $unit -Force -StopTimeout 10 -WarningVariable warn -WarningAction SilentlyContinue
            $info.Installed | Should -BeTrue
            $info.Enabled | Should -BeFalse
            $info.SystemdRunning | Should -Be $systemd
            if (-not $systemd) { $warn[0] | Should -Match 'systemd does not run this machine' }
            $text = Get-Content -Raw -LiteralPath $unit
            $text | Should -Match '(?m)^Type=oneshot$'
            $text | Should -Match '(?m)^RemainAfterExit=yes$'
            $text | Should -Match '(?m)^After=network-online\.target'
            $text | Should -Match '(?m)^WantedBy=multi-user\.target$'
            (ConvertFrom-SystemdLine (Get-UnitValue $text 'Environment')) | Should -Be "PSCONTAINERS_PATH=$store"
            $start = ConvertFrom-SystemdLine (Get-UnitValue $text 'ExecStart') -Command
            # This pwsh when it is its own process, else (pwsh run by dotnet) the first pwsh in PATH.
            $start[0] | Should -Be $pwsh
            $start[1..3] | Should -Be @('-NoProfile', '-NonInteractive', '-Command')
            $start[4] | Should -BeLike "Import-Module '*/PSContainers.psd1'; Start-ContainerAutostart"
            (ConvertFrom-SystemdLine (Get-UnitValue $text 'ExecStop') -Command)[4] | Should -BeLike "Import-Module '*'; Stop-ContainerAutostart -Timeout 10"
            [int](Get-Item -LiteralPath $unit).UnixFileMode | Should -Be ([Convert]::ToInt32('644', 8))
            if (Get-Command systemd-analyze -ErrorAction SilentlyContinue) {
                $out = & systemd-analyze verify --man=no $unit 2>&1
                $LASTEXITCODE | Should -Be 0 -Because ($out | Out-String)
            }
        }

        It 'runs exactly what ExecStart and ExecStop say: the ordered start, then the reverse stop' {
            $text = Get-Content -Raw -LiteralPath $unit
            $env_ = (ConvertFrom-SystemdLine (Get-UnitValue $text 'Environment')) -split '=', 2
            $start = ConvertFrom-SystemdLine (Get-UnitValue $text 'ExecStart') -Command
            $stop = ConvertFrom-SystemdLine (Get-UnitValue $text 'ExecStop') -Command
            $saved = [Environment]::GetEnvironmentVariable($env_[0])
            try {
                [Environment]::SetEnvironmentVariable($env_[0], $env_[1])
                $startOut = & $start[0] $start[1..($start.Count - 1)] 2>&1 | Out-String
                $LASTEXITCODE | Should -Be 0 -Because $startOut
                $times = $marked | ForEach-Object { (Get-Container -Name $_).StartedAt }
                $marked | ForEach-Object { (Get-Container -Name $_).State } | Should -Be @('Running', 'Running', 'Running', 'Running')
                for ($i = 1; $i -lt $times.Count; $i++) { $times[$i] | Should -BeGreaterThan $times[$i - 1] }
                (Get-Container -Name $off).State | Should -Be 'Stopped'

                $stopOut = & $stop[0] $stop[1..($stop.Count - 1)] 2>&1 | Out-String
                $LASTEXITCODE | Should -Be 0 -Because $stopOut
                $ends = $marked | ForEach-Object { (Get-Container -Name $_).StoppedAt }
                $marked | ForEach-Object { (Get-Container -Name $_).State } | Should -Be @('Stopped', 'Stopped', 'Stopped', 'Stopped')
                for ($i = 1; $i -lt $ends.Count; $i++) { $ends[$i] | Should -BeLessThan $ends[$i - 1] }
            }
            finally { [Environment]::SetEnvironmentVariable($env_[0], $saved) }
        }

        It 'is removed by Uninstall, and a file it did not write is left alone' {
            $info = Uninstall-ContainerAutostartService -Path $unit
            $info.Installed | Should -BeFalse
            Test-Path -LiteralPath $unit | Should -BeFalse
            Uninstall-ContainerAutostartService -Path $unit -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeLike 'AutostartServiceNotInstalled,*'
            Set-Content -LiteralPath $unit -Value "[Unit]`nDescription=someone else's"
            Uninstall-ContainerAutostartService -Path $unit -ErrorVariable err2 -ErrorAction SilentlyContinue
            $err2[0].FullyQualifiedErrorId | Should -BeLike 'NotAnAutostartUnit,*'
            Install-ContainerAutostartService -Path $unit -Force -ErrorVariable err3 -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
            $err3[0].FullyQualifiedErrorId | Should -BeLike 'NotAnAutostartUnit,*'
            Get-Content -Raw -LiteralPath $unit | Should -Match "someone else's"
        }
    }

    Context 'the PSContainer DSC resource' {
        BeforeAll {
            $module = Get-Module PSContainers
            # The class type from the module that defines it (its root module), as DSC tools take it.
            $script:type = & $module { [PSContainer] }
            $script:dscName = New-TestName 'dsc'
            function New-Resource([hashtable] $Properties) {
                $r = $type::new()
                $r.Name = $dscName
                $r.StorePath = $store
                foreach ($k in $Properties.Keys) { $r.$k = $Properties[$k] }
                $r
            }
        }

        It 'is exported by the manifest and defined in its root script module' {
            $module.ExportedDscResources | Should -Contain 'PSContainer'
            $module.ModuleType | Should -Be 'Script'
            $module.Path | Should -BeLike '*/PSContainers.psm1'
            $module.NestedModules.Path | Should -BeLike '*/PSContainers.dll'
            $ast = [Management.Automation.Language.Parser]::ParseFile($module.Path, [ref]$null, [ref]$null)
            $classes = $ast.FindAll({ $args[0] -is [Management.Automation.Language.TypeDefinitionAst] -and $args[0].Attributes.TypeName.Name -contains 'DscResource' }, $false)
            $classes.Name | Should -Be @('PSContainer')
            # The cmdlets come from the nested binary module and are all exported through the manifest.
            $manifest = Import-PowerShellDataFile (Join-Path $module.ModuleBase 'PSContainers.psd1')
            @($module.ExportedCmdlets.Keys | Sort-Object) | Should -Be @($manifest.CmdletsToExport | Sort-Object)
            (Get-Help Get-Container).Synopsis | Should -Not -BeNullOrEmpty
        }

        It 'is found and driven the way DSC v3''s PowerShell adapter does it, in a fresh pwsh' {
            # Microsoft.DSC/PowerShell (psDscAdapter): looks on $env:PSModulePath for a .psd1 with
            # DscResourcesToExport, parses its RootModule .psm1 for [DscResource()] classes, names each
            # '<that file's name>/<class>', then Import-Module -Name <that name>, takes the type from the
            # module, sets the properties from the JSON input, and calls Get, Test or Set. (Invoke-DscResource
            # needs PSDesiredStateConfiguration, which is not installable here.)
            $name = New-TestName 'dscv3'
            $script = {
                param($Store, $Name, $Out)
                $ErrorActionPreference = 'Stop'
                # pwsh adds the user's and the all-users module folders at start-up, where an installed
                # PSContainers may be another build: only the built module and pwsh's own are searched.
                $env:PSModulePath = ($env:PSModulePath.Split([IO.Path]::PathSeparator) | Where-Object { $_ -eq $Out -or $_ -like "$PSHOME*" }) -join [IO.Path]::PathSeparator
                $found = foreach ($dir in $env:PSModulePath.Split([IO.Path]::PathSeparator)) {
                    Get-ChildItem -LiteralPath $dir -Directory -ErrorAction Ignore | ForEach-Object {
                        Get-ChildItem -LiteralPath $_.FullName -Recurse -Depth 2 -Filter "$($_.Name).psd1" | Where-Object { Select-String -LiteralPath $_.FullName -Pattern '^[^#]*\bDscResourcesToExport\b' }
                    }
                }
                $info = Get-Module -ListAvailable -Name $found.FullName | Where-Object Name -eq 'PSContainers'
                if (@($info).Count -ne 1 -or $info.ModuleBase -notlike "$Out*") { throw "expected the built module only, found: $($info.Path)" }
                $rootPath = Join-Path $info.ModuleBase $info.RootModule
                $ast = [Management.Automation.Language.Parser]::ParseFile($rootPath, [ref]$null, [ref]$null)
                $types = @($ast.FindAll({ $args[0] -is [Management.Automation.Language.TypeDefinitionAst] }, $false) |
                    Where-Object { $_.Attributes.TypeName.Name -contains 'DscResource' } |
                    ForEach-Object { "$([IO.Path]::GetFileNameWithoutExtension($rootPath))/$($_.Name)" })
                $moduleName, $class = $types[0].Split('/')
                Import-Module -Name $moduleName
                $type = (Get-Module -Name $moduleName).Invoke([scriptblock]::Create("'$class' -as 'type'"))
                $properties = '{"Name":"' + $Name + '","StorePath":"' + $Store + '","State":"Running","CpuLimit":0.5,"PidsLimit":48}' | ConvertFrom-Json
                $resource = $type::new()
                foreach ($p in $properties.PSObject.Properties) { $resource.($p.Name) = $p.Value }
                $before = $resource.Test()
                $resource.Set()
                $get = $resource.Get()
                [pscustomobject]@{
                    Types = @($types); RootModule = $info.RootModule; Before = $before; After = $resource.Test()
                    Ensure = "$($get.Ensure)"; State = "$($get.State)"; CpuLimit = $get.CpuLimit; PidsLimit = $get.PidsLimit
                } | ConvertTo-Json -Compress
            }
            $modulePath = (Resolve-Path (Join-Path $PSScriptRoot '../../out')).Path
            $pwsh = Join-Path $PSHOME 'pwsh'
            $saved = $env:PSModulePath
            try {
                $env:PSModulePath = "$modulePath$([IO.Path]::PathSeparator)$PSHOME/Modules"
                $json = & $pwsh -NoProfile -NonInteractive -Command "& { $script } -Store '$store' -Name '$name' -Out '$modulePath'" 2>&1
            }
            finally { $env:PSModulePath = $saved }
            $LASTEXITCODE | Should -Be 0 -Because ($json -join "`n")
            $r = ($json | Select-Object -Last 1) | ConvertFrom-Json
            $r.Types | Should -Be @('PSContainers/PSContainer')
            $r.RootModule | Should -Be 'PSContainers.psm1'
            $r.Before | Should -BeFalse
            $r.After | Should -BeTrue
            $r.Ensure | Should -Be 'Present'
            $r.State | Should -Be 'Running'
            $r.CpuLimit | Should -Be 0.5
            $r.PidsLimit | Should -Be 48
            (Get-Container -Name $name).State | Should -Be 'Running'
            Remove-Container -Name $name -Force -Confirm:$false
        }

        It 'creates a missing container with its settings, running, and then tests true' {
            $want = New-Resource @{ Ensure = 'Present'; State = 'Running'; MemoryLimit = 64MB; Autostart = $true; AutostartOrder = 7; Groups = @('web') }
            $want.Get().Ensure | Should -Be 'Absent'
            $want.Test() | Should -BeFalse
            $want.Set()
            $got = $want.Get()
            $got.Ensure | Should -Be 'Present'
            $got.State | Should -Be 'Running'
            $got.MemoryLimit | Should -Be 64MB
            $got.Autostart | Should -BeTrue
            $got.AutostartOrder | Should -Be 7
            $got.Groups | Should -Be @('web')
            $want.Test() | Should -BeTrue
            (Get-Container -Name $dscName).State | Should -Be 'Running'
        }

        It 'tests false after a change by hand, and Set converges back' {
            Stop-Container -Name $dscName
            Set-ContainerAutostart -Name $dscName -Order 1
            $want = New-Resource @{ State = 'Running'; MemoryLimit = 64MB; Autostart = $true; AutostartOrder = 7; Groups = @('web') }
            $want.Test() | Should -BeFalse
            $want.Drift() | Should -Be @('State: Stopped -> Running', 'AutostartOrder: 1 -> 7')
            $want.Set()
            $want.Test() | Should -BeTrue
            (Get-Container -Name $dscName).State | Should -Be 'Running'
        }

        It 'changes the memory limit of the running container live, and stops it' {
            $pid1 = (Get-Container -Name $dscName).Pid
            $want = New-Resource @{ MemoryLimit = 96MB }
            $want.Test() | Should -BeFalse
            $want.Set()
            $want.Test() | Should -BeTrue
            (Get-Container -Name $dscName).Pid | Should -Be $pid1 -Because 'a memory limit is changed without a restart'
            (Get-CgroupLimit -Name $dscName).MemoryMax | Should -Be 96MB
            $stopped = New-Resource @{ State = 'Stopped' }
            $stopped.Test() | Should -BeFalse
            $stopped.Set()
            $stopped.Test() | Should -BeTrue
            (Get-Container -Name $dscName).State | Should -Be 'Stopped'
        }

        It 'pauses (State Paused: started first when stopped) and resumes the container, and changes CPU and pids limits live' {
            $paused = New-Resource @{ State = 'Paused' }
            $paused.Drift() | Should -Be @('State: Stopped -> Paused')
            $paused.Set()
            (Get-Container -Name $dscName).State | Should -Be 'Frozen'
            $pid1 = (Get-Container -Name $dscName).Pid
            $paused.Get().State | Should -Be 'Paused'
            $paused.Test() | Should -BeTrue
            $want = New-Resource @{ State = 'Running'; CpuLimit = 0.25; PidsLimit = 40 }
            $want.Drift() | Should -Contain 'State: Paused -> Running'
            $want.Set()
            $want.Test() | Should -BeTrue
            (Get-Container -Name $dscName).Pid | Should -Be $pid1 -Because 'limits are changed without a restart'
            $live = Get-CgroupLimit -Name $dscName
            "$($live.PidsMax)" | Should -Be '40'
            $got = $want.Get()
            $got.CpuLimit | Should -Be 0.25
            $got.PidsLimit | Should -Be 40
        }

        It 'changes NICs (NetworkBridges) of a running container only with RestartIfNeeded' {
            $ns = New-TestName 'dscns'
            try {
                $null = New-NetNamespace -Name $ns
                $null = New-NetworkBridge -Namespace $ns -Name psbr0
                Set-ContainerConfig -Name $dscName -Key network -Value @(@{ type = 'veth'; link = 'psbr0'; linkNamespace = $ns }) -Confirm:$false -WarningAction SilentlyContinue
                Restart-Container -Name $dscName
                $pid1 = (Get-Container -Name $dscName).Pid
                $current = New-Resource @{}
                $current.Get().NetworkBridges | Should -Be @('psbr0')

                $none = New-Resource @{ NetworkBridges = @(); State = 'Running' }
                $none.Drift() | Should -Be @('NetworkBridges: psbr0 -> ')
                { $none.Set() } | Should -Throw -ErrorId 'PSContainerRestartNeeded'
                (Get-Container -Name $dscName).Pid | Should -Be $pid1 -Because 'without RestartIfNeeded nothing is restarted'
                $current.Get().NetworkBridges | Should -Be @('psbr0') -Because 'nothing is changed either'

                $none.RestartIfNeeded = $true
                $none.Set()
                $none.Test() | Should -BeTrue
                (Get-Container -Name $dscName).State | Should -Be 'Running'
                (Get-Container -Name $dscName).Pid | Should -Not -Be $pid1
                @((Get-ContainerConfig -Name $dscName -Key network)).Count | Should -Be 0

                # Stopped: written at once, no restart needed; a NIC of another kind is kept.
                Stop-Container -Name $dscName
                Set-ContainerConfig -Name $dscName -Key network -Value @(@{ type = 'macvlan'; link = 'eth9' }) -Confirm:$false -WarningAction SilentlyContinue
                $two = New-Resource @{ NetworkBridges = @('psbr1', 'psbr2') }
                $two.Set()
                $two.Test() | Should -BeTrue
                $nics = @((Get-ContainerConfig -Name $dscName -Key network))
                $nics.ForEach({ "$($_['type']):$($_['link'])" }) | Should -Be @('macvlan:eth9', 'veth:psbr1', 'veth:psbr2')
                Set-ContainerConfig -Name $dscName -Key network -Value @() -Confirm:$false -WarningAction SilentlyContinue
            }
            finally {
                Remove-NetNamespace -Name $ns -Confirm:$false -ErrorAction SilentlyContinue
            }
        }

        It 'removes the container with Ensure Absent' {
            Start-Container -Name $dscName
            $gone = New-Resource @{ Ensure = 'Absent' }
            $gone.Test() | Should -BeFalse
            $gone.Set()
            $gone.Test() | Should -BeTrue
            Get-Container -Name $dscName -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $gone.Get().Status | Should -Be 'Absent'
        }
    }
}
