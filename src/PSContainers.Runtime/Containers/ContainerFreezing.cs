using PSContainers.Runtime.Cgroups;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Host;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.State;
using PSContainers.Runtime.UserNamespaces;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Events;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// Freeze-Container and Resume-Container (the cgroup freezer), and the freeze an Export-Container
/// -Force holds while it copies a running container: marked, so that a killed export's freeze is undone.
/// </summary>
internal sealed class ContainerFreezing : ContainerOperation
{
    public ContainerFreezing(ContainerManager manager) : base(manager) { }

    /// <summary>Thaws a container an Export-Container -Force froze, if that export is gone (killed).</summary>
    internal void RecoverExportFreeze(string name)
    {
        var marker = Store.ExportFreezePath(name);
        string text;
        try { text = File.ReadAllText(marker); }
        catch (FileNotFoundException) { return; }
        var f = text.Trim().Split(' ');
        if (f.Length == 2 && int.TryParse(f[0], out var pid) && ulong.TryParse(f[1], out var start) && Sys.IsAlive(pid, start)) return;
        if (CgroupPathFor(name) is { } cgroup && Cgroups.Exists(cgroup) && SafeIsFrozen(cgroup))
        {
            Cgroups.Thaw(cgroup);
            Warning?.Invoke($"Container '{name}' was left frozen by an interrupted Export-Container -Force; it was resumed.");
        }
        File.Delete(marker);
    }

    /// <summary>Export-Container -Force: freezes a running container, marked so that a killed export's freeze is undone.</summary>
    public bool FreezeForExport(string name)
    {
        var marker = Store.ExportFreezePath(name);
        var self = System.Environment.ProcessId;
        AtomicFile.WriteAllText(marker, $"{self} {Sys.ProcessStartTime(self)}\n", durable: false);
        try
        {
            Freeze(name);
            return true;
        }
        catch
        {
            File.Delete(marker);
            throw;
        }
    }

    public void ThawAfterExport(string name)
    {
        try { Thaw(name); }
        finally { File.Delete(Store.ExportFreezePath(name)); }
    }

    public ContainerInfo Freeze(string name, TimeSpan? timeout = null)
    {
        ContainerNames.Validate(name);
        using var _ = Store.Lock(name);
        var (state, status) = Running(name, "freeze", needsCgroup: true);
        if (status == ContainerStatus.Frozen)
            throw new ContainerException("ContainerAlreadyFrozen", ContainerErrorKind.InvalidOperation, $"Container '{name}' is already frozen.", name);
        Cgroups.Freeze(state.CgroupPath!, timeout ?? TimeSpan.FromSeconds(10));
        Emit(name, ContainerEventKind.Frozen);
        return Describe(name);
    }

    public ContainerInfo Thaw(string name)
    {
        ContainerNames.Validate(name);
        using var _ = Store.Lock(name);
        var (state, status) = Running(name, "thaw", needsCgroup: true);
        if (status != ContainerStatus.Frozen)
            throw new ContainerException("ContainerNotFrozen", ContainerErrorKind.InvalidOperation, $"Container '{name}' is not frozen.", name);
        Cgroups.Thaw(state.CgroupPath!);
        Emit(name, ContainerEventKind.Thawed);
        return Describe(name);
    }

}
