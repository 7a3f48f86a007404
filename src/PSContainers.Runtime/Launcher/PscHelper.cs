using System.Diagnostics;
using System.Text;

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
    public static HelperResult Run(string command, LaunchSpec spec, CancellationToken cancellationToken = default)
    {
        using var process = Launch(command, out var error);
        var output = new List<string>();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.Add(e.Data); };
        process.BeginOutputReadLine();
        SendSpec(process, spec, closeAfter: true);
        using (cancellationToken.Register(() => { try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }))
            process.WaitForExit();
        return new HelperResult(process.ExitCode, output.ToArray(), Snapshot(error));
    }

    /// <summary>
    /// psc-helper start. With <paramref name="whilePaused"/>, the new init waits in its namespaces
    /// (before its mounts and exec) while the callback runs with (supervisor pid, init pid): that
    /// is where host-side set-up that needs the namespaces, like network interfaces, happens. If
    /// the callback throws, the start is aborted (init killed) and the exception rethrown.
    /// </summary>
    public static HelperResult Start(LaunchSpec spec, Action<int, int>? whilePaused)
    {
        spec.PauseBeforeExec = whilePaused is not null;
        return RunPausing("start", spec, whilePaused);
    }

    /// <summary>
    /// Runs a helper command that may report "paused PARENT CHILD" and wait for "go" (start,
    /// userns-tree): the callback runs meanwhile with those two pids; if it throws, the helper is
    /// answered "abort" and the exception rethrown once the helper has exited.
    /// </summary>
    public static HelperResult RunPausing(string command, LaunchSpec spec, Action<int, int>? whilePaused) =>
        Supervise(command, spec, whilePaused is null ? null : fields =>
        {
            whilePaused(int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture), int.Parse(fields[2], System.Globalization.CultureInfo.InvariantCulture));
            return "go";
        });

    /// <summary>
    /// psc-helper start, restore or userns-tree: the helper reports "paused ..." (its fields are
    /// passed to <paramref name="whilePaused"/>, whose return value is the answer); a throwing
    /// callback answers "abort" and the exception is rethrown once the helper has exited.
    /// </summary>
    public static HelperResult Supervise(string command, LaunchSpec spec, Func<string[], string>? whilePaused)
    {
        using var process = Launch(command, out var error);
        SendSpec(process, spec, closeAfter: whilePaused is null);
        var output = new List<string>();
        string? line;
        while ((line = process.StandardOutput.ReadLine()) is not null)
        {
            if (!line.StartsWith("paused ", StringComparison.Ordinal) || whilePaused is null)
            {
                output.Add(line);
                continue;
            }
            string answer;
            try
            {
                answer = whilePaused(line.Split(' '));
            }
            catch
            {
                // The supervisor kills what the helper started (a restore: criu and every restored
                // task) within seconds; a helper that still has not answered after a minute is killed.
                Answer(process, "abort");
                if (!process.WaitForExit(60_000))
                {
                    try { process.Kill(); } catch (InvalidOperationException) { }
                    process.WaitForExit(10_000);
                }
                throw;
            }
            Answer(process, answer);
        }
        process.WaitForExit();
        return new HelperResult(process.ExitCode, output.ToArray(), Snapshot(error));
    }

    private static void Answer(Process process, string word)
    {
        try
        {
            process.StandardInput.Write(word + "\n");
            process.StandardInput.Close();
        }
        catch (IOException) { /* the helper is gone; its exit status says why */ }
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

    private static Process Launch(string command, out List<string> error)
    {
        var psi = new ProcessStartInfo(ExecutableFor(command))
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        psi.ArgumentList.Add(command);
        var process = Process.Start(psi)!;
        var lines = new List<string>();
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (lines) lines.Add(e.Data); };
        process.BeginErrorReadLine();
        error = lines;
        return process;
    }

    private static void SendSpec(Process process, LaunchSpec spec, bool closeAfter)
    {
        try
        {
            var bytes = spec.SerializeFramed();
            process.StandardInput.BaseStream.Write(bytes, 0, bytes.Length);
            process.StandardInput.BaseStream.Flush();
            if (closeAfter) process.StandardInput.Close();
        }
        catch (IOException) { /* the helper died early; its stderr says why */ }
    }

    private static string[] Snapshot(List<string> lines)
    {
        lock (lines) return lines.ToArray();
    }

    /// <summary>
    /// Starts the helper on the caller's terminal (interactive attach: the helper relays between it and
    /// a pty of the container, see psc-helper.c). The spec goes through a private file the helper
    /// deletes once read, since stdin stays the terminal.
    /// </summary>
    public static Process StartInteractive(string command, LaunchSpec spec, string tempDirectory)
    {
        Directory.CreateDirectory(tempDirectory);
        var file = System.IO.Path.Combine(tempDirectory, $"spec.{Guid.NewGuid():N}");
        using (var fs = new FileStream(file, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
            fs.Write(spec.Serialize());
        var psi = new ProcessStartInfo(ExecutableFor(command)) { UseShellExecute = false };
        psi.ArgumentList.Add(command);
        psi.ArgumentList.Add(file);
        return Process.Start(psi)!;
    }
}
