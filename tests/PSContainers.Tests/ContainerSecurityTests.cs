using PSContainers.Runtime;
using PSContainers.Runtime.Cgroups;
using System.Security.Cryptography;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Security;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.Launcher;

namespace PSContainers.Tests;

/// <summary>
/// The escape suite, as root in privileged busybox containers on the real kernel: every attempt
/// fails under the defaults, and gets past the control being tested where the config allows it.
/// Probes/escape-probe.c makes each attempt and prints the kernel's answer. Nothing dangerous is
/// ever done with what is reached: sysrq-trigger is only opened, modules are junk files, devices
/// read are the test's own loop device (the host disk only where the read must be refused).
/// </summary>
[Collection("Containers")]
public sealed class ContainerSecurityTests : IDisposable
{
    private const int EPERM = 1, ENOENT = 2, EACCES = 13, EFAULT = 14, EINVAL = 22, EROFS = 30, ENOSYS = 38;
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;

    public ContainerSecurityTests()
    {
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    /// <summary>The rules everything is allowed by: what the escape suite's second half runs under.</summary>
    private const string AllowEverything = """
        security:
          capabilities: { drop: [] }
          seccomp: { profile: unconfined }
          proc: rw
          sys: rw
          maskedPaths: []
          devices: unconfined
        """;

    // The escape suite is about the controls of a privileged container (root inside is host root):
    // -Privileged, as every root container was before unprivileged became the default.
    private ContainerInfo Running(string hint, string? yaml = null, string command = "")
    {
        var name = TestStore.NewName(hint);
        var config = Path.Combine(_store.Root, name + ".yaml");
        File.WriteAllText(config, yaml ?? "");
        var info = (ContainerInfo)_ps.Run($"New-Container -Name $args[0] -Template busybox -Privileged -ConfigPath $args[1] {command}", name, config).Single().BaseObject;
        EscapeProbe.InstallInto(info.RootfsPath);
        return (ContainerInfo)_ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
    }

    private ContainerCommandResult Exec(string name, params string[] command) =>
        (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -Command $args[1]", name, command).Single().BaseObject;

    /// <summary>Runs escape-probe inside; returns the errno of its answer (0 = it worked).</summary>
    private int Probe(string name, params string[] args) => EscapeProbe.Errno(ProbeLine(name, args));

    private string ProbeLine(string name, params string[] args)
    {
        var r = Exec(name, new[] { "escape-probe" }.Concat(args).ToArray());
        Assert.True(r.Output.Length == 1, $"escape-probe {string.Join(' ', args)}: {string.Join("\n", r.Output.Concat(r.Error))}");
        return r.Output[0];
    }

    private static string Sys(string name) => SyscallTable.Number(name, SyscallTable.HostArch)!.Value.ToString();

    private static Dictionary<string, string> Status(IEnumerable<string> lines) =>
        lines.Select(l => l.Split(':', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1].Trim());

    /// <summary>The bounding set of this test process: what a container can have at most.</summary>
    private static ulong AllCapabilities => Convert.ToUInt64(Status(File.ReadLines("/proc/self/status"))["CapBnd"], 16);

    /// <summary>sysrq-trigger where the kernel has one (this one has no CONFIG_MAGIC_SYSRQ), and a /proc/sys knob.</summary>
    private static readonly string[] ProcWritables = new[] { "/proc/sysrq-trigger", "/proc/sys/kernel/sysrq", "/proc/sys/kernel/hostname" }.Where(File.Exists).ToArray();

    [Fact]
    public void Defaults_DropCapabilities_InstallTheFilter_InInitAndAttachedCommands()
    {
        var c = Running("caps");
        Assert.Equal("default", c.SeccompProfile);
        // A system container (the rootfs's own init) keeps sys_boot for its shutdown's reboot(2).
        Assert.Equal(Capabilities.DefaultDrop.Where(n => n != "sys_boot").OrderBy(Capabilities.Number), c.DroppedCapabilities);
        var expected = AllCapabilities & ~Capabilities.DropMask(null, null, systemContainer: true);
        var init = Status(Exec(c.Name, "cat", "/proc/1/status").Output);
        var attached = Status(Exec(c.Name, "cat", "/proc/self/status").Output);
        foreach (var (who, status) in new[] { ("init", init), ("attached", attached) })
        {
            foreach (var set in new[] { "CapBnd", "CapPrm", "CapEff" })
                Assert.True(Convert.ToUInt64(status[set], 16) == expected, $"{who} {set} {status[set]}, expected {expected:x16}");
            Assert.Equal("0000000000000000", status["CapAmb"]);
            Assert.Equal("2", status["Seccomp"]); // SECCOMP_MODE_FILTER
            Assert.Equal("1", status["Seccomp_filters"]);
        }
        Assert.Equal("0", init["NoNewPrivs"]);
        Assert.Equal("1", attached["NoNewPrivs"]);
        // busybox init still runs its inittab under all of it.
        Assert.Contains(Exec(c.Name, "ls", "/").Output, l => l == "run");

        // Its graceful stop ends the way a pid namespace's init powers off: reboot(2) ends it with
        // SIGINT. Without sys_boot the call fails and init exits on its own (an exit code) a second later.
        // A requested stop that ended by a signal records no code (the signal is no failure).
        var stopped = (ContainerInfo)_ps.Run("Stop-Container $args[0] -PassThru", c.Name).Single().BaseObject;
        Assert.Equal(PSContainers.Runtime.State.ContainerStopReason.Requested, stopped.StopReason);
        Assert.Null(stopped.ExitCode);

        // An application container (an init command of its own) drops sys_boot too.
        var app = Running("capsapp", command: "-Command /bin/sleep,1000");
        Assert.Equal(Capabilities.DefaultDrop.OrderBy(Capabilities.Number), app.DroppedCapabilities);
        var appInit = Status(Exec(app.Name, "cat", "/proc/1/status").Output);
        Assert.Equal(AllCapabilities & ~Capabilities.DropMask(null, null), Convert.ToUInt64(appInit["CapEff"], 16));
    }

    [Fact]
    public void EscapeSuite_EveryAttemptFails_UnderTheDefaults()
    {
        using var loop = new LoopFilesystem("btrfs", 256L << 20);
        var (major, minor) = DeviceNumbers(loop.LoopDevice!);
        var c = Running("escape");
        var n = c.Name;

        // sysrq and the host's sysctls: read-only binds (proc: mixed).
        Assert.NotEmpty(ProcWritables);
        foreach (var path in ProcWritables)
            Assert.Equal(EROFS, Probe(n, "openw", path));
        // Load a module: refused before the kernel looks at the file (seccomp; sys_module is dropped too).
        Assert.Equal(EPERM, Probe(n, "finit", "/bin/busybox"));
        Assert.Equal(EPERM, Probe(n, "syscall", Sys("init_module"), "0", "0", "0"));
        // Kernel memory and host internals: masked (kcore only exists on kernels built with it).
        var kcore = Probe(n, "read", "/proc/kcore", "4");
        Assert.True(kcore == ENOENT || ProbeLine(n, "read", "/proc/kcore", "4") == "ok 0 ", "kcore is absent or /dev/null");
        foreach (var masked in new[] { "/proc/keys", "/proc/timer_list" }.Where(p => File.Exists(p)))
            Assert.Equal("ok 0 ", ProbeLine(n, "read", masked, "4"));
        if (Directory.Exists("/sys/firmware"))
            Assert.Empty(Exec(n, "ls", "-A", "/sys/firmware").Output);
        // A host block device: the node can be made (mknod "m" is allowed, as in LXC), never opened or mounted.
        Assert.Equal(0, Probe(n, "mknod", "/tmp/loopdev", "b", major, minor));
        Assert.Equal(EPERM, Probe(n, "read", "/tmp/loopdev", "4"));
        Exec(n, "mkdir", "-p", "/mnt/host");
        Assert.NotEqual(0, Probe(n, "mount", "/tmp/loopdev", "/mnt/host", "btrfs"));
        // The host's disk itself: only ever opened here, where the devices cgroup must refuse it.
        var disk = HostDisk();
        if (disk is not null)
        {
            Assert.Equal(0, Probe(n, "mknod", "/tmp/disk", "b", disk.Value.Major, disk.Value.Minor));
            Assert.Equal(EPERM, Probe(n, "read", "/tmp/disk", "4"));
        }
        // Keyring and clone3: ENOSYS, so programs fall back (glibc uses clone).
        Assert.Equal(ENOSYS, Probe(n, "syscall", Sys("keyctl"), "0", "-1"));
        Assert.Equal(ENOSYS, Probe(n, "syscall", Sys("clone3"), "0", "0"));
        // A forced umount (LXC's reject_force_umount): EACCES from the filter; without MNT_FORCE it reaches the kernel.
        Assert.Equal(EACCES, Probe(n, "syscall", Sys("umount2"), "0", "1"));
        Assert.Equal(EFAULT, Probe(n, "syscall", Sys("umount2"), "0", "0"));
        // The host clock (sys_time dropped and filtered): settimeofday(NULL, NULL) would be a no-op if it got through.
        Assert.Equal(EPERM, Probe(n, "syscall", Sys("settimeofday"), "0", "0"));
    }

    [Fact]
    public void EscapeSuite_TheSameAttemptsGetPastTheControls_WhereTheConfigAllowsThem()
    {
        using var loop = new LoopFilesystem("btrfs", 256L << 20);
        var (major, minor) = DeviceNumbers(loop.LoopDevice!);
        var c = Running("allowed", AllowEverything);
        var n = c.Name;
        Assert.Empty(c.DroppedCapabilities);
        Assert.Equal("unconfined", c.SeccompProfile);
        var status = Status(Exec(n, "cat", "/proc/1/status").Output);
        Assert.Equal(AllCapabilities, Convert.ToUInt64(status["CapBnd"], 16));
        Assert.Equal("0", status["Seccomp"]);

        // Opened for writing (and closed: nothing is ever written to them).
        foreach (var path in ProcWritables)
            Assert.Equal(0, Probe(n, "openw", path));
        // finit_module reaches the kernel: this one has no module support (ENOSYS), others reject
        // the non-module file (ENOEXEC) or its missing signature; never EPERM.
        var module = Probe(n, "finit", "/bin/busybox");
        Assert.Contains(module, new[] { ENOSYS, 8 /* ENOEXEC */, 61 /* ENODATA */, 74 /* EBADMSG */, 126 /* ENOKEY */, 129 /* EKEYREJECTED */ });
        foreach (var unmasked in new[] { "/proc/keys", "/proc/timer_list" }.Where(p => File.Exists(p)))
            Assert.NotEqual("ok 0 ", ProbeLine(n, "read", unmasked, "4"));
        // The test's own loop device: readable and mountable once the devices cgroup allows it.
        Assert.Equal(0, Probe(n, "mknod", "/tmp/loopdev", "b", major, minor));
        Assert.StartsWith("ok 4 ", ProbeLine(n, "read", "/tmp/loopdev", "4"));
        Exec(n, "mkdir", "-p", "/mnt/host");
        Assert.Equal(0, Probe(n, "mount", "/tmp/loopdev", "/mnt/host", "btrfs"));
        Assert.NotEqual(ENOSYS, Probe(n, "syscall", Sys("clone3"), "0", "0"));
        Assert.NotEqual(ENOSYS, Probe(n, "syscall", Sys("keyctl"), "0", "-1"));
    }

    /// <summary>
    /// Mounts each hierarchy given as "type:options" and, in the cgroup the mount shows (the root of
    /// the container's cgroup namespace), writes every lifting value into every writable control
    /// file but the ones that act on the container itself (kill, freeze, moves). Prints "root SPEC
    /// PIDS" per mount and "wrote FILE VALUE" for each write the kernel took.
    /// </summary>
    private const string LiftEverything = """
        major=$1; minor=$2; cpus=$3; shift 3; i=0
        for spec in "$@"; do
          i=$((i+1)); d=/tmp/cg$i; mkdir -p $d
          t=${spec%%:*}; o=${spec#*:}
          if [ -n "$o" ]; then mount -t $t -o $o none $d; else mount -t $t none $d; fi || { echo "mountfail $spec"; continue; }
          echo "root $spec $(wc -l < $d/cgroup.procs)"
          for f in $d/*; do
            [ -f "$f" ] && [ -w "$f" ] || continue
            case "${f##*/}" in cgroup.procs|tasks|cgroup.threads|cgroup.kill|cgroup.freeze|freezer.state|cgroup.event_control|memory.force_empty|cgroup.type|cgroup.subtree_control|devices.deny) continue;; esac
            for v in max -1 9223372036854771712 a "a *:* rwm" "b $major:$minor rwm" "c *:* rwm" "b *:* rwm" "$cpus"; do
              echo "$v" 2>/dev/null > "$f" && echo "wrote ${f##*/} $v"
            done
          done
        done
        """;

    /// <summary>The limit files of a cgroup directory: writable, not counters or the process lists.</summary>
    private static Dictionary<string, string> LimitFiles(IEnumerable<string> dirs)
    {
        var skip = new[] { "usage", "failcnt", "stat", "events", "pressure", "current", "peak", "procs", "tasks", "threads", "reclaim", "force_empty", "kill", "freeze", "oom_control" };
        var files = new Dictionary<string, string>();
        foreach (var dir in dirs)
            foreach (var f in Directory.EnumerateFiles(dir))
            {
                var name = Path.GetFileName(f);
                if (skip.Any(name.Contains) || (File.GetUnixFileMode(f) & UnixFileMode.UserWrite) == 0) continue;
                try { files[f] = File.ReadAllText(f); } catch (IOException) { }
            }
        return files;
    }

    [Fact]
    public void Limits_CannotBeLiftedFromInside_ThroughTheContainersOwnHierarchies()
    {
        // A default (privileged, sys_admin kept) container with memory and pids limits and the
        // default device rules mounts every hierarchy there is and writes lifting values into its
        // own cgroup's files. Its cgroup namespace is rooted at the inner cgroup: what it reaches is
        // below the limits, which stay as they were and still hold.
        using var loop = new LoopFilesystem("btrfs", 256L << 20);
        var (major, minor) = DeviceNumbers(loop.LoopDevice!);
        var cgroups = _store.Manager.Cgroups;
        var c = Running("lift", "limits: { memory: 64M, pids: 40 }\n");
        var outer = c.CgroupPath!;
        var inner = CgroupManager.InnerOf(outer);
        // The container's processes are in the inner cgroup, the root of their cgroup namespace.
        // (Named hierarchies without a controller, like name=systemd, are not the container's.)
        static bool Managed(string line) => !line.Split(':')[1].StartsWith("name=", StringComparison.Ordinal);
        Assert.All(File.ReadAllLines($"/proc/{c.Pid}/cgroup").Where(Managed), l => Assert.EndsWith("/" + inner, l));
        Assert.All(Exec(c.Name, "cat", "/proc/1/cgroup").Output.Where(Managed), l => Assert.EndsWith(":/", l));
        Assert.Empty(cgroups.Pids(outer));

        var before = LimitFiles(cgroups.Directories(outer));
        Assert.Contains(before, kv => kv.Key.EndsWith("/pids.max") && kv.Value.Trim() == "40");
        var specs = new List<string>();
        if (cgroups.V1 is { } v1) specs.AddRange(v1.Mounts.Values.Distinct().Select(m => "cgroup:" + Path.GetFileName(m)));
        if (cgroups.V2 is not null) specs.Add("cgroup2:");
        var cpus = File.ReadAllText("/sys/devices/system/cpu/online").Trim();
        var lift = Exec(c.Name, new[] { "sh", "-c", LiftEverything, "lift", major, minor, cpus }.Concat(specs).ToArray());
        Assert.DoesNotContain(lift.Output, l => l.StartsWith("mountfail"));
        // Each mount shows the inner cgroup (the container's own processes, nothing above).
        Assert.Equal(specs.Count, lift.Output.Count(l => l.StartsWith("root ") && int.Parse(l.Split(' ')[2]) > 0));
        // The device list can only narrow below a parent: not one allow got through.
        Assert.DoesNotContain(lift.Output, l => l.StartsWith("wrote devices.allow"));
        // Its own (inner) cgroup it may change; but where cgroup2 is mounted with nsdelegate (as
        // systemd does) and pids is a v2 controller, not even that: the namespace root's files are
        // the delegating side's.
        var nsdelegate = cgroups.ControllerVersions().GetValueOrDefault("pids") == "v2" &&
            File.ReadLines("/proc/self/mountinfo").Any(l => l.Contains(" - cgroup2 ") && l.Split(' ')[4] == cgroups.V2!.MountPoint && l.Contains("nsdelegate"));
        Assert.True(lift.Output.Any(l => l.StartsWith("wrote pids.max max")) != nsdelegate, string.Join("\n", lift.Output.Concat(lift.Error)));
        var after = LimitFiles(cgroups.Directories(outer));
        foreach (var (file, value) in before)
            Assert.True(after.TryGetValue(file, out var now) && now == value, $"{file} changed from '{value.Trim()}' to '{now?.Trim()}'");

        // And they hold: the device, the process count, the memory.
        Assert.Equal(0, Probe(c.Name, "mknod", "/tmp/loopdev", "b", major, minor));
        Assert.Equal(EPERM, Probe(c.Name, "read", "/tmp/loopdev", "4"));
        var forks = Exec(c.Name, "sh", "-c", "i=0; while [ $i -lt 60 ]; do sleep 30 </dev/null >/dev/null 2>&1 & i=$((i+1)); done; true");
        var sleeping = cgroups.AllPids(outer).Where(p => File.ReadAllText($"/proc/{p}/comm").Trim() == "sleep").ToList();
        Assert.True(sleeping.Count is > 0 and < 40, $"{sleeping.Count} sleeps under pids.max 40");
        Assert.Contains(forks.Error, l => l.Contains("fork", StringComparison.OrdinalIgnoreCase));
        foreach (var p in sleeping) PSContainers.Runtime.Native.Sys.Kill(p, 9);
        Assert.True(SpinWait.SpinUntil(() => cgroups.AllPids(outer).Count < 10, 5000));
        var hog = Exec(c.Name, "/bin/busybox", "awk", "BEGIN { s = \"x\"; while (length(s) < 268435456) s = s s; print \"survived\" }");
        Assert.Equal(137, hog.ExitCode);
    }

    [Fact]
    public void AContainerOnTheOldLayout_IsStillJoinedStoppedAndRemoved()
    {
        // What a start before the inner layout left running: every process in the outer cgroup,
        // no inner one. Attach joins the outer cgroup; stop and remove clean up as before.
        var c = Running("oldlayout", "limits: { pids: 50 }\n");
        var cgroups = _store.Manager.Cgroups;
        var outer = c.CgroupPath!;
        var inner = CgroupManager.InnerOf(outer);
        if (cgroups.V2 is { } v2)
        {
            var sub = Path.Combine(v2.Directories(outer)[0], "cgroup.subtree_control");
            var enabled = File.ReadAllText(sub).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (enabled.Length > 0) File.WriteAllText(sub, string.Join(' ', enabled.Select(e => "-" + e)));
        }
        // Busybox init may fork (respawn) meanwhile: move until the inner cgroup is empty.
        for (var round = 0; cgroups.Exists(inner); round++)
        {
            foreach (var pid in cgroups.AllPids(outer))
                foreach (var procs in cgroups.ProcsFiles(outer))
                    try { File.WriteAllText(procs, pid.ToString()); } catch (IOException) when (!Directory.Exists($"/proc/{pid}")) { }
            foreach (var dir in cgroups.Directories(inner).Where(Directory.Exists))
                try { Directory.Delete(dir); } catch (IOException) when (round < 50) { Thread.Sleep(100); }
        }
        Assert.False(cgroups.Exists(inner));
        Assert.Equal(outer, cgroups.JoinPathOf(outer));

        var attached = Exec(c.Name, "sh", "-c", "sleep 30 </dev/null >/dev/null 2>&1 & echo $!");
        Assert.Equal(0, attached.ExitCode);
        // Joined in the outer cgroup (the background child may still be a forked sh for a moment: wait for its exec).
        static string Comm(int p) { try { return File.ReadAllText($"/proc/{p}/comm").Trim(); } catch (IOException) { return ""; } }
        Assert.True(SpinWait.SpinUntil(() => cgroups.Pids(outer).Any(p => Comm(p) == "sleep"), 5000), "the attached command's sleep is not in the outer cgroup");
        var stopped = (ContainerInfo)_ps.Run("Stop-Container $args[0] -PassThru", c.Name).Single().BaseObject;
        Assert.Equal(PSContainers.Runtime.State.ContainerStatus.Stopped, stopped.State);
        Assert.False(cgroups.Exists(outer));
        _ps.Run("Remove-Container $args[0]", c.Name);
        Assert.False(_store.Manager.Exists(c.Name));
    }

    [Fact]
    public void V2DeviceProgram_CannotBeReplacedOrDetached_FromInside()
    {
        // The bare cgroup2 tree with a v2-only manager: the device rules are an eBPF program on the
        // outer cgroup. A container with every capability and no seccomp filter (bpf(2) reachable)
        // mounts cgroup2 and tries to attach an allow-all program to its namespace root (each
        // attach mode) and below, and to detach what is in force; the host's loop device stays shut.
        var host = CgroupManager.ForHost();
        var unified = host.V2?.MountPoint;
        Assert.NotNull(unified);
        var v2only = new CgroupManager(null, new CgroupV2Driver(unified!));
        var manager = PSContainers.Runtime.Composition.ContainerRuntime.Open(new PSContainers.Runtime.State.ContainerStore(_store.StorePath), v2only);
        using var loop = new LoopFilesystem("btrfs", 256L << 20);
        var (major, minor) = DeviceNumbers(loop.LoopDevice!);
        var name = TestStore.NewName("bpfdev");
        var config = Path.Combine(_store.Root, name + ".yaml");
        File.WriteAllText(config, "security:\n  capabilities: { drop: [] }\n  seccomp: { profile: unconfined }\n");
        var created = manager.Create(name, new CreateOptions { Template = "busybox", ConfigPath = config, Privileged = true });
        EscapeProbe.InstallInto(created.RootfsPath);
        try
        {
            var c = manager.Start(name);
            var outerDir = v2only.Directories(c.CgroupPath!)[0];
            var rules = CgroupDeviceProgram.ReadRules(outerDir)?.Select(r => r.ToString()).ToList();
            Assert.NotNull(rules);
            string Line(params string[] args)
            {
                var r = manager.Exec(name, new[] { "escape-probe" }.Concat(args).ToArray());
                Assert.True(r.Output.Length == 1, string.Join("\n", r.Output.Concat(r.Error)));
                return r.Output[0];
            }
            Assert.Equal(0, manager.Exec(name, new[] { "sh", "-c", "mkdir -p /tmp/cg2 && mount -t cgroup2 none /tmp/cg2 && mkdir /tmp/cg2/sub" }).ExitCode);
            Assert.Equal(0, EscapeProbe.Errno(Line("mknod", "/tmp/loopdev", "b", major, minor)));
            Assert.Equal(EPERM, EscapeProbe.Errno(Line("read", "/tmp/loopdev", "4")));
            foreach (var flags in new[] { "0", "1", "2" }) // none, BPF_F_ALLOW_OVERRIDE, BPF_F_ALLOW_MULTI
            {
                Assert.Equal(EPERM, EscapeProbe.Errno(Line("bpfdev", "/tmp/cg2", flags)));
                Assert.Equal(EPERM, EscapeProbe.Errno(Line("bpfdev", "/tmp/cg2/sub", flags)));
            }
            Assert.NotEqual(0, EscapeProbe.Errno(Line("bpfdetach", "/tmp/cg2")));
            Assert.Equal(EPERM, EscapeProbe.Errno(Line("read", "/tmp/loopdev", "4")));
            Assert.Equal(rules, CgroupDeviceProgram.ReadRules(outerDir)?.Select(r => r.ToString()).ToList());
            manager.Stop(name, kill: true);
            Assert.False(v2only.Exists(c.CgroupPath!));
        }
        finally
        {
            try { manager.Remove(name, force: true); } catch (ContainerException) { }
        }
    }

    [Fact]
    public void NoHostDescriptor_AndTheWorkingDirectory_IsInsideTheContainer()
    {
        var c = Running("fds", command: "-Command /bin/sleep,1000");
        var attached = Exec(c.Name, "escape-probe", "fds").Output;
        Assert.Equal(new[] { "0", "1", "2" }, attached.Where(l => l.StartsWith("fd ")).Select(l => l.Split(' ')[1]));
        Assert.Contains("cwd /", attached);
        Assert.Contains("root /", attached);
        // init (sleep, which opens nothing itself): only the console on 0, 1, 2.
        var initFds = Exec(c.Name, "ls", "/proc/1/fd").Output.SelectMany(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(new[] { "0", "1", "2" }, initFds.OrderBy(x => x));
        Assert.Equal(new[] { "/" }, Exec(c.Name, "readlink", "/proc/1/cwd").Output);
        Assert.Equal(new[] { "/" }, Exec(c.Name, "readlink", "/proc/1/root").Output);
        // A working directory asked for is resolved inside the container, not on the host.
        Directory.CreateDirectory(Path.Combine(c.RootfsPath, "srv", "app"));
        var cwd = (ContainerCommandResult)_ps.Run("Invoke-ContainerCommand $args[0] -WorkingDirectory /srv/app -Command readlink,/proc/self/cwd", c.Name).Single().BaseObject;
        Assert.Equal(new[] { "/srv/app" }, cwd.Output);
    }

    [Fact]
    public void TheHelper_CannotBeRewrittenFromInside()
    {
        // A private copy of the helper, so that even a broken protection could never damage the build.
        using var dir = new TempDir();
        var helper = Path.Combine(dir.Path, "psc-helper");
        File.Copy(PscHelper.Path, helper);
        File.SetUnixFileMode(helper, (UnixFileMode)0b111_101_101);
        var before = SHA256.HashData(File.ReadAllBytes(helper));
        var previous = Environment.GetEnvironmentVariable(PscHelper.EnvironmentVariable);
        Environment.SetEnvironmentVariable(PscHelper.EnvironmentVariable, helper);
        try
        {
            var c = Running("cve5736");
            var m = _store.Manager;
            // The CVE-2019-5736 set-up: a program that is a link to /proc/self/exe makes the entering
            // helper run itself inside the container. Here it blocks opening a FIFO, while a process
            // of the container holds /proc/PID/exe, lets it die and then writes through what it held.
            m.Exec(c.Name, new[] { "sh", "-c", "ln -s /proc/self/exe /tmp/evil && mkfifo /tmp/fifo && (escape-probe hijack /tmp/fifo >/tmp/hijack.out 2>&1 </dev/null &)" });
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            // The released helper reads an empty spec and fails: that failure is the expected end.
            var evil = Assert.Throws<PSContainers.Runtime.ContainerException>(() => m.Exec(c.Name, new[] { "/tmp/evil", "exec", "/tmp/fifo" }, cancellationToken: timeout.Token));
            Assert.Contains("/tmp/fifo", evil.Message);
            var report = new List<string>();
            for (var i = 0; i < 100 && !report.Any(l => l.StartsWith("openw-after-exit") || l.StartsWith("no helper")); i++, Thread.Sleep(50))
                report = m.Exec(c.Name, new[] { "cat", "/tmp/hijack.out" }).Output.ToList();
            var text = string.Join("\n", report);
            // What /proc/PID/exe reached was the sealed in-memory copy, never the helper file...
            Assert.Contains(report, l => l.StartsWith("exe /memfd:psc-helper"));
            // ...and every write through it failed.
            Assert.DoesNotContain(report, l => l is "write-while-running 0" or "write-after-exit 0");
            Assert.True(report.Any(l => l.StartsWith("openw-after-exit")), text);
            Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(helper)));
        }
        finally
        {
            Environment.SetEnvironmentVariable(PscHelper.EnvironmentVariable, previous);
        }
    }

    [Fact]
    public void ProfileFromYaml_TheKernelAgreesWithTheGeneratedProgram()
    {
        using var dir = new TempDir();
        var profile = dir.Write("strict.yaml", """
            defaultAction: allow
            syscalls:
              - names: [getpriority]
                action: errno
                errno: EACCES
              - names: [personality]
                action: errno
                errno: EOPNOTSUPP
                args: [{ index: 0, op: eq, value: 8 }]
            """);
        var c = Running("profile", $"security:\n  seccomp: {{ profile: {profile}, deny: [getppid, kexec_load], errno: EXDEV }}\n");
        var settings = SecurityPlan.Resolve(PSContainers.Runtime.Config.ConfigLoader.Load(Path.Combine(_store.StorePath, c.Name, "config.yaml")).Security);
        var arch = SyscallTable.HostArch == SeccompArch.X86_64 ? SeccompCompiler.AuditArchX86_64 : SeccompCompiler.AuditArchAarch64;
        // (syscall, args): what the interpreter says the program answers, and what the kernel answered.
        var cases = new (string Name, ulong[] Args)[]
        {
            ("getpriority", new ulong[] { 0, 0 }), ("personality", new ulong[] { 8 }), ("personality", new ulong[] { 0xffffffff }),
            ("getppid", Array.Empty<ulong>()), ("kexec_load", new ulong[] { 0, 0, 0, 0 }), ("getpid", Array.Empty<ulong>()),
            ("keyctl", new ulong[] { 0, ulong.MaxValue }), // the default profile is replaced by the file: keyctl reaches the kernel
        };
        foreach (var (name, args) in cases)
        {
            var verdict = SeccompInterpreter.Run(settings.SeccompFilter!, arch, int.Parse(Sys(name)), args);
            var errno = Probe(c.Name, new[] { "syscall", Sys(name) }.Concat(args.Select(a => ((long)a).ToString())).ToArray());
            if (verdict == SeccompCompiler.RetAllow)
                Assert.True(errno is not (18 or 13 or 95), $"{name}: allowed by the program, but the kernel answered errno {errno}");
            else
                Assert.True((verdict & 0xFFFF) == errno, $"{name}: the program says errno {verdict & 0xFFFF}, the kernel answered {errno}");
        }
        Assert.Equal(13, Probe(c.Name, "syscall", Sys("getpriority"), "0", "0"));
        Assert.Equal(95, Probe(c.Name, "syscall", Sys("personality"), "8"));
        Assert.Equal(18, Probe(c.Name, "syscall", Sys("getppid")));
    }

    [Fact]
    public void LongRules_NeedJumpsPast255Instructions_AndTheKernelAgrees()
    {
        // A rule of 45 maskedEq conditions is 270 instructions: its failure and skip jumps do not
        // fit a conditional jump's 8-bit offset. Truncated, they land mid-rule and give wrong
        // verdicts; the checks below are the kernel's own answers.
        using var dir = new TempDir();
        var masked = string.Join(", ", Enumerable.Range(0, 45).Select(k => $"{{ index: 1, op: maskedEq, mask: {1UL << k}, value: {1UL << k} }}"));
        var ne = string.Join(", ", Enumerable.Range(1, 70).Select(k => $"{{ index: 0, op: ne, value: {1000000 + k} }}"));
        var profile = dir.Write("long.yaml", $$"""
            defaultAction: allow
            syscalls:
              - names: [getpriority]
                action: errno
                errno: EXDEV
                args: [{{masked}}]
              - names: [getpriority]
                action: errno
                errno: EACCES
                args: [{ index: 0, op: eq, value: 7 }]
              - names: [getpgid]
                action: errno
                errno: EOPNOTSUPP
                args: [{{ne}}]
              - names: [getppid]
                action: errno
                errno: ENOTTY
            """);
        var c = Running("longjump", $"security:\n  seccomp: {{ profile: {profile} }}\n");
        var settings = SecurityPlan.Resolve(PSContainers.Runtime.Config.ConfigLoader.Load(Path.Combine(_store.StorePath, c.Name, "config.yaml")).Security);
        var program = SeccompCompiler.Program(settings.Seccomp!, SyscallTable.HostArch);
        Assert.True(program.Any(i => i.Code == 0x05 && i.K > byte.MaxValue), $"no long jump in {program.Count} instructions: {string.Join(", ", settings.Seccomp!.Rules.Select(r => r.Args?.Count))}"); // it does need long jumps
        const ulong all45 = (1UL << 45) - 1;
        var cases = new (string Name, ulong[] Args, int Errno)[]
        {
            ("getpriority", new ulong[] { 7, all45 }, 18),                    // every condition holds
            ("getpriority", new ulong[] { 99, all45 | 1UL << 60 }, 18),        // extra bits are masked away
            ("getpriority", new ulong[] { 7, all45 & ~(1UL << 44) }, 13),      // the last condition fails: the next rule
            ("getpriority", new ulong[] { 7, all45 & ~1UL }, 13),              // the first condition fails
            ("getpriority", new ulong[] { 7, 0 }, 13),
            ("getpriority", new ulong[] { 99, all45 & ~(1UL << 20) }, EINVAL), // no rule: the kernel's own answer
            ("getpgid", new ulong[] { 1 }, 95),                                // every ne holds
            ("getpgid", new ulong[] { 1000070 }, 3),                           // the last ne fails: ESRCH from the kernel
            ("getpgid", new ulong[] { 1000001 }, 3),                           // the first ne fails
            ("getppid", Array.Empty<ulong>(), 25),                             // past both long rules
        };
        var arch = SyscallTable.HostArch == SeccompArch.X86_64 ? SeccompCompiler.AuditArchX86_64 : SeccompCompiler.AuditArchAarch64;
        foreach (var (name, args, expected) in cases)
        {
            var errno = Probe(c.Name, new[] { "syscall", Sys(name) }.Concat(args.Select(a => ((long)a).ToString())).ToArray());
            Assert.True(errno == expected, $"{name}({string.Join(", ", args)}): the kernel answered errno {errno}, expected {expected}");
            var verdict = SeccompInterpreter.Run(settings.SeccompFilter!, arch, int.Parse(Sys(name)), args);
            Assert.True(verdict == SeccompCompiler.RetAllow ? expected is 0 or 3 or EINVAL : (verdict & 0xFFFF) == expected, $"{name}: the interpreter says {verdict:x}");
        }
    }

    [Fact]
    public void DefaultProfile_EveryDeniedCall_IsRefusedByTheKernel_AsGenerated()
    {
        var c = Running("verdicts");
        var settings = SecurityPlan.Resolve(new PSContainers.Runtime.Config.SecurityConfig());
        var arch = SyscallTable.HostArch == SeccompArch.X86_64 ? SeccompCompiler.AuditArchX86_64 : SeccompCompiler.AuditArchAarch64;
        // All arguments -1: an invalid fd, pointer or flag for each of these, should one ever get through.
        // vhangup takes no arguments and would act at once: it is checked by the interpreter only.
        var names = SeccompProfile.Default.Rules.Where(r => r.Args is null or { Count: 0 }).SelectMany(r => r.Names)
            .Where(n => n != "vhangup" && SyscallTable.Number(n, SyscallTable.HostArch) is not null).ToList();
        var script = string.Join("; ", names.Select(n => $"echo {n} $(escape-probe syscall {Sys(n)} -1 -1 -1 -1 -1 -1)"));
        var lines = Exec(c.Name, "sh", "-c", script).Output;
        Assert.Equal(names.Count, lines.Length);
        foreach (var line in lines)
        {
            var parts = line.Split(' ');
            var verdict = SeccompInterpreter.Run(settings.SeccompFilter!, arch, int.Parse(Sys(parts[0])), Enumerable.Repeat(ulong.MaxValue, 6).ToArray());
            Assert.True(parts[1] == "err" && int.Parse(parts[2]) == (verdict & 0xFFFF), $"{line}: expected errno {verdict & 0xFFFF}");
        }
    }

    [Fact]
    public void DroppingSysAdmin_KeepsTheReadOnlyMountsReadOnly_AndKeepModeKeepsOnlyTheList()
    {
        // With sys_admin (kept by default, as in LXC, for system containers) root could remount
        // /proc/sys read-write or unmount a mask; dropping it closes that.
        var strict = Running("noadmin", "security:\n  capabilities: { drop: [default, sys_admin] }\n");
        Assert.Contains("sys_admin", strict.DroppedCapabilities);
        var remount = Exec(strict.Name, "mount", "-o", "remount,rw", "/proc/sys");
        Assert.NotEqual(0, remount.ExitCode);
        Assert.Contains(remount.Error, l => l.Contains("permission denied", StringComparison.OrdinalIgnoreCase));
        var unmask = Exec(strict.Name, "umount", "/proc/sys");
        Assert.NotEqual(0, unmask.ExitCode);
        Assert.Contains(unmask.Error, l => l.Contains("Operation not permitted"));
        foreach (var path in ProcWritables)
            Assert.Equal(EROFS, Probe(strict.Name, "openw", path));

        var keep = Running("keep", "security:\n  capabilities: { keep: [chown, dac_override, fowner, kill, setgid, setuid, net_bind_service, sys_chroot] }\n");
        var status = Status(Exec(keep.Name, "cat", "/proc/1/status").Output);
        var kept = new[] { "chown", "dac_override", "fowner", "kill", "setgid", "setuid", "net_bind_service", "sys_chroot" }
            .Aggregate(0UL, (m, n) => m | 1UL << Capabilities.Number(n));
        Assert.Equal(kept, Convert.ToUInt64(status["CapBnd"], 16));
        Assert.Equal(kept, Convert.ToUInt64(Status(Exec(keep.Name, "cat", "/proc/self/status").Output)["CapEff"], 16));
    }

    [Fact]
    public void ReadOnlyBindMount_IsReadOnlyAllTheWayDown_ThroughAHostSubmount()
    {
        // The host directory has a filesystem mounted below it. The bind is recursive (the submount
        // is visible inside); readOnly must hold for the submount too, not only for the top mount:
        // a remount with MS_REC does not recurse (the kernel ignores MS_REC there).
        var source = Path.Combine(_store.Root, "ro-src");
        var sub = Path.Combine(source, "sub");
        Directory.CreateDirectory(sub);
        File.WriteAllText(Path.Combine(source, "top.txt"), "host top");
        HostCommand.Run("mount", "-t", "tmpfs", "-o", "size=1m", "psct-rosub", sub);
        try
        {
            File.WriteAllText(Path.Combine(sub, "host.txt"), "host file");
            var c = Running("rosub", $"mounts:\n  - {{ source: {source}, target: /mnt/ro, readOnly: true }}\n");
            Assert.Equal("host file", Exec(c.Name, "cat", "/mnt/ro/sub/host.txt").Output.Single());
            foreach (var path in new[] { "/mnt/ro/top.txt", "/mnt/ro/sub/host.txt" })
                Assert.Equal(EROFS, Probe(c.Name, "openw", path));
            Assert.NotEqual(0, Exec(c.Name, "sh", "-c", "echo changed > /mnt/ro/sub/host.txt").ExitCode);
            Assert.NotEqual(0, Exec(c.Name, "sh", "-c", "echo new > /mnt/ro/sub/new.txt").ExitCode);
            Assert.Equal("host file", File.ReadAllText(Path.Combine(sub, "host.txt")));
            Assert.False(File.Exists(Path.Combine(sub, "new.txt")));
            Assert.Equal("host top", File.ReadAllText(Path.Combine(source, "top.txt")));
            // Inside, every mount at or below the target is read-only.
            var mounts = Exec(c.Name, "cat", "/proc/self/mountinfo").Output.Select(l => l.Split(' ')).Where(f => f[4] == "/mnt/ro" || f[4].StartsWith("/mnt/ro/")).ToList();
            Assert.Equal(2, mounts.Count);
            Assert.All(mounts, f => Assert.StartsWith("ro", f[5]));
        }
        finally
        {
            HostCommand.Run("umount", "-l", sub);
        }
    }

    [Fact]
    public void ABadProfile_FailsTheStart_NamingTheFileAndLine()
    {
        using var dir = new TempDir();
        var profile = dir.Write("bad.yaml", "syscalls:\n  - { names: [read], action: maybe }\n");
        var name = TestStore.NewName("badprof");
        var config = dir.Write("c.yaml", $"security:\n  seccomp: {{ profile: {profile} }}\n");
        _ps.Run("New-Container -Name $args[0] -Template busybox -ConfigPath $args[1]", name, config);
        var err = _ps.Invoke("Start-Container $args[0]", name).SingleError;
        Assert.True(err.ToString().Contains($"{profile}:2:"), err.ToString());
        Assert.Equal("Stopped", _ps.Run("(Get-Container $args[0]).State", name).Single().ToString());
        // And a missing one says so.
        File.Delete(profile);
        Assert.StartsWith("SeccompProfileNotFound", _ps.Invoke("Start-Container $args[0]", name).SingleError.FullyQualifiedErrorId);
    }

    private static (string Major, string Minor) DeviceNumbers(string device)
    {
        var parts = HostCommand.Run("stat", "-L", "-c", "%t %T", device).Split(' ');
        return (Convert.ToInt32(parts[0], 16).ToString(), Convert.ToInt32(parts[1], 16).ToString());
    }

    /// <summary>The disk holding / (major:minor from mountinfo's device of the root mount).</summary>
    private static (string Major, string Minor)? HostDisk()
    {
        var root = File.ReadLines("/proc/self/mountinfo").Select(l => l.Split(' ')).FirstOrDefault(f => f[4] == "/");
        if (root is null) return null;
        var mm = root[2].Split(':');
        return mm[0] == "0" ? null : (mm[0], mm[1]);
    }
}
