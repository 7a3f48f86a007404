namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// Probes/escape-probe.c compiled once per test run (static, so it runs in any rootfs) into a
/// psc-test-* directory that is deleted when the test process exits.
/// </summary>
public static class EscapeProbe
{
    private static readonly Lazy<string> Built = new(() =>
    {
        var dir = Path.Combine(Path.GetTempPath(), "psc-test-probe-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(dir, true); } catch (IOException) { } };
        var source = Path.Combine(TestPaths.RepoRoot, "tests", "PSContainers.Tests", "Probes", "escape-probe.c");
        var binary = Path.Combine(dir, "escape-probe");
        HostCommand.Run("gcc", "-static", "-O1", "-Wall", "-o", binary, source);
        return binary;
    });

    /// <summary>Copies the probe into a rootfs as /bin/escape-probe.</summary>
    public static void InstallInto(string rootfs) =>
        File.Copy(Built.Value, Path.Combine(rootfs, "bin", "escape-probe"), overwrite: true);

    /// <summary>The errno of an "err N" line, 0 for "ok ...".</summary>
    public static int Errno(string line) =>
        line.StartsWith("ok", StringComparison.Ordinal) ? 0
        : line.StartsWith("err ", StringComparison.Ordinal) ? int.Parse(line[4..])
        : throw new Xunit.Sdk.XunitException($"not a probe result: '{line}'");
}
