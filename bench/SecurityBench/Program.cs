// Security set-up overhead: start, exec and stop of a busybox container through the runtime API
// (no PowerShell), with the default security settings versus the settings that reproduce what the
// runtime did before them (no capability drop, no seccomp, no masked paths, no default device
// rules; /proc mixed and /sys ro as before) and versus everything open. Rounds are interleaved so
// background load hits all alike. Writes/replaces the "Security set-up overhead" section of
// bench/results.md. Everything lives in /tmp/psc-bench-sec-<id> and is removed at the end.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Native;
using PSContainers.Runtime.Launcher;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
var rounds = args.Length > 0 ? int.Parse(args[0]) : 30;
var repo = FindRepo();
PscHelper.ConfiguredPath = Path.Combine(repo, "out", "PSContainers", PscHelper.FileName);
var work = Path.Combine("/tmp", "psc-bench-sec-" + Guid.NewGuid().ToString("N")[..8]);
var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(Path.Combine(work, "store"));
var loadBefore = File.ReadAllText("/proc/loadavg").Split(' ')[..3];
var variants = new (string Key, string Label, string Yaml)[]
{
    ("default", "defaults (caps, seccomp, masks, device rules)", ""),
    ("before", "as before (no drop, no filter, no masks, no device rules)",
        "security:\n  capabilities: { drop: [] }\n  seccomp: { profile: unconfined }\n  maskedPaths: []\n  devices: unconfined\n"),
    ("open", "everything open (also proc: rw, sys: rw)",
        "security:\n  capabilities: { drop: [] }\n  seccomp: { profile: unconfined }\n  maskedPaths: []\n  devices: unconfined\n  proc: rw\n  sys: rw\n"),
};
var samples = variants.ToDictionary(v => v.Key, _ => (Start: new List<double>(), Exec: new List<double>(), Stop: new List<double>()));
Directory.CreateDirectory(work);
try
{
    foreach (var v in variants) File.WriteAllText(Path.Combine(work, v.Key + ".yaml"), v.Yaml);
    for (var round = -3; round < rounds; round++) // 3 warm-up rounds
        foreach (var v in variants)
        {
            var name = $"sec-{v.Key}-{Guid.NewGuid().ToString("N")[..6]}";
            manager.Create(name, new CreateOptions { Template = "busybox", ConfigPath = Path.Combine(work, v.Key + ".yaml") });
            var sw = Stopwatch.StartNew();
            manager.Start(name);
            var start = sw.Elapsed.TotalMilliseconds; sw.Restart();
            var r = manager.Exec(name, new[] { "true" });
            var exec = sw.Elapsed.TotalMilliseconds; sw.Restart();
            manager.Stop(name, kill: true);
            var stop = sw.Elapsed.TotalMilliseconds;
            manager.Remove(name);
            if (r.ExitCode != 0) throw new InvalidOperationException($"true exited {r.ExitCode} in {v.Key}: {string.Join(' ', r.Error)}");
            if (round < 0) continue;
            samples[v.Key].Start.Add(start); samples[v.Key].Exec.Add(exec); samples[v.Key].Stop.Add(stop);
        }
}
finally
{
    foreach (var n in manager.Names().ToList()) try { manager.Remove(n, force: true); } catch (Exception) { }
    try { Directory.Delete(work, recursive: true); } catch (Exception) { }
}

