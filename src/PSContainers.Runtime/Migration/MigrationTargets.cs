using System.Text;
using PSContainers.Runtime.Checkpoint;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;
using PSContainers.Runtime.Filesystem;

namespace PSContainers.Runtime.Migration;

/// <summary>What the receiving side makes of the transferred files.</summary>
/// <param name="Privileged">The source is privileged: so is the destination (the mover, not the transferred config, asks
/// for it); otherwise the destination is user-namespaced on its own ids.</param>
/// <param name="KeepHostAccess">The destination keeps the settings that widen host access (Move-Container -KeepHostAccess).</param>
internal sealed record ReceiveRequest(string Name, string Archive, string? Images, bool Start, bool Privileged = false, bool KeepHostAccess = false);

/// <summary>
/// The receiving side of a migration: a staging directory for the transferred files, the import
/// (and start or restore) under the destination name, and its undo.
/// </summary>
internal abstract class MigrationTarget : IDisposable
{
    /// <summary>A local directory the source writes its archive (and CRIU images) into.</summary>
    public abstract string LocalStaging { get; }
    /// <summary>True once the destination container exists because of this migration (rollback removes it).</summary>
    public bool Imported { get; protected set; }
    /// <summary>What the destination's import warned about (settings removed or kept, owners mapped).</summary>
    public List<string> ReceiveWarnings { get; } = new();

    /// <summary>Checks the destination can take <paramref name="name"/> (and, warm, restore it) before the source is touched.</summary>
    public abstract void Prepare(string name, bool warm, CancellationToken ct);
    /// <summary>Makes a file or directory of <see cref="LocalStaging"/> available at the destination; the bytes moved.</summary>
    public abstract long Send(string localPath, Action<long>? progress, CancellationToken ct);
    /// <summary>Imports, then starts or restores; the destination container's state.</summary>
    public abstract ContainerStatus Receive(ReceiveRequest request, CancellationToken ct);
    /// <summary>Removes what <see cref="Receive"/> made (rollback).</summary>
    public abstract void RemoveImported(string name);
    public abstract void Dispose();

    protected static ContainerException Exists(string name, string where) =>
        new("ContainerExists", ContainerErrorKind.ResourceExists,
            $"A container named '{name}' already exists in {where}. Choose another -NewName, or remove that container first.", name);

    /// <summary>A fresh directory under a store for one migration's files (dot-named: never listed as a container).</summary>
    public static string StagingUnder(string store) => Path.Combine(store, ".migrate", Guid.NewGuid().ToString("N"));

    public static long SizeOf(string path) =>
        Directory.Exists(path)
            ? new DirectoryInfo(path).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length)
            : new FileInfo(path).Length;
}

/// <summary>Another store on this host: the source writes straight into its staging directory.</summary>
internal sealed class LocalTarget : MigrationTarget
{
    readonly IContainerLifecycle _manager;

    public override string LocalStaging { get; }

    public LocalTarget(IContainerLifecycle manager)
    {
        _manager = manager;
        LocalStaging = StagingUnder(manager.Store.Root);
    }

