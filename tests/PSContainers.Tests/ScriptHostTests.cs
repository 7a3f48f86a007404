using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>The out-of-process pwsh stand-in that other suites rely on: output, errors, exit codes, other users.</summary>
public class ScriptHostTests
{
    [Fact]
    public void RunsTheBuiltModuleAndReportsOutputAndExitCodes()
    {
        var ok = ScriptHost.Run($"Import-Module '{TestPaths.ModuleFolder}' -ErrorAction Stop; (Get-Command -Module PSContainers -Name Get-Container).Name; 6*7");
        Assert.Equal(0, ok.ExitCode);
        Assert.Equal(["Get-Container", "42"], ok.Lines);

        var exit = ScriptHost.Run("'before'; exit 3");
        Assert.Equal(3, exit.ExitCode);
        Assert.Equal(["before"], exit.Lines);

        var error = ScriptHost.Run("Get-Command psc-no-such-command; 'after'");
        Assert.Equal(1, error.ExitCode);
        Assert.Equal(["after"], error.Lines);
        Assert.Contains("CommandNotFoundException,Microsoft.PowerShell.Commands.GetCommandCommand", error.StdErr);

        var thrown = ScriptHost.Run("throw 'broken'");
        Assert.Equal(1, thrown.ExitCode);
        Assert.Contains("broken", thrown.StdErr);
    }

    [Fact]
    public void RunsAsAnotherUser()
    {
        var r = ScriptHost.Run("[Environment]::UserName; [Environment]::GetEnvironmentVariable('HOME')", user: "nobody");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Equal("nobody", r.Lines[0]);
        Assert.Equal("/nonexistent", r.Lines[1]);
    }
}
