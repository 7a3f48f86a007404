using System.Diagnostics;
using PSContainers.Runtime.IdMapping;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// A real non-root account for a test (useradd -m, prefix psct-u), with a subordinate id range from
/// the subordinate-id API, and a copy of the built module and the script host it can read (the
/// checkout may be under /root, mode 700). Dispose kills whatever runs as it or as its subordinate
/// ids (by pid), removes its ranges and the account with its home (userdel -r), also after a failure.
/// </summary>
public sealed class TestUser : IDisposable
{
    public string Name { get; }
    public uint Uid { get; }
    public SubordinateIdRange UidRange { get; } = null!;
    public SubordinateIdRange GidRange { get; } = null!;
    /// <summary>Readable by the user: PSContainers/ (the built module) and host/ (psc-scripthost).</summary>
    public string Folder { get; }
    public string ModuleFolder => Path.Combine(Folder, "PSContainers");
    public string HostFolder => Path.Combine(Folder, "host");
    public string Home => Path.Combine("/home", Name);

    public TestUser()
    {
        Name = "psct-u" + Guid.NewGuid().ToString("N")[..8];
        Folder = Path.Combine(Path.GetTempPath(), "psc-test-" + Name);
        try
        {
            HostCommand.Run("useradd", "-m", "-s", "/bin/sh", Name);
            Uid = uint.Parse(HostCommand.Run("id", "-u", Name));
            // The range as an administrator gives it: with the module's own cmdlet.
            using (var root = new ModuleSession(Path.Combine(Folder, "unused-store")))
            {
                var ranges = root.Run("Add-SubordinateIdRange -User $args[0] -Count 65536 -Confirm:$false | Out-Null; Get-SubordinateIdRange -User $args[0]", Name)
                    .Select(o => (SubordinateIdRange)o.BaseObject).ToList();
                UidRange = ranges.Single(r => r.Kind == SubordinateIdKind.Uid);
                GidRange = ranges.Single(r => r.Kind == SubordinateIdKind.Gid);
            }
            CopyTree(TestPaths.ModuleFolder, ModuleFolder);
            CopyTree(TestPaths.ScriptHostFolder, HostFolder);
            HostCommand.Run("chmod", "-R", "a+rX", Folder);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Runs a script as this user with the copied module imported.</summary>
    public ScriptHost.Result Run(string script, string? cgroup = null, TimeSpan? timeout = null) =>
        ScriptHost.Run($"$ErrorActionPreference = 'Stop'; Import-Module '{ModuleFolder}'\n{script}", user: Name, hostFolder: HostFolder, timeout: timeout, cgroup: cgroup);

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target, overwrite: true);
        }
    }

    /// <summary>Pids running as the user or as one of its subordinate uids (its containers).</summary>
    public IReadOnlyList<int> Processes()
    {
        var pids = new List<int>();
        if (Uid == 0) return pids;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var status = File.ReadAllLines(Path.Combine(dir, "status"));
                var line = status.FirstOrDefault(l => l.StartsWith("Uid:"));
                // A zombie has ended; only its parent's reaping is missing.
                if (line is null || status.Any(l => l.StartsWith("State:") && l.Contains("zombie"))) continue;
                var uid = uint.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1]);
                if (uid == Uid || (UidRange is not null && uid >= UidRange.Start && uid <= UidRange.End)) pids.Add(pid);
            }
            catch (IOException) { }
        }
        return pids;
    }

    public void Dispose()
    {
        for (var round = 0; round < 3; round++)
        {
            var pids = Processes();
            if (pids.Count == 0) break;
            foreach (var pid in pids) try { Process.GetProcessById(pid).Kill(); } catch (Exception) { }
            Thread.Sleep(200);
        }
        try { new SubordinateIdDatabase().Remove(Name, null, null, SubordinateIdDatabase.BothKinds); } catch (Exception) { }
        try { HostCommand.Run("userdel", "-r", "-f", Name); } catch (Exception) { }
        try { Directory.Delete(Folder, recursive: true); } catch (Exception) { }
    }
}
