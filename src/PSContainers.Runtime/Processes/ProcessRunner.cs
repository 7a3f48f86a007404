using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace PSContainers.Runtime.Processes;

/// <summary>What the program's stdin is.</summary>
public enum ProgramInput
{
    /// <summary>A pipe closed at once (or after <see cref="ProgramStart.Input"/> is written): the program reads EOF.</summary>
    Closed,
    /// <summary>A pipe the caller writes (<see cref="RunningProgram.StandardInput"/>) and closes.</summary>
    Pipe,
    /// <summary>This process's own stdin.</summary>
    Inherit,
}

/// <summary>What to run and how (see <see cref="ProcessRunner"/>).</summary>
public sealed record ProgramStart
{
    /// <summary>A path, or a name looked up in PATH.</summary>
    public required string Program { get; init; }
    public IReadOnlyList<string> Arguments { get; init; } = Array.Empty<string>();
    /// <summary>What messages call it (default: the program's file name).</summary>
    public string? DisplayName { get; init; }

    /// <summary>Start from an empty environment (then <see cref="Environment"/> only).</summary>
    public bool ClearEnvironment { get; init; }
    /// <summary>Variables to set (a null value removes one).</summary>
    public IReadOnlyDictionary<string, string?>? Environment { get; init; }

    public ProgramInput InputMode { get; init; } = ProgramInput.Closed;
    /// <summary>With <see cref="ProgramInput.Closed"/>: text written to stdin before it is closed.</summary>
    public string? Input { get; init; }

    /// <summary>The caller reads stdout itself (<see cref="RunningProgram.StandardOutput"/>) instead of it being captured.</summary>
    public bool PipeOutput { get; init; }
    /// <summary>stdin, stdout and stderr are this process's (an interactive program on the caller's terminal).</summary>
    public bool InheritStreams { get; init; }

    /// <summary>
    /// How long, once it exited, to wait for the end of its stdout/stderr, which a process it left
    /// behind may hold open: 5 s by default; zero for a program that forks a daemon keeping them
    /// (ssh -f); null: until the end, as a shell pipeline would (a command's output the caller wants whole).
    /// </summary>
    public TimeSpan? OutputEndTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Characters of stdout kept (the first ones; the rest is read and dropped); null: all of it.</summary>
    public int? OutputLimit { get; init; } = 16 << 20;
    /// <summary>Characters of stderr kept: the last ones, since the end of a failure's stderr says why.</summary>
    public int ErrorLimit { get; init; } = 256 << 10;
    /// <summary>Called with each line of stdout / stderr as it arrives (progress, a log tail), from a reader thread.</summary>
    public Action<string>? OnOutputLine { get; init; }
    public Action<string>? OnErrorLine { get; init; }

    /// <summary>How long <see cref="RunningProgram.Wait"/> lets it run before it (and what it started) is killed; null: no limit.</summary>
    public TimeSpan? Timeout { get; init; }
    /// <summary>The error id when the timeout kills it (default ProgramTimedOut) and what the user should do.</summary>
    public string? TimeoutErrorId { get; init; }
    public string? TimeoutAdvice { get; init; }

    /// <summary>The error id when the program cannot be started (default ProgramNotFound) and what the user should do (install what).</summary>
    public string? NotFoundErrorId { get; init; }
    public string? NotFoundAdvice { get; init; }
    /// <summary>The target of the errors (a container name); default the program.</summary>
    public object? Target { get; init; }

    internal string Name => DisplayName ?? Path.GetFileName(Program);
}

/// <summary>A finished program: exit code and what it wrote (as far as the limits kept it).</summary>
public sealed record ProgramResult(string Name, int ExitCode, string Output, string Error, bool OutputTruncated)
{
    public bool Succeeded => ExitCode == 0;

    /// <summary>The last non-empty lines of stderr on one line, at most about <paramref name="maxChars"/>: what a message quotes.</summary>
    public string ErrorTail(int maxChars = 1000) => ProcessRunner.Tail(Error, maxChars);

    /// <summary>
    /// The error for a failed run: "<paramref name="context"/>: NAME failed with exit code N: STDERR-TAIL.
    /// <paramref name="advice"/>" (what the user should do).
    /// </summary>
    public ContainerException Failure(string errorId, ContainerErrorKind kind, string context, string advice, object? target = null)
    {
        var tail = ErrorTail();
        return new ContainerException(errorId, kind,
            $"{context}: {Name} failed with exit code {ExitCode}{(tail.Length > 0 ? ": " + tail.TrimEnd('.') : " and wrote no error message")}. {advice}".TrimEnd(),
            target ?? Name);
    }

    /// <summary>This result when the exit code is 0, else <see cref="Failure"/> thrown.</summary>
    public ProgramResult ThrowIfFailed(string errorId, ContainerErrorKind kind, string context, string advice, object? target = null) =>
        Succeeded ? this : throw Failure(errorId, kind, context, advice, target);
}

