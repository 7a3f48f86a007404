using PSContainers.Runtime.Containers;
namespace PSContainers.Runtime.Config;

/// <summary>
/// The <c>security:</c> section of config.yaml: what a container's processes may do. Every value
/// has a safe default (see Containers/SecurityPlan.cs); a config without the section gets them all.
/// Names are stored normalized (capabilities lower case without "cap_").
/// </summary>
public sealed class SecurityConfig
{
    /// <summary>Capabilities dropped from every process of the container; null = the built-in list
    /// (<see cref="Security.Capabilities.DefaultDrop"/>). The item "default" stands for that list.</summary>
    public List<string>? CapabilitiesDrop { get; set; }
    /// <summary>Allow-list mode (lxc.cap.keep): only these are kept, everything else is dropped. Null = off.</summary>
    public List<string>? CapabilitiesKeep { get; set; }
    /// <summary>default, unconfined, or the absolute path of a profile YAML file.</summary>
    public string SeccompProfile { get; set; } = "default";
    /// <summary>Syscalls refused on top of the profile (with <see cref="SeccompErrno"/>).</summary>
    public List<string> SeccompDeny { get; set; } = new();
    /// <summary>Syscalls allowed even where the profile refuses them.</summary>
    public List<string> SeccompAllow { get; set; } = new();
    /// <summary>The errno that <see cref="SeccompDeny"/> calls fail with (name or number); null = EPERM.</summary>
    public string? SeccompErrno { get; set; }
    /// <summary>mixed (LXC proc:mixed: /proc/sys, /proc/sysrq-trigger, ... read-only) or rw.</summary>
    public string Proc { get; set; } = "mixed";
    /// <summary>ro (LXC sys:ro) or rw.</summary>
    public string Sys { get; set; } = "ro";
    /// <summary>Paths hidden behind /dev/null (files) or an empty read-only tmpfs (directories);
    /// null = the built-in list (<see cref="Containers.SecurityPlan.DefaultMaskedPaths"/>).</summary>
    public List<string>? MaskedPaths { get; set; }
    /// <summary>default (LXC's device allow-list in the devices cgroup) or unconfined (no default rules).</summary>
    public string Devices { get; set; } = "default";
    /// <summary>Also set no_new_privs on init (attached commands always get it).</summary>
    public bool NoNewPrivileges { get; set; }

    /// <summary>True when nothing differs from the defaults (the section is then not written).</summary>
    public bool IsDefault =>
        CapabilitiesDrop is null && CapabilitiesKeep is null && SeccompProfile == "default" && SeccompDeny.Count == 0 &&
        SeccompAllow.Count == 0 && SeccompErrno is null && Proc == "mixed" && Sys == "ro" && MaskedPaths is null &&
        Devices == "default" && !NoNewPrivileges;
}
