using System.Text;
using PSContainers.Runtime.Processes;
using System.Text.RegularExpressions;

namespace PSContainers.Runtime.Migration;

/// <summary>How ssh treats a host key it does not know (ssh_config StrictHostKeyChecking).</summary>
public enum HostKeyChecking
{
    /// <summary>yes: the host must be in known_hosts already.</summary>
    Strict,
    /// <summary>accept-new: an unknown host's key is added; a changed key is refused.</summary>
    AcceptNew,
    /// <summary>no: any key is accepted (only for throw-away test hosts).</summary>
    Off,
}

/// <summary>How to reach an SSH destination and run the receiving side there.</summary>
public sealed partial class SshOptions
{
    /// <summary>The private key (ssh -i); null: ssh's own defaults and agent.</summary>
    public string? IdentityFile { get; set; }
    public HostKeyChecking HostKeyChecking { get; set; } = HostKeyChecking.Strict;
    /// <summary>More ssh_config options, each "Key=Value" (ssh -o), e.g. UserKnownHostsFile=/path.</summary>
    public IReadOnlyList<string> Options { get; set; } = Array.Empty<string>();
    /// <summary>The command that starts PowerShell on the remote host; -NoProfile -NonInteractive -Command - is appended.</summary>
    public string RemotePowerShell { get; set; } = "pwsh";
    /// <summary>What the remote script imports: the module name, or a path to the module folder there.</summary>
    public string RemoteModule { get; set; } = "PSContainers";
    /// <summary>The OpenSSH client program.</summary>
    public string Program { get; set; } = "ssh";

    /// <summary>Options the connection sets itself: a user value would be ignored (ssh takes the first one) or break multiplexing.</summary>
    static readonly string[] Managed = { "BatchMode", "ControlMaster", "ControlPath", "ControlPersist", "StrictHostKeyChecking" };

    public void Validate()
    {
        foreach (var option in Options)
        {
            var m = OptionSyntax().Match(option);
            if (!m.Success)
                throw new ContainerException("InvalidSshOption", ContainerErrorKind.InvalidArgument,
                    $"'{option}' is not an ssh_config option: write it as Key=Value (e.g. UserKnownHostsFile=/root/.ssh/known_hosts_lab).", option);
            var key = m.Groups[1].Value;
            if (Managed.Contains(key, StringComparer.OrdinalIgnoreCase))
                throw new ContainerException("InvalidSshOption", ContainerErrorKind.InvalidArgument,
                    $"The ssh option {key} is set by Move-Container itself{(key.Equals("StrictHostKeyChecking", StringComparison.OrdinalIgnoreCase) ? "; use -HostKeyChecking" : "")}.", option);
        }
        if (IdentityFile is not null && !File.Exists(IdentityFile))
            throw new ContainerException("IdentityFileNotFound", ContainerErrorKind.ObjectNotFound,
                $"The identity file '{IdentityFile}' does not exist.", IdentityFile);
        if (string.IsNullOrWhiteSpace(RemotePowerShell) || RemotePowerShell.Any(char.IsControl))
            throw new ContainerException("InvalidRemotePowerShell", ContainerErrorKind.InvalidArgument,
                "The remote PowerShell command is empty or holds control characters.", RemotePowerShell);
        if (string.IsNullOrWhiteSpace(RemoteModule) || RemoteModule.Any(char.IsControl))
            throw new ContainerException("InvalidRemoteModule", ContainerErrorKind.InvalidArgument,
                "The remote module name or path is empty or holds control characters.", RemoteModule);
    }

    [GeneratedRegex(@"^([A-Za-z][A-Za-z0-9]*)\s*=\s*\S.*$")]
    private static partial Regex OptionSyntax();
}

/// <summary>What a remote command did.</summary>
public sealed record SshResult(int ExitCode, string StdOut, string StdErr);

/// <summary>
/// One authenticated connection to an SSH server through the system's OpenSSH client, reused by
/// every step of a migration: a master (ControlMaster, its socket in a private 0700 directory)
/// that backgrounds itself after authenticating (-f), and clients that multiplex over it. All in
/// BatchMode: a missing key or an unknown host key fails at once instead of prompting.
/// ControlPersist bounds the master's life should this process die before closing it.
/// </summary>
public sealed class SshConnection : IDisposable
{
    readonly SshEndpoint _endpoint;
    readonly SshOptions _options;
    readonly string _directory;
    bool _master;

    public SshEndpoint Endpoint => _endpoint;
    string ControlPath => Path.Combine(_directory, "control");
    string LogPath => Path.Combine(_directory, "ssh.log");

