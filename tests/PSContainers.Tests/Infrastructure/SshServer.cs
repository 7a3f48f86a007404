using System.Diagnostics;
using System.Net.Sockets;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.Network;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// A real OpenSSH server for migration tests, reachable only inside what the test made: sshd runs
/// in a network namespace of its own (joined with nsenter --net, so it shares this host's mounts
/// and cgroups, like another host's sshd would have its own), listening on a test port of the
/// namespace end of a veth pair whose host end carries the other address of a random /30. Host
/// key, client key, authorized_keys and known_hosts are made by ssh-keygen in a temporary
/// directory; root may log in by key only, without PAM. Dispose kills sshd and removes
/// the keys, the veth pair and the namespace.
/// </summary>
public sealed class SshServer : IDisposable
{
    public const int Port = 2222;
    private readonly NetLab _lab = new();
    private readonly Process? _sshd;
    private readonly bool _madePrivsepDirectory;

    public string Directory { get; }
    /// <summary>The server's address (inside the namespace).</summary>
    public string Address { get; }
    public string IdentityFile => Path.Combine(Directory, "id_ed25519");
    public string KnownHostsFile => Path.Combine(Directory, "known_hosts");
    public string LogFile => Path.Combine(Directory, "sshd.log");

    // StrictModes no: the keys live under /tmp, which (world-writable) sshd would otherwise refuse to trust.

    /// <summary>The destination URI of a store path "on" this server.</summary>
    public string Uri(string storePath, string user = "root") => $"ssh://{user}@{Address}:{Port}{storePath}";

    public SshServer()
    {
        Directory = Path.Combine(Path.GetTempPath(), "psc-test-ssh-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            var subnet = Random.Shared.Next(0, 64) * 4;
            var third = Random.Shared.Next(1, 255);
            var hostAddress = $"10.254.{third}.{subnet + 1}";
            Address = $"10.254.{third}.{subnet + 2}";
            var ns = _lab.NewNamespace("ssh");
            var hostEnd = _lab.HostLink("s");
            using (var host = NetworkClient.Host())
            {
                host.CreateVeth(hostEnd, "eth0", NetworkLocation.ForNamespace(ns));
                host.AddAddress(hostEnd, hostAddress + "/30");
                host.SetLink(hostEnd, new LinkChanges { Up = true });
            }
            using (var inner = new NetworkClient(NetworkLocation.ForNamespace(ns)))
            {
                inner.AddAddress("eth0", Address + "/30");
                inner.SetLink("eth0", new LinkChanges { Up = true });
            }

            HostCommand.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "psc-test-host", "-f", Path.Combine(Directory, "host_key"));
            HostCommand.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "psc-test-client", "-f", IdentityFile);
            File.Copy(IdentityFile + ".pub", Path.Combine(Directory, "authorized_keys"));
            var hostKey = File.ReadAllText(Path.Combine(Directory, "host_key.pub")).Trim().Split(' ');
            File.WriteAllText(KnownHostsFile, $"[{Address}]:{Port} {hostKey[0]} {hostKey[1]}\n");
            var config = Path.Combine(Directory, "sshd_config");
            File.WriteAllText(config, $"""
                Port {Port}
                ListenAddress {Address}
                HostKey {Path.Combine(Directory, "host_key")}
                AuthorizedKeysFile {Path.Combine(Directory, "authorized_keys")}
                PidFile {Path.Combine(Directory, "sshd.pid")}
                PermitRootLogin prohibit-password
                PubkeyAuthentication yes
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                UsePAM no
                StrictModes no
                AllowTcpForwarding no
                X11Forwarding no
                MaxSessions 20
                LogLevel VERBOSE

                """);
            // sshd insists on its privilege separation directory, which Debian makes only when the service starts.
            _madePrivsepDirectory = !System.IO.Directory.Exists("/run/sshd");
            if (_madePrivsepDirectory) System.IO.Directory.CreateDirectory("/run/sshd", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var psi = new ProcessStartInfo("nsenter") { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "--net=" + NetNamespaces.PathOf(ns), "/usr/sbin/sshd", "-D", "-f", config, "-E", LogFile })
                psi.ArgumentList.Add(a);
            _sshd = Process.Start(psi)!;
            WaitListening();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void WaitListening()
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            if (_sshd!.HasExited)
                throw new InvalidOperationException($"sshd exited ({_sshd.ExitCode}): {_sshd.StandardError.ReadToEnd()} {(File.Exists(LogFile) ? File.ReadAllText(LogFile) : "")}");
            try
            {
                using var client = new TcpClient();
                client.Connect(Address, Port);
                return;
            }
            catch (SocketException) { Thread.Sleep(50); }
        }
        throw new TimeoutException("sshd did not listen within 20 s");
    }

    /// <summary>The ssh client processes still using a control socket of a migration (should be none after one).</summary>
    /// <summary>
    /// The migration's ssh processes still there after <paramref name="grace"/> (default 5 s): a
    /// ControlMaster told to exit (ssh -O exit) ends shortly after the command returns, not at once.
    /// </summary>
    public static IReadOnlyList<int> MigrationSshProcessesAfter(TimeSpan? grace = null)
    {
        var deadline = DateTime.UtcNow + (grace ?? TimeSpan.FromSeconds(5));
        var left = MigrationSshProcesses();
        while (left.Count > 0 && DateTime.UtcNow < deadline) { Thread.Sleep(50); left = MigrationSshProcesses(); }
        return left;
    }

    public static IReadOnlyList<int> MigrationSshProcesses() =>
        System.IO.Directory.EnumerateDirectories("/proc").Select(Path.GetFileName)
            .Where(d => int.TryParse(d, out _))
            .Where(d =>
            {
                try { return File.ReadAllText($"/proc/{d}/cmdline").Contains("psc-ssh-"); }
                catch (IOException) { return false; }
            })
            .Select(int.Parse!).ToList();

    public void Dispose()
    {
        if (_sshd is { HasExited: false })
        {
            // sshd -D stays in the foreground as this child (nsenter execs it): its pid is ours.
            try { Sys.Kill(_sshd.Id, 15); } catch (Exception) { }
            if (!_sshd.WaitForExit(5000)) _sshd.Kill();
        }
        _sshd?.Dispose();
        _lab.Dispose();
        if (_madePrivsepDirectory) try { System.IO.Directory.Delete("/run/sshd"); } catch (IOException) { }
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (Exception) { }
    }
}
