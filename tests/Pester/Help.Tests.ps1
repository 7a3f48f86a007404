#Requires -Version 7.4
<#
.SYNOPSIS
    The help a user reads matches the cmdlets: for every exported cmdlet, the rendered
    Get-Help -Full text lists every parameter set and every parameter of Get-Command's metadata
    (types, mandatory, position, pipeline input, aliases, wildcards), each with a description.

.NOTES
    Needs only the built module in out/PSContainers (no root). The help is generated at build time
    by tools/HelpBuilder from en-US/help/*.xml and the cmdlets' metadata; this test reads it back
    the way a user does, through Get-Help in real pwsh.
#>

BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers/PSContainers.psd1') -Force
    $cmdlets = @(Get-Command -Module PSContainers -CommandType Cmdlet | Sort-Object Name | ForEach-Object { @{ Name = $_.Name } })
}

Describe 'Get-Help -Full of every cmdlet matches its metadata' -Tag 'Help' {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../../out/PSContainers/PSContainers.psd1') -Force
        $common = [System.Management.Automation.Cmdlet]::CommonParameters + [System.Management.Automation.Cmdlet]::OptionalCommonParameters |
            Where-Object { $_ -notin 'WhatIf', 'Confirm' }

        # The text Get-Help -Full renders for the SYNTAX section: one line per syntax item (wrapped lines joined).
        function Get-SyntaxLine([string] $Name) {
            $text = Get-Help -Name $Name -Full | Out-String -Width 10000
            $section = [regex]::Match($text, '(?ms)^SYNTAX\s*$(.*?)^DESCRIPTION\s*$').Groups[1].Value
            @($section -split '\r?\n' | ForEach-Object { $_.Trim() } | Where-Object { $_ })
        }

        function Get-TypeText([type] $Type) {
            $t = if ([Nullable]::GetUnderlyingType($Type)) { [Nullable]::GetUnderlyingType($Type) } else { $Type }
            if ($t.IsArray) { return $t.GetElementType().Name + '[]' }
            $t.Name
        }
    }

    It '<Name>: SYNTAX has one line per parameter set, each with exactly its parameters' -ForEach $cmdlets {
        $command = Get-Command -Name $Name
        $lines = Get-SyntaxLine $Name
        $lines.Count | Should -Be $command.ParameterSets.Count -Because "Get-Command lists $($command.ParameterSets.Count) parameter set(s) of $Name"
        $unmatched = [System.Collections.Generic.List[string]]::new([string[]] $lines)
        foreach ($set in $command.ParameterSets) {
            $expected = @($set.Parameters | Where-Object Name -notin $common | ForEach-Object Name | Sort-Object)
            # The line whose parameter names are exactly this set's.
            $match = $unmatched | Where-Object {
                $names = @([regex]::Matches($_, '(?<=[\s\[])-(\w+)') | ForEach-Object { $_.Groups[1].Value } | Sort-Object)
                ($names -join ',') -eq ($expected -join ',')
            } | Select-Object -First 1
            $match | Should -Not -BeNullOrEmpty -Because "parameter set '$($set.Name)' of $Name has -$($expected -join ', -'); SYNTAX shows:`n$($lines -join "`n")"
            $null = $unmatched.Remove($match)
            $match | Should -Match '^\S+-\S+ ' -Because 'each syntax line starts with the cmdlet name'
            $match.StartsWith($Name) | Should -BeTrue
            $match | Should -Match ([regex]::Escape('[<CommonParameters>]'))
            foreach ($p in $set.Parameters | Where-Object Name -notin $common) {
                $typeText = Get-TypeText $p.ParameterType
                $valueSet = @($p.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateSetAttribute] } | ForEach-Object ValidValues)
                $element = if ($p.ParameterType.IsArray) { $p.ParameterType.GetElementType() } else { $p.ParameterType }
                if ([Nullable]::GetUnderlyingType($element)) { $element = [Nullable]::GetUnderlyingType($element) }
                $isEnum = $element.IsEnum
                $pattern = if ($p.ParameterType -eq [switch]) { "-$($p.Name)\]?" }
                    elseif ($valueSet.Count -or $isEnum) { "-$($p.Name)\]? \{" }
                    else { "-$($p.Name)\]? <$([regex]::Escape($typeText))>" }
                if ($p.Position -ge 0) { $pattern = "\[?-$($p.Name)\]" + $pattern.Substring($p.Name.Length + 1) }
                $match | Should -Match $pattern -Because "-$($p.Name) of set '$($set.Name)' is $typeText$(if ($p.Position -ge 0) { ", position $($p.Position)" })"
                # Optional: [-X <T>], [-X {a | b}], [-X] (a switch), [[-X] <T>] (positional); mandatory: -X <T>, [-X] <T>.
                $n = $p.Name
                $optional = $match -match "\[\[-$n\]|\[-$n <[^>]*>\]|\[-$n \{[^}]*\}\]|\[-$n\](?! [<{])"
                $optional | Should -Be (-not $p.IsMandatory) -Because "-$($p.Name) is $(if ($p.IsMandatory) { 'mandatory' } else { 'optional' }) in set '$($set.Name)'"
            }
        }
    }

    It '<Name>: PARAMETERS describes every parameter with the metadata''s facts' -ForEach $cmdlets {
        $command = Get-Command -Name $Name
        $help = Get-Help -Name $Name -Full
        $described = @($help.parameters.parameter)
        $own = @($command.Parameters.Values | Where-Object Name -notin $common)
        @($described.name | Sort-Object) | Should -Be @($own.Name | Sort-Object)
        foreach ($p in $own) {
            $entry = $described | Where-Object name -eq $p.Name
            ($entry.description | Out-String).Trim() | Should -Not -BeNullOrEmpty -Because "-$($p.Name) of $Name needs a description"
            $sets = @($command.ParameterSets | ForEach-Object { $_.Parameters | Where-Object Name -eq $p.Name })
            $mandatory = @($sets.IsMandatory | Sort-Object -Unique)
            if ($mandatory.Count -eq 1) { $entry.required | Should -Be "$($mandatory[0])".ToLowerInvariant() -Because "-$($p.Name) of $Name" }
            $byValue = [bool]($sets | Where-Object ValueFromPipeline)
            $byName = [bool]($sets | Where-Object ValueFromPipelineByPropertyName)
            if ($byValue) { $entry.pipelineInput | Should -Match 'ByValue' -Because "-$($p.Name) of $Name takes pipeline input by value" }
            if ($byName) { $entry.pipelineInput | Should -Match 'ByPropertyName' -Because "-$($p.Name) of $Name takes pipeline input by property name" }
            if (-not ($byValue -or $byName)) { $entry.pipelineInput | Should -Be 'False' }
            $aliases = @($p.Aliases)
            if ($aliases.Count) { foreach ($a in $aliases) { $entry.aliases | Should -Match "\b$a\b" } } else { $entry.aliases | Should -Be 'none' }
            $property = $command.ImplementingType.GetProperty($p.Name)
            $wild = $null -ne $property -and [bool]$property.GetCustomAttributes([System.Management.Automation.SupportsWildcardsAttribute], $true)
            $entry.globbing | Should -Be "$wild".ToLowerInvariant() -Because "-$($p.Name) of $Name $(if ($wild) { 'takes' } else { 'takes no' }) wildcards"
        }
    }

    It '<Name>: has a synopsis, a description and an example' -ForEach $cmdlets {
        $help = Get-Help -Name $Name -Full
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match "^$Name\b" -Because 'a synopsis made up from the syntax means the help file was not found'
        ($help.description | Out-String).Trim() | Should -Not -BeNullOrEmpty
        @($help.examples.example).Count | Should -BeGreaterThan 0
    }
}

Describe 'Help that was found wanting before' -Tag 'Help' {
    It 'shows the syntax of the cgroup, namespace and host-check cmdlets' {
        foreach ($name in 'Set-CgroupLimit', 'Get-CgroupLimit', 'Measure-Container', 'Get-Cgroup', 'New-Cgroup', 'Remove-Cgroup',
            'Suspend-Cgroup', 'Resume-Cgroup', 'Add-CgroupProcess', 'Get-ProcessNamespace', 'Test-ContainerHost',
            'Add-SubordinateIdRange', 'Get-SubordinateIdRange', 'Remove-SubordinateIdRange') {
            $text = Get-Help -Name $name -Full | Out-String -Width 10000
            $text | Should -Match "(?m)^SYNTAX\s*\r?\n\s+$name " -Because "$name needs a SYNTAX section"
        }
    }

    It 'lists -Backend, -Network and -Unprivileged in New-Container''s syntax' {
        $text = Get-Help -Name New-Container -Full | Out-String -Width 10000
        $syntax = [regex]::Match($text, '(?ms)^SYNTAX\s*$(.*?)^DESCRIPTION\s*$').Groups[1].Value
        $syntax | Should -Match '-Backend \{'
        $syntax | Should -Match '-Network <'
        $syntax | Should -Match '\[-Unprivileged\]'
    }
}

Describe 'The build refuses help that drifts from the cmdlets' -Tag 'Help' {
    BeforeAll {
        $repo = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
        $builder = Join-Path $repo 'tools/HelpBuilder/bin/Release/net10.0/psc-helpbuilder.dll'
        $work = Join-Path ([IO.Path]::GetTempPath()) "psc-test-help-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $null = New-Item -ItemType Directory -Path $work
        Copy-Item -Path (Join-Path $repo 'en-US/help') -Destination (Join-Path $work 'prose') -Recurse

        # Runs the build step on the prose in $work/prose; returns its exit code and what it wrote.
        function Invoke-HelpBuilder {
            $output = & dotnet $builder --module (Join-Path $repo 'out/PSContainers') --prose (Join-Path $work 'prose') --output (Join-Path $work 'out.xml') 2>&1
            [pscustomobject]@{ ExitCode = $LASTEXITCODE; Text = ($output | Out-String) }
        }
    }

    AfterAll {
        Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
    }

    It 'builds the help from the prose as written' {
        $r = Invoke-HelpBuilder
        $r.ExitCode | Should -Be 0 -Because $r.Text
        $r.Text | Should -Match '\d+ cmdlets ->'
    }

    It 'fails on a parameter without a description and on a description of a parameter that does not exist' {
        $file = Join-Path $work 'prose/Cgroups.xml'
        [xml] $doc = Get-Content -LiteralPath $file -Raw
        $ns = [System.Xml.XmlNamespaceManager]::new($doc.NameTable)
        $ns.AddNamespace('command', 'http://schemas.microsoft.com/maml/dev/command/2004/10')
        $ns.AddNamespace('maml', 'http://schemas.microsoft.com/maml/2004/10')
        $command = $doc.SelectSingleNode("//command:command[command:details/command:name='Set-CgroupLimit']", $ns)
        # -PidsMax loses its description (everywhere it is written) ...
        foreach ($p in @($command.SelectNodes(".//command:parameter[maml:name='PidsMax']", $ns))) { $null = $p.ParentNode.RemoveChild($p) }
        # ... and a description for a parameter that was renamed away appears.
        $stale = $command.SelectSingleNode('command:parameters/command:parameter', $ns).CloneNode($true)
        $stale.SelectSingleNode('maml:name', $ns).InnerText = 'MaxProcesses'
        $null = $command.SelectSingleNode('command:parameters', $ns).AppendChild($stale)
        $doc.Save($file)

        $r = Invoke-HelpBuilder
        $r.ExitCode | Should -Be 1
        $r.Text | Should -Match 'Set-CgroupLimit -PidsMax has no description'
        $r.Text | Should -Match 'Set-CgroupLimit describes -MaxProcesses, which the cmdlet does not have'
        Test-Path -LiteralPath (Join-Path $work 'out.xml.tmp-*') | Should -BeFalse
    }
}
