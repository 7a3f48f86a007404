using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Native;

namespace PSContainers.Runtime.Hooks;

/// <summary>
/// limits.prlimit and oomScoreAdj, set on the container's init from the host while it waits to run
/// its program, as LXC does from its monitor: only from outside can a user-namespaced container's
/// hard limits be raised above the caller's and its OOM score lowered (both need privilege in the
/// host's user namespace). What init starts inherits both; Enter-Container's commands do not (LXC's
/// behaviour too: lxc-attach does not apply lxc.prlimit).
/// </summary>
public sealed class InitSettingsHook : IContainerHook
{
    public void Starting(ContainerStartContext context)
    {
        var config = context.Config;
        foreach (var (resource, value) in config.Limits.Prlimit)
        {
            // The loader checked the value; parsed again here for the numbers.
            if (ConfigRules.Prlimit(resource, value, out var soft, out var hard) is { } bad)
                throw new ContainerException("InvalidPrlimit", ContainerErrorKind.InvalidArgument, bad, context.Name);
            int errno = Sys.SetProcessLimit(context.InitPid, ConfigRules.PrlimitResources[resource], soft, hard);
            if (errno != 0)
                throw new ContainerException("PrlimitFailed", ContainerErrorKind.PermissionDenied,
                    $"Container '{context.Name}' was not started: setting limits.prlimit.{resource} to {value} on its init failed ({Sys.ErrnoMessage(errno)}). " +
                    "Raising a hard limit above your own needs CAP_SYS_RESOURCE in the host's user namespace: lower the value in config.yaml or start it with that capability.", context.Name);
        }
        if (config.OomScoreAdj is { } adj)
        {
            try
            {
                File.WriteAllText($"/proc/{context.InitPid}/oom_score_adj", adj.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ContainerException("OomScoreAdjFailed", ContainerErrorKind.PermissionDenied,
                    $"Container '{context.Name}' was not started: setting oomScoreAdj {adj} on its init failed ({e.Message}). " +
                    "Lowering an OOM score needs CAP_SYS_RESOURCE in the host's user namespace (root usually has it; a confined or non-root caller does not): raise the value in config.yaml or start it with that capability.", context.Name);
            }
        }
    }

    // Nothing is left outside init: its limits and score go with it.
    public void Stopped(string name, ContainerConfig config) { }

    public void Removed(string name) { }
}
