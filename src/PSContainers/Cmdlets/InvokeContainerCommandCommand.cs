using System.Collections;
using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;

namespace PSContainers.Cmdlets;

/// <summary>Namespaces a user can choose to enter (lxc-attach -s): the names of /proc/PID/ns.</summary>
public enum ContainerNamespace { Mount, Pid, Uts, Ipc, Network, Cgroup, User }

internal static class NamespaceSelection
{
    public static NamespaceKind ToKind(ContainerNamespace[]? selection) =>
        selection is null ? NamespaceKind.None : selection.Aggregate(NamespaceKind.None, (acc, ns) => acc | ns switch
        {
            ContainerNamespace.Mount => NamespaceKind.Mount,
            ContainerNamespace.Pid => NamespaceKind.Pid,
            ContainerNamespace.Uts => NamespaceKind.Uts,
            ContainerNamespace.Ipc => NamespaceKind.Ipc,
            ContainerNamespace.Network => NamespaceKind.Network,
            ContainerNamespace.Cgroup => NamespaceKind.Cgroup,
            _ => NamespaceKind.User,
        });
}

/// <summary>
/// lxc-attach -- prog args: runs a program (no shell) inside a running container, in all of its
/// namespaces or the chosen ones, and returns its exit code and output lines.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "ContainerCommand", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ContainerCommandResult))]
public sealed class InvokeContainerCommandCommand : NameCmdlet
{
    /// <summary>Program and arguments, e.g. -Command ls,-l,/ (no shell is involved).</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string[] Command { get; set; } = Array.Empty<string>();

    /// <summary>Enter only these namespaces (default: all of the container's).</summary>
    [Parameter]
    public ContainerNamespace[]? Namespace { get; set; }

    [Parameter]
    public string? WorkingDirectory { get; set; }

    /// <summary>Extra environment variables for the command.</summary>
    [Parameter]
    public Hashtable? Environment { get; set; }

    /// <summary>The command's environment is only -Environment (and a PATH), not the container's (lxc-attach --clear-env).</summary>
    [Parameter]
    public SwitchParameter ClearEnvironment { get; set; }

    /// <summary>Standard input from the pipeline: strings as lines ending in \n, bytes as they are.</summary>
    [Parameter(ValueFromPipeline = true)]
    public object? InputObject { get; set; }

    /// <summary>Standard input from a file.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? InputFile { get; set; }

    /// <summary>Run as this user of the container: a name from its /etc/passwd, or a uid.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? User { get; set; }

    /// <summary>Run with this group of the container: a name from its /etc/group, or a gid.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Group { get; set; }

    /// <summary>Seconds after which the command (its process group) is killed.</summary>
    [Parameter]
    [ValidateRange(0.001, 31_536_000.0)]
    public double? Timeout { get; set; }

    /// <summary>Give the command a terminal (a pty of the container), non-interactively: its output is read back through it.</summary>
    [Parameter]
    public SwitchParameter Tty { get; set; }

    private readonly CancellationTokenSource _cancel = new();
    private MemoryStream? _input;
    private bool _inputFromPipeline;

