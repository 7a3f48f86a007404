# The class-based DSC resource of PSContainers, shaped like HyperVDsc's VMHyperV: Ensure (Present,
# Absent), State (Running, Stopped), a few typed settings, RestartIfNeeded. A script module because
# DSC (Get-DscResource, Invoke-DscResource, DSC v3's Microsoft.DSC/PowerShell adapter) finds class
# resources only in .psm1 files; it is a nested module of PSContainers (DscResourcesToExport).
# It works through the module's cmdlets (module-qualified, so it never picks up another command of
# the same name), so errors carry the cmdlets' ids.

enum PSContainerEnsure { Present; Absent }
enum PSContainerState { Running; Stopped }

[DscResource()]
class PSContainer {
    # The container's name.
    [DscProperty(Key)] [string] $Name

    # Present: the container exists (created if missing); Absent: it does not (removed, stopped first).
    [DscProperty()] [PSContainerEnsure] $Ensure = [PSContainerEnsure]::Present

    # Running or Stopped; not set: left as it is.
    [DscProperty()] [Nullable[PSContainerState]] $State

    # The container store; not set: $env:PSCONTAINERS_PATH, else the default store.
    [DscProperty()] [string] $StorePath

    # Creation only (New-Container -Template): busybox (default) or debootstrap.
    [DscProperty()] [string] $Template

    # Creation only (New-Container -ConfigPath): the config.yaml the container is made with.
    [DscProperty()] [string] $ConfigPath

    # limits.memory in bytes (Set-CgroupLimit -MemoryMax -Persist: live on a running container).
    [DscProperty()] [Nullable[long]] $MemoryLimit

    # autostart.enabled, autostart.order, autostart.delay, autostart.groups (Set-ContainerAutostart).
    [DscProperty()] [Nullable[bool]] $Autostart
    [DscProperty()] [Nullable[int]] $AutostartOrder
    [DscProperty()] [Nullable[int]] $AutostartDelay
    [DscProperty()] [string[]] $Groups

    # A change that cannot be made to the running container (its live limit write is refused) is
    # made by stopping it, saving the change and starting it again; without this, Set fails instead.
    [DscProperty()] [bool] $RestartIfNeeded

    # Get only: the state the container is in (Running, Stopped, Frozen, ...), or Absent.
    [DscProperty(NotConfigurable)] [string] $Status

    hidden [hashtable] Store() {
        if ($this.StorePath) { return @{ StorePath = $this.StorePath } }
        return @{}
    }

    hidden [object] Find() {
        $store = $this.Store()
        return PSContainers\Get-Container -Name $this.Name @store -ErrorAction SilentlyContinue
    }

    [PSContainer] Get() {
        $c = $this.Find()
        $result = [PSContainer]::new()
        $result.Name = $this.Name
        $result.StorePath = $this.StorePath
        $result.RestartIfNeeded = $this.RestartIfNeeded
        if ($null -eq $c) {
            $result.Ensure = [PSContainerEnsure]::Absent
            $result.Status = 'Absent'
            return $result
        }
        $result.Ensure = [PSContainerEnsure]::Present
        $result.Status = [string]$c.State
        $result.State = if ("$($c.State)" -in 'Running', 'Frozen') { [PSContainerState]::Running } else { [PSContainerState]::Stopped }
        $result.Template = $c.Template
        $result.ConfigPath = $c.ConfigPath
        $result.MemoryLimit = $c.MemoryLimit
        $result.Autostart = $c.Autostart
        $result.AutostartOrder = $c.AutostartOrder
        $result.AutostartDelay = $c.AutostartDelay
        $result.Groups = @($c.Groups)
        return $result
    }

