using System.Diagnostics;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// A real, non-root account "psc-test-XXXXXXXX" with a home directory, made with useradd and
/// removed with userdel -r on Dispose (also when the test failed). useradd is told not to allocate
/// subordinate ids itself (-K SUB_UID_COUNT=0), so the test decides what /etc/subuid gets.
/// </summary>
public sealed class HostTestUser : IDisposable
{
    public string Name { get; } = "psc-test-" + Guid.NewGuid().ToString("N")[..8];
    public uint Uid { get; }
    public uint Gid { get; }

    public HostTestUser()
    {
        HostCommand.Run("useradd", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", "-m", "-s", "/bin/sh", Name);
        Uid = uint.Parse(HostCommand.Run("id", "-u", Name));
        Gid = uint.Parse(HostCommand.Run("id", "-g", Name));
    }

    /// <summary>Runs a shell command line as this user (setpriv, no login); returns exit code, stdout and stderr.</summary>
    public (int ExitCode, string Output, string Error) Run(string script)
    {
        var psi = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { $"--reuid={Uid}", $"--regid={Gid}", "--init-groups", "--reset-env", "/bin/sh", "-c", script }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output.Trim(), err.Result.Trim());
    }

    public void Dispose()
    {
        // userdel also drops the account's lines from /etc/subuid and /etc/subgid (shadow-utils 4.x).
        var psi = new ProcessStartInfo("userdel") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-r", "-f", Name }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.WaitForExit();
    }
}
