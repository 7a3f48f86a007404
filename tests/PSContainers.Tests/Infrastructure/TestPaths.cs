namespace PSContainers.Tests.Infrastructure;

public static class TestPaths
{
    /// <summary>
    /// How much longer than on a development host the tests' waits for a whole pwsh process may take:
    /// PSC_TEST_SLOW_FACTOR (tools/test-v2-guest.sh sets it for the user-mode-Linux guest, where
    /// .NET runs several times slower), else 1.
    /// </summary>
    public static double SlowFactor { get; } =
        double.TryParse(Environment.GetEnvironmentVariable("PSC_TEST_SLOW_FACTOR"), System.Globalization.CultureInfo.InvariantCulture, out var f) && f >= 1 ? f : 1;

    /// <summary>The repository root: the first parent of the test binaries holding PSContainers.psd1.</summary>
    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "PSContainers.psd1"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("PSContainers.psd1 not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>The built, importable module folder (dotnet build produces it).</summary>
    public static string ModuleFolder
    {
        get
        {
            var path = Path.Combine(RepoRoot, "out", "PSContainers");
            if (!File.Exists(Path.Combine(path, "PSContainers.psd1")))
                throw new InvalidOperationException($"{path} has no module: run 'dotnet build -c Release' first.");
            return path;
        }
    }

    /// <summary>The pwsh stand-in (tests/PSContainers.ScriptHost), built beside the tests in the same configuration.</summary>
    public static string ScriptHostFolder
    {
        get
        {
            // tests/PSContainers.Tests/bin/<Configuration>/net10.0/ -> tests/PSContainers.ScriptHost/bin/<Configuration>/net10.0/
            var testBin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
            var path = Path.Combine(RepoRoot, "tests", "PSContainers.ScriptHost", "bin", testBin.Parent!.Name, testBin.Name);
            if (!File.Exists(Path.Combine(path, "psc-scripthost.dll")))
                throw new InvalidOperationException($"{path} has no psc-scripthost.dll: build the solution first.");
            return path;
        }
    }
}