    SshConnection(SshEndpoint endpoint, SshOptions options)
    {
        _endpoint = endpoint;
        _options = options;
        _directory = Path.Combine(Path.GetTempPath(), "psc-ssh-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(_directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    /// <summary>Connects and authenticates; a failure quotes ssh's own message.</summary>
    public static SshConnection Open(SshEndpoint endpoint, SshOptions options, CancellationToken ct = default)
    {
        options.Validate();
        var connection = new SshConnection(endpoint, options);
        try
        {
            connection.StartMaster(ct);
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    List<string> Arguments(params string[] extra)
    {
        var args = new List<string>
        {
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=" + _options.HostKeyChecking switch { HostKeyChecking.AcceptNew => "accept-new", HostKeyChecking.Off => "no", _ => "yes" },
            "-o", "ControlPath=" + ControlPath,
        };
        if (_options.IdentityFile is { } identity) args.AddRange(new[] { "-i", identity, "-o", "IdentitiesOnly=yes" });
        if (_endpoint.Port is { } port) args.AddRange(new[] { "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        if (_endpoint.User is { } user) args.AddRange(new[] { "-l", user });
        foreach (var option in _options.Options) args.AddRange(new[] { "-o", option });
        // After the user's options: ssh keeps the first value given, so theirs win.
        args.AddRange(new[] { "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=15" });
        args.AddRange(extra);
        args.Add("--");
        args.Add(_endpoint.Host);
        return args;
    }

    void StartMaster(CancellationToken ct)
    {
        // -f: ssh forks into the background once authenticated and the parent exits 0; -E keeps
        // its messages in a file, because the background master would hold a stderr pipe open.
        // The master it leaves keeps the output pipes: what ssh wrote until it exited is all there is.
        var p = ProcessRunner.Run(Start(Arguments("-M", "-N", "-f", "-E", LogPath, "-o", "ControlMaster=yes", "-o", "ControlPersist=60")) with { OutputEndTimeout = TimeSpan.Zero }, ct);
        if (p.ExitCode != 0)
        {
            var log = File.Exists(LogPath) ? File.ReadAllText(LogPath).Trim() : "";
            throw new ContainerException("SshConnectFailed", ContainerErrorKind.DeviceError,
                $"Could not connect to {_endpoint} with ssh (exit code {p.ExitCode}): {(log.Length > 0 ? log : "no message")}. " +
                "The destination needs key access for this user (ssh-copy-id; -IdentityFile) and a known host key (-HostKeyChecking, or UserKnownHostsFile in -SshOption).",
                _endpoint.ToString());
        }
        _master = true;
    }

    ProgramStart Start(List<string> args) => new()
    {
        Program = _options.Program,
        Arguments = args,
        NotFoundErrorId = "SshNotInstalled",
        NotFoundAdvice = "Install the OpenSSH client (apt-get install openssh-client).",
    };

    /// <summary>
    /// Runs <paramref name="command"/> through the remote user's shell, <paramref name="input"/>
    /// writing its stdin (binary safe). Exit code 255 is ssh's own failure and is thrown.
    /// </summary>
    public SshResult Run(string command, Action<Stream>? input = null, CancellationToken ct = default)
    {
        var args = Arguments("-T", "-o", "ControlMaster=no");
        args.Add(command);
        using var p = ProcessRunner.Start(Start(args) with { InputMode = ProgramInput.Pipe }, ct);
        {
            try
            {
                if (input is not null) input(p.StandardInput);
                if (!p.WriteInputAndClose(null)) p.WaitForExit(TimeSpan.FromSeconds(5));
            }
            catch (IOException) when (p.WaitForExit(TimeSpan.FromSeconds(5)))
            {
                // The remote side ended early (a broken pipe): its exit code and stderr tell why.
            }
            var run = p.Wait();
            var result = new SshResult(run.ExitCode, run.Output, run.Error);
            if (result.ExitCode == 255)
                throw new ContainerException("SshFailed", ContainerErrorKind.DeviceError,
                    $"ssh to {_endpoint} failed: {result.StdErr.Trim()}", _endpoint.ToString());
            return result;
        }
    }

    /// <summary>Streams a local file to <paramref name="remotePath"/> (cat &gt; path on the remote); returns the bytes sent.</summary>
    public long Upload(string localPath, string remotePath, Action<long>? progress = null, CancellationToken ct = default)
    {
        long sent = 0;
        var result = Run("cat > " + ShellQuote(remotePath), stdin =>
        {
            using var file = new FileStream(localPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            var buffer = new byte[1 << 20];
            int n;
            while ((n = file.Read(buffer, 0, buffer.Length)) > 0)
            {
                ct.ThrowIfCancellationRequested();
                stdin.Write(buffer, 0, n);
                sent += n;
                progress?.Invoke(sent);
            }
        }, ct);
        if (result.ExitCode != 0)
            throw new ContainerException("TransferFailed", ContainerErrorKind.DeviceError,
                $"Could not write {remotePath} on {_endpoint}: {result.StdErr.Trim()}", remotePath);
        return sent;
    }

    /// <summary>A POSIX shell single-quoted word.</summary>
    public static string ShellQuote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    public void Dispose()
    {
        if (_master)
        {
            _master = false;
            try
            {
                ProcessRunner.Run(Start(Arguments("-O", "exit")) with { Timeout = TimeSpan.FromSeconds(30) });
            }
            catch (ContainerException) { /* ControlPersist ends it */ }
        }
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
