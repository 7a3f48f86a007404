using System.Globalization;
using System.Text;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Processes;

namespace PSContainers.Runtime.Autostart;

/// <summary>What the boot unit runs: which pwsh and module, which store, which containers.</summary>
public sealed record AutostartServiceOptions
{
    /// <summary>Absolute path of pwsh.</summary>
    public required string PwshPath { get; init; }
    /// <summary>Absolute path of the module's manifest (PSContainers.psd1): boot has no user's PSModulePath.</summary>
    public required string ModulePath { get; init; }
    /// <summary>The store; null = the default store (PSCONTAINERS_PATH is then not set).</summary>
    public string? StorePath { get; init; }
    /// <summary>-Group of the start and the stop; null = every autostart container.</summary>
    public IReadOnlyList<string>? Groups { get; init; }
    /// <summary>Seconds each container's stop may take at shutdown before it is killed; null = its stop.timeout.</summary>
    public int? StopTimeout { get; init; }
}

/// <summary>What Install-/Uninstall-ContainerAutostartService did.</summary>
public sealed class AutostartServiceInfo
{
    public string UnitName { get; init; } = "";
    public string Path { get; init; } = "";
    /// <summary>Whether systemd runs this machine (/run/systemd/system exists).</summary>
    public bool SystemdRunning { get; init; }
    /// <summary>Enabled for boot (systemctl enable ran); false when systemd is not running or the unit is elsewhere.</summary>
    public bool Enabled { get; init; }
    /// <summary>Installed: the unit file exists after the command.</summary>
    public bool Installed { get; init; }
    public string? ExecStart { get; init; }
    public string? ExecStop { get; init; }
    public string? StorePath { get; init; }
}

/// <summary>
/// The systemd unit that runs Start-ContainerAutostart at boot and Stop-ContainerAutostart at
/// shutdown (LXC's lxc.service running lxc-autostart). A oneshot that remains active, so that
/// systemd runs its ExecStop (the ordered stop) when the machine goes down.
/// </summary>
public static class AutostartService
{
    public const string UnitName = "pscontainers-autostart.service";
    public const string DefaultDirectory = "/etc/systemd/system";
    public static string DefaultPath => System.IO.Path.Combine(DefaultDirectory, UnitName);
    /// <summary>sd_booted(3): systemd is PID 1 when this directory exists.</summary>
    public const string SystemdRuntimeDirectory = "/run/systemd/system";

    /// <summary>The first line of every unit written here: a file without it is someone else's, never replaced nor removed.</summary>
    public const string Header = "# Written by Install-ContainerAutostartService (PSContainers); Uninstall-ContainerAutostartService removes it.";

    public static bool IsOurs(string path)
    {
        using var reader = new StreamReader(path);
        return reader.ReadLine() == Header;
    }

    private static void RequireOursOrAbsent(string path)
    {
        if (File.Exists(path) && !IsOurs(path))
            throw new ContainerException("NotAnAutostartUnit", ContainerErrorKind.ResourceExists,
                $"{path} exists and was not written by Install-ContainerAutostartService (its first line is not PSContainers' header): it is left alone.", path);
    }

    public static bool SystemdRunning => Directory.Exists(SystemdRuntimeDirectory);

    /// <summary>The PowerShell that ExecStart runs.</summary>
    public static string StartScript(AutostartServiceOptions o) =>
        $"Import-Module {PsQuote(o.ModulePath)}; Start-ContainerAutostart{GroupArgument(o)}";

    /// <summary>The PowerShell that ExecStop runs.</summary>
    public static string StopScript(AutostartServiceOptions o) =>
        $"Import-Module {PsQuote(o.ModulePath)}; Stop-ContainerAutostart{GroupArgument(o)}" +
        (o.StopTimeout is { } t ? $" -Timeout {t.ToString(CultureInfo.InvariantCulture)}" : "");

    /// <summary>The argv of ExecStart/ExecStop for a script (what the test runs, parsed back from the file).</summary>
    public static string[] Command(AutostartServiceOptions o, string script) =>
        new[] { o.PwshPath, "-NoProfile", "-NonInteractive", "-Command", script };

    public static string UnitText(AutostartServiceOptions o)
    {
        Check(o);
        var sb = new StringBuilder();
        sb.Append(Header).Append('\n');
        sb.Append("[Unit]\n");
        sb.Append("Description=PSContainers: start the autostart containers at boot, stop them in reverse order at shutdown\n");
        sb.Append("Wants=network-online.target\n");
        sb.Append("After=network-online.target local-fs.target remote-fs.target\n");
        sb.Append('\n');
        sb.Append("[Service]\n");
        sb.Append("Type=oneshot\n");
        // Active after the start, so that shutdown runs ExecStop: the ordered stop.
        sb.Append("RemainAfterExit=yes\n");
        // The containers' supervisors were started by ExecStart and stay in this unit's cgroup: the
        // ordered stop ends them, systemd must not kill them all at once afterwards.
        sb.Append("KillMode=process\n");
        // Each container's stop ends in SIGKILL after its timeout, so the stop is bounded without systemd's.
        sb.Append("TimeoutStartSec=infinity\n");
        sb.Append("TimeoutStopSec=infinity\n");
        if (o.StorePath is { } store)
            sb.Append("Environment=").Append(Quote("PSCONTAINERS_PATH=" + store)).Append('\n');
        // '-': a container that fails to start must not leave the unit failed, or shutdown would skip
        // the ordered stop of all the others; the failures are in the journal.
        sb.Append("ExecStart=-").Append(CommandLine(Command(o, StartScript(o)))).Append('\n');
        sb.Append("ExecStop=").Append(CommandLine(Command(o, StopScript(o)))).Append('\n');
        sb.Append('\n');
        sb.Append("[Install]\n");
        sb.Append("WantedBy=multi-user.target\n");
        return sb.ToString();
    }

