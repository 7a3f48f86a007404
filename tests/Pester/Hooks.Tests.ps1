#Requires -Version 7.4
<#
.SYNOPSIS
    Pester 5 story of LXC's hooks (config.yaml hooks:, issue 18): a container whose pre-start, stop
    and post-stop hooks log what LXC would tell them, set with Set-ContainerConfig; a failing
    pre-start hook fails Start-Container with HookFailed and leaves the container stopped; a
    checkpointed and restored container runs pre-start before the restore and stop, post-stop at its
    end, as lxc-checkpoint -r does (when CRIU is installed); an
    exported container's hooks are removed on Import-Container with a warning.

.NOTES
    Needs Linux, root, a static busybox and the built module in out/PSContainers. Everything lives
    under /tmp/psc-test-<guid> (a store and hook scripts of its own), removed in AfterAll. The xunit
    tests (LxcHookTests) go further: every point, its order, namespace references, timeouts, net hooks.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
    $hasCriu = [bool](Get-Command criu -ErrorAction SilentlyContinue)
}

Describe 'LXC''s hooks (lxc.hook.pre-start, stop, post-stop)' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers') -Force
        $script:root = Join-Path ([IO.Path]::GetTempPath()) "psc-test-$([guid]::NewGuid().ToString('N').Substring(0, 12))"
        $script:store = Join-Path $script:root 'store'
        New-Item -ItemType Directory -Path $script:store -Force | Out-Null
        $env:PSCONTAINERS_PATH = $script:store
        $script:name = "psct-hooks-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $script:log = Join-Path $script:root 'log'
        $script:record = Join-Path $script:root 'record'
        Set-Content -Path $script:record -Value "#!/bin/sh`necho `"`$LXC_HOOK_TYPE `$LXC_NAME `$*`" >> $($script:log)`n"
        chmod 755 $script:record
        $script:fail = Join-Path $script:root 'fail'
        Set-Content -Path $script:fail -Value "#!/bin/sh`necho no-lease-left >&2`nexit 7`n"
        chmod 755 $script:fail
    }

    AfterAll {
        Get-Container -Name 'psct-hooks-*' -ErrorAction SilentlyContinue | Remove-Container -Force -ErrorAction SilentlyContinue
        $env:PSCONTAINERS_PATH = $null
        Remove-Item -Recurse -Force $script:root -ErrorAction SilentlyContinue
    }

    It 'runs pre-start before the start, stop and post-stop after it, with LXC''s arguments' {
        New-Container -Name $script:name -Template busybox -Command /bin/sleep, 600 | Out-Null
        Set-ContainerConfig -Name $script:name -Key hooks.preStart -Value @(, @($script:record, 'first'))
        Set-ContainerConfig -Name $script:name -Key hooks.stop -Value @($script:record)
        Set-ContainerConfig -Name $script:name -Key hooks.postStop -Value @($script:record)
        Start-Container -Name $script:name
        Get-Content $script:log | Should -Be @("pre-start $($script:name) first $($script:name) lxc pre-start")
        Stop-Container -Name $script:name -Kill
        $lines = Get-Content $script:log
        $lines.Count | Should -Be 3
        $lines[1] | Should -Match "^stop $($script:name) $($script:name) lxc stop .*net:/proc/\d+/fd/\d+"
        $lines[2] | Should -Be "post-stop $($script:name) $($script:name) lxc post-stop"
    }

    It 'runs pre-start before a restore, and stop and post-stop at the restored run''s end (lxc-checkpoint -r)' -Skip:(-not $hasCriu) {
        Set-Content -Path $script:log -Value $null
        Start-Container -Name $script:name
        $images = Join-Path $script:root 'checkpoint'
        Checkpoint-Container -Name $script:name -Path $images -ErrorAction Stop | Out-Null
        # The dump ended the run: its stop and post-stop ran.
        (Get-Content $script:log | ForEach-Object { ($_ -split ' ')[0] }) | Should -Be @('pre-start', 'stop', 'post-stop')
        Restore-Container -Path $images -ErrorAction Stop
        (Get-Container -Name $script:name).State | Should -Be 'Running'
        (Get-Content $script:log)[3] | Should -Be "pre-start $($script:name) first $($script:name) lxc pre-start"
        Stop-Container -Name $script:name -Kill
        $lines = Get-Content $script:log
        $lines.Count | Should -Be 6
        $lines[4] | Should -Match "^stop $($script:name) $($script:name) lxc stop .*net:/proc/\d+/fd/\d+"
        $lines[5] | Should -Be "post-stop $($script:name) $($script:name) lxc post-stop"
    }

    It 'fails the start with HookFailed when pre-start fails, and leaves it stopped' {
        Set-ContainerConfig -Name $script:name -Key hooks.preStart -Value @($script:fail)
        $err = $null
        Start-Container -Name $script:name -ErrorVariable err -ErrorAction SilentlyContinue
        $err | Should -Not -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'HookFailed*'
        "$($err[0])" | Should -Match 'preStart hook .*fail failed with exit code 7.*no-lease-left'
        (Get-Container -Name $script:name).State | Should -Be 'Stopped'
    }

    It 'removes the hooks of an imported archive, with a warning naming each' {
        $archive = Join-Path $script:root 'hooked.tar'
        Export-Container -Name $script:name -Path $archive
        $warnings = $null
        $imported = Import-Container -Path $archive -Name "$($script:name)i" -WarningVariable warnings -WarningAction SilentlyContinue
        ($warnings | Where-Object { "$_" -like 'Removed hooks.preStart`[0`]*' }) | Should -Not -BeNullOrEmpty
        ($warnings | Where-Object { "$_" -like 'Removed hooks.stop`[0`]*' }) | Should -Not -BeNullOrEmpty
        (Get-Content (Join-Path $script:store "$($imported.Name)/config.yaml") -Raw) | Should -Not -Match 'hooks'
        Start-Container -Name $imported.Name
        (Get-Container -Name $imported.Name).State | Should -Be 'Running'
        Stop-Container -Name $imported.Name -Kill
    }
}
