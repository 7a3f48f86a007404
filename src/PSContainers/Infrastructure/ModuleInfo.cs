namespace PSContainers;

/// <summary>Where the module was loaded from (the native helper sits beside the assembly).</summary>
internal static class ModuleInfo
{
    public static string Directory => Path.GetDirectoryName(typeof(ModuleInfo).Assembly.Location)!;
}
