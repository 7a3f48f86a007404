using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Processes;

namespace PSContainers.Runtime.Launcher;

/// <summary>Output of a program run through the helper.</summary>
public sealed record HelperResult(int ExitCode, string[] Output, string[] Error);

/// <summary>
/// Locates and runs psc-helper, the small single-threaded native program that does what a
/// multi-threaded .NET process cannot: clone into new namespaces, pivot_root, setns, exec.
/// </summary>
public static class PscHelper
{
    public const string EnvironmentVariable = "PSCONTAINERS_HELPER";
    public const string FileName = "psc-helper";

    /// <summary>Set by the PowerShell module to the helper beside its assembly.</summary>
    public static string? ConfiguredPath { get; set; }

    public static string Path
    {
        get
        {
            var candidates = new[]
            {
                Environment.GetEnvironmentVariable(EnvironmentVariable),
                ConfiguredPath,
                System.IO.Path.Combine(AppContext.BaseDirectory, FileName),
                System.IO.Path.Combine(System.IO.Path.GetDirectoryName(typeof(PscHelper).Assembly.Location) ?? "", FileName),
            };
            foreach (var c in candidates)
                if (!string.IsNullOrEmpty(c) && File.Exists(c)) return c;
            throw new ContainerException("HelperNotFound", ContainerErrorKind.NotInstalled,
                $"The native helper '{FileName}' was not found (looked in: {string.Join(", ", candidates.Where(c => !string.IsNullOrEmpty(c)))}). " +
                $"Rebuild the module with 'dotnet build -c Release', or point ${EnvironmentVariable} at it.");
        }
    }

    /// <summary>Runs the helper with the spec on stdin, capturing stdout and stderr as lines.</summary>
    public static HelperResult Run(HelperSpec spec, CancellationToken cancellationToken = default) => Run(spec, null, cancellationToken);

    /// <summary>
    /// Runs the helper with the spec on stdin and then <paramref name="input"/> (the helper reads
    /// exactly the spec, so what follows is the program's standard input), written concurrently
    /// with the capture of the output so that a program echoing its input never blocks.
    /// </summary>
    public static HelperResult Run(HelperSpec spec, Stream? input, CancellationToken cancellationToken = default)
    {
        // Its output is the command's output the caller asked for: kept whole, as a pipe would pass it.
        using var process = Launch(spec.HelperCommand, pipeOutput: false);
        SendSpec(process, spec, closeAfter: input is null);
        var writer = input is null ? null : Task.Run(() =>
        {
            try { input.CopyTo(process.StandardInput); }
            catch (IOException) { /* the program stopped reading: what it got is its input */ }
            process.WriteInputAndClose(null);
        });
        // Cancelled, it is killed (with what it started) and what it wrote until then is the result.
        ProgramResult result;
        using (cancellationToken.Register(process.Kill)) result = process.Wait();
        writer?.Wait(TimeSpan.FromSeconds(5));
        return new HelperResult(result.ExitCode, Lines(result.Output), Lines(result.Error));
    }

    /// <summary>
    /// psc-helper start. With <paramref name="whilePaused"/>, the new init waits in its namespaces
    /// (before its mounts and exec) while the callback runs with (supervisor pid, init pid): that
    /// is where host-side set-up that needs the namespaces, like network interfaces, happens. If
    /// the callback throws, the start is aborted (init killed) and the exception rethrown. On
    /// success the output's one line is a <see cref="HelperProtocol.Started"/>.
    /// </summary>
    public static HelperResult Start(StartSpec spec, Action<int, int>? whilePaused)
    {
        spec.PauseBeforeExec = whilePaused is not null;
        return Supervise(spec, HelperProtocol.StartPaused.Matches, HelperProtocol.StartPaused.Parse, whilePaused is null ? null : paused =>
        {
            whilePaused(paused.Supervisor, paused.Init);
            return new HelperProtocol.Go().Format();
        });
    }

    /// <summary>
    /// psc-helper userns-tree: without id maps in the spec, the child waits in its new user
    /// namespace while <paramref name="whilePaused"/> runs with (helper pid, child pid) and writes
    /// them; if it throws, the helper is answered abort and the exception rethrown.
    /// </summary>
    public static HelperResult RunPausing(UsernsTreeSpec spec, Action<int, int>? whilePaused) =>
        Supervise(spec, HelperProtocol.TreePaused.Matches, HelperProtocol.TreePaused.Parse, whilePaused is null ? null : paused =>
        {
            whilePaused(paused.Parent, paused.Child);
            return new HelperProtocol.Go().Format();
        });

    /// <summary>
    /// psc-helper restore: <paramref name="whilePaused"/> drives criu while the supervisor waits, and
    /// names the init criu restored; a throwing callback answers abort and the exception is rethrown
    /// once the helper has exited. On success the output's one line is a <see cref="HelperProtocol.Started"/>.
    /// </summary>
    public static HelperResult Restore(RestoreSpec spec, Func<HelperProtocol.RestorePaused, HelperProtocol.GoRestored> whilePaused) =>
        Supervise(spec, HelperProtocol.RestorePaused.Matches, HelperProtocol.RestorePaused.Parse, paused => whilePaused(paused).Format());

