using System.Diagnostics;

namespace PSContainers.Tests.Infrastructure;

/// <summary>A real child process (/bin/sleep) for cgroup and process tests; killed and reaped on Dispose.</summary>
public sealed class Sleeper : IDisposable
{
    public Process Process { get; }
    public int Pid => Process.Id;

    public Sleeper(string seconds = "1000", string program = "/bin/sleep")
    {
        var psi = new ProcessStartInfo(program) { UseShellExecute = false };
        psi.ArgumentList.Add(seconds);
        Process = Process.Start(psi)!;
    }

    /// <summary>Field 3 of /proc/pid/stat (R, S, D, Z, ...), or null when the process is gone.</summary>
    public static string? State(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
        }
        catch (IOException) { return null; }
    }

    public bool WaitForExit(TimeSpan timeout) => Process.WaitForExit(timeout);

    public void Dispose()
    {
        try { if (!Process.HasExited) Process.Kill(); } catch (InvalidOperationException) { }
        try { Process.WaitForExit(5000); } catch (InvalidOperationException) { }
        Process.Dispose();
    }
}

/// <summary>A temp directory under /tmp/psc-test-&lt;guid&gt;, removed on Dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine("/tmp", "psc-test-" + Guid.NewGuid().ToString("N"));

    public TempDir() => Directory.CreateDirectory(Path);

    public string Combine(params string[] parts) => System.IO.Path.Combine(new[] { Path }.Concat(parts).ToArray());

    /// <summary>Creates a file (and its directory) with exact content.</summary>
    public string Write(string relative, string content)
    {
        var file = Combine(relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
        File.WriteAllText(file, content);
        return file;
    }

    public string Read(string relative) => File.ReadAllText(Combine(relative));

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
