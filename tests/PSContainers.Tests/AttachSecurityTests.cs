using System.Globalization;
using System.Text.RegularExpressions;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Tests.Infrastructure;
using Xunit.Abstractions;
using PSContainers.Runtime.Launcher;

namespace PSContainers.Tests;

/// <summary>
/// The escape suite's attach part (issue 11, items 1 and 2), on the real kernel: the runc
/// CVE-2016-9962 race (a process in the container seizes every new pid while attaches run) against
/// root's user-namespaced containers, privileged ones (with and without sys_admin) and a non-root
/// user's; and the terminal boundary of a non-interactive attach (its own session: no controlling
/// terminal, kill(0) reaches only its own process group). The interactive terminal (a pty in the
/// container's devpts, TIOCSTI, the caller's terminal restored) is driven in real pwsh under tmux by
/// tests/Pester/Attach.Tests.ps1.
/// </summary>
[Collection("Containers")]
public sealed class AttachSecurityTests : IDisposable
{
    private const int Attaches = 40;
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;
    private readonly ITestOutputHelper _out;

    public AttachSecurityTests(ITestOutputHelper output)
    {
        _out = output;
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    private ContainerInfo Running(string hint, string yaml)
    {
        var name = TestStore.NewName(hint);
        var config = Path.Combine(_store.Root, name + ".yaml");
        File.WriteAllText(config, yaml);
        var info = (ContainerInfo)_ps.Run("New-Container -Name $args[0] -Template busybox -ConfigPath $args[1]", name, config).Single().BaseObject;
        EscapeProbe.InstallInto(info.RootfsPath);
        var started = (ContainerInfo)_ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
        // Booted: busybox init's rcS has said so on the console. Until then its shell may appear
        // while a race runs, and be caught as if it were an attach (it has no no_new_privs).
        var console = _store.Manager.Store.ConsoleLogPath(name);
        Assert.True(SpinWait.SpinUntil(() => File.Exists(console) && File.ReadAllText(console).Contains("started (busybox init"), 30_000), "the container did not finish booting");
        return started;
    }

    /// <summary>
    /// The race, in PowerShell (run by root's session or by a non-root user's script host): the tracer
    /// starts in the background inside, then <see cref="Attaches"/> attaches run, then the tracer is
    /// told to stop and its log is printed.
    /// </summary>
    private static string RaceScript(string name) => $$"""
        $n = '{{name}}'
        $r = Invoke-ContainerCommand $n -Command sh,-c,'escape-probe ptrace-race /tmp/race.log 120 >/dev/null 2>&1 &'
        if ($r.ExitCode) { throw "tracer did not start: $($r.Error)" }
        for ($i = 0; $i -lt 200 -and -not ((Invoke-ContainerCommand $n -Command cat,/tmp/race.log).Output -match '^self '); $i++) { [Threading.Thread]::Sleep(50) }
        foreach ($i in 1..{{Attaches}}) {
            $r = Invoke-ContainerCommand $n -Command true
            if ($r.ExitCode) { throw "attach $i failed: $($r.ExitCode) $($r.Error)" }
        }
        Invoke-ContainerCommand $n -Command touch,/tmp/race.log.stop | Out-Null
        for ($i = 0; $i -lt 200; $i++) {
            $log = (Invoke-ContainerCommand $n -Command cat,/tmp/race.log).Output
            if ($log -match '^seen ') { break }
            [Threading.Thread]::Sleep(100)
        }
        $log
        """;

    private static Dictionary<string, string> Fields(string line) =>
        Regex.Matches(line, @"(\w+)=(.*?)(?= \w+=|$)").ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);