    /// <summary>
    /// Runs a command that may report a paused line and wait for the answer <paramref name="whilePaused"/>
    /// returns; a throwing callback answers abort and the exception is rethrown once the helper has exited.
    /// </summary>
    private static HelperResult Supervise<TPaused>(HelperSpec spec, Func<string, bool> isPaused, Func<string, TPaused> parse, Func<TPaused, string>? whilePaused)
    {
        using var process = Launch(spec.HelperCommand, pipeOutput: true);
        SendSpec(process, spec, closeAfter: whilePaused is null);
        var output = new List<string>();
        string? line;
        while ((line = process.StandardOutput.ReadLine()) is not null)
        {
            if (!isPaused(line) || whilePaused is null)
            {
                output.Add(line);
                continue;
            }
            string answer;
            try
            {
                answer = whilePaused(parse(line));
            }
            catch
            {
                // The supervisor kills what the helper started (a restore: criu and every restored
                // task) within seconds; a helper that still has not answered after a minute is killed.
                process.WriteInputAndClose(new HelperProtocol.Abort().Format() + "\n");
                if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
                {
                    process.Kill();
                    process.WaitForExit(TimeSpan.FromSeconds(10));
                }
                throw;
            }
            // A helper already gone: its exit status says why.
            process.WriteInputAndClose(answer + "\n");
        }
        var result = process.Wait();
        return new HelperResult(result.ExitCode, output.ToArray(), Lines(result.Error));
    }

    private static readonly object SealedLock = new();
    private static (string Source, string? Copy)? sealedCopy;

    /// <summary>
    /// What to execute for <paramref name="command"/>. `exec` joins a running container, whose
    /// processes could open /proc/PID/exe of the helper (CVE-2019-5736): it must run from a sealed
    /// copy. The helper makes one itself when started from its file (about 2 ms per attach); a copy
    /// made once per process and executed through /proc/self/fd saves that on every attach.
    /// </summary>
    private static string ExecutableFor(string command)
    {
        var path = Path;
        if (command != "exec") return path;
        lock (SealedLock)
        {
            if (sealedCopy is not { } cached || cached.Source != path)
                sealedCopy = cached = (path, Native.Sys.SealedExecutableCopy(path, FileName));
            return cached.Copy ?? path;
        }
    }

    private static RunningProgram Launch(string command, bool pipeOutput) =>
        ProcessRunner.Start(new ProgramStart
        {
            Program = ExecutableFor(command),
            Arguments = new[] { command },
            DisplayName = FileName,
            InputMode = ProgramInput.Pipe,
            PipeOutput = pipeOutput,
            OutputLimit = null,
            OutputEndTimeout = null,
            NotFoundErrorId = "HelperNotFound",
            NotFoundAdvice = $"Rebuild the module with 'dotnet build -c Release', or point ${EnvironmentVariable} at a working {FileName}.",
        });

    private static void SendSpec(RunningProgram process, HelperSpec spec, bool closeAfter)
    {
        try
        {
            var bytes = spec.SerializeFramed();
            process.StandardInput.Write(bytes, 0, bytes.Length);
            process.StandardInput.Flush();
            if (closeAfter) process.WriteInputAndClose(null);
        }
        catch (IOException) { /* the helper died early; its stderr says why */ }
    }

    /// <summary>Captured text as the lines a line reader would have given (no trailing empty line).</summary>
    private static string[] Lines(string text)
    {
        if (text.Length == 0) return Array.Empty<string>();
        var lines = text.Split('\n');
        if (text.EndsWith('\n')) lines = lines[..^1];
        return lines.Select(l => l.TrimEnd('\r')).ToArray();
    }

    /// <summary>
    /// Starts the helper on the caller's terminal (interactive attach: the helper relays between it and
    /// a pty of the container, see src/native/helper/attach.c; or the console, console_relay.c). The spec goes through a private file the helper
    /// deletes once read, since stdin stays the terminal.
    /// </summary>
    public static RunningProgram StartInteractive(HelperSpec spec, string tempDirectory)
    {
        Directory.CreateDirectory(tempDirectory);
        var file = System.IO.Path.Combine(tempDirectory, $"spec.{Guid.NewGuid():N}");
        using (var fs = new FileStream(file, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
            fs.Write(spec.Serialize());
        return ProcessRunner.Start(new ProgramStart
        {
            Program = ExecutableFor(spec.HelperCommand),
            Arguments = new[] { spec.HelperCommand, file },
            DisplayName = FileName,
            InheritStreams = true,
            NotFoundErrorId = "HelperNotFound",
            NotFoundAdvice = $"Rebuild the module with 'dotnet build -c Release', or point ${EnvironmentVariable} at a working {FileName}.",
        });
    }
}
