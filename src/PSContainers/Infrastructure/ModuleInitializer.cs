using System.Management.Automation;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Launcher;

namespace PSContainers.Infrastructure;

/// <summary>Points the runtime at the native helper shipped beside the module's assembly.</summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer
{
    /// <summary>The native programs shipped in the module folder.</summary>
    internal static readonly string[] NativePrograms = { PscHelper.FileName, "psc-usernic" };

    public void OnImport()
    {
        PscHelper.ConfiguredPath = Path.Combine(ModuleInfo.Directory, PscHelper.FileName);
        foreach (var program in NativePrograms) RestoreExecuteBits(Path.Combine(ModuleInfo.Directory, program));
    }

    /// <summary>
    /// A module installed from a package (Install-PSResource, Save-PSResource: a .nupkg is a zip
    /// without Unix modes) has its native programs as plain rw-r--r-- files. Whoever owns them (the
    /// user who installed the module) gives them back their execute bits, exactly where they are
    /// readable: nothing else changes. A file writable by group or others is left alone, and so is
    /// one this user may not chmod (Test-ContainerHost reports both).
    /// </summary>
    internal static void RestoreExecuteBits(string path)
    {
        try
        {
            if (!File.Exists(path)) return;
            var mode = File.GetUnixFileMode(path);
            if ((mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0) return;
            var wanted = mode;
            if ((mode & UnixFileMode.UserRead) != 0) wanted |= UnixFileMode.UserExecute;
            if ((mode & UnixFileMode.GroupRead) != 0) wanted |= UnixFileMode.GroupExecute;
            if ((mode & UnixFileMode.OtherRead) != 0) wanted |= UnixFileMode.OtherExecute;
            if (wanted == mode) return;
            File.SetUnixFileMode(path, wanted);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
    }
}