    private static ulong Hex(string s) => ulong.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>
    /// Every process the tracer caught holds at most what the tracer (an ordinary process of the
    /// container) holds: the same ids, no capability it lacks, the filter and no_new_privs, its cwd
    /// and root inside, and only the attach's stdio pipes. Returns how many were caught before their
    /// exec (still the helper's code).
    /// </summary>
    private int AssertNothingCaughtHoldsMore(string[] log, string what)
    {
        foreach (var l in log) _out.WriteLine(l);
        var self = Fields(Assert.Single(log, l => l.StartsWith("self ", StringComparison.Ordinal)));
        var summary = Regex.Match(Assert.Single(log, l => l.StartsWith("seen ", StringComparison.Ordinal)), @"^seen (\d+) caught (\d+)");
        // The tracer really raced: it saw every attach's pid appear.
        Assert.True(int.Parse(summary.Groups[1].Value) >= Attaches, $"{what}: the tracer saw only {summary.Groups[1].Value} new pids");
        var caught = log.Where(l => l.StartsWith("caught ", StringComparison.Ordinal)).Select(Fields).ToList();
        foreach (var c in caught)
        {
            var who = $"{what}: caught pid {c["pid"]} ({c["exe"]})";
            Assert.True(c["Uid"] == self["Uid"] && c["Gid"] == self["Gid"], $"{who} has ids {c["Uid"]} / {c["Gid"]}, the container's are {self["Uid"]} / {self["Gid"]}");
            foreach (var set in new[] { "CapEff", "CapPrm", "CapBnd", "CapInh" })
                Assert.True((Hex(c[set]) & ~Hex(self[set])) == 0, $"{who} has {set} {c[set]}, more than the container's {self[set]}");
            Assert.Equal("0000000000000000", c["CapAmb"]);
            Assert.True(c["Seccomp"] == self["Seccomp"] && c["Seccomp"] == "2", $"{who}: Seccomp {c["Seccomp"]}");
            Assert.True(c["NoNewPrivs"] == "1", $"{who}: NoNewPrivs {c["NoNewPrivs"]}");
            Assert.True(c["cwd"] == "/" && c["root"] == "/", $"{who}: cwd {c["cwd"]}, root {c["root"]}");
            Assert.NotEqual("unreadable", c["fds"]);
            // Before its exec it holds the attach's stdio pipes and nothing else (no host descriptor);
            // after, whatever its program opened inside.
            if (c["exe"].Contains("memfd:", StringComparison.Ordinal))
                foreach (var fd in c["fds"].Split('|'))
                    Assert.Matches(@"^[012]:pipe:\[\d+\]$", fd);
        }
        var beforeExec = caught.Count(c => c["exe"].Contains("memfd:", StringComparison.Ordinal));
        _out.WriteLine($"{what}: {caught.Count} caught, {beforeExec} before their exec");
        return beforeExec;
    }

    [Theory]
    [InlineData("userns")]
    [InlineData("privileged")]
    [InlineData("nosysadmin")]
    public void PtraceRace_NeverCatchesAnAttachHoldingMoreThanTheContainer(string kind)
    {
        var start = 1_500_000_000u + (uint)Random.Shared.Next(0, 4000) * 65536u;
        var yaml = kind switch
        {
            "userns" => $"idMap: [u 0 {start} 65536, g 0 {start} 65536]\n",
            "nosysadmin" => "security:\n  capabilities: { drop: [default, sys_admin] }\n",
            _ => "",
        };
        var c = Running("race" + kind[..2], yaml);
        var log = _ps.Run(RaceScript(c.Name)).Select(o => o.ToString()).ToArray();
        var beforeExec = AssertNothingCaughtHoldsMore(log, kind);
        // In a user namespace the attach is not even traceable before its exec: it is non-dumpable and
        // its memory belongs to the host's user namespace, where container root has no CAP_SYS_PTRACE.
        // Privileged container root keeps CAP_SYS_PTRACE of the host's namespace (the default set
        // keeps sys_ptrace, see README), so it may catch one, which then holds no more than it does.
        if (kind == "userns") Assert.Equal(0, beforeExec);
    }

    [Fact]
    public void PtraceRace_NonRootUsersContainer_NeverCatchesTheAttachBeforeItsExec()
    {
        using var user = new TestUser();
        var name = TestStore.NewName("racenr");
        var made = user.Run($"(New-Container {name}).RootfsPath");
        Assert.True(made.ExitCode == 0, made.StdErr + made.StdOut);
        EscapeProbe.InstallInto(made.Lines.Last());
        var run = user.Run($"Start-Container {name}\n{RaceScript(name)}\nRemove-Container {name} -Force", timeout: TimeSpan.FromMinutes(4));
        Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
        var beforeExec = AssertNothingCaughtHoldsMore(run.Lines, "non-root");
        Assert.Equal(0, beforeExec);
    }

    [Fact]
    public void NonInteractiveAttach_RunsInItsOwnSession_WithoutTheCallersTerminal()
    {
        var c = Running("sess", "");
        // A session and process group of its own: the command leads both (pid = sid = pgid).
        var ids = _ps.Run("(Invoke-ContainerCommand $args[0] -Command sh,-c,'echo $$; cut -d\" \" -f5,6 /proc/$$/stat').Output", c.Name).Select(o => o.ToString()).ToArray();
        Assert.Equal(2, ids.Length);
        Assert.Equal($"{ids[0]} {ids[0]}", ids[1]);
        // No controlling terminal: /dev/tty cannot be opened (ENXIO), whatever terminal the caller has.
        var tty = _ps.Run("Invoke-ContainerCommand $args[0] -Command escape-probe,openw,/dev/tty", c.Name).Single().BaseObject as ContainerCommandResult;
        Assert.Equal("err 6", Assert.Single(tty!.Output));
        // kill(0, SIGTERM) from a privileged container ends only the command's own process group.
        var kill = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command sh,-c,'kill -TERM 0; sleep 5; echo survived'", c.Name).Single().BaseObject;
        Assert.Equal(128 + 15, kill.ExitCode);
        Assert.Empty(kill.Output);
        // ...and this process (the caller) is still here to assert it; so is the container.
        Assert.Equal("Running", _ps.Run("(Get-Container $args[0]).State", c.Name).Single().ToString());
    }