    protected override void BeginProcessing()
    {
        base.BeginProcessing();
        // -Name on the command line and something piped: the pipeline is the command's input, run once at the end.
        _inputFromPipeline = MyInvocation.ExpectingInput && MyInvocation.BoundParameters.ContainsKey(nameof(Name));
        if (_inputFromPipeline && InputFile is not null)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("Give the command's input either from the pipeline or with -InputFile, not both."),
                "InputConflict", ErrorCategory.InvalidArgument, InputFile));
    }

    protected override void ProcessRecord()
    {
        if (!_inputFromPipeline) { Run(InputFile is null ? null : OpenInputFile()); return; }
        _input ??= new MemoryStream();
        Append(_input, InputObject);
    }

    protected override void EndProcessing()
    {
        if (!_inputFromPipeline) return;
        _input ??= new MemoryStream();
        _input.Position = 0;
        Run(_input);
    }

    private void Run(Stream? input)
    {
        var env = Environment?.Cast<DictionaryEntry>().ToDictionary(e => e.Key.ToString()!, e => e.Value?.ToString() ?? "");
        var options = new ExecOptions
        {
            User = User,
            Group = Group,
            ClearEnvironment = ClearEnvironment,
            Timeout = Timeout is { } t ? TimeSpan.FromSeconds(t) : null,
            Terminal = Tty,
        };
        try
        {
            ForEachContainer($"Run '{string.Join(' ', Command)}'", name =>
            {
                if (input is { CanSeek: true }) input.Position = 0;
                WriteObject(Manager.Exec(name, Command, NamespaceSelection.ToKind(Namespace), WorkingDirectory, env, _cancel.Token, options with { Input = input }));
            });
        }
        finally { if (input is FileStream) input.Dispose(); }
    }

    private FileStream OpenInputFile()
    {
        var path = GetResolvedProviderPathFromPSPath(InputFile!, out _).Single();
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    /// <summary>Strings (and other objects, as text) are lines, each ending in \n, as a native pipe gets them; bytes are written as they are.</summary>
    private static void Append(MemoryStream stream, object? item)
    {
        switch (item is PSObject p ? p.BaseObject : item)
        {
            case null: return;
            case byte b: stream.WriteByte(b); return;
            case byte[] bytes: stream.Write(bytes); return;
            case string s:
                var text = System.Text.Encoding.UTF8.GetBytes(s + "\n");
                stream.Write(text);
                return;
            case IEnumerable e:
                foreach (var x in e) Append(stream, x);
                return;
            case var other:
                stream.Write(System.Text.Encoding.UTF8.GetBytes(other.ToString() + "\n"));
                return;
        }
    }

    protected override void StopProcessing() => _cancel.Cancel();
}

/// <summary>
/// lxc-attach with a terminal: an interactive shell inside the container on this console; or, with
/// -Console, lxc-console -t 0: this terminal attached to the container's console until the detach key.
/// </summary>
[Cmdlet(VerbsCommon.Enter, "Container", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, DefaultParameterSetName = CommandSet)]
[OutputType(typeof(void))]
public sealed class EnterContainerCommand : ContainerCmdlet
{
    private const string CommandSet = "Command", ConsoleSet = "Console";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    /// <summary>What to run (default /bin/sh -l).</summary>
    [Parameter(Position = 1, ParameterSetName = CommandSet)]
    [ValidateNotNullOrEmpty]
    public string[] Command { get; set; } = { "/bin/sh", "-l" };

