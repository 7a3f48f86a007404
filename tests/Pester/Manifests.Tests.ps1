#Requires -Version 7.4
<#
.SYNOPSIS
    Declarative manifests in real pwsh: every manifest in examples/ applied in a throwaway store
    (with its plan, a no-op second apply, and its removal), and the runbook story: apply, re-apply
    (the writes counted), change by hand and re-apply, -WhatIf, -Prune, a failure that stays local.

.NOTES
    Needs Linux, root, a static busybox and the built module in out/PSContainers. The examples'
    names (pscex-...) are rewritten to unique psct-... names, so their containers, namespace and
    bridge are this run's own; everything is removed in AfterAll, also after a failure.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
    $examples = @(Get-ChildItem (Join-Path $PSScriptRoot '../../examples') -Filter *.yaml | ForEach-Object { @{ File = $_.FullName; Name = $_.Name } })
}

Describe 'Container manifests' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestStore.ps1')
        $script:namespaces = [Collections.Generic.List[string]]::new()
        # A unique prefix of the same length as pscex-, so the example's bridge name still fits in 15 bytes.
        function script:Copy-Example([string] $file) {
            $prefix = "psct-$([guid]::NewGuid().ToString('N').Substring(0, 6))-"
            $text = (Get-Content -Raw $file).Replace('pscex-', $prefix) -replace '(?m)^id: .*$', "id: psc-test-$prefix"
            $copy = Join-Path $root ($prefix + (Split-Path -Leaf $file))
            Set-Content -LiteralPath $copy -Value $text
            foreach ($m in [regex]::Matches($text, "(?m)^  ($prefix[a-z0-9-]+):")) {
                if ($text -match "(?m)^namespaces:(\r?\n  .*)*\r?\n  $([regex]::Escape($m.Groups[1].Value)):") { $script:namespaces.Add($m.Groups[1].Value) }
            }
            $copy
        }
        # -WhatIf writes its lines to the host (not to a stream): a transcript catches them.
        function script:Get-WhatIf([string] $manifest) {
            $t = Join-Path $root "whatif-$([guid]::NewGuid().ToString('N')).txt"
            $null = Start-Transcript -LiteralPath $t
            try { Invoke-ContainerManifest $manifest -WhatIf } finally { $null = Stop-Transcript }
            @(Get-Content -LiteralPath $t | Where-Object { $_ -like 'What if: *' })
        }
        function script:Get-Footprint([string] $name) {
            $config = Join-Path $store $name 'config.yaml'
            [pscustomobject]@{
                ConfigTime = (Get-Item -LiteralPath $config).LastWriteTimeUtc
                ConfigInode = (& stat -c %i $config)
                StateTime = (Get-Item -LiteralPath (Join-Path $store $name 'state.json')).LastWriteTimeUtc
                StartedAt = (Get-Container $name).StartedAt
            } | ConvertTo-Json -Compress
        }
    }

    AfterAll {
        Remove-TestStore
        foreach ($ns in $script:namespaces) { & ip netns del $ns 2>$null }
    }

    Context 'every example in examples/' {
        It '<Name>: the plan changes nothing, an apply converges, a second apply is a no-op' -ForEach $examples {
            $manifest = Copy-Example $File
            $plan = @(Test-ContainerManifest $manifest)
            $plan.Count | Should -BeGreaterThan 0
            $whatIf = Get-WhatIf $manifest
            $whatIf | Should -Be @($plan | ForEach-Object { "What if: $($_.Order). $($_.Step)" })
            @(Get-Container).Count | Should -Be 0
            $results = @(Invoke-ContainerManifest $manifest)
            $results | Where-Object { -not $_.Converged } | ForEach-Object { "$($_.Resource): $($_.Reason)" } | Should -BeNullOrEmpty
            $results.Count | Should -Be ($plan.Resource | Sort-Object -Unique).Count
            @(Test-ContainerManifest $manifest) | Should -BeNullOrEmpty
            $again = @(Invoke-ContainerManifest $manifest)
            $again.Outcome | Sort-Object -Unique | Should -Be 'Unchanged'
            Get-Container | Remove-Container -Force
        }
    }

    Context 'a runbook story' {
        BeforeAll {
            $script:db = New-TestName 'db'; $script:web = New-TestName 'web'; $script:side = New-TestName 'side'
            $script:id = "psc-test-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
            function script:Write-Manifest([string] $webCommand = 'exec sleep 1000', [switch] $WithoutSide, [string] $dbProbe = 'test -e /tmp/ready') {
                $side = if ($WithoutSide) { '' } else { @"
  ${script:side}:
    template: busybox
    state: Stopped
    init: { command: [/bin/sh, -c, "exec sleep 1000"] }
"@ }
                $path = Join-Path $root 'site.yaml'
                Set-Content -LiteralPath $path -Value @"
id: $script:id
containers:
  ${script:db}:
    template: busybox
    init: { command: [/bin/sh, -c, "touch /tmp/ready; exec sleep 1000"] }
    stop: { signal: SIGKILL }
    limits: { memory: 64M }
    readiness: { command: [/bin/sh, -c, "$dbProbe"], timeout: 3s, interval: 100ms }
  ${script:web}:
    template: busybox
    dependsOn: [$script:db]
    init: { command: [/bin/sh, -c, "$webCommand"] }
    stop: { signal: SIGKILL }
    limits: { memory: 32M, pids: 50 }
$side
"@
                $path
            }
        }

        It 'applies from nothing, in dependency order' {
            $m = Write-Manifest
            (Get-WhatIf $m)[1] | Should -Be "What if: 2. start container $db and wait for its readiness probe"
            @(Get-Container).Count | Should -Be 0
            $r = Invoke-ContainerManifest $m
            ($r | Where-Object Name -eq $db).Changes | Should -Contain "start container $db"
            ($r | Where-Object Name -eq $web).Outcome | Should -Be 'Changed'
            (Get-Container $web).StartedAt | Should -BeGreaterThan (Get-Container $db).StartedAt
            (Get-Container $side).State | Should -Be 'Stopped'
            (Get-CgroupLimit $web).PidsMax | Should -Be 50
        }

        It 're-applies an unchanged manifest without writing anything' {
            $m = Write-Manifest
            $before = @($db, $web, $side | ForEach-Object { Get-Footprint $_ })
            $elapsed = Measure-Command { $script:r = @(Invoke-ContainerManifest $m -Verbose 4>&1) }
            $verbose = $script:r | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
            $results = $script:r | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }
            $results.Outcome | Sort-Object -Unique | Should -Be 'Unchanged'
            "$verbose" | Should -Match 'nothing changed'
            @($db, $web, $side | ForEach-Object { Get-Footprint $_ }) | Should -Be $before
            $elapsed.TotalSeconds | Should -BeLessThan 5
        }

        It 'finds what was changed by hand and converges it, restarting only with -AllowRestart' {
            Set-CgroupLimit $db -MemoryMax 100MB
            $m = Write-Manifest -webCommand 'exec sleep 2000'
            $drift = @(Test-ContainerManifest $m)
            $live = $drift | Where-Object { $_.Name -eq $db }
            $live.Property | Should -Be 'limits.memory'
            $live.Live | Should -BeTrue
            ($drift | Where-Object { $_.Name -eq $web -and $_.Property -eq 'init.command' }).RequiresRestart | Should -BeTrue

            $started = (Get-Container $web).StartedAt
            $r = Invoke-ContainerManifest $m -ErrorAction Stop
            ($r | Where-Object Name -eq $db).Outcome | Should -Be 'Changed'
            (Get-CgroupLimit $db).MemoryMax | Should -Be 64MB
            ($r | Where-Object Name -eq $web).Outcome | Should -Be 'NotApplied'
            (Get-Container $web).StartedAt | Should -Be $started

            $r = Invoke-ContainerManifest $m -AllowRestart
            ($r | Where-Object Name -eq $web).Outcome | Should -Be 'Changed'
            (Get-Container $web).Command | Should -Be @('/bin/sh', '-c', 'exec sleep 2000')
            (Get-Container $web).StartedAt | Should -Not -Be $started
            @(Test-ContainerManifest $m) | Should -BeNullOrEmpty
            Test-ContainerManifest $m -Quiet | Should -BeTrue
        }

        It '-WhatIf prints the plan in order and changes nothing' {
            Stop-Container $web -Kill
            $m = Write-Manifest -webCommand 'exec sleep 3000'
            $before = Get-Footprint $web
            Get-WhatIf $m | Should -Be @(
                "What if: 1. set init.command [/bin/sh, -c, exec sleep 3000] on $web (config.yaml; the next start uses it)",
                "What if: 2. start container $web")
            Get-Footprint $web | Should -Be $before
            (Get-Container $web).State | Should -Be 'Stopped'
        }

        It '-Prune removes the dropped containers this manifest made, and nothing else' {
            $hand = New-TestName 'hand'
            New-Container $hand -Template busybox | Out-Null
            $m = Write-Manifest -WithoutSide
            (Test-ContainerManifest $m -Prune | Where-Object Action -eq Remove).Name | Should -Be $side
            $r = Invoke-ContainerManifest $m -Prune
            ($r | Where-Object Name -eq $side).Changes | Should -Be "remove container $side (dropped from the manifest)"
            Get-Container $side -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            (Get-Container $hand).Name | Should -Be $hand
            Remove-Container $hand
        }

        It 'a failing readiness probe fails its container, skips its dependents and nothing else' {
            Get-Container | Remove-Container -Force
            $m = Write-Manifest -dbProbe 'exit 3'
            $r = Invoke-ContainerManifest $m -ErrorVariable errs -ErrorAction SilentlyContinue
            ($r | Where-Object Name -eq $db).Outcome | Should -Be 'Failed'
            ($r | Where-Object Name -eq $web).Outcome | Should -Be 'Skipped'
            ($r | Where-Object Name -eq $web).Reason | Should -Be "depends on container/$db, which failed"
            ($r | Where-Object Name -eq $side).Outcome | Should -Be 'Changed'
            $errs[0].FullyQualifiedErrorId | Should -BeLike 'ManifestReadinessFailed*'
            Get-Container $web -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        }

        It 'refuses a manifest error with file:line:column, and a cycle by name' {
            $bad = Join-Path $root 'bad.yaml'
            Set-Content $bad "containers:`n  a:`n    limits: { memroy: 1G }"
            { Test-ContainerManifest $bad } | Should -Throw "*bad.yaml:3:15: unknown key 'memroy' under 'limits'*"
            Set-Content $bad "containers:`n  a: { dependsOn: [b] }`n  b: { dependsOn: [a] }"
            { Invoke-ContainerManifest $bad } | Should -Throw '*dependency cycle: container/a -> container/b -> container/a*'
        }

        It 'runs as a job' {
            $m = Write-Manifest
            $job = Invoke-ContainerManifest $m -AsJob
            $job.PSJobTypeName | Should -Be 'PSContainersJob'
            $r = Receive-Job $job -Wait -AutoRemoveJob -ErrorAction SilentlyContinue
            ($r | Where-Object Name -eq $db).Outcome | Should -Be 'Unchanged' -Because 'db runs (its probe passes now, before web starts)'
            ($r | Where-Object Name -eq $web).Outcome | Should -Be 'Changed'
            (Get-Container $web).State | Should -Be 'Running'
        }
    }
}
