#Requires -Version 7.4
<#
.SYNOPSIS
    Unprivileged by default, in real pwsh (issue 15): root's first New-Container, with no
    subordinate range of its own, allocates one and tells so with a warning written on the pipeline
    thread (it failed with "WriteObject and WriteError methods cannot be called from outside the
    overrides of ..." when the warning came from the template's worker thread), and a create that
    fails gives the range back. Also: the mode and host ids in Get-Container, -Privileged, the
    config key, and an imported privileged: true that does not make a privileged container.

.NOTES
    Needs Linux, root, debootstrap and the built module in out/PSContainers. The tests of root
    without a range take root's lines out of the REAL /etc/subuid and /etc/subgid for as long as
    they run: the files are read and replaced under the tool's locks (ShadowLock, as shadow-utils
    locks them), and AfterAll puts back exactly the bytes they had, also when a test fails.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0') -and [bool](Get-Command debootstrap -ErrorAction SilentlyContinue)
}

Describe 'Unprivileged by default' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')
        $files = '/etc/subuid', '/etc/subgid'
        $lockTimeout = [TimeSpan]::FromSeconds(15)

        # The module's own lock (internal: it is not an API): shadow-utils' locks, as
        # Add-SubordinateIdRange takes them, so no writer of the files runs while we read or replace them.
        $shadowLock = [PSContainers.Runtime.Containers.ContainerInfo].Assembly.GetType('PSContainers.Runtime.IdMapping.ShadowLock', $true)
        $acquire = $shadowLock.GetMethod('Acquire')
        $passwdLock = $shadowLock.GetField('PasswdLockPath').GetValue($null)
        function Lock-SubordinateFiles { $acquire.Invoke($null, @([string[]] $files, $passwdLock, $lockTimeout)) }

        # Both files replaced together under those locks.
        function Set-SubordinateFiles([byte[][]] $Content) {
            $lock = Lock-SubordinateFiles
            try {
                for ($i = 0; $i -lt $files.Count; $i++) {
                    [PSContainers.Runtime.Filesystem.AtomicFile]::WriteAllBytes($files[$i], $Content[$i], $true, "$($files[$i])+", $files[$i])
                }
            }
            finally { $lock.Dispose() }
        }
        function Get-RootLine([string] $Path) { @(Get-Content -LiteralPath $Path | Where-Object { $_ -match '^(root|0):' }) }

        # Read under the lock too: what is saved is a state the files really had.
        $lock = Lock-SubordinateFiles
        try { $saved = @(, [IO.File]::ReadAllBytes($files[0])) + @(, [IO.File]::ReadAllBytes($files[1])) }
        finally { $lock.Dispose() }

        # Root without a range: its lines out, every other line as it was.
        function Remove-RootRange {
            $without = foreach ($f in $files) {
                $text = [Text.Encoding]::UTF8.GetString([IO.File]::ReadAllBytes($f))
                , [Text.Encoding]::UTF8.GetBytes((($text -split "`n") | Where-Object { $_ -notmatch '^(root|0):' }) -join "`n")
            }
            Set-SubordinateFiles $without
        }
    }

    AfterAll {
        if (Get-Variable -Name saved -ValueOnly -ErrorAction SilentlyContinue) { Set-SubordinateFiles $saved }
        Remove-TestStore
    }

    Context 'root with no subordinate range of its own' {
        AfterEach { Set-SubordinateFiles $saved }

        It 'gives the range back when the create fails, and reports the failure, not a thread error' {
            Remove-RootRange
            $name = New-TestName 'fail'
            # debootstrap against a port nothing listens on: fails in its worker after the range was taken.
            $err = $null
            New-Container $name -Template debootstrap -Mirror 'http://127.0.0.1:9/debian' -ErrorVariable err -ErrorAction SilentlyContinue -WarningVariable warned -WarningAction SilentlyContinue
            $err.Count | Should -Be 1
            "$($err[0])" | Should -Not -BeLike '*cannot be called from outside the overrides*'
            $err[0].FullyQualifiedErrorId | Should -BeLike 'Debootstrap*'
            Get-RootLine /etc/subuid | Should -BeNullOrEmpty
            Get-RootLine /etc/subgid | Should -BeNullOrEmpty
            $warned | Where-Object { "$_" -like '*allocated*' } | Should -BeNullOrEmpty
            Get-Container $name -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        }

        It 'allocates one for the first default container and warns on the pipeline thread' {
            Remove-RootRange
            $name = New-TestName 'first'
            $c = New-Container $name -WarningVariable warned -WarningAction SilentlyContinue -ErrorAction Stop
            $notice = @($warned | Where-Object { "$_" -like 'Root had no subordinate id range; allocated*' })
            $notice.Count | Should -Be 1
            $uid = @(Get-RootLine /etc/subuid)
            $uid.Count | Should -Be 1
            $start = [uint32]($uid[0].Split(':')[1])
            (Get-RootLine /etc/subgid) | Should -Be @("root:${start}:65536")
            "$($c.Mode)" | Should -Be 'Unprivileged'
            $c.HostIdRange | Should -Be "$start-$($start + 65535)"
            # Its rootfs belongs to its root: id 0 on disk when idmapped, the range's first id when shifted.
            $expected = if ((Get-ContainerConfig $name).Storage.IsIdmapped) { 0 } else { $start }
            (& stat -c '%u' $c.RootfsPath) | Should -Be "$expected"
            Start-Container $name
            (Invoke-ContainerCommand $name -Command id, -u).Output | Should -Be '0'
            Remove-Container $name -Force
        }
    }

    Context 'the mode of a new container' {
        It 'is unprivileged by default, recorded as the idMap, and shown by Get-Container' {
            $name = New-TestName 'def'
            $c = New-Container $name
            "$($c.Mode)" | Should -Be 'Unprivileged'
            $c.HostIdRange | Should -Match '^\d+-\d+$'
            (Get-Content -Raw $c.ConfigPath) | Should -Match '(?m)^idMap: \['
            (Get-Container $name | Format-Table | Out-String -Width 300) | Should -Match 'Unprivileged\s+\d+-\d+'
            Remove-Container $name -Force
        }

        It 'is privileged with -Privileged, recorded as privileged: true' {
            $name = New-TestName 'priv'
            $c = New-Container $name -Privileged
            "$($c.Mode)" | Should -Be 'Privileged'
            $c.HostIdRange | Should -BeNullOrEmpty
            (Get-Content -Raw $c.ConfigPath) | Should -Match '(?m)^privileged: true$'
            (Get-Content -Raw $c.ConfigPath) | Should -Not -Match 'idMap'
            (& stat -c '%u' $c.RootfsPath) | Should -Be '0'
            Start-Container $name
            $pid1 = (Get-Container $name).Pid
            (Get-Content "/proc/$pid1/status" | Where-Object { $_ -like 'Uid:*' }) -split '\s+' | Select-Object -Index 1 | Should -Be '0'
            Remove-Container $name -Force
        }

        It 'is privileged with privileged: true in a -ConfigPath config, and refuses it with -Unprivileged' {
            $config = Join-Path $root 'privileged.yaml'
            Set-Content -LiteralPath $config -Value 'privileged: true'
            $name = New-TestName 'cfgp'
            "$((New-Container $name -ConfigPath $config).Mode)" | Should -Be 'Privileged'
            { New-Container (New-TestName 'both') -ConfigPath $config -Unprivileged -ErrorAction Stop } |
                Should -Throw -ErrorId 'ConflictingParameters,PSContainers.Cmdlets.NewContainerCommand'
            Remove-Container $name -Force
        }

        It 'keeps a container made before the default flipped (neither idMap nor privileged) privileged' {
            $name = New-TestName 'old'
            $c = New-Container $name -Privileged
            # What an older New-Container wrote: no mode at all.
            (Get-Content -Raw $c.ConfigPath) -replace '(?m)^privileged: true\r?\n', '' | Set-Content -NoNewline -LiteralPath $c.ConfigPath
            (Get-Content -Raw $c.ConfigPath) | Should -Not -Match 'privileged'
            "$((Get-Container $name).Mode)" | Should -Be 'Privileged'
            Start-Container $name
            $pid1 = (Get-Container $name).Pid
            (Get-Content "/proc/$pid1/status" | Where-Object { $_ -like 'Uid:*' }) -split '\s+' | Select-Object -Index 1 | Should -Be '0'
            Remove-Container $name -Force
        }

        It 'does not let an imported config ask for privileged by itself' {
            $name = New-TestName 'src'
            $null = New-Container $name -Privileged
            $archive = Join-Path $root "$name.tar"
            Export-Container $name -Path $archive
            (& tar -xOf $archive 'config.yaml' 2>$null) -join "`n" | Should -Match 'privileged: true'
            $imported = Import-Container $archive -Name (New-TestName 'imp') -WarningVariable warned -WarningAction SilentlyContinue
            "$($imported.Mode)" | Should -Be 'Unprivileged'
            $warned | Where-Object { "$_" -like '*cannot make its container privileged*' } | Should -Not -BeNullOrEmpty
            $trusted = Import-Container $archive -Name (New-TestName 'impp') -Privileged
            "$($trusted.Mode)" | Should -Be 'Privileged'
            Remove-Container $name, $imported.Name, $trusted.Name -Force
        }
    }
}
