using System.Diagnostics;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// Runs a script in a separate process through psc-scripthost (a `pwsh -Command` stand-in on the real
/// engine), optionally as another user. Use it where the PowerShell side must be another process:
/// a non-root user, or the far end of a migration.
/// </summary>
public static class ScriptHost
{
    public sealed record Result(int ExitCode, string StdOut, string StdErr)
    {
        public string[] Lines => StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    /// <summary>The command line that starts the host: `dotnet &lt;folder&gt;/psc-scripthost.dll`.</summary>
    public static string[] CommandLine(string? folder = null) => ["dotnet", Path.Combine(folder ?? TestPaths.ScriptHostFolder, "psc-scripthost.dll")];

    /// <summary>
    /// Runs <paramref name="script"/>. With <paramref name="user"/>, runs as that user through setpriv
    /// (its own uid, gid and supplementary groups; environment reset as for a login), from
    /// <paramref name="hostFolder"/>, which that user must be able to read.
    /// </summary>
    /// <param name="cgroup">A cgroup2 directory the host process is placed in (as root, before it becomes the user): a delegated subtree.</param>
    public static Result Run(string script, string? user = null, string? hostFolder = null, TimeSpan? timeout = null, IDictionary<string, string>? environment = null, string? cgroup = null)
    {
        var psi = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        var host = CommandLine(hostFolder);
        if (user is not null)
        {
            // --reset-env sets HOME, USER, SHELL and PATH from the passwd entry, as a login would.
            var gid = HostCommand.Run("id", "-g", user);
            psi.FileName = "setpriv";
            if (cgroup is not null)
            {
                psi.FileName = "sh";
                foreach (var a in new[] { "-c", "echo $$ > \"$0/cgroup.procs\" && exec setpriv \"$@\"", cgroup }) psi.ArgumentList.Add(a);
            }
            foreach (var a in new[] { "--reuid", user, "--regid", gid, "--init-groups", "--reset-env", "env", "DOTNET_CLI_TELEMETRY_OPTOUT=1", "DOTNET_NOLOGO=1" })
                psi.ArgumentList.Add(a);
            foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.ArgumentList.Add($"{k}={v}");
        }
        else
        {
            psi.FileName = host[0];
            host = host[1..];
            foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        }
        foreach (var a in host) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "-NoProfile", "-NonInteractive", "-Command", "-" }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardInput.Write(script);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit((timeout ?? TimeSpan.FromMinutes(2)) * TestPaths.SlowFactor))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"psc-scripthost did not finish: {script}");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
