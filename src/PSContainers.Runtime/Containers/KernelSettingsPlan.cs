using PSContainers.Runtime.Config;
using PSContainers.Runtime.Namespaces;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// The sysctl: section in a start's spec: init writes each into its own namespaces before its
/// mounts (helper/sysctl.c). A container in the host's network namespace (network type none) has no
/// net.* of its own: those are refused rather than written to the host.
/// </summary>
public static class KernelSettingsPlan
{
    public static void Apply(StartSpec spec, ContainerConfig config, string name)
    {
        foreach (var (key, value) in config.Sysctl)
        {
            if (key.StartsWith("net.", StringComparison.Ordinal) && NetworkPlan.SharesHostNetwork(config))
                throw new ContainerException("SysctlNeedsNetworkNamespace", ContainerErrorKind.InvalidArgument,
                    $"Container '{name}' shares the host's network namespace (network type none), so sysctl '{key}' would change the host. Give the container a network (e.g. a veth) or remove the key from config.yaml.", name);
            spec.Sysctls.Add($"{key}={value}");
        }
    }
}
