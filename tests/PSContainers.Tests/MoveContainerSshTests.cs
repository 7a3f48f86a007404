using System.Management.Automation;
using PSContainers.Runtime.Migration;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// Move-Container over SSH to a real sshd in a network namespace of the test; the "remote host" runs
/// psc-scripthost (a pwsh stand-in) with the built module, against a second store.
/// </summary>
[Collection("Containers")]
public sealed class MoveContainerSshTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly TestStore _remote = new();
    private readonly SshServer _ssh;
    private readonly ModuleSession _ps;

    public MoveContainerSshTests()
    {
        try
        {
            _ssh = new SshServer();
            _ps = _store.OpenSession();
        }
        catch
        {
            _ssh?.Dispose();
            _store.Dispose();
            _remote.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _ssh.Dispose();
        _store.Dispose();
        _remote.Dispose();
    }

    /// <summary>The remote PowerShell: psc-scripthost, by the absolute path of dotnet (sshd's PATH is not ours).</summary>
    private static string RemotePowerShell
    {
        get
        {
            var line = ScriptHost.CommandLine();
            var dotnet = Environment.GetEnvironmentVariable("PATH")!.Split(':').Select(d => Path.Combine(d, line[0])).First(File.Exists);
            return string.Join(' ', new[] { dotnet }.Concat(line[1..]).Select(SshConnection.ShellQuote));
        }
    }

    private ModuleSession.Result Move(string name, string extra = "", string? modulePath = null) =>
        _ps.Invoke($"Move-Container $args[0] $args[1] -IdentityFile $args[2] -SshOption \"UserKnownHostsFile=$($args[3])\" -RemotePowerShell $args[4] -RemoteModulePath $args[5] {extra}",
            name, _ssh.Uri(_remote.StorePath), _ssh.IdentityFile, _ssh.KnownHostsFile, RemotePowerShell, modulePath ?? TestPaths.ModuleFolder);

    [Fact]
    public void Cold_OverSsh_TheContainerRunsOnTheRemoteStore_AndNothingIsLeftBehind()
    {
        var c = MoveContainerTests.Container(_store, "ssh");
        _store.Manager.Start(c.Name);
        var config = MoveContainerTests.Portable(c.ConfigPath);

        var r = Move(c.Name, "-Timeout 5 -PassThru");
        Assert.Empty(r.Errors);
        var result = r.Single<MigrationResult>();
        Assert.Equal(ContainerStatus.Running, result.State);
        Assert.Equal($"ssh://root@{_ssh.Address}:{SshServer.Port}{_remote.StorePath}", result.Destination);
        Assert.True(result.SourceRemoved);
        Assert.True(result.BytesTransferred > 100_000);
        Assert.Contains(r.Progress, p => p.StatusDescription.StartsWith("Transfer:", StringComparison.Ordinal));

        Assert.False(_store.Manager.Exists(c.Name));
        var moved = _remote.Manager.Get(c.Name);
        Assert.Equal(ContainerStatus.Running, moved.State);
        Assert.Equal(config, MoveContainerTests.Portable(moved.ConfigPath));
        Assert.Equal("made before the move", _remote.Manager.Exec(c.Name, new[] { "cat", "/etc/marker" }).Output.Single());
        // sshd really served it: the session of the client key is in its log.
        Assert.Contains("Accepted publickey for root", File.ReadAllText(_ssh.LogFile));
        // Staging removed on both ends; the multiplexing master has exited.
        Assert.False(Directory.Exists(Path.Combine(_remote.StorePath, ".migrate")));
        Assert.False(Directory.Exists(Path.Combine(_store.StorePath, ".migrate")));
        Assert.Empty(SshServer.MigrationSshProcessesAfter());
    }

    [Fact]
    public void Warm_OverSsh_ACounterKeepsCountingOnTheRemoteStore()
    {
        var name = CounterContainer.Start(_store, "sshw");
        var beforeMove = CounterContainer.Count(_store, name);

        var r = Move(name, "-Warm -PassThru");
        Assert.Empty(r.Errors);
        var result = r.Single<MigrationResult>();
        Assert.Equal(MigrationMode.Warm, result.Mode);
        Assert.Equal(ContainerStatus.Running, result.State);
        Assert.False(_store.Manager.Exists(name));
        Assert.Equal(ContainerStatus.Running, _remote.Manager.Get(name).State);
        CounterContainer.WaitCount(_remote, name, beforeMove + 10);
        var ticks = CounterContainer.Ticks(_remote, name);
        Assert.NotEmpty(ticks);
        Assert.True(ticks[0] > beforeMove, $"the first tick on the remote ({ticks[0]}) continues the count ({beforeMove} before the move)");
        Assert.False(Directory.Exists(Path.Combine(_remote.StorePath, ".migrate")));
        Assert.Empty(SshServer.MigrationSshProcessesAfter());
    }

    [Fact]
    public void NameTakenOnTheRemote_IsTheRemoteError_AndTheSourceKeepsRunning()
    {
        var c = MoveContainerTests.Container(_store, "sshc");
        var running = _store.Manager.Start(c.Name);
        _remote.Manager.Create(c.Name, new Runtime.Containers.CreateOptions { Template = "busybox" });

        var error = Move(c.Name).SingleError;
        Assert.Equal("ContainerExists,PSContainers.Cmdlets.MoveContainerCommand", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ResourceExists, error.CategoryInfo.Category);
        Assert.StartsWith($"On {_ssh.Address}: A container named '{c.Name}' already exists in {_remote.StorePath}", error.Exception.Message);
        Assert.Equal(running.Pid, _store.Manager.Get(c.Name).Pid);
        Assert.Empty(SshServer.MigrationSshProcessesAfter());
    }

    [Fact]
    public void MissingModuleOnTheRemote_QuotesTheRemoteMessage_AndChangesNothing()
    {
        var c = MoveContainerTests.Container(_store, "sshm");
        var running = _store.Manager.Start(c.Name);
        var missing = Path.Combine(_remote.Root, "no-such-module");

        var error = Move(c.Name, modulePath: missing).SingleError;
        Assert.Equal("Modules_ModuleNotFound,PSContainers.Cmdlets.MoveContainerCommand", error.FullyQualifiedErrorId);
        Assert.StartsWith($"On {_ssh.Address}: ", error.Exception.Message);
        Assert.Contains("no-such-module", error.Exception.Message);
        Assert.Equal(running.Pid, _store.Manager.Get(c.Name).Pid);
        Assert.Empty(_remote.Manager.Names());
    }

    [Fact]
    public void NoRemotePowerShell_IsNamedInTheError()
    {
        var c = MoveContainerTests.Container(_store, "sshp");
        var r = _ps.Invoke("Move-Container $args[0] $args[1] -IdentityFile $args[2] -SshOption \"UserKnownHostsFile=$($args[3])\" -RemotePowerShell psc-test-no-pwsh",
            c.Name, _ssh.Uri(_remote.StorePath), _ssh.IdentityFile, _ssh.KnownHostsFile);
        var error = r.SingleError;
        Assert.Equal("RemotePowerShellFailed,PSContainers.Cmdlets.MoveContainerCommand", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.NotInstalled, error.CategoryInfo.Category);
        Assert.Contains("psc-test-no-pwsh", error.Exception.Message);
        Assert.Contains("command not found", error.Exception.Message);
        Assert.True(_store.Manager.Exists(c.Name));
    }

    [Fact]
    public void UnknownHostKey_FailsInBatchMode_QuotingSsh()
    {
        var c = MoveContainerTests.Container(_store, "sshk");
        var empty = Path.Combine(_ssh.Directory, "empty_known_hosts");
        File.WriteAllText(empty, "");
        var r = _ps.Invoke("Move-Container $args[0] $args[1] -IdentityFile $args[2] -SshOption \"UserKnownHostsFile=$($args[3])\"",
            c.Name, _ssh.Uri(_remote.StorePath), _ssh.IdentityFile, empty);
        var error = r.SingleError;
        Assert.Equal("SshConnectFailed,PSContainers.Cmdlets.MoveContainerCommand", error.FullyQualifiedErrorId);
        Assert.Contains("Host key verification failed", error.Exception.Message);
        Assert.True(_store.Manager.Exists(c.Name));
        Assert.Equal("", File.ReadAllText(empty)); // strict: nothing was added

        // -HostKeyChecking AcceptNew records the key and goes on (here to a stopped container's move).
        var ok = _ps.Invoke("Move-Container $args[0] $args[1] -IdentityFile $args[2] -SshOption \"UserKnownHostsFile=$($args[3])\" -HostKeyChecking AcceptNew -RemotePowerShell $args[4] -RemoteModulePath $args[5] -PassThru",
            c.Name, _ssh.Uri(_remote.StorePath), _ssh.IdentityFile, empty, RemotePowerShell, TestPaths.ModuleFolder);
        Assert.Empty(ok.Errors);
        Assert.Equal(ContainerStatus.Stopped, ok.Single<MigrationResult>().State);
        Assert.Contains("ssh-ed25519", File.ReadAllText(empty)); // (hashed host name: Debian sets HashKnownHosts)
        Assert.True(_remote.Manager.Exists(c.Name));
    }
}
