# The class-based DSC resource of PSContainers, shaped like HyperVDsc's VMHyperV: Ensure (Present,
# Absent), State (Running, Paused, Stopped), limits (memory, CPUs, pids: VMHyperV's memory and
# processor settings), NICs (NetworkBridges: VMHyperV's SwitchName), autostart, RestartIfNeeded, and
# read-only Status and IPv4Addresses (VMHyperV's NetworkAdapters). A script module because
# DSC (Get-DscResource, Invoke-DscResource, DSC v3's Microsoft.DSC/PowerShell adapter) finds class
# resources only in .psm1 files; it is the root module of PSContainers (the cmdlets come from the
# nested PSContainers.dll) and the manifest lists the class in DscResourcesToExport.
# It works through the module's cmdlets (module-qualified, so it never picks up another command of
# the same name), so errors carry the cmdlets' ids.

enum PSContainerEnsure { Present; Absent }
# VMHyperV's Running, Paused, Off: Paused is a frozen container (Suspend-Container).
enum PSContainerState { Running; Paused; Stopped }

[DscResource()]
class PSContainer {
    # The container's name.
    [DscProperty(Key)] [string] $Name

    # Present: the container exists (created if missing); Absent: it does not (removed, stopped first).
    [DscProperty()] [PSContainerEnsure] $Ensure = [PSContainerEnsure]::Present

    # Running, Paused (frozen) or Stopped; not set: left as it is.
    [DscProperty()] [Nullable[PSContainerState]] $State

    # The container store; not set: $env:PSCONTAINERS_PATH, else the default store.
    [DscProperty()] [string] $StorePath

    # Creation only (New-Container -Template): busybox (default) or debootstrap.
    [DscProperty()] [string] $Template

    # Creation only (New-Container -ConfigPath): the config.yaml the container is made with.
    [DscProperty()] [string] $ConfigPath

    # limits.memory in bytes (Set-CgroupLimit -MemoryMax -Persist: live on a running container).
    [DscProperty()] [Nullable[long]] $MemoryLimit

    # limits.cpus, in CPUs (1.5 = one and a half), and limits.pids (Set-ContainerConfig: live on a running container).
    [DscProperty()] [Nullable[double]] $CpuLimit
    [DscProperty()] [Nullable[long]] $PidsLimit

    # The bridges the container's veth NICs are attached to, one NIC per bridge, in order (VMHyperV's
    # SwitchName); @() for none. NICs of other kinds are left as they are. A running container takes
    # the change at its next start: Set restarts it only with RestartIfNeeded.
    [DscProperty()] [string[]] $NetworkBridges

    # autostart.enabled, autostart.order, autostart.delay, autostart.groups (Set-ContainerAutostart).
    [DscProperty()] [Nullable[bool]] $Autostart
    [DscProperty()] [Nullable[int]] $AutostartOrder
    [DscProperty()] [Nullable[int]] $AutostartDelay
    [DscProperty()] [string[]] $Groups

    # A change that the running container cannot take (a NIC change, or a limit its live write refuses)
    # is made by stopping it, saving the change and starting it again; without this, Set fails instead.
    [DscProperty()] [bool] $RestartIfNeeded

    # Get only: the state the container is in (Running, Stopped, Frozen, ...), or Absent.
    [DscProperty(NotConfigurable)] [string] $Status

    # Get only: the container's IPv4 addresses while it runs.
    [DscProperty(NotConfigurable)] [string[]] $IPv4Addresses

    hidden [hashtable] Store() {
        if ($this.StorePath) { return @{ StorePath = $this.StorePath } }
        return @{}
    }

    hidden [object] Find() {
        $store = $this.Store()
        return PSContainers\Get-Container -Name $this.Name @store -ErrorAction SilentlyContinue
    }

    hidden static [PSContainerState] StateOf([string] $status) {
        if ($status -eq 'Frozen') { return [PSContainerState]::Paused }
        if ($status -eq 'Running') { return [PSContainerState]::Running }
        return [PSContainerState]::Stopped
    }

