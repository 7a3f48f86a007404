#Requires -Version 7.4
<#
.SYNOPSIS
    A container from an OCI image, as a user meets it in pwsh (issue 18): an image built offline
    with Debian's umoci from a local busybox tree and copied with skopeo to a docker save archive,
    New-Container -ImagePath with its tag, the image's command, environment and directory at start,
    the oci: section in Get-ContainerConfig, overlay containers sharing the image's layers, and the
    errors a wrong tag or a damaged image give.

.NOTES
    Needs Linux, root, umoci, skopeo and the built module in out/PSContainers. Works in a private
    store under /tmp/psc-test-<guid> (TestStore.ps1), removed in AfterAll also when tests fail.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'OCI images: New-Container -ImagePath' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')
        $PSDefaultParameterValues['*-ContainerConfig:StorePath'] = $store
        $script:img = Join-Path $root 'img'
        $script:archive = Join-Path $root 'web.tar'
        $build = @'
set -e
cd "$1"
mkdir -p src/bin src/srv src/proc src/sys src/dev src/tmp src/etc
cp /bin/busybox src/bin/busybox; ln -s busybox src/bin/sh; ln -s busybox src/bin/sleep; ln -s busybox src/bin/cat
echo 'hello from the image' > src/srv/index.html
umoci init --layout img
umoci new --image img:1.0
umoci insert --image img:1.0 src /
umoci config --image img:1.0 --config.entrypoint /bin/sh --config.cmd -c --config.cmd 'echo "$GREETING from $(pwd)" > /started; exec sleep 1000' \
    --config.env GREETING=hi --config.workingdir /srv --config.exposedports 8080/tcp
