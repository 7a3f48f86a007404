using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Security;
using PSContainers.Runtime.Containers;

using PSContainers.Runtime.Config;

namespace PSContainers.Runtime.Storage;

/// <summary>One setting of an untrusted config.yaml that widens the container's access to the host.</summary>
/// <param name="Key">The config key, as written in config.yaml (mounts[0], security.seccomp.profile, network[1]).</param>
/// <param name="Value">What the archive set it to.</param>
/// <param name="Reason">What it would give the container.</param>
public sealed record HostAccessSetting(string Key, string Value, string Reason)
{
    public override string ToString() => $"{Key} ({Value}): {Reason}";
}

/// <summary>
/// A config.yaml that came from outside the store (an archive on Import-Container, a checkpoint
/// directory, what Move-Container's destination receives) is untrusted input: every setting that
/// widens the container's access to the host is found here and, unless the caller explicitly keeps
/// them, reset to the default. The classes (see README, "Security"):
/// <list type="bullet">
/// <item>hooks (hooks.*): programs the host runs, as the caller, at a start or stop;</item>
/// <item>host paths of any kind: mounts (bind mounts of host paths), rootfs, storage.lower and
/// storage.origin (a host directory or another container as the root), a seccomp profile file,
/// io limits naming a host device path;</item>
/// <item>dropped protections: a capability set wider than the default (capabilities.drop without
/// the defaults, or a keep list with one of them), seccomp unconfined or with allow exceptions,
/// proc/sys read-write, masked paths that unmask a default one, devices unconfined, device rules
/// that allow reading or writing devices;</item>
/// <item>network interfaces that take or share host devices: none (the host's network namespace),
/// phys, macvlan, ipvlan, vlan, a veth on a host bridge or in another network namespace, pasta
/// port forwards (host ports in, and the host's loopback reachable from the container).</item>
/// </list>
/// The id map is not judged here: Import-Container always replaces it with the caller's own
/// (never the archive's), and the other paths keep the container's own.
/// </summary>
public static class UntrustedConfigPolicy
{
    /// <summary>The widening settings of <paramref name="config"/>; the config is not changed.</summary>
    public static IReadOnlyList<HostAccessSetting> Find(ContainerConfig config) => Walk(config, remove: false);

    /// <summary>Resets every widening setting to its default in place; returns what was removed.</summary>
    public static IReadOnlyList<HostAccessSetting> Sanitize(ContainerConfig config) => Walk(config, remove: true);

    /// <summary>The warning text for one removal.</summary>
    public static string RemovedWarning(HostAccessSetting s) =>
        $"Removed {s.Key} ({s.Value}) from the imported config: {s.Reason}. Use -KeepHostAccess to keep settings like this one from a source you trust.";