    /// <summary>
    /// Writes the unit (atomically, mode 0644) and, where systemd runs and the unit is in its
    /// directory, reloads systemd and enables it. The caller has decided what to do without systemd.
    /// </summary>
    public static AutostartServiceInfo Install(string path, AutostartServiceOptions o)
    {
        var text = UnitText(o);
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        if (!Directory.Exists(dir))
            throw new ContainerException("AutostartUnitDirectoryNotFound", ContainerErrorKind.ObjectNotFound,
                $"Cannot write the unit {path}: the directory {dir} does not exist.", path);
        RequireOursOrAbsent(path);
        AtomicFile.WriteAllText(path, text);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        bool enable = SystemdRunning && IsSystemdPath(path);
        if (enable)
        {
            Systemctl("daemon-reload");
            Systemctl("enable", System.IO.Path.GetFileName(path));
        }
        return new AutostartServiceInfo
        {
            UnitName = System.IO.Path.GetFileName(path), Path = path, SystemdRunning = SystemdRunning, Enabled = enable, Installed = true,
            ExecStart = CommandLine(Command(o, StartScript(o))), ExecStop = CommandLine(Command(o, StopScript(o))), StorePath = o.StorePath,
        };
    }

    /// <summary>Disables the unit (where systemd runs; the running containers are left alone), removes the file and reloads systemd.</summary>
    public static AutostartServiceInfo Uninstall(string path)
    {
        RequireOursOrAbsent(path);
        bool systemd = SystemdRunning && IsSystemdPath(path);
        if (systemd) Systemctl("disable", System.IO.Path.GetFileName(path));
        File.Delete(path);
        if (systemd) Systemctl("daemon-reload");
        return new AutostartServiceInfo { UnitName = System.IO.Path.GetFileName(path), Path = path, SystemdRunning = SystemdRunning, Enabled = false, Installed = false };
    }

    /// <summary>The unit directories systemctl enable works with by name.</summary>
    public static bool IsSystemdPath(string path) =>
        System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path)) is "/etc/systemd/system" or "/usr/lib/systemd/system" or "/lib/systemd/system" or "/usr/local/lib/systemd/system";

    private static void Systemctl(params string[] args) =>
        ProcessRunner.Run(new ProgramStart { Program = "systemctl", Arguments = args, Timeout = TimeSpan.FromMinutes(2), NotFoundErrorId = "SystemdNotRunning" })
            .ThrowIfFailed("SystemctlFailed", ContainerErrorKind.InvalidOperation, $"systemctl {string.Join(' ', args)}",
                "See 'journalctl -xe' and 'systemctl status " + UnitName + "'.");

    private static void Check(AutostartServiceOptions o)
    {
        foreach (var (what, value) in new[] { ("pwsh", o.PwshPath), ("module", o.ModulePath), ("store", o.StorePath) })
        {
            if (value is null) continue;
            if (!value.StartsWith('/') || value.Any(char.IsControl))
                throw new ContainerException("InvalidArgument", ContainerErrorKind.InvalidArgument,
                    $"The {what} path '{value}' cannot go into a systemd unit: it must be absolute and hold no control characters (a newline would end the line).", value);
        }
        foreach (var g in o.Groups ?? Array.Empty<string>())
            if (g.Length > 0 && ConfigRules.GroupName(g, "-Group") is { } bad)
                throw new ContainerException("InvalidArgument", ContainerErrorKind.InvalidArgument, bad, g);
    }

    private static string GroupArgument(AutostartServiceOptions o) =>
        o.Groups is { Count: > 0 } groups ? " -Group " + string.Join(",", groups.Select(PsQuote)) : "";

    /// <summary>A PowerShell single-quoted string (only ' is special: doubled).</summary>
    public static string PsQuote(string s) => "'" + s.Replace("'", "''") + "'";

    /// <summary>
    /// systemd's command-line quoting (systemd.service(5), "Command lines"): a word with blanks,
    /// quotes, backslashes or ';' goes in double quotes with \ and " escaped; % is doubled (specifiers)
    /// and $ too (variable expansion), so the program receives exactly these words.
    /// </summary>
    public static string CommandLine(IEnumerable<string> argv) => string.Join(' ', argv.Select(w => Quote(w).Replace("$", "$$")));

    /// <summary>A word as systemd reads it in a unit (Environment= does not expand $, so $ is left alone here).</summary>
    public static string Quote(string word)
    {
        var escaped = word.Replace("%", "%%");
        if (word.Length > 0 && !word.Any(c => char.IsWhiteSpace(c) || c is '"' or '\'' or '\\' or ';')) return escaped;
        return "\"" + escaped.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
    }
}