    /// <summary>
    /// systemd mounts cgroup2 with nsdelegate, where the kernel refuses (ENOENT) to move a process
    /// into a cgroup — by clone3(CLONE_INTO_CGROUP) or a cgroup.procs write — once the mover is in a
    /// cgroup namespace that does not contain its own cgroup. So every cgroup join must come before
    /// the setns into the container's cgroup namespace. This host's cgroup2 has no nsdelegate (it is
    /// a global flag of the hierarchy; setting it would change every other test on the machine), so
    /// the order is read from the kernel's side with strace: the helper's calls, in time order.
    /// </summary>
    [Fact]
    public void Attach_JoinsEveryCgroup_BeforeTheCgroupNamespace()
    {
        var c = Running("cgorder", "");
        var cgroups = _store.Manager.Cgroups;
        var spec = new ExecSpec { TargetPid = c.Pid, Namespaces = NamespaceKind.ContainerDefault };
        spec.Command.AddRange(new[] { "cat", "/proc/self/cgroup" });
        // Where the runtime's attach joins: the inner cgroup, the root of the container's cgroup namespace.
        var join = cgroups.JoinPathOf(c.CgroupPath!);
        spec.CgroupProcsFiles.AddRange(cgroups.ProcsFiles(join));
        spec.CgroupV2Directory = cgroups.V2?.Directories(join)[0];
        var log = Path.Combine(_store.Root, "attach.strace");
        var psi = new System.Diagnostics.ProcessStartInfo("strace") { RedirectStandardInput = true, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-f", "-y", "-qq", "-s", "256", "-e", "trace=setns,write,clone,clone3", "-o", log, PscHelper.Path, "exec" }) psi.ArgumentList.Add(a);
        string[] output;
        using (var p = System.Diagnostics.Process.Start(psi)!)
        {
            p.StandardInput.BaseStream.Write(spec.SerializeFramed());
            p.StandardInput.Close();
            var err = p.StandardError.ReadToEndAsync();
            output = p.StandardOutput.ReadToEnd().Split('\n');
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, $"psc-helper exec under strace: {p.ExitCode} {err.Result}");
        }
        var lines = File.ReadAllLines(log);
        foreach (var l in lines) _out.WriteLine(l);
        var cgroupNs = Array.FindIndex(lines, l => Regex.IsMatch(l, @"setns\(\d+<cgroup:\[\d+\]>"));
        Assert.True(cgroupNs > 0, "no setns into the cgroup namespace");
        Assert.Contains("= 0", lines[cgroupNs]);
        var joins = lines.Select((l, i) => (l, i)).Where(x => x.l.Contains("cgroup.procs", StringComparison.Ordinal) && x.l.Contains("write(", StringComparison.Ordinal)
            || x.l.Contains("CLONE_INTO_CGROUP", StringComparison.Ordinal)).ToList();
        // Every cgroup the container has was joined: v1 hierarchies by a write, cgroup2 by being born in
        // it (strace does not name clone3's cgroup descriptor: the command's own view below says which).
        foreach (var file in spec.CgroupProcsFiles.Where(f => spec.CgroupV2Directory is null || !f.StartsWith(spec.CgroupV2Directory + "/", StringComparison.Ordinal)))
            Assert.True(joins.Any(j => j.l.Contains(file + ">", StringComparison.Ordinal) && Regex.IsMatch(j.l, @"\) = \d+$")), $"{file} was never joined");
        if (spec.CgroupV2Directory is not null)
        {
            // With -f, strace may split the clone3 in two when the child runs first: "<unfinished ...>" and
            // the same pid's "<... clone3 resumed> ... = N" later; either form is a clone3 that succeeded.
            bool Born(string l)
            {
                if (!l.Contains("CLONE_INTO_CGROUP", StringComparison.Ordinal)) return false;
                if (Regex.IsMatch(l, @"\) = \d+$")) return true;
                var pid = Regex.Match(l, @"^(\d+)\s.*<unfinished \.\.\.>$");
                return pid.Success && lines.Any(r => Regex.IsMatch(r, "^" + pid.Groups[1].Value + @"\s+<\.\.\. clone3 resumed>.*= \d+$"));
            }
            Assert.Contains(joins, j => Born(j.l) || j.l.Contains(spec.CgroupV2Directory + "/cgroup.procs>", StringComparison.Ordinal));
            Assert.Contains("0::/", output);
        }
        Assert.All(joins, j => Assert.True(j.i < cgroupNs, $"joined a cgroup after the cgroup namespace: {j.l}"));
    }
}
