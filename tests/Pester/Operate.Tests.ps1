#Requires -Version 7.4
<#
.SYNOPSIS
    Day-to-day work on containers (issue 18): files in and out (Copy-ContainerItem), config read and
    set by key (Get-/Set-ContainerConfig), Rename-Container, and the richer Invoke-ContainerCommand
    (stdin, -User/-Group, -Environment/-ClearEnvironment, -WorkingDirectory, -Timeout, -Tty).

.NOTES
    Needs Linux, root and the built module in out/PSContainers. Works in a private store under
    /tmp/psc-test-<guid> (TestStore.ps1), removed in AfterAll also when tests fail. Containers are
    made with New-Container's default (privileged today, user-namespaced once that is the default),
    so every expectation about owners is computed from the container's own id map; one container
    has an explicit idMap for the user-namespace cases.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'Operate: files, config, rename, exec' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')
        $PSDefaultParameterValues['*-ContainerItem:StorePath'] = $store
        $PSDefaultParameterValues['*-ContainerConfig:StorePath'] = $store
        $script:box = New-TestName op
        $script:c = New-Container $script:box
        $script:map = (Get-ContainerConfig $script:box).IdMap
        # The on-disk ids of the container's uid/gid n: as it sees them on an idmapped rootfs
        # (storage.ids idmapped), through its map on a shifted one.
        $script:idmapped = (Get-ContainerConfig $script:box).Storage.IsIdmapped
        function HostUid([uint32] $n) { if ($script:map -and -not $script:idmapped) { $script:map.ToHost('Uid', $n) } else { $n } }
        $start = 1600000000 + (Get-Random -Maximum 4000) * 65536
        $idmapFile = Join-Path $root 'idmap.yaml'
        Set-Content -Path $idmapFile -Value "idMap: [u 0 $start 65536, g 0 $start 65536]"
        $script:uns = New-TestName opu
        $script:unsStart = $start
        New-Container $script:uns -ConfigPath $idmapFile | Out-Null
        $script:src = Join-Path $root 'src'
        New-Item -ItemType Directory -Path (Join-Path $script:src 'sub') -Force | Out-Null
        Set-Content -Path (Join-Path $script:src 'a.txt') -Value 'alpha'
        Set-Content -Path (Join-Path $script:src 'sub/b.txt') -Value 'beta'
        # What the host must never see written or read by a copy.
        $script:victim = Join-Path $root 'victim'
        New-Item -ItemType Directory -Path $script:victim | Out-Null
        Set-Content -Path (Join-Path $script:victim 'secret.txt') -Value 'HOSTSECRET'
    }

    AfterAll {
        Remove-TestStore
    }

    Context 'Copy-ContainerItem' {
        It 'copies a tree into a stopped container, owned by its root, and back out as the caller''s files' {
            $items = Copy-ContainerItem -Path $script:src -Destination /data -ToContainer $script:box -Recurse -PassThru
            $items.FullName | Should -Contain '/data/sub/b.txt'
            ($items | Where-Object FullName -eq '/data/a.txt').Owner | Should -Be 0
            $onDisk = Get-Item (Join-Path $script:c.RootfsPath 'data/a.txt')
            $onDisk.User | Should -Not -BeNullOrEmpty
            [uint32](& stat -c %u $onDisk.FullName) | Should -Be (HostUid 0)
            $out = Join-Path $root 'out1'
            Copy-ContainerItem -Path /data -Destination $out -FromContainer $script:box -Recurse
            Get-Content (Join-Path $out 'sub/b.txt') | Should -Be 'beta'
            & stat -c %u (Join-Path $out 'sub/b.txt') | Should -Be '0'
        }

        It 'copies into and out of a stopped overlay container (its layers mounted for the copy only)' {
            $ov = New-TestName opo
            New-Container $ov -Backend overlay | Out-Null
            Copy-ContainerItem -Path (Join-Path $script:src 'a.txt') -Destination /etc/added.txt -ToContainer $ov
            Copy-ContainerItem -Path /etc/added.txt -Destination (Join-Path $root 'ov-out.txt') -FromContainer $ov
            Get-Content (Join-Path $root 'ov-out.txt') | Should -Be 'alpha'
            (Get-Content /proc/mounts) -match [regex]::Escape($store) | Should -BeNullOrEmpty
            Start-Container $ov | Out-Null
            try { (Invoke-ContainerCommand $ov -Command cat, /etc/added.txt).Output | Should -Be 'alpha' }
            finally { Stop-Container $ov -Kill | Out-Null }
        }

        It 'refuses a directory without -Recurse and an existing file without -Force' {
            { Copy-ContainerItem -Path $script:src -Destination /x -ToContainer $script:box -ErrorAction Stop } |
                Should -Throw -ErrorId 'DirectoryNeedsRecurse,PSContainers.Cmdlets.CopyContainerItemCommand'
            { Copy-ContainerItem -Path (Join-Path $script:src 'a.txt') -Destination /data/a.txt -ToContainer $script:box -ErrorAction Stop } |
                Should -Throw -ErrorId 'CopyDestinationExists,PSContainers.Cmdlets.CopyContainerItemCommand'
            Set-Content -Path (Join-Path $root 'a2.txt') -Value 'replaced'
            Copy-ContainerItem -Path (Join-Path $root 'a2.txt') -Destination /data/a.txt -ToContainer $script:box -Force -Mode 0600
            Get-Content (Join-Path $script:c.RootfsPath 'data/a.txt') | Should -Be 'replaced'
            & stat -c %a (Join-Path $script:c.RootfsPath 'data/a.txt') | Should -Be '600'
        }

        It 'never follows a hostile link out of the container, absolute, relative or in an intermediate directory' {
            $rootfs = $script:c.RootfsPath
            New-Item -ItemType SymbolicLink -Path (Join-Path $rootfs 'abs') -Target $script:victim | Out-Null
            New-Item -ItemType SymbolicLink -Path (Join-Path $rootfs 'rel') -Target ('../' * 12 + $script:victim.TrimStart('/')) | Out-Null
            New-Item -ItemType SymbolicLink -Path (Join-Path $rootfs 'shadow') -Target '/etc/shadow' | Out-Null
            # Where the links lead when resolved inside the container: there, the files may land.
            New-Item -ItemType Directory -Path (Join-Path $rootfs $script:victim.TrimStart('/')) -Force | Out-Null
            $one = Join-Path $script:src 'a.txt'
            foreach ($dest in '/abs/pwned', '/rel/pwned', '/abs/deeper/pwned') {
                Copy-ContainerItem -Path $one -Destination $dest -ToContainer $script:box -ErrorAction SilentlyContinue
            }
            Get-ChildItem $script:victim | Select-Object -ExpandProperty Name | Should -Be 'secret.txt'
            # Inside the container the links resolve inside it: the files landed in its own tree.
            Test-Path (Join-Path $rootfs ($script:victim.TrimStart('/') + '/pwned')) | Should -BeTrue
            # Reading: /shadow is the container's /etc/shadow, the victim's secret is never read.
            Set-Content -Path (Join-Path $rootfs 'etc/shadow') -Value 'container-shadow'
            Copy-ContainerItem -Path /shadow -Destination (Join-Path $root 'shadow.out') -FromContainer $script:box
            Get-Content (Join-Path $root 'shadow.out') | Should -Be 'container-shadow'
            { Copy-ContainerItem -Path /abs/secret.txt -Destination (Join-Path $root 'secret.out') -FromContainer $script:box -ErrorAction Stop } |
                Should -Throw -ErrorId 'ItemNotFound,PSContainers.Cmdlets.CopyContainerItemCommand'
        }

        It 'takes files from Get-ChildItem on the pipeline, and -WhatIf writes nothing' {
            Get-ChildItem $script:src -File | Copy-ContainerItem -ToContainer $script:box -Destination /piped/
            Test-Path (Join-Path $script:c.RootfsPath 'piped/a.txt') | Should -BeTrue
            Copy-ContainerItem -Path $script:src -Destination /whatif -ToContainer $script:box -Recurse -WhatIf
            Test-Path (Join-Path $script:c.RootfsPath 'whatif') | Should -BeFalse
        }

        It 'copies a 2000-file tree with progress reports' {
            $tree = Join-Path $root 'tree'
            foreach ($d in 0..19) {
                $dir = New-Item -ItemType Directory -Path (Join-Path $tree "d$d") -Force
                foreach ($f in 0..99) { [IO.File]::WriteAllText((Join-Path $dir "f$f"), "$d-$f") }
            }
            Add-Type -IgnoreWarnings -WarningAction SilentlyContinue -ReferencedAssemblies ([PSContainers.Runtime.Files.ContainerFiles].Assembly.Location), 'System.Runtime' -TypeDefinition @'
public sealed class PscTestProgress : System.IProgress<PSContainers.Runtime.Files.FileCopyProgress>
{
    public int Reports; public long LastDone; public long Total;
    public void Report(PSContainers.Runtime.Files.FileCopyProgress p) { Reports++; LastDone = p.FilesDone; Total = p.FilesTotal; }
}
'@
            $progress = [PscTestProgress]::new()
            $files = [PSContainers.Runtime.Files.ContainerFiles]::new([PSContainers.Runtime.Composition.ContainerRuntime]::Open($store))
            $options = [PSContainers.Runtime.Files.FileCopyOptions]@{ Recurse = $true }
            $written = $files.CopyIn($script:box, [string[]]@($tree), '/tree', $options, $progress, $null, [Threading.CancellationToken]::None)
            ($written | Where-Object Type -eq 'File').Count | Should -Be 2000
            $progress.Total | Should -Be 2000
            $progress.LastDone | Should -Be 2000
            $progress.Reports | Should -BeGreaterOrEqual 2000
            (Get-ChildItem (Join-Path $script:c.RootfsPath 'tree') -Recurse -File).Count | Should -Be 2000
            # The cmdlet shows the same reports as Write-Progress (not capturable here); its result is the same tree.
            (Copy-ContainerItem -Path $tree -Destination /tree2 -ToContainer $script:box -Recurse -PassThru | Where-Object Type -eq 'File').Count | Should -Be 2000
        }

        It 'sets owners through the id map of a user-namespaced container (-Owner and -Group are container ids)' {
            $items = Copy-ContainerItem -Path (Join-Path $script:src 'a.txt') -Destination /home/a.txt -ToContainer $script:uns -Owner 1000 -Group 1000 -PassThru
            $items.Owner | Should -Be 1000
            $rootfs = (Get-Container $script:uns).RootfsPath
            # On disk: the container's own ids on an idmapped rootfs, shifted by its map otherwise.
            $base = if ((Get-ContainerConfig $script:uns).Storage.IsIdmapped) { 0 } else { $script:unsStart }
            & stat -c '%u:%g' (Join-Path $rootfs 'home/a.txt') | Should -Be "$($base + 1000):$($base + 1000)"
            Copy-ContainerItem -Path (Join-Path $script:src 'a.txt') -Destination /root-owned.txt -ToContainer $script:uns
            & stat -c '%u' (Join-Path $rootfs 'root-owned.txt') | Should -Be "$base"
            { Copy-ContainerItem -Path (Join-Path $script:src 'a.txt') -Destination /x.txt -ToContainer $script:uns -Owner 70000 -ErrorAction Stop } |
                Should -Throw -ErrorId 'IdNotMapped,PSContainers.Cmdlets.CopyContainerItemCommand'
        }

        It 'copies into and out of a running container, where its processes see the files (and a mount inside)' {
            Start-Container $script:uns | Out-Null
            try {
                (Invoke-ContainerCommand $script:uns -Command sh, -c, 'mkdir -p /mnt/t && mount -t tmpfs none /mnt/t').ExitCode | Should -Be 0
                Copy-ContainerItem -Path (Join-Path $script:src 'a.txt') -Destination /mnt/t/a.txt -ToContainer $script:uns
                (Invoke-ContainerCommand $script:uns -Command cat, /mnt/t/a.txt).Output | Should -Be 'alpha'
                (Invoke-ContainerCommand $script:uns -Command stat, -c, '%u', /mnt/t/a.txt).Output | Should -Be '0'
                # The tmpfs is the container's: the rootfs below it has no such file.
                Test-Path (Join-Path (Get-Container $script:uns).RootfsPath 'mnt/t/a.txt') | Should -BeFalse
                $null = Invoke-ContainerCommand $script:uns -Command sh, -c, 'echo inside > /mnt/t/made.txt'
                Copy-ContainerItem -Path /mnt/t/made.txt -Destination (Join-Path $root 'made.txt') -FromContainer $script:uns
                Get-Content (Join-Path $root 'made.txt') | Should -Be 'inside'
            }
            finally { Stop-Container $script:uns -Kill | Out-Null }
        }

        It 'never writes or reads outside while the container swaps a directory for a link (TOCTOU)' {
            Start-Container $script:box | Out-Null
            try {
                $loop = "mkdir -p /race; while :; do rm -rf /race/d; mkdir /race/d; echo in > /race/d/f; rm -rf /race/d; ln -s '$($script:victim)' /race/d; done"
                $null = Invoke-ContainerCommand $script:box -Command sh, -c, "($loop) </dev/null >/dev/null 2>&1 &"
                foreach ($i in 1..40) {
                    Copy-ContainerItem -Path $script:src -Destination /race/d -ToContainer $script:box -Recurse -Force -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
                    $out = Join-Path $root "race-out-$i"
                    Copy-ContainerItem -Path /race/d -Destination $out -FromContainer $script:box -Recurse -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
                    if (Test-Path $out) { Get-ChildItem $out -Recurse -File | Get-Content | Should -Not -Contain 'HOSTSECRET' }
                }
                Get-ChildItem $script:victim | Select-Object -ExpandProperty Name | Should -Be 'secret.txt'
            }
            finally { Stop-Container $script:box -Kill | Out-Null }
        }
    }

    Context 'Get-ContainerConfig and Set-ContainerConfig' {
        It 'reads the whole config typed, and one key' {
            $config = Get-ContainerConfig $script:box
            $config | Should -BeOfType ([PSContainers.Runtime.Config.ContainerConfig])
            $config.Stop.Timeout | Should -Be 10
            Get-ContainerConfig $script:box -Key stop.timeout | Should -Be 10
            { Get-ContainerConfig $script:box -Key no.such -ErrorAction Stop } | Should -Throw -ErrorId 'ConfigKeyNotFound,PSContainers.Cmdlets.GetContainerConfigCommand'
        }

        It 'sets keys with the loader''s validation and says when they apply' {
            $change = Set-ContainerConfig $script:box -Key stop.timeout -Value 30
            $change.AppliesAt | Should -Be 'NextStart'
            (Get-ContainerConfig $script:box).Stop.Timeout | Should -Be 30
            { Set-ContainerConfig $script:box -Key stop.timeout -Value banana -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidConfig,PSContainers.Cmdlets.SetContainerConfigCommand'
            { Set-ContainerConfig $script:box -Key limits.bogus -Value 1 -ErrorAction Stop } | Should -Throw '*unknown key ''bogus''*'
            (Get-ContainerConfig $script:box).Stop.Timeout | Should -Be 30
            Set-ContainerConfig $script:box -Config @{ 'init.environment.TZ' = 'UTC'; 'stop.timeout' = $null } | Should -HaveCount 2
            (Get-ContainerConfig $script:box).Init.Environment['TZ'] | Should -Be 'UTC'
            (Get-ContainerConfig $script:box).Stop.Timeout | Should -Be 10
            Set-ContainerConfig $script:box -Key hostname -Value whatif-host -WhatIf
            (Get-ContainerConfig $script:box).Hostname | Should -BeNullOrEmpty
        }

        It 'applies a cgroup limit to a running container at once, other keys at the next start' {
            Start-Container $script:box | Out-Null
            try {
                $change = Set-ContainerConfig $script:box -Key limits.pids -Value 77
                $change.AppliesAt | Should -Be 'Now'
                [long](Get-CgroupLimit $script:box).PidsMax | Should -Be 77
                $change = Set-ContainerConfig $script:box -Key hostname -Value renamed-host -WarningVariable warned -WarningAction SilentlyContinue
                $change.AppliesAt | Should -Be 'NextStart'
                $warned | Should -Not -BeNullOrEmpty
                (Invoke-ContainerCommand $script:box -Command hostname).Output | Should -Not -Be 'renamed-host'
            }
            finally { Stop-Container $script:box -Kill | Out-Null }
            Start-Container $script:box | Out-Null
            try { (Invoke-ContainerCommand $script:box -Command hostname).Output | Should -Be 'renamed-host' }
            finally { Stop-Container $script:box -Kill | Out-Null; Set-ContainerConfig $script:box -Key hostname -Remove | Out-Null }
        }
    }

    Context 'Rename-Container' {
        It 'refuses a running container and renames a stopped one with its snapshots and clones' {
            $old = New-TestName ren
            $new = New-TestName ren
            $clone = New-TestName rcl
            New-Container $old | Out-Null
            Copy-Container $old $clone -Snapshot | Out-Null
            New-ContainerSnapshot $old | Out-Null
            Start-Container $old | Out-Null
            { Rename-Container $old $new -ErrorAction Stop } | Should -Throw -ErrorId 'ContainerNotStopped,PSContainers.Cmdlets.RenameContainerCommand'
            Stop-Container $old -Kill | Out-Null
            (Rename-Container $old $new -PassThru).Name | Should -Be $new
            Get-Container $old -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            (Get-ContainerSnapshot $new).Name | Should -Be 'snap0'
            (Get-ContainerConfig $clone).Storage.Origin | Should -Be $new
            Start-Container $clone | Out-Null
            try { (Invoke-ContainerCommand $clone -Command cat, /etc/passwd).Output | Should -Contain 'root:x:0:0:root:/root:/bin/sh' }
            finally { Stop-Container $clone -Kill | Out-Null }
            Start-Container $new | Out-Null
            try { (Invoke-ContainerCommand $new -Command hostname).Output | Should -Be $new }
            finally { Stop-Container $new -Kill | Out-Null }
            { Rename-Container $new $clone -ErrorAction Stop } | Should -Throw -ErrorId 'ContainerExists,PSContainers.Cmdlets.RenameContainerCommand'
        }
    }

    Context 'Invoke-ContainerCommand' {
        BeforeAll { Start-Container $script:box | Out-Null }
        AfterAll { Stop-Container $script:box -Kill | Out-Null }

        It 'passes 1 MB of standard input from the pipeline, lines from strings, and a file' {
            ('y' * 1MB) | Invoke-ContainerCommand -Name $script:box -Command wc, -c | ForEach-Object Output | Should -Be ('' + (1MB + 1))
            ('a', 'b', 'c' | Invoke-ContainerCommand -Name $script:box -Command cat).Output | Should -Be @('a', 'b', 'c')
            Set-Content -Path (Join-Path $root 'stdin.txt') -Value 'from a file'
            (Invoke-ContainerCommand $script:box -Command cat -InputFile (Join-Path $root 'stdin.txt')).Output | Should -Be 'from a file'
            (Invoke-ContainerCommand $script:box -Command cat).Output | Should -BeNullOrEmpty
        }

        It 'switches user and group, by name from the container''s files or by number' {
            (Invoke-ContainerCommand $script:box -Command id -User 1000 -Group 1001).Output | Should -Match '^uid=1000 gid=1001 groups=1001'
            Add-Content -Path (Join-Path $script:c.RootfsPath 'etc/passwd') -Value 'pscuser:x:1234:2345::/home/pscuser:/bin/sh'
            Add-Content -Path (Join-Path $script:c.RootfsPath 'etc/group') -Value "pscgroup:x:2345:`npscextra:x:3456:pscuser"
            $id = (Invoke-ContainerCommand $script:box -Command id -User pscuser).Output
            $id | Should -Match 'uid=1234\(pscuser\) gid=2345\(pscgroup\)'
            $id | Should -Match '3456\(pscextra\)'
            (Invoke-ContainerCommand $script:box -Command sh, -c, 'echo $HOME' -User pscuser).Output | Should -Be '/home/pscuser'
            { Invoke-ContainerCommand $script:box -Command id -User nosuchuser -ErrorAction Stop } | Should -Throw -ErrorId 'ContainerUserNotFound,PSContainers.Cmdlets.InvokeContainerCommandCommand'
        }

        It 'adds to or replaces the environment, and runs in the working directory' {
            $env1 = (Invoke-ContainerCommand $script:box -Command env -Environment @{ PSC_A = 'one' }).Output
            $env1 | Should -Contain 'PSC_A=one'
            $env1 | Should -Contain 'container=pscontainers'
            $env2 = (Invoke-ContainerCommand $script:box -Command env -Environment @{ PSC_A = 'one' } -ClearEnvironment).Output
            $env2 | Sort-Object | Should -Be @('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'PSC_A=one')
            (Invoke-ContainerCommand $script:box -Command pwd -WorkingDirectory /etc).Output | Should -Be '/etc'
        }

        It 'kills a command past its timeout, its process group included' {
            $watch = [Diagnostics.Stopwatch]::StartNew()
            { Invoke-ContainerCommand $script:box -Command sh, -c, 'trap "" HUP TERM INT; sleep 300 & wait' -Timeout 1 -ErrorAction Stop } |
                Should -Throw -ErrorId 'CommandTimeout,PSContainers.Cmdlets.InvokeContainerCommandCommand'
            $watch.Elapsed.TotalSeconds | Should -BeLessThan 20
            (Invoke-ContainerCommand $script:box -Command sh, -c, 'ps | grep -c "[s]leep 300" || true').Output | Should -Be '0'
            (Invoke-ContainerCommand $script:box -Command true -Timeout 30).ExitCode | Should -Be 0
        }

        It 'gives a terminal only when asked' {
            (Invoke-ContainerCommand $script:box -Command tty -Tty).Output | Should -Match '^/dev/pts/\d+$'
            (Invoke-ContainerCommand $script:box -Command sh, -c, '[ -t 0 ] && echo tty || echo none').Output | Should -Be 'none'
            (Invoke-ContainerCommand $script:box -Command sh, -c, '[ -t 0 ] && echo tty || echo none' -Tty).Output | Should -Be 'tty'
        }
    }
}
