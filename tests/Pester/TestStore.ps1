<#
.SYNOPSIS
    What the Pester files that work in a private store share. Dot-source it first thing in the
    Describe's BeforeAll:  . (Join-Path $PSScriptRoot 'TestStore.ps1')

.DESCRIPTION
    Run in the caller's scope (dot-sourced), it imports the built module from out/PSContainers,
    makes $root (/tmp/psc-test-<guid>) with the store $store in it, and makes
    $PSDefaultParameterValues a copy in that scope that points the container and cgroup-limit
    cmdlets at $store: the caller's session keeps its own. New-TestName gives unique psct- names;
    Remove-TestStore (for AfterAll) removes the stores' containers, their cgroup parents and $root,
    also after failed tests. Not a *.Tests.ps1 file: the suite does not run it by itself.
#>

Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers/PSContainers.psd1') -Force
$root = Join-Path ([IO.Path]::GetTempPath()) "psc-test-$([guid]::NewGuid().ToString('N').Substring(0, 12))"
$store = Join-Path $root 'store'
$null = New-Item -ItemType Directory -Path $store -Force
$PSDefaultParameterValues = $PSDefaultParameterValues.Clone()
$PSDefaultParameterValues['*-Container*:StorePath'] = $store
$PSDefaultParameterValues['*-CgroupLimit:StorePath'] = $store

function New-TestName([string] $Hint = 'c') { "psct-$Hint-$([guid]::NewGuid().ToString('N').Substring(0, 8))" }

# $store and any -OtherStore under $root: their containers (forced), their cgroup parents, then $root.
function Remove-TestStore([string[]] $OtherStore = @()) {
    foreach ($s in @($store) + $OtherStore) {
        if (-not (Test-Path -LiteralPath $s)) { continue }
        Get-Container -StorePath $s -ErrorAction SilentlyContinue -WarningAction SilentlyContinue |
            Remove-Container -StorePath $s -Force -Confirm:$false -ErrorAction SilentlyContinue
        $parent = [PSContainers.Runtime.State.ContainerStore]::new($s).CgroupParent
        foreach ($dir in [PSContainers.Runtime.Cgroups.CgroupManager]::ForHost().Directories($parent)) {
            if (Test-Path -LiteralPath $dir) { Remove-Item -LiteralPath $dir -Force -ErrorAction SilentlyContinue }
        }
    }
    Remove-Item -LiteralPath $root -Recurse -Force -ErrorAction SilentlyContinue
}