/// <summary>
/// The one way the runtime starts external programs (nft, pasta, newuidmap, ssh, debootstrap,
/// psc-usernic, psc-helper, criu, busybox): arguments never through a shell, output captured with
/// limits (stdout's head, stderr's tail) on reader threads so no pipe fills up, a timeout and
/// cancellation that kill the program with what it started, and errors that name the program, its
/// exit code and the end of its stderr. A program that cannot be started is a NotInstalled error.
/// </summary>
public static class ProcessRunner
{
    /// <summary>Runs a program to its end (stdin closed after <see cref="ProgramStart.Input"/>).</summary>
    public static ProgramResult Run(ProgramStart start, CancellationToken cancellationToken = default)
    {
        using var running = Start(start, cancellationToken);
        return running.Wait();
    }

    /// <summary>Starts a program; the caller streams through <see cref="RunningProgram"/> and ends with Wait.</summary>
    public static RunningProgram Start(ProgramStart start, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var redirect = !start.InheritStreams;
        var psi = new ProcessStartInfo(start.Program)
        {
            UseShellExecute = false,
            RedirectStandardInput = redirect && start.InputMode != ProgramInput.Inherit,
            RedirectStandardOutput = redirect,
            RedirectStandardError = redirect,
        };
        if (redirect)
        {
            psi.StandardOutputEncoding = Utf8;
            psi.StandardErrorEncoding = Utf8;
            if (psi.RedirectStandardInput) psi.StandardInputEncoding = Utf8;
        }
        foreach (var a in start.Arguments) psi.ArgumentList.Add(a);
        if (start.ClearEnvironment) psi.Environment.Clear();
        if (start.Environment is not null)
            foreach (var (k, v) in start.Environment)
                if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v;
        Process process;
        try { process = Process.Start(psi) ?? throw new Win32Exception("no process was started"); }
        catch (Win32Exception ex)
        {
            throw new ContainerException(start.NotFoundErrorId ?? "ProgramNotFound", ContainerErrorKind.NotInstalled,
                $"{start.Name} could not be run ({ex.Message}). {start.NotFoundAdvice ?? $"Install it, or check that '{start.Program}' is in PATH and executable."}".TrimEnd(),
                start.Target ?? start.Name, ex);
        }
        return new RunningProgram(start, process, cancellationToken);
    }

    internal static readonly Encoding Utf8 = new UTF8Encoding(false);

    internal static string Tail(string text, int maxChars)
    {
        var lines = text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        var kept = new List<string>();
        var length = 0;
        for (var i = lines.Count - 1; i >= 0 && length < maxChars; i--)
        {
            kept.Insert(0, lines[i]);
            length += lines[i].Length + 1;
        }
        var joined = string.Join(" ", kept);
        return joined.Length > maxChars ? "..." + joined[^maxChars..] : joined;
    }
}

/// <summary>A started program (see <see cref="ProcessRunner.Start"/>). Disposing it kills it if it still runs.</summary>
public sealed class RunningProgram : IDisposable
{
    private readonly ProgramStart _start;
    private readonly Process _process;
    private readonly Capture? _output, _error;
    private readonly CancellationTokenRegistration _cancel;
    private readonly CancellationToken _token;
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    internal RunningProgram(ProgramStart start, Process process, CancellationToken token)
    {
        _start = start;
        _process = process;
        _token = token;
        if (!start.InheritStreams)
        {
            if (!start.PipeOutput) _output = new Capture(process.StandardOutput, start.OutputLimit, keepTail: false, start.OnOutputLine);
            _error = new Capture(process.StandardError, start.ErrorLimit, keepTail: true, start.OnErrorLine);
            if (start.InputMode == ProgramInput.Closed)
            {
                try
                {
                    if (start.Input is not null) process.StandardInput.Write(start.Input);
                    process.StandardInput.Close();
                }
                catch (IOException) { /* it exited without reading: its exit code and stderr say why */ }
            }
        }
        _cancel = token.Register(Kill);
    }

    public string Name => _start.Name;
    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    /// <summary>The program's stdin (<see cref="ProgramInput.Pipe"/>): raw bytes; close it when done.</summary>
    public Stream StandardInput => _process.StandardInput.BaseStream;
    /// <summary>The program's stdout (<see cref="ProgramStart.PipeOutput"/>), UTF-8.</summary>
    public StreamReader StandardOutput => _process.StandardOutput;

    /// <summary>Writes to stdin and closes it; false when the program is gone already (its exit says why).</summary>
    public bool WriteInputAndClose(string? text)
    {
        try
        {
            if (text is not null)
            {
                var bytes = ProcessRunner.Utf8.GetBytes(text);
                StandardInput.Write(bytes, 0, bytes.Length);
            }
            _process.StandardInput.Close();
            return true;
        }
        catch (IOException) { return false; }
    }

    /// <summary>stderr so far (its last <see cref="ProgramStart.ErrorLimit"/> characters).</summary>
    public string Error => _error?.Text ?? "";