    # limits.cpus as config.yaml holds it: cpus, or cpuQuota per cpuPeriod (how the runtime writes it).
    hidden static [Nullable[double]] CpusOf($limits) {
        if ($null -eq $limits) { return $null }
        $inv = [Globalization.CultureInfo]::InvariantCulture
        if ($limits['cpus']) { return [double]::Parse([string]$limits['cpus'], $inv) }
        $quota = [string]$limits['cpuQuota']
        if (-not $quota -or $quota -eq 'max') { return $null }
        $period = if ($limits['cpuPeriod']) { [double]::Parse([string]$limits['cpuPeriod'], $inv) } else { 100000 }
        return [math]::Round([double]::Parse($quota, $inv) / $period, 4)
    }

    # The bridges of the veth NICs in the config's network list, in order.
    hidden static [string[]] BridgesOf($network) {
        return @(@($network) | Where-Object { $null -ne $_ -and "$($_['type'])" -eq 'veth' -and $_['link'] } | ForEach-Object { [string]$_['link'] })
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
        $store = $this.Store()
        $result.Ensure = [PSContainerEnsure]::Present
        $result.Status = [string]$c.State
        $result.State = [PSContainer]::StateOf([string]$c.State)
        $result.Template = $c.Template
        $result.ConfigPath = $c.ConfigPath
        $result.MemoryLimit = $c.MemoryLimit
        $limits = PSContainers\Get-ContainerConfig -Name $this.Name -Key limits @store -ErrorAction Stop
        $result.CpuLimit = [PSContainer]::CpusOf($limits)
        $result.PidsLimit = if ($null -ne $limits -and $limits['pids'] -and "$($limits['pids'])" -ne 'max') { [long]$limits['pids'] } else { $null }
        $result.NetworkBridges = [PSContainer]::BridgesOf((PSContainers\Get-ContainerConfig -Name $this.Name -Key network @store -ErrorAction Stop))
        $result.Autostart = $c.Autostart
        $result.AutostartOrder = $c.AutostartOrder
        $result.AutostartDelay = $c.AutostartDelay
        $result.Groups = @($c.Groups)
        $result.IPv4Addresses = @($c.IPv4)
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
        if ($null -ne $this.CpuLimit -and $this.CpuLimit -ne $actual.CpuLimit) { $drift.Add("CpuLimit: $($actual.CpuLimit) -> $($this.CpuLimit)") }
        if ($null -ne $this.PidsLimit -and $this.PidsLimit -ne $actual.PidsLimit) { $drift.Add("PidsLimit: $($actual.PidsLimit) -> $($this.PidsLimit)") }
        if ($null -ne $this.NetworkBridges -and (@($this.NetworkBridges) -join ',') -cne (@($actual.NetworkBridges) -join ',')) { $drift.Add("NetworkBridges: $(@($actual.NetworkBridges) -join ',') -> $(@($this.NetworkBridges) -join ',')") }
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

    hidden [bool] IsRunning() {
        $store = $this.Store()
        return "$((PSContainers\Get-Container -Name $this.Name @store).State)" -in 'Running', 'Frozen'
    }

    hidden [void] WriteConfig([hashtable] $config) {
        $store = $this.Store()
        PSContainers\Set-ContainerConfig -Name $this.Name -Config $config @store -Confirm:$false -WarningAction SilentlyContinue -ErrorAction Stop
    }

    # Makes a change the running container cannot take: with RestartIfNeeded by a stop, the change and
    # a start; without it, an error that says what to do (nothing is changed).
    hidden [void] RestartFor([string] $what, [hashtable] $config) {
        if (-not $this.RestartIfNeeded) {
            throw [System.Management.Automation.ErrorRecord]::new(
                [InvalidOperationException]::new("Container '$($this.Name)' runs and $what takes effect only at its next start: set RestartIfNeeded to let Set restart it, or stop it first."),
                'PSContainerRestartNeeded', [System.Management.Automation.ErrorCategory]::InvalidOperation, $this.Name)
        }
        $store = $this.Store()
        PSContainers\Stop-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop
        $this.WriteConfig($config)
        PSContainers\Start-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop
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
        $actual = $this.Get()
        $change = @{}
        if ($null -ne $this.Autostart -and $this.Autostart -ne $c.Autostart) { $change.Enabled = [bool]$this.Autostart }
        if ($null -ne $this.AutostartOrder -and $this.AutostartOrder -ne $c.AutostartOrder) { $change.Order = [int]$this.AutostartOrder }
        if ($null -ne $this.AutostartDelay -and $this.AutostartDelay -ne $c.AutostartDelay) { $change.Delay = [int]$this.AutostartDelay }
        if ($null -ne $this.Groups -and (@($this.Groups) -join ',') -cne (@($c.Groups) -join ',')) { $change.Group = [string[]]@($this.Groups) }
        if ($change.Count -gt 0) { PSContainers\Set-ContainerAutostart -Name $this.Name @change @store -Confirm:$false -ErrorAction Stop }

        if ($null -ne $this.NetworkBridges -and (@($this.NetworkBridges) -join ',') -cne (@($actual.NetworkBridges) -join ',')) {
            # One veth NIC per bridge: a NIC already on that bridge keeps its other settings; other kinds stay.
            # The cmdlet writes the list as one object: the parentheses take it, the pipe enumerates it.
            $nics = @((PSContainers\Get-ContainerConfig -Name $this.Name -Key network @store -ErrorAction Stop) | Where-Object { $null -ne $_ })
            $veths = [System.Collections.Generic.List[object]]@($nics | Where-Object { "$($_['type'])" -eq 'veth' })
            $network = [System.Collections.Generic.List[object]]@($nics | Where-Object { "$($_['type'])" -ne 'veth' })
            foreach ($bridge in $this.NetworkBridges) {
                $keep = $veths | Where-Object { "$($_['link'])" -ceq $bridge } | Select-Object -First 1
                if ($null -ne $keep) { $null = $veths.Remove($keep); $network.Add($keep) }
                else { $network.Add(@{ type = 'veth'; link = $bridge }) }
            }
            $config = @{ network = $network.ToArray() }
            if ($this.IsRunning()) { $this.RestartFor('a NIC change', $config) } else { $this.WriteConfig($config) }
        }

        $limits = @{}
        if ($null -ne $this.CpuLimit -and $this.CpuLimit -ne $actual.CpuLimit) { $limits['limits.cpus'] = [double]$this.CpuLimit }
        if ($null -ne $this.PidsLimit -and $this.PidsLimit -ne $actual.PidsLimit) { $limits['limits.pids'] = [long]$this.PidsLimit }
        if ($limits.Count -gt 0) {
            try { $this.WriteConfig($limits) }
            catch {
                # The running container refused a limit (say, pids below what it runs now): with
                # RestartIfNeeded it is saved and applied by a restart; otherwise the error stands.
                if (-not ($this.IsRunning() -and $this.RestartIfNeeded)) { throw }
                $this.RestartFor('the limit', $limits)
            }
        }

        if ($null -ne $this.MemoryLimit -and $this.MemoryLimit -ne $c.MemoryLimit) {
            try {
                PSContainers\Set-CgroupLimit -Name $this.Name -MemoryMax $this.MemoryLimit -Persist @store -Confirm:$false -ErrorAction Stop
            }
            catch {
                if (-not ($this.IsRunning() -and $this.RestartIfNeeded)) { throw }
                # The running container refused the limit (say, below what it uses now): saved, applied by a restart.
                PSContainers\Stop-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop
                PSContainers\Set-CgroupLimit -Name $this.Name -MemoryMax $this.MemoryLimit -Persist @store -Confirm:$false -ErrorAction Stop
                PSContainers\Start-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop
            }
        }

        if ($null -ne $this.State) {
            $now = "$((PSContainers\Get-Container -Name $this.Name @store).State)"
            $running = $now -in 'Running', 'Frozen'
            if ($this.State -eq [PSContainerState]::Stopped) {
                if ($running) { PSContainers\Stop-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop }
                return
            }
            if (-not $running) { PSContainers\Start-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop; $now = 'Running' }
            if ($this.State -eq [PSContainerState]::Paused -and $now -ne 'Frozen') { PSContainers\Suspend-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop }
            elseif ($this.State -eq [PSContainerState]::Running -and $now -eq 'Frozen') { PSContainers\Resume-Container -Name $this.Name @store -Confirm:$false -ErrorAction Stop }
        }
    }
}
