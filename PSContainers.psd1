@{
    # The root module is the script module holding the class-based DSC resource PSContainer; the
    # cmdlets come from the nested binary module and are exported through CmdletsToExport. DSC v3's
    # PowerShell adapter needs this shape: it parses the RootModule .psm1 for [DscResource()] classes,
    # names the resource after that file (PSContainers/PSContainer) and loads it with
    # Import-Module PSContainers; a class in a nested .psm1 beside a binary root is not found.
    RootModule           = 'PSContainers.psm1'
    NestedModules        = @('PSContainers.dll')
    DscResourcesToExport = @('PSContainer')
    ModuleVersion        = '0.1.0'
    GUID                 = '5b0c7f3e-3a57-4c1e-9d55-6a3f2d8e4c11'
    Author               = 'PSContainers contributors'
    Description          = 'Linux containers from PowerShell: namespaces, cgroups, rootfs templates and a tiny per-container supervisor, as cmdlets that emit typed objects.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('Formats/Containers.Format.ps1xml', 'Formats/Cgroups.Format.ps1xml', 'Formats/Network.Format.ps1xml', 'Formats/Storage.Format.ps1xml', 'Formats/IdMapping.Format.ps1xml', 'Formats/Checkpoint.Format.ps1xml', 'Formats/Migration.Format.ps1xml', 'Formats/Autostart.Format.ps1xml', 'Formats/Operate.Format.ps1xml', 'Formats/Manifests.Format.ps1xml')
    CmdletsToExport      = @(
        'New-Container', 'Get-Container', 'Start-Container', 'Stop-Container', 'Restart-Container',
        'Remove-Container', 'Wait-Container', 'Suspend-Container', 'Resume-Container',
        'Invoke-ContainerCommand', 'Enter-Container', 'Get-ContainerConsoleLog', 'Get-ContainerEvent', 'Register-ContainerEvent',
        'Set-CgroupLimit', 'Get-CgroupLimit', 'Measure-Container', 'New-Cgroup', 'Get-Cgroup', 'Add-CgroupProcess',
        'Remove-Cgroup', 'Suspend-Cgroup', 'Resume-Cgroup', 'Get-ProcessNamespace',
        'New-NetNamespace', 'Get-NetNamespace', 'Remove-NetNamespace', 'Invoke-NetNamespaceCommand',
        'New-VethPair', 'New-NetworkBridge', 'New-MacvlanLink', 'New-VlanLink', 'New-IpvlanLink',
        'Get-NetworkLink', 'Set-NetworkLink', 'Remove-NetworkLink',
        'Add-NetworkAddress', 'Get-NetworkAddress', 'Remove-NetworkAddress',
        'Add-NetworkRoute', 'Get-NetworkRoute', 'Remove-NetworkRoute', 'Get-NetworkNeighbor',
        'Copy-Container', 'New-ContainerSnapshot', 'Get-ContainerSnapshot', 'Restore-ContainerSnapshot',
        'Remove-ContainerSnapshot', 'Get-ContainerDiff', 'Export-Container', 'Import-Container',
        'Get-SubordinateIdRange', 'Add-SubordinateIdRange', 'Remove-SubordinateIdRange', 'Test-ContainerHost', 'Install-ContainerUserNic',
        'Checkpoint-Container', 'Restore-Container', 'Save-Container', 'Get-ContainerCheckpoint', 'Move-Container',
        'Set-ContainerAutostart', 'Start-ContainerAutostart', 'Stop-ContainerAutostart',
        'Install-ContainerAutostartService', 'Uninstall-ContainerAutostartService',
        'Copy-ContainerItem', 'Get-ContainerConfig', 'Set-ContainerConfig', 'Rename-Container',
        'Add-ContainerDevice', 'Remove-ContainerDevice', 'Add-ContainerNetworkInterface', 'Remove-ContainerNetworkInterface',
        'Test-ContainerManifest', 'Invoke-ContainerManifest'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags = @('Linux', 'Containers', 'LXC', 'Namespaces', 'cgroups')
        }
    }
}