    /// <summary>Waits for its exit (and its output's end) up to <paramref name="timeout"/>; false if it still runs.</summary>
    public bool WaitForExit(TimeSpan? timeout = null)
    {
        if (timeout is { } t ? !_process.WaitForExit(t) : !WaitIndefinitely()) return false;
        _process.WaitForExit(); // the Process's own end-of-exit bookkeeping
        // A daemon it left behind may hold the pipes open: what arrived within a moment is what there is.
        var drained = new[] { _output?.Done, _error?.Done }.Where(d => d is not null).Cast<Task>().ToArray();
        if (_start.OutputEndTimeout is { } grace) Task.WaitAll(drained, grace);
        else Task.WaitAll(drained);
        return true;
    }

    private bool WaitIndefinitely()
    {
        _process.WaitForExit(-1);
        return true;
    }

    /// <summary>
    /// Waits for the end within <see cref="ProgramStart.Timeout"/> (counted from the start): past it,
    /// the program and what it started are killed and a timeout error thrown; a cancelled token
    /// throws OperationCanceledException once it is dead. Returns what it wrote and its exit code.
    /// </summary>
    public ProgramResult Wait()
    {
        var left = _start.Timeout is { } limit ? limit - _clock.Elapsed : (TimeSpan?)null;
        if (!WaitForExit(left is { } l ? (l > TimeSpan.Zero ? l : TimeSpan.Zero) : null))
        {
            Kill();
            WaitForExit(TimeSpan.FromSeconds(30));
            _token.ThrowIfCancellationRequested();
            var tail = ProcessRunner.Tail(Error, 1000);
            throw new ContainerException(_start.TimeoutErrorId ?? "ProgramTimedOut", ContainerErrorKind.OperationTimeout,
                $"{Name} did not finish within {_start.Timeout!.Value.TotalSeconds:0.#} s and was killed{(tail.Length > 0 ? " (its last error output: " + tail + ")" : "")}. " +
                (_start.TimeoutAdvice ?? "Check what it waits for (a network, a lock, a prompt) and try again."), _start.Target ?? Name);
        }
        _token.ThrowIfCancellationRequested();
        return new ProgramResult(Name, _process.ExitCode, _output?.Text ?? "", Error, _output?.Truncated ?? false);
    }

    /// <summary>Kills the program and every process it started (still in its tree).</summary>
    public void Kill()
    {
        try { _process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { /* exited already */ }
        catch (Win32Exception) { /* a child exited while the tree was walked; the rest were killed */ }
    }

    public void Dispose()
    {
        _cancel.Dispose();
        try { if (!_process.HasExited) { Kill(); _process.WaitForExit(10_000); } }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }

    /// <summary>Reads one stream to its end on a thread of its own, keeping at most a limit of it.</summary>
    private sealed class Capture
    {
        private readonly StringBuilder _kept = new();
        private readonly StringBuilder _line = new();
        private readonly int? _limit;
        private readonly bool _keepTail;
        private readonly Action<string>? _onLine;
        public bool Truncated { get; private set; }
        public Task Done { get; }

        public Capture(StreamReader reader, int? limit, bool keepTail, Action<string>? onLine)
        {
            _limit = limit;
            _keepTail = keepTail;
            _onLine = onLine;
            Done = Task.Factory.StartNew(() => Pump(reader), TaskCreationOptions.LongRunning);
        }

        public string Text
        {
            get
            {
                lock (_kept)
                {
                    if (_keepTail && _limit is { } limit && _kept.Length > limit)
                    {
                        Truncated = true;
                        return _kept.ToString(_kept.Length - limit, limit);
                    }
                    return _kept.ToString();
                }
            }
        }

        private void Pump(StreamReader reader)
        {
            var buffer = new char[8192];
            try
            {
                int n;
                while ((n = reader.Read(buffer, 0, buffer.Length)) > 0) Add(buffer.AsSpan(0, n));
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException) { /* the pipe went away with the process */ }
            if (_line.Length > 0) _onLine?.Invoke(_line.ToString());
        }

        private void Add(ReadOnlySpan<char> chunk)
        {
            lock (_kept)
            {
                if (_limit is not { } limit) _kept.Append(chunk);
                else if (_keepTail)
                {
                    _kept.Append(chunk);
                    // Trimmed in batches: amortized, and never more than twice the limit held.
                    if (_kept.Length > 2 * limit) { _kept.Remove(0, _kept.Length - limit); Truncated = true; }
                }
                else
                {
                    var room = Math.Max(0, limit - _kept.Length);
                    _kept.Append(chunk[..Math.Min(room, chunk.Length)]);
                    if (chunk.Length > room) Truncated = true;
                }
            }
            if (_onLine is null) return;
            foreach (var c in chunk)
            {
                if (c == '\n' || _line.Length >= 65536)
                {
                    _onLine(_line.ToString().TrimEnd('\r'));
                    _line.Clear();
                    if (c == '\n') continue;
                }
                _line.Append(c);
            }
        }
    }
}