    private static List<HostAccessSetting> Walk(ContainerConfig config, bool remove)
    {
        var found = new List<HostAccessSetting>();
        void Add(string key, string value, string reason) => found.Add(new HostAccessSetting(key, value, reason));

        // ---- host paths ----
        for (int i = 0; i < config.Mounts.Count; i++)
        {
            var m = config.Mounts[i];
            Add($"mounts[{i}]", $"{m.Source} -> {m.Target}{(m.ReadOnly ? ", read-only" : "")}",
                m.IsBind ? $"it bind-mounts the host path '{m.Source}' into the container"
                    : $"it mounts a {m.Type} filesystem from '{m.Source}', which can name a host device");
        }
        if (remove) config.Mounts.Clear();
        if (config.Rootfs is not null)
        {
            Add("rootfs", config.Rootfs, "it makes a host directory the container's root");
            if (remove) config.Rootfs = null;
        }
        if (config.Storage.Lower is not null)
        {
            Add("storage.lower", config.Storage.Lower, "it puts a host directory under the container's root (an overlay layer)");
            if (remove) config.Storage.Lower = null;
        }
        if (config.Storage.Layers.Count > 0)
        {
            Add("storage.layers", string.Join(", ", config.Storage.Layers), "it puts host directories under the container's root (overlay layers)");
            if (remove) config.Storage.Layers.Clear();
        }
        if (config.Storage.Origin is not null)
        {
            Add("storage.origin", config.Storage.Origin, "it ties the container's root to another container's");
            if (remove) config.Storage.Origin = null;
        }
        var sec = config.Security;
        if (sec.SeccompProfile is not ("default" or "unconfined"))
        {
            Add("security.seccomp.profile", sec.SeccompProfile, "it reads a seccomp profile from a host file instead of the built-in one");
            if (remove) sec.SeccompProfile = "default";
        }
        for (int i = config.Limits.IoDeviceLimits.Count - 1; i >= 0; i--)
        {
            var io = config.Limits.IoDeviceLimits[i];
            if (!io.Device.StartsWith('/')) continue;
            Add($"limits.io[{i}].device", io.Device, "it names a host device path, which is resolved on the host");
            if (remove) config.Limits.IoDeviceLimits.RemoveAt(i);
        }

        // Programs the host runs as the caller (root): an archive must never bring its own.
        foreach (var (key, _, list) in config.Hooks.Points())
        {
            for (int i = 0; i < list.Count; i++)
                Add($"hooks.{key}[{i}]", string.Join(' ', new[] { list[i].Path }.Concat(list[i].Args)),
                    key == "start" ? "it runs a program inside the container before init, as the container's root with every capability"
                    : key == "mount" ? "it runs a host program in the container's mount namespace before pivot_root"
                    : "it runs a host program on the host when the container starts or stops");
            if (remove) list.Clear();
        }

        // ---- dropped protections ----
        var system = SecurityPlan.IsSystemContainer(config);
        ulong wanted, defaults = Capabilities.DropMask(null, null, system);
        try { wanted = Capabilities.DropMask(sec.CapabilitiesDrop, sec.CapabilitiesKeep, system); }
        catch (ContainerException) { wanted = 0; }
        var regained = defaults & ~wanted;
        if (regained != 0)
        {
            var key = sec.CapabilitiesKeep is not null ? "security.capabilities.keep" : "security.capabilities.drop";
            var value = "[" + string.Join(", ", (sec.CapabilitiesKeep ?? sec.CapabilitiesDrop ?? new()).ToArray()) + "]";
            Add(key, value, $"it keeps capabilities the default drops ({string.Join(", ", Capabilities.NamesOf(regained))})");
            if (remove) { sec.CapabilitiesDrop = null; sec.CapabilitiesKeep = null; }
        }
        if (sec.SeccompProfile == "unconfined")
        {
            Add("security.seccomp.profile", "unconfined", "it turns the seccomp filter off");
            if (remove) sec.SeccompProfile = "default";
        }
        if (sec.SeccompAllow.Count > 0)
        {
            Add("security.seccomp.allow", "[" + string.Join(", ", sec.SeccompAllow) + "]", "it allows system calls the seccomp profile refuses");
            if (remove) sec.SeccompAllow = new();
        }
        if (sec.Proc != "mixed")
        {
            Add("security.proc", sec.Proc, "it makes /proc/sys, /proc/sysrq-trigger and the other host-wide /proc knobs writable");
            if (remove) sec.Proc = "mixed";
        }
        if (sec.Sys != "ro")
        {
            Add("security.sys", sec.Sys, "it makes /sys writable");
            if (remove) sec.Sys = "ro";
        }
        if (sec.MaskedPaths is not null)
        {
            var unmasked = SecurityPlan.DefaultMaskedPaths.Where(p => !sec.MaskedPaths.Contains(p)).ToArray();
            if (unmasked.Length > 0)
            {
                Add("security.maskedPaths", "[" + string.Join(", ", sec.MaskedPaths) + "]", $"it unmasks {string.Join(", ", unmasked)}");
                if (remove) sec.MaskedPaths = null;
            }
        }
        if (sec.Devices != "default")
        {
            Add("security.devices", sec.Devices, "it lifts the device allow-list: host devices can be opened through device nodes");
            if (remove) sec.Devices = "default";
        }
        for (int i = config.Limits.Devices.Count - 1; i >= 0; i--)
        {
            var rule = config.Limits.Devices[i];
            if (!rule.Allow || (rule.Access & (DeviceAccess.Read | DeviceAccess.Write)) == 0) continue;
            Add($"limits.devices[{i}]", rule.ToString(), "it allows reading or writing host devices");
            if (remove) config.Limits.Devices.RemoveAt(i);
        }

        if (config.Console.LogMaxBytes == 0)
        {
            Add("console.logMaxBytes", "0", "it lets the console log grow without bound on the host's disk");
            if (remove) config.Console.LogMaxBytes = new ConsoleConfig().LogMaxBytes;
        }

        // ---- network interfaces that take or share host devices ----
        for (int i = config.Network.Count - 1; i >= 0; i--)
        {
            var nic = config.Network[i];
            string? reason = nic.Type switch
            {
                "none" => "it shares the host's network namespace (every host interface, port and abstract socket)",
                "phys" => $"it moves the host interface '{nic.Link}' into the container",
                "macvlan" or "ipvlan" or "vlan" => $"it puts the container on the host interface '{nic.Link}' directly",
                "veth" when nic.LinkNamespace is not null => $"it connects to the network namespace '{nic.LinkNamespace}'",
                "veth" when nic.Link is not null && nic.Link != NetworkHooks.DefaultBridge.ConfigName => $"it joins the host bridge '{nic.Link}'",
                _ => null,
            };
            if (reason is not null)
            {
                Add($"network[{i}]", $"type {nic.Type}{(nic.Link is null ? "" : ", link " + nic.Link)}", reason);
                if (remove) config.Network.RemoveAt(i);
                continue;
            }
            if (nic.HostName is not null)
            {
                Add($"network[{i}].hostName", nic.HostName, "it names an interface on the host (host network configuration may match the name)");
                if (remove) nic.HostName = null;
            }
            if (nic.Type == "pasta" && nic.Ports.Count > 0)
            {
                Add($"network[{i}].ports", "[" + string.Join(", ", nic.Ports) + "]", "it takes ports of the host's addresses");
                if (remove) nic.Ports = new();
            }
            if (nic.Type == "pasta" && nic.HostPorts.Count > 0)
            {
                Add($"network[{i}].hostPorts", "[" + string.Join(", ", nic.HostPorts) + "]", "it lets the container reach services on the host's loopback");
                if (remove) nic.HostPorts = new();
            }
        }
        // Walked backwards where items are removed: report in config order.
        return found.OrderBy(f => f.Key, StringComparer.Ordinal).ToList();
    }
}
