using System.Management.Automation;
using PSContainers.Runtime.Namespaces;

namespace PSContainers.Infrastructure;

/// <summary>Points the runtime at the native helper shipped beside the module's assembly.</summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer
{
    public void OnImport() => Helper.ConfiguredPath = Path.Combine(ModuleInfo.Directory, Helper.FileName);
}
