#Requires -Version 7.4
<#
.SYNOPSIS
    The module as a package: PowerShell's own PSResourceGet publishes out/PSContainers to a local
    repository (a folder, as the PowerShell Gallery would take it), installs it by name and the
    installed copy runs a container.

.NOTES
    Needs Linux, root (the container) and the built module in out/PSContainers. Nothing of the
    machine's PowerShell set-up is touched: the publishing and installing pwsh runs with HOME set to
    a temporary folder, so the repository registration (~/.local/share/PSResourceGet) and the
    CurrentUser module folder (~/.local/share/powershell/Modules) are inside it; AfterAll removes it.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0')
}

Describe 'PSContainers as a PSResourceGet package' -Tag 'Package', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        $module = (Resolve-Path (Join-Path $PSScriptRoot '../../out/PSContainers')).Path
        Import-Module (Join-Path $module 'PSContainers.psd1') -Force
        $version = (Import-PowerShellDataFile (Join-Path $module 'PSContainers.psd1')).ModuleVersion
        $root = Join-Path ([IO.Path]::GetTempPath()) "psc-test-pkg-$([guid]::NewGuid().ToString('N').Substring(0, 12))"
        $null = New-Item -ItemType Directory -Path (Join-Path $root 'home'), (Join-Path $root 'repo'), (Join-Path $root 'store')
        $pwsh = (Get-Command -Name pwsh -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source

        # Runs a script in a new pwsh whose home (and so every per-user PowerShell folder) is $root/home.
        # Returns its output lines; throws with its error output when it fails.
        function Invoke-IsolatedPwsh([string] $Script) {
            $psi = [System.Diagnostics.ProcessStartInfo]::new($pwsh)
            foreach ($a in '-NoProfile', '-NonInteractive', '-Command', "`$ErrorActionPreference = 'Stop'; $Script") { $psi.ArgumentList.Add($a) }
            $psi.Environment['HOME'] = Join-Path $root 'home'
            # Anything a tool writes relative to where it runs (NuGet's config) lands in the temporary folder too.
            $psi.WorkingDirectory = $root
            foreach ($v in 'XDG_DATA_HOME', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'PSModulePath') { $null = $psi.Environment.Remove($v) }
            $psi.Environment['PSCONTAINERS_PATH'] = Join-Path $root 'store'
            $psi.RedirectStandardOutput = $true
            $psi.RedirectStandardError = $true
            $p = [System.Diagnostics.Process]::Start($psi)
            $errTask = $p.StandardError.ReadToEndAsync()
            $out = $p.StandardOutput.ReadToEnd()
            $p.WaitForExit()
            if ($p.ExitCode -ne 0) { throw "pwsh exited with $($p.ExitCode): $($errTask.Result)$out" }
            @($out -split '\r?\n' | Where-Object { $_ })
        }
    }

    AfterAll {
        if ($root -and (Test-Path -LiteralPath $root)) {
            Get-Container -StorePath (Join-Path $root 'store') -ErrorAction SilentlyContinue |
                Remove-Container -Force -Confirm:$false -ErrorAction SilentlyContinue
            Remove-Item -LiteralPath $root -Recurse -Force -ErrorAction SilentlyContinue
        }
    }

    It 'publishes to a local repository, installs by name, and the installed module runs a container' {
        $repo = Join-Path $root 'repo'
        $lines = Invoke-IsolatedPwsh @"
Register-PSResourceRepository -Name psc-local -Uri '$repo' -Trusted
Publish-PSResource -Path '$module' -Repository psc-local
Install-PSResource -Name PSContainers -Repository psc-local -Scope CurrentUser -TrustRepository
`$m = Import-Module PSContainers -PassThru
"base=`$(`$m.ModuleBase)"
"version=`$(`$m.Version)"
"cmdlets=`$(@(Get-Command -Module PSContainers).Count)"
"helper=`$((Get-Item (Join-Path `$m.ModuleBase 'psc-helper')).UnixMode)"
"synopsis=`$((Get-Help New-Container).Synopsis)"
`$c = New-Container -Name pkg1 | Start-Container -PassThru
"state=`$(`$c.State)"
"hostname=`$((Invoke-ContainerCommand -Name pkg1 -Command hostname).Output)"
Remove-Container -Name pkg1 -Force -Confirm:`$false
"left=`$(@(Get-Container).Count)"
"@
        $facts = @{}
        foreach ($line in $lines) { if ($line -match '^(\w+)=(.*)$') { $facts[$Matches[1]] = $Matches[2] } }

        Test-Path -LiteralPath (Join-Path $repo "PSContainers.$version.nupkg") | Should -BeTrue
        $facts.base | Should -Be (Join-Path $root "home/.local/share/powershell/Modules/PSContainers/$version")
        $facts.version | Should -Be $version
        $facts.cmdlets | Should -Be (@(Get-Command -Module PSContainers).Count)
        # A .nupkg keeps no Unix modes: the module gives its helper back its execute bits on import.
        $facts.helper | Should -Be '-rwxr-xr-x'
        $facts.synopsis | Should -Not -BeNullOrEmpty
        $facts.synopsis | Should -Not -Match '^New-Container'
        $facts.state | Should -Be 'Running'
        $facts.hostname | Should -Be 'pkg1'
        $facts.left | Should -Be '0'
    }

    It 'left the machine''s own PowerShell set-up alone' {
        # The registration lives in the temporary home only.
        Test-Path -LiteralPath (Join-Path $root 'home/.local/share/PSResourceGet/PSResourceRepository.xml') | Should -BeTrue
        # Read, not asked through Get-PSResourceRepository: that would create the file with its defaults.
        $real = Join-Path ([Environment]::GetFolderPath('UserProfile')) '.local/share/PSResourceGet/PSResourceRepository.xml'
        if (Test-Path -LiteralPath $real) { Get-Content -LiteralPath $real -Raw | Should -Not -Match 'psc-local' }
        Test-Path -LiteralPath (Join-Path ([Environment]::GetFolderPath('UserProfile')) ".local/share/powershell/Modules/PSContainers/$version") | Should -BeFalse
    }
}
