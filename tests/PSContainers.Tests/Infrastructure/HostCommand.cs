using System.Diagnostics;

namespace PSContainers.Tests.Infrastructure;

/// <summary>Runs a host program a test inspects the system with (getcap, busybox, ...).</summary>
public static class HostCommand
{
    /// <summary>Runs it to completion; fails the test on a non-zero exit; returns trimmed stdout.</summary>
    public static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {stderr.Result}");
        return stdout.Trim();
    }
}