// The sealed-copy protection on its own: "psc-helper exec" with a spec it rejects right after the
// protection (no program), started from the helper file (it copies itself into a sealed memfd and
// re-executes) and, as the runtime does, from the per-process sealed copy (nothing to do); versus
// "psc-helper --version", which does neither.
var plain = new List<double>();
var sealedCopy = new List<double>();
var fromCopy = new List<double>();
var processCopy = Sys.SealedExecutableCopy(PscHelper.Path, PscHelper.FileName) ?? throw new InvalidOperationException("memfd copy failed");
for (var i = -10; i < rounds * 5; i++)
{
    var v = TimeHelper(PscHelper.Path, "--version", null);
    var e = TimeHelper(PscHelper.Path, "exec", "6\npid\01\0");
    var c = TimeHelper(processCopy, "exec", "6\npid\01\0");
    if (i >= 0) { plain.Add(v); sealedCopy.Add(e); fromCopy.Add(c); }
}
var loadAfter = File.ReadAllText("/proc/loadavg").Split(' ')[..3];
static double Median(List<double> xs) { var s = xs.Order().ToList(); return s[s.Count / 2]; }
static double P90(List<double> xs) { var s = xs.Order().ToList(); return s[Math.Min(s.Count - 1, (int)Math.Ceiling(s.Count * 0.9) - 1)]; }
var b = samples["before"];
var sb = new StringBuilder();
sb.AppendLine("## Security set-up overhead");
sb.AppendLine();
sb.AppendLine($"`dotnet run -c Release --project bench/SecurityBench {rounds}` ({DateTime.Now:yyyy-MM-dd HH:mm}, {rounds} interleaved rounds after 3 warm-up, runtime API, busybox, ms median / p90; ratio = median vs \"as before\"; " +
    $"load average {string.Join(' ', loadBefore)} before, {string.Join(' ', loadAfter)} after). " +
    "Start includes the capability drop, compiling and installing the seccomp program, the masks and the default device rules. Exec runs, in every row, from the sealed memfd copy of the helper the runtime makes once per process (not configurable).");
sb.AppendLine();
sb.AppendLine("| Settings | start | exec `true` | stop -Kill | start ratio | exec ratio |");
sb.AppendLine("|---|---:|---:|---:|---:|---:|");
foreach (var v in variants)
{
    var s = samples[v.Key];
    sb.AppendLine($"| {v.Label} | {Median(s.Start):0.0} / {P90(s.Start):0.0} | {Median(s.Exec):0.0} / {P90(s.Exec):0.0} | {Median(s.Stop):0.0} / {P90(s.Stop):0.0} | {Median(s.Start) / Median(b.Start):0.00}x | {Median(s.Exec) / Median(b.Exec):0.00}x |");
}
sb.AppendLine();
sb.AppendLine($"The sealed copy alone ({rounds * 5} runs each, median): `psc-helper --version` {Median(plain):0.00} ms; `psc-helper exec` up to its spec check started from the helper file, which copies itself into a sealed memfd and re-executes, {Median(sealedCopy):0.00} ms (+{Median(sealedCopy) - Median(plain):0.00} ms); started as the runtime starts it, from the sealed copy made once per process, {Median(fromCopy):0.00} ms (+{Median(fromCopy) - Median(plain):0.00} ms per attached command).");
var section = sb.ToString();
Console.Write(section);
var results = Path.Combine(repo, "bench", "results.md");
var text = File.Exists(results) ? File.ReadAllText(results) : "";
var at = text.IndexOf("## Security set-up overhead", StringComparison.Ordinal);
if (at >= 0)
{
    var next = text.IndexOf("\n## ", at + 3, StringComparison.Ordinal);
    text = text[..at] + (next >= 0 ? text[(next + 1)..] : "");
}
File.WriteAllText(results, text.TrimEnd() + "\n\n" + section);
return 0;

static double TimeHelper(string executable, string command, string? stdin)
{
    var psi = new ProcessStartInfo(executable) { RedirectStandardInput = true, RedirectStandardError = true, RedirectStandardOutput = true };
    psi.ArgumentList.Add(command);
    var sw = Stopwatch.StartNew();
    using var p = Process.Start(psi)!;
    if (stdin is not null) p.StandardInput.Write(stdin);
    p.StandardInput.Close();
    p.StandardOutput.ReadToEnd();
    var err = p.StandardError.ReadToEnd();
    p.WaitForExit();
    var ms = sw.Elapsed.TotalMilliseconds;
    if (command == "exec" && !err.Contains("no program to run")) throw new InvalidOperationException("unexpected helper answer: " + err);
    return ms;
}

static string FindRepo()
{
    var dir = new DirectoryInfo(AppContext.BaseDirectory);
    while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "PSContainers.psd1"))) dir = dir.Parent;
    return dir?.FullName ?? throw new InvalidOperationException("run from inside the repository");
}
