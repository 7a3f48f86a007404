using System.Globalization;

namespace PSContainers.Runtime.State;

/// <summary>
/// The supervisor's own record of a run, &lt;store&gt;/&lt;name&gt;/supervisor: "SUPERVISOR START INIT START
/// PHASE UNIXTIME", written atomically by psc-helper before it lets init go ("paused" while the caller
/// sets up the network, "released" just before init proceeds). state.json is written by the runtime
/// only after the helper reported back; this record is what lets the runtime find a container whose
/// starting pwsh was killed in between (ContainerManager.LoadState, RecoverLocked).
/// </summary>
/// <para>Two more fields follow since restart policies: the restarts of the run and how the init
/// before the current one ended ("-", exited:N, signaled:N, oom:N); the supervisor rewrites the record
/// with each restart (psc-helper restart.c), so its init and time are the current init's.</para>
public sealed record RunRecord(int SupervisorPid, ulong SupervisorStartTime, int InitPid, ulong InitStartTime, bool Released, DateTimeOffset Time, int Restarts = 0, string? LastExit = null)
{
    public const string FileName = "supervisor";

    /// <summary>The record, or null when there is none (or it is not one: only psc-helper writes it, atomically).</summary>
    public static RunRecord? Read(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
        var f = text.Trim().Split(' ');
        if (f.Length is not (6 or 8)
            || !int.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out var sup) || sup <= 0
            || !ulong.TryParse(f[1], NumberStyles.None, CultureInfo.InvariantCulture, out var supStart)
            || !int.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var init) || init <= 0
            || !ulong.TryParse(f[3], NumberStyles.None, CultureInfo.InvariantCulture, out var initStart)
            || f[4] is not ("paused" or "released")
            || !long.TryParse(f[5], NumberStyles.None, CultureInfo.InvariantCulture, out var time))
            return null;
        var restarts = 0;
        if (f.Length == 8 && (!int.TryParse(f[6], NumberStyles.None, CultureInfo.InvariantCulture, out restarts))) return null;
        return new RunRecord(sup, supStart, init, initStart, f[4] == "released", DateTimeOffset.FromUnixTimeSeconds(time), restarts, f.Length == 8 && f[7] != "-" ? f[7] : null);
    }

    /// <summary>Does state.json already record this run (the start completed normally)?</summary>
    public bool IsRecordedIn(PersistedState state) =>
        state.SupervisorPid == SupervisorPid && state.SupervisorStartTime == SupervisorStartTime;
}
