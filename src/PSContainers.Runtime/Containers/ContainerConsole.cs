using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Containers;

/// <summary>How an attach to the console ended (psc-helper console's exit status).</summary>
public enum ConsoleDetach
{
    /// <summary>The detach key was typed.</summary>
    Detached = 0,
    /// <summary>The attach was ended by a signal (the terminal closed, the caller killed).</summary>
    Interrupted = 1,
    /// <summary>The container stopped: its supervisor closed the console.</summary>
    ContainerStopped = 2,
}

/// <summary>
/// Enter-Container -Console, like lxc-console -t 0: the caller's terminal attached to a running
/// container's console, which its supervisor lends on a unix socket in the container's directory
/// (bytes only: the pty master stays with the supervisor, the caller's terminal with the caller;
/// see src/native/helper/console_relay.c). One caller at a time; the console log keeps recording.
/// </summary>
public sealed class ContainerConsole(IContainerLifecycle manager)
{
    /// <summary>Ctrl+a, lxc-console's prefix.</summary>
    public const char DefaultEscapeKey = 'a';

    /// <summary>Attaches the caller's terminal until the detach key (Ctrl+<paramref name="escapeKey"/> q), the container's end or a signal.</summary>
    public ConsoleDetach Attach(string name, char escapeKey = DefaultEscapeKey)
    {
        ContainerNames.Validate(name);
        var key = char.ToLowerInvariant(escapeKey);
        if (key is < 'a' or > 'z')
            throw new ContainerException("InvalidEscapeKey", ContainerErrorKind.InvalidArgument,
                $"The escape key must be a letter a-z (Ctrl+<letter>, like lxc-console -e), not '{escapeKey}'.", escapeKey);
        if (!manager.Exists(name))
            throw new ContainerException("ContainerNotFound", ContainerErrorKind.ObjectNotFound,
                $"No container named '{name}' exists in {manager.Store.Root}. Get-Container lists the containers of this store.", name);
        var status = manager.Inspect(name).Status;
        if (status is not (ContainerStatus.Running or ContainerStatus.Frozen))
            throw new ContainerException("ContainerNotRunning", ContainerErrorKind.InvalidOperation,
                $"Cannot attach to the console of container '{name}': it is {status.ToString().ToLowerInvariant()}.", name);
        var socket = manager.Store.ConsoleSocketPath(name);
        if (!File.Exists(socket))
            throw new ContainerException("ConsoleUnavailable", ContainerErrorKind.InvalidOperation,
                $"Container '{name}' has no console socket ({socket}): it was started by an older version of PSContainers, or without a console. Restart it to attach to its console.", name);
        var spec = new ConsoleSpec { ConsoleSocket = socket, EscapeKey = (uint)(key - 'a' + 1) };
        using var helper = PscHelper.StartInteractive(spec, manager.Store.TempDirectory);
        helper.WaitForExit();
        return helper.ExitCode switch
        {
            0 => ConsoleDetach.Detached,
            1 => ConsoleDetach.Interrupted,
            2 => ConsoleDetach.ContainerStopped,
            3 => throw new ContainerException("ConsoleUnavailable", ContainerErrorKind.InvalidOperation,
                $"The console of container '{name}' cannot be reached at {socket} (its supervisor is gone or the container stopped).", name),
            4 => throw new ContainerException("ConsoleBusy", ContainerErrorKind.ResourceBusy,
                $"The console of container '{name}' is attached in another session; only one can be attached at a time. Detach there first (Ctrl+{key} q).", name),
            5 => throw new ContainerException("ConsoleDenied", ContainerErrorKind.PermissionDenied,
                $"The supervisor of container '{name}' refused the console: only the store's owner (or root) may attach.", name),
            6 => throw new ContainerException("ConsoleUnavailable", ContainerErrorKind.InvalidOperation,
                $"The console of container '{name}' is lent by the supervisor of an older version of PSContainers, which does not take window sizes. Restart the container to attach to its console.", name),
            var code => throw new ContainerException("ConsoleAttachFailed", ContainerErrorKind.InvalidOperation,
                $"psc-helper console failed for container '{name}' (exit status {code}); its message is above.", name),
        };
    }
}