    # What differs from the desired state, one 'Property: actual -> desired' per difference.
    [string[]] Drift() {
        $actual = $this.Get()
        $drift = [System.Collections.Generic.List[string]]::new()
        if ($this.Ensure -ne $actual.Ensure) { $drift.Add("Ensure: $($actual.Ensure) -> $($this.Ensure)"); return $drift.ToArray() }
        if ($this.Ensure -eq [PSContainerEnsure]::Absent) { return $drift.ToArray() }
        if ($null -ne $this.State -and $this.State -ne $actual.State) { $drift.Add("State: $($actual.State) -> $($this.State)") }
        if ($null -ne $this.MemoryLimit -and $this.MemoryLimit -ne $actual.MemoryLimit) { $drift.Add("MemoryLimit: $($actual.MemoryLimit) -> $($this.MemoryLimit)") }
        if ($null -ne $this.Autostart -and $this.Autostart -ne $actual.Autostart) { $drift.Add("Autostart: $($actual.Autostart) -> $($this.Autostart)") }
        if ($null -ne $this.AutostartOrder -and $this.AutostartOrder -ne $actual.AutostartOrder) { $drift.Add("AutostartOrder: $($actual.AutostartOrder) -> $($this.AutostartOrder)") }
        if ($null -ne $this.AutostartDelay -and $this.AutostartDelay -ne $actual.AutostartDelay) { $drift.Add("AutostartDelay: $($actual.AutostartDelay) -> $($this.AutostartDelay)") }
        if ($null -ne $this.Groups -and (@($this.Groups) -join ',') -cne (@($actual.Groups) -join ',')) { $drift.Add("Groups: $(@($actual.Groups) -join ',') -> $(@($this.Groups) -join ',')") }
        return $drift.ToArray()
    }

    [bool] Test() {
        $drift = $this.Drift()
        foreach ($d in $drift) { Write-Verbose "PSContainer '$($this.Name)' drifted: $d" }
        return $drift.Count -eq 0
    }

    [void] Set() {
        $store = $this.Store()
        $c = $this.Find()
        if ($this.Ensure -eq [PSContainerEnsure]::Absent) {
            if ($null -ne $c) { PSContainers\Remove-Container -Name $this.Name -Force -Confirm:$false @store -ErrorAction Stop }
            return
        }
        if ($null -eq $c) {
            $new = @{}
            if ($this.Template) { $new.Template = $this.Template }
            if ($this.ConfigPath) { $new.ConfigPath = $this.ConfigPath }
            $c = PSContainers\New-Container -Name $this.Name @new @store -ErrorAction Stop
        }
        $change = @{}
        if ($null -ne $this.Autostart -and $this.Autostart -ne $c.Autostart) { $change.Enabled = [bool]$this.Autostart }
        if ($null -ne $this.AutostartOrder -and $this.AutostartOrder -ne $c.AutostartOrder) { $change.Order = [int]$this.AutostartOrder }
        if ($null -ne $this.AutostartDelay -and $this.AutostartDelay -ne $c.AutostartDelay) { $change.Delay = [int]$this.AutostartDelay }
        if ($null -ne $this.Groups -and (@($this.Groups) -join ',') -cne (@($c.Groups) -join ',')) { $change.Group = [string[]]@($this.Groups) }
        if ($change.Count -gt 0) { PSContainers\Set-ContainerAutostart -Name $this.Name @change @store -Confirm:$false -ErrorAction Stop }

        if ($null -ne $this.MemoryLimit -and $this.MemoryLimit -ne $c.MemoryLimit) {
            try {
                PSContainers\Set-CgroupLimit -Name $this.Name -MemoryMax $this.MemoryLimit -Persist @store -Confirm:$false -ErrorAction Stop
            }
            catch {
                $running = "$((PSContainers\Get-Container -Name $this.Name @store).State)" -in 'Running', 'Frozen'
                if (-not ($running -and $this.RestartIfNeeded)) { throw }
                # The running container refused the limit (say, below what it uses now): saved, applied by a restart.
                PSContainers\Stop-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop
                PSContainers\Set-CgroupLimit -Name $this.Name -MemoryMax $this.MemoryLimit -Persist @store -Confirm:$false -ErrorAction Stop
                PSContainers\Start-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop
            }
        }

        if ($null -ne $this.State) {
            $now = "$((PSContainers\Get-Container -Name $this.Name @store).State)"
            if ($this.State -eq [PSContainerState]::Running -and $now -notin 'Running', 'Frozen') {
                PSContainers\Start-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop
            }
            elseif ($this.State -eq [PSContainerState]::Stopped -and $now -in 'Running', 'Frozen') {
                PSContainers\Stop-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop
            }
        }
    }
}