    [Parameter(ParameterSetName = CommandSet)]
    public ContainerNamespace[]? Namespace { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    public string? WorkingDirectory { get; set; }

    /// <summary>Extra environment variables for the shell.</summary>
    [Parameter(ParameterSetName = CommandSet)]
    public Hashtable? Environment { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    public SwitchParameter ClearEnvironment { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    [ValidateNotNullOrEmpty]
    public string? User { get; set; }

    [Parameter(ParameterSetName = CommandSet)]
    [ValidateNotNullOrEmpty]
    public string? Group { get; set; }

    /// <summary>Attach to the container's console (what its init reads and writes) instead of running a command.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ConsoleSet)]
    public SwitchParameter Console { get; set; }

    /// <summary>The detach prefix: Ctrl+this letter, then q (default a, as lxc-console).</summary>
    [Parameter(ParameterSetName = ConsoleSet)]
    [ValidateLength(1, 1)]
    public string EscapeKey { get; set; } = ContainerConsole.DefaultEscapeKey.ToString();

    protected override void ProcessRecord()
    {
        if (Console)
        {
            if (!ShouldProcess(Name, "Attach to the container's console")) return;
            Try(() =>
            {
                var end = new ContainerConsole(Manager).Attach(Name, EscapeKey[0]);
                if (end == ConsoleDetach.ContainerStopped) WriteWarning($"Container '{Name}' stopped: its console closed.");
                else WriteVerbose($"Detached from the console of container '{Name}' ({end}).");
            });
            return;
        }
        if (!ShouldProcess(Name, "Enter container")) return;
        Try(() =>
        {
            var env = Environment?.Cast<DictionaryEntry>().ToDictionary(e => e.Key.ToString()!, e => e.Value?.ToString() ?? "");
            var options = new ExecOptions { User = User, Group = Group, ClearEnvironment = ClearEnvironment };
            using var process = Manager.StartInteractive(Name, Command, NamespaceSelection.ToKind(Namespace), WorkingDirectory, env, options);
            process.WaitForExit();
            SessionState.PSVariable.Set("LASTEXITCODE", process.ExitCode);
        });
    }
}

/// <summary>
/// The container's console output (what its init wrote to /dev/console), like lxc-console's log
/// and docker logs: control characters made visible unless -Raw, each line tagged with its
/// container, -Wait to follow.
/// </summary>
[Cmdlet(VerbsCommon.Get, "ContainerConsoleLog")]
[OutputType(typeof(string))]
public sealed class GetContainerConsoleLogCommand : NameCmdlet
{
    /// <summary>Only the last N lines (with -Wait: then the new ones).</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? Tail { get; set; }

    /// <summary>Keep reading new lines as they are written, until Ctrl+C or until every followed container has stopped (like Get-Content -Wait, docker logs -f).</summary>
    [Parameter]
    public SwitchParameter Wait { get; set; }

    /// <summary>The lines exactly as the container wrote them, escape sequences and carriage returns included (they act on your terminal).</summary>
    [Parameter]
    public SwitchParameter Raw { get; set; }

    private readonly List<string> _follow = new();
    private readonly CancellationTokenSource _cancel = new();

    protected override void ProcessRecord()
    {
        foreach (var name in ResolveNames(Name))
        {
            if (Wait) { if (!_follow.Contains(name)) _follow.Add(name); }
            else Try(() => { foreach (var line in Manager.ReadConsoleLog(name, Tail, Raw)) WriteLine(name, line); });
        }
    }

    protected override void EndProcessing()
    {
        if (!Wait || _follow.Count == 0) return;
        var readers = new Dictionary<string, PSContainers.Runtime.Containers.ConsoleLogReader>();
        try
        {
            foreach (var name in _follow)
                Try(() =>
                {
                    var reader = Manager.OpenConsoleLog(name, Raw);
                    readers[name] = reader;
                    var lines = reader.ReadLines();
                    foreach (var line in Tail is { } n && n < lines.Count ? lines.GetRange(lines.Count - n, n) : lines) WriteLine(name, line);
                });
            // Woken by inotify on the containers' directories (console.log written, rotated or
            // truncated; the supervisor's exit record; state.json), not by polling the files. The
            // status is read again when something other than the log changed, and at least every
            // few seconds; without inotify (no instance left) every half second instead.
            using var watch = Inotify.TryCreate();
            var watched = watch is not null && readers.Keys.All(n => watch.Add(Manager.Store.ContainerDirectory(n),
                Inotify.Modify | Inotify.CloseWrite | Inotify.Create | Inotify.MovedTo | Inotify.MovedFrom | Inotify.Delete | Inotify.DeleteSelf | Inotify.Attrib));
            if (!watched) WriteVerbose("inotify is not available: the console logs are checked every 0.5 s.");
            using var stop = _cancel.Token.Register(() => watch?.Wake());
            var checkStatus = true;
            while (readers.Count > 0 && !_cancel.IsCancellationRequested)
            {
                foreach (var (name, reader) in readers.ToList())
                {
                    // Stopped (or removed): what is left is written, then that container is done.
                    var done = false;
                    if (checkStatus)
                        try { done = Manager.Get(name).State is not (PSContainers.Runtime.State.ContainerStatus.Running or PSContainers.Runtime.State.ContainerStatus.Frozen); }
                        catch (PSContainers.Runtime.ContainerException) { done = true; }
                    foreach (var line in reader.ReadLines(final: done)) WriteLine(name, line);
                    if (done)
                    {
                        WriteVerbose($"Container '{name}' is no longer running: its console log is complete.");
                        reader.Dispose();
                        readers.Remove(name);
                    }
                }
                if (readers.Count == 0) break;
                if (!watched) { _cancel.Token.WaitHandle.WaitOne(500); checkStatus = true; continue; }
                var changes = watch!.Wait(TimeSpan.FromSeconds(5));
                if (changes is null) break; // Ctrl+C
                checkStatus = changes.Count == 0 || changes.Any(c => c.Name is not ("console.log" or "console.log.1"));
            }
        }
        finally
        {
            foreach (var reader in readers.Values) reader.Dispose();
        }
    }

    protected override void StopProcessing() => _cancel.Cancel();

    /// <summary>A line is a string (as Get-Content's are), tagged with its container, as Get-Content tags its lines with their file.</summary>
    private void WriteLine(string name, string line)
    {
        var o = new PSObject(line);
        o.Properties.Add(new PSNoteProperty("ContainerName", name));
        WriteObject(o);
    }
}