skopeo copy -q oci:img:1.0 docker-archive:web.tar:psct/web:1.0
'@
        & bash -c $build bash $root 2>&1 | Out-String | Write-Verbose
        if ($LASTEXITCODE -ne 0) { throw "building the test image failed ($LASTEXITCODE)" }
        function WaitFile([string] $name, [string] $path) {
            foreach ($i in 1..200) {
                $text = (Invoke-ContainerCommand $name -Command /bin/sh, -c, "cat $path 2>/dev/null || true").Output
                if ($text) { return $text }
                Start-Sleep -Milliseconds 100
            }
        }
    }

    AfterAll {
        Remove-TestStore
    }

    It 'makes a container from a layout directory that runs the image''s command with its Env and WorkingDir' {
        $name = New-TestName oci
        $c = New-Container $name -Template oci -ImagePath $script:img -ImageTag 1.0
        $c.Template | Should -Be 'oci'
        Start-Container $name
        WaitFile $name /started | Should -Be 'hi from /srv'
        (Invoke-ContainerCommand $name -Command cat, index.html).Output | Should -Be 'hello from the image'
        $cfg = Get-ContainerConfig $name
        $cfg.Oci.Tag | Should -Be '1.0'
        $cfg.Oci.Digest | Should -Match '^sha256:[0-9a-f]{64}$'
        $cfg.Oci.ExposedPorts | Should -Be @('8080/tcp')
        $cfg.Init.WorkingDirectory | Should -Be '/srv'
    }

    It 'takes a docker save archive; -Command replaces Cmd and -Environment adds to Env' {
        $name = New-TestName ocid
        New-Container $name -ImagePath $script:archive -Command '-c', 'echo "$GREETING $WHO" > /started; exec sleep 1000' -Environment @{ WHO = 'pester' } | Start-Container
        WaitFile $name /started | Should -Be 'hi pester'
        (Get-ContainerConfig $name).Init.Command | Should -Be @('/bin/sh', '-c', 'echo "$GREETING $WHO" > /started; exec sleep 1000')
    }

    It 'says which tags there are when -ImageTag names none' {
        $err = $null
        New-Container (New-TestName ocit) -ImagePath $script:archive -ImageTag 2.0 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'OciImageTagNotFound,PSContainers.Cmdlets.NewContainerCommand'
        $err[0].Exception.Message | Should -BeLike '*psct/web:1.0*'
    }

    It 'refuses a damaged image and leaves no container' {
        $bad = Join-Path $root 'bad'
        Copy-Item -Recurse $script:img $bad
        $blob = Get-ChildItem (Join-Path $bad 'blobs/sha256') | Sort-Object Length -Descending | Select-Object -First 1
        $bytes = [IO.File]::ReadAllBytes($blob.FullName); $bytes[100] = $bytes[100] -bxor 0xff
        [IO.File]::WriteAllBytes($blob.FullName, $bytes)
        $name = New-TestName ocibad
        $err = $null
        New-Container $name -ImagePath $bad -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'OciDigestMismatch,PSContainers.Cmdlets.NewContainerCommand'
        Get-Container $name -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'shares the image''s layers between overlay containers, shows the image, and frees the layers with the last container' {
        $a = New-TestName ocio
        $b = New-TestName ocio
        New-Container $a -ImagePath $script:img -ImageTag 1.0 -Backend overlay | Start-Container
        New-Container $b -ImagePath $script:img -ImageTag 1.0 -Backend overlay | Start-Container
        (Get-Container $a).Image | Should -BeLike '1.0@sha256:*'
        (Get-Container $a | Format-List | Out-String -Width 200) | Should -Match 'Image\s+: 1\.0@sha256:[0-9a-f]{12}'
        $layers = (Get-ContainerConfig $a).Storage.Layers
        $layers.Count | Should -Be 1
        (Get-ContainerConfig $b).Storage.Layers | Should -Be $layers
        WaitFile $a /started | Should -Be 'hi from /srv'
        Invoke-ContainerCommand $a -Command /bin/sh, -c, 'echo mine > /srv/index.html' | Out-Null
        (Invoke-ContainerCommand $b -Command cat, /srv/index.html).Output | Should -Be 'hello from the image'
        Remove-Container $a -Force
        Test-Path -LiteralPath $layers[0] | Should -BeTrue
        Remove-Container $b -Force
        Test-Path -LiteralPath $layers[0] | Should -BeFalse
    }

    It 'runs init as the image''s User with the supplementary groups its own /etc/group gives, as podman does' {
        $build = @'
set -e
cd "$1"
mkdir -p u/bin u/etc u/proc u/sys u/dev u/tmp
cp /bin/busybox u/bin/busybox; for l in sh sleep cat hostname; do ln -s busybox u/bin/$l; done
printf 'root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n' > u/etc/passwd
printf 'root:x:0:\napp:x:2345:\nwheel:x:10:root,app\naudio:x:29:app\n' > u/etc/group
echo "$2" > u/etc/hostname
umoci init --layout uimg
umoci new --image uimg:1
umoci insert --image uimg:1 u /
umoci config --image uimg:1 --config.user app --config.entrypoint /bin/sleep --config.cmd 1000
'@
        $script:named = New-TestName ociu
        & bash -c $build bash $root $script:named 2>&1 | Out-String | Write-Verbose
        $LASTEXITCODE | Should -Be 0
        function GroupsOf([string[]] $status) { (($status | Where-Object { $_ -like 'Groups:*' }) -split '\s+' | Select-Object -Skip 1 | Where-Object { $_ }) -join ' ' }
        foreach ($privileged in $true, $false) {
            $name = New-TestName ociu
            New-Container $name -ImagePath (Join-Path $root 'uimg') -Privileged:$privileged -Unprivileged:(-not $privileged) | Start-Container
            GroupsOf (Invoke-ContainerCommand $name -Command cat, /proc/1/status).Output | Should -Be '10 29 2345'
            GroupsOf (Invoke-ContainerCommand $name -User app -Command cat, /proc/self/status).Output | Should -Be '10 29 2345'
            Remove-Container $name -Force
        }
    }

    It 'renames an overlay container whose /etc/hostname is the image''s: the new name goes into its own layer, never the shared one' {
        $name = $script:named
        $other = New-TestName ociu
        $new = New-TestName ociu
        New-Container $name -ImagePath (Join-Path $root 'uimg') -Backend overlay | Out-Null
        New-Container $other -ImagePath (Join-Path $root 'uimg') -Backend overlay | Out-Null
        $shared = Join-Path (Get-ContainerConfig $name).Storage.Layers[0] 'etc/hostname'
        Rename-Container $name $new
        Start-Container $new, $other | Out-Null
        (Invoke-ContainerCommand $new -Command cat, /etc/hostname).Output | Should -Be $new
        (Invoke-ContainerCommand $other -Command cat, /etc/hostname).Output | Should -Be $name
        Get-Content -LiteralPath $shared | Should -Be $name
        Remove-Container $new, $other -Force
    }

    It 'completes oci as a template name' {
        $r = TabExpansion2 -inputScript 'New-Container x -Template o' -cursorColumn 'New-Container x -Template o'.Length
        $r.CompletionMatches.CompletionText | Should -Contain 'oci'
    }
}