    public override void Prepare(string name, bool warm, CancellationToken ct)
    {
        if (_manager.Exists(name)) throw Exists(name, _manager.Store.Root);
        // (warm: the same CRIU as the source's, already checked there)
        Directory.CreateDirectory(LocalStaging, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public override long Send(string localPath, Action<long>? progress, CancellationToken ct)
    {
        var size = SizeOf(localPath);
        progress?.Invoke(size);
        return size;
    }

    public override ContainerStatus Receive(ReceiveRequest request, CancellationToken ct)
    {
        var imported = ContainerArchive.Import(_manager, request.Archive,
            new ImportOptions { Name = request.Name, Privileged = request.Privileged, Unprivileged = !request.Privileged, KeepHostAccess = request.KeepHostAccess }, null, null, ct);
        ReceiveWarnings.AddRange(imported.Warnings);
        Imported = true;
        if (request.Images is not null) return new CheckpointManager(_manager).Restore(request.Images, null, new RestoreOptions()).State;
        return request.Start ? _manager.Start(request.Name).State : _manager.Get(request.Name).State;
    }

    public override void RemoveImported(string name)
    {
        if (Imported && _manager.Exists(name)) _manager.Remove(name, force: true);
        Imported = false;
    }

    public override void Dispose()
    {
        FsNative.DeleteTree(LocalStaging);
        try { Directory.Delete(Path.GetDirectoryName(LocalStaging)!); } catch (IOException) { /* other migrations' staging */ }
    }
}

/// <summary>
/// A store on another host over SSH: files are streamed with cat over one multiplexed connection,
/// and the steps run there by the remote PowerShell with the PSContainers module. Each script
/// reports back on stdout in "PSC-MIGRATE KIND base64" lines, so that whatever else pwsh prints
/// cannot be mistaken for a result and a remote error comes back with its id, category and message.
/// </summary>
internal sealed class SshTarget : MigrationTarget
{
    const string Marker = "PSC-MIGRATE ";
    readonly SshConnection _ssh;
    readonly MigrationDestination _destination;
    readonly SshOptions _options;
    string? _remoteStaging;

    public override string LocalStaging { get; }

    public SshTarget(SshConnection ssh, MigrationDestination destination, SshOptions options, string localStagingParent)
    {
        _ssh = ssh;
        _destination = destination;
        _options = options;
        LocalStaging = StagingUnder(localStagingParent);
        Directory.CreateDirectory(LocalStaging, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    string Where => $"{_destination.StorePath} on {_destination.Ssh!.Host}";

    public override void Prepare(string name, bool warm, CancellationToken ct)
    {
        // Warm: the remote module must have Restore-Container, and its CRIU must pass its checks,
        // before the source is checkpointed.
        var criu = warm ? """
            $null = Get-Command Restore-Container
            $null = [PSContainers.Runtime.Checkpoint.CriuService]::Require($null)
            """ : "";
        var result = RunScript($$"""
            if (Get-Container -Name {{Quote(name)}} -StorePath $store -ErrorAction Ignore) {
                Emit 'ERROR' ("ContainerExists`tResourceExists`t" + {{Quote($"A container named '{name}' already exists in {Where}. Choose another -NewName, or remove that container first.")}})
                exit 1
            }
            {{criu}}
            $dir = [IO.Path]::Combine($store, '.migrate', [guid]::NewGuid().ToString('N'))
            $null = [IO.Directory]::CreateDirectory($dir)
            Emit 'OK' $dir
            """, name, ct);
        _remoteStaging = result;
    }

    public override long Send(string localPath, Action<long>? progress, CancellationToken ct)
    {
        var remote = Remote(localPath);
        if (!Directory.Exists(localPath)) return _ssh.Upload(localPath, remote, progress, ct);
        // A directory (CRIU images): its tree made in one command, then each file streamed.
        var files = Directory.EnumerateFiles(localPath, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        var dirs = Directory.EnumerateDirectories(localPath, "*", SearchOption.AllDirectories).Select(Remote).Prepend(remote);
        Check(_ssh.Run("mkdir -p -- " + string.Join(' ', dirs.Select(SshConnection.ShellQuote)), null, ct), "create directories");
        long total = 0;
        foreach (var file in files)
        {
            var before = total;
            total += _ssh.Upload(file, Remote(file), sent => progress?.Invoke(before + sent), ct);
        }
        return total;
    }

    /// <summary>The remote path of a file under <see cref="LocalStaging"/>.</summary>
    string Remote(string local) => _remoteStaging + "/" + Path.GetRelativePath(LocalStaging, local).Replace('\\', '/');

    const string EmitWarnings = "foreach ($w in $pscWarnings) { Emit 'WARNING' ([string]$w) }";

    public override ContainerStatus Receive(ReceiveRequest request, CancellationToken ct)
    {
        var name = Quote(request.Name);
        var then = request.Images is not null
            ? $"$c = Restore-Container -Path {Quote(Remote(request.Images))} -StorePath $store -PassThru -Confirm:$false"
            : request.Start ? $"$c = Start-Container -Name {name} -StorePath $store -PassThru -Confirm:$false" : $"$c = Get-Container -Name {name} -StorePath $store";
        try
        {
            var state = RunScript($"""
                $null = Import-Container -Path {Quote(Remote(request.Archive))} -Name {name} -StorePath $store -Confirm:$false{(request.Privileged ? " -Privileged" : " -Unprivileged")}{(request.KeepHostAccess ? " -KeepHostAccess -Force" : "")} -WarningVariable pscWarnings -WarningAction SilentlyContinue
                {EmitWarnings}
                Emit 'IMPORTED' {name}
                {then}
                Emit 'OK' ([string]$c.State)
                """, request.Name, ct, onImported: () => Imported = true);
            return Enum.Parse<ContainerStatus>(state);
        }
        catch (ArgumentException)
        {
            throw new ContainerException("RemoteProtocolError", ContainerErrorKind.InvalidData,
                $"The remote PowerShell on {_destination.Ssh!.Host} reported an unknown container state. Is the same PSContainers version installed there?", request.Name);
        }
    }

    public override void RemoveImported(string name)
    {
        if (!Imported) return;
        RunScript($$"""
            if (Get-Container -Name {{Quote(name)}} -StorePath $store -ErrorAction Ignore) { Remove-Container -Name {{Quote(name)}} -StorePath $store -Force -Confirm:$false }
            Emit 'OK' ''
            """, name, CancellationToken.None);
        Imported = false;
    }

    public override void Dispose()
    {
        try
        {
            if (_remoteStaging is not null)
                _ssh.Run($"rm -rf -- {SshConnection.ShellQuote(_remoteStaging)}; rmdir -- {SshConnection.ShellQuote(_remoteStaging[.._remoteStaging.LastIndexOf('/')])} 2>/dev/null; true");
        }
        catch (ContainerException) { /* the connection is gone: nothing more can be cleaned there */ }
        finally
        {
            FsNative.DeleteTree(LocalStaging);
            try { Directory.Delete(Path.GetDirectoryName(LocalStaging)!); } catch (IOException) { }
            _ssh.Dispose();
        }
    }

    /// <summary>A PowerShell single-quoted string.</summary>
    static string Quote(string s) => "'" + s.Replace("'", "''", StringComparison.Ordinal) + "'";

    void Check(SshResult result, string what)
    {
        if (result.ExitCode != 0)
            throw new ContainerException("RemoteCommandFailed", ContainerErrorKind.DeviceError,
                $"Could not {what} on {_destination.Ssh!.Host}: {result.StdErr.Trim()}", _destination.ToString());
    }

    /// <summary>
    /// Runs <paramref name="body"/> in the remote PowerShell after importing the module, and returns
    /// what it reported with Emit 'OK'. `pwsh -Command -` reads stdin statement by statement, like a
    /// prompt; so the script travels as one line that decodes and runs it as a whole.
    /// </summary>
    string RunScript(string body, string target, CancellationToken ct, Action? onImported = null)
    {
        var script = $$"""
            $ErrorActionPreference = 'Stop'
            $ProgressPreference = 'SilentlyContinue'
            function Emit([string]$kind, [string]$text) { '{{Marker}}' + $kind + ' ' + [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($text)) }
            trap {
                $e = $_.Exception
                while ($e -is [Management.Automation.MethodInvocationException] -and $e.InnerException) { $e = $e.InnerException }
                if ($e.GetType().FullName -eq 'PSContainers.Runtime.ContainerException') { Emit 'ERROR' ($e.ErrorId + "`t" + $e.Kind + "`t" + $e.Message) }
                else { Emit 'ERROR' ((($_.FullyQualifiedErrorId -split ',')[0]) + "`t" + $_.CategoryInfo.Category + "`t" + $e.Message) }
                exit 1
            }
            Import-Module {{Quote(_options.RemoteModule)}}
            $store = {{Quote(_destination.StorePath)}}
            {{body}}
            """;
        var line = "& ([scriptblock]::Create([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('" +
                   Convert.ToBase64String(Encoding.UTF8.GetBytes(script)) + "'))))\n\n";
        var command = _options.RemotePowerShell + " -NoProfile -NonInteractive -Command -";
        var result = _ssh.Run(command, stdin => stdin.Write(Encoding.UTF8.GetBytes(line)), ct);
        string? ok = null;
        foreach (var raw in result.StdOut.Split('\n'))
        {
            var text = raw.TrimEnd('\r');
            if (!text.StartsWith(Marker, StringComparison.Ordinal)) continue;
            var parts = text[Marker.Length..].Split(' ', 2);
            string value;
            try { value = parts.Length == 2 ? Encoding.UTF8.GetString(Convert.FromBase64String(parts[1])) : ""; }
            catch (FormatException) { continue; }
            switch (parts[0])
            {
                case "IMPORTED": onImported?.Invoke(); break;
                case "WARNING": ReceiveWarnings.Add($"On {_destination.Ssh!.Host}: {value}"); break;
                case "OK": ok = value; break;
                case "ERROR":
                    var e = value.Split('\t', 3);
                    var kind = Enum.TryParse<ContainerErrorKind>(e.ElementAtOrDefault(1), out var k) ? k : ContainerErrorKind.InvalidOperation;
                    throw new ContainerException(string.IsNullOrEmpty(e[0]) ? "RemoteError" : e[0], kind,
                        $"On {_destination.Ssh!.Host}: {e.ElementAtOrDefault(2) ?? value}", target);
            }
        }
        if (ok is not null) return ok;
        var stderr = result.StdErr.Trim();
        throw new ContainerException("RemotePowerShellFailed", result.ExitCode == 127 ? ContainerErrorKind.NotInstalled : ContainerErrorKind.InvalidOperation,
            $"The remote PowerShell ('{command}' on {_destination.Ssh!.Host}) exited with code {result.ExitCode} without a result" +
            (stderr.Length > 0 ? $": {stderr}" : ".") +
            " The destination needs pwsh and the PSContainers module (-RemotePowerShell, -RemoteModulePath).", target);
    }
}
