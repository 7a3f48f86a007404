<#
.SYNOPSIS
    Writes the ERROR IDS section of en-US/about_PSContainers.help.txt from the module's error
    catalog (src/PSContainers/Errors/ErrorCatalog.cs), replacing the section or adding it before
    SEE ALSO. Run it after 'dotnet build -c Release' whenever the catalog changes; ErrorCatalogTests
    fails while the two differ.
#>
[CmdletBinding()]
param(
    [string]$ModulePath = (Join-Path $PSScriptRoot '..' 'out' 'PSContainers'),
    [string]$AboutPath = (Join-Path $PSScriptRoot '..' 'en-US' 'about_PSContainers.help.txt')
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath -Force
$section = [PSContainers.Errors.ErrorCatalog]::AboutSection()
$text = [IO.File]::ReadAllText($AboutPath).Replace("`r`n", "`n")
$start = $text.IndexOf("`nERROR IDS`n")
if ($start -ge 0) {
    $rest = $text.Substring($start + 1)
    $end = [regex]::Match($rest, "\n\n(?=[A-Z][A-Z ]+\n)")
    if (-not $end.Success) { throw "$AboutPath`: no section follows ERROR IDS" }
    $text = $text.Substring(0, $start + 1) + $section + $rest.Substring($end.Index + 1)
} else {
    $at = $text.IndexOf("`nSEE ALSO`n")
    if ($at -lt 0) { throw "$AboutPath has no SEE ALSO section to put ERROR IDS before" }
    $text = $text.Substring(0, $at + 1) + $section + "`n" + $text.Substring($at + 1)
}
[IO.File]::WriteAllText($AboutPath, $text)
