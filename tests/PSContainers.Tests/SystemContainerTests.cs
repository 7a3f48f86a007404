using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// A system container: debootstrap -Init systemd, unprivileged (the default mode), boots systemd as
/// its pid 1 to "running" on this host's cgroup layout, runs a getty on its console, lets a user log
/// in with a password, and stops cleanly (SIGRTMIN+3, the shutdown units, then exit) leaving no
/// cgroup behind. Downloads from the Debian mirror like DebootstrapContainerTests (minutes).
/// </summary>
[Collection("Containers")]
public sealed class SystemContainerTests : IDisposable
{
    private readonly TestStore _store = new();

    public void Dispose() => _store.Dispose();

    /// <summary>
    /// A terminal for login(1), in perl-base (in every Debian tree): a pty from /dev/ptmx, login on its
    /// slave as session leader, and each answer typed only after its prompt (login flushes input typed
    /// ahead when it turns echo off). Exits 0 after a shell ran "id", 1 on "Login incorrect".
    /// </summary>
    private const string LoginTerminal = """
        use strict; use POSIX ();
        my ($user, $password) = @ARGV;
        open(my $m, "+<", "/dev/ptmx") or die "ptmx: $!";
        my $zero = pack("i", 0); ioctl($m, 0x40045431, $zero) or die "unlockpt: $!";
        my $buf = pack("i", 0); ioctl($m, 0x80045430, $buf) or die "ptsname: $!";
        my $pts = "/dev/pts/" . unpack("i", $buf);
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            POSIX::setsid(); close $m;
            open(my $s, "+<", $pts) or die "open $pts: $!";
            my $z = 0; ioctl($s, 0x540E, $z);
            POSIX::dup2(fileno($s), $_) for 0..2;
            exec "login", $user or die "exec login: $!";
        }
        my $seen = ""; my $step = 0; $| = 1;
        local $SIG{ALRM} = sub { print "\n[timeout]\n"; kill 9, $pid; exit 3 }; alarm 30;
        while (sysread($m, my $chunk, 4096)) {
            print $chunk; $seen .= $chunk;
            if ($seen =~ /Login incorrect/) { kill 9, $pid; waitpid $pid, 0; exit 1 }
            if ($step == 0 && $seen =~ /Password:\s*$/) { syswrite $m, "$password\n"; $step = 1; $seen = "" }
            elsif ($step == 1 && $seen =~ /[\$#]\s*$/) { syswrite $m, "id; exit\n"; $step = 2 }
        }
        waitpid $pid, 0; exit($? >> 8);
        """;

    [Fact]
    public void SystemdContainer_BootsUnprivileged_LetsAUserLogIn_AndStopsCleanly()
    {
        using var ps = _store.OpenSession();
        var name = TestStore.NewName("sysd");
        var info = (ContainerInfo)ps.Run("New-Container $args[0] -Template debootstrap -Release bookworm -Init systemd", name).Single().BaseObject;
        Assert.Equal(ContainerMode.Unprivileged, info.Mode);
        var config = File.ReadAllText(Path.Combine(_store.StorePath, name, "config.yaml"));
        Assert.Contains("/sbin/init", config);
        Assert.Contains("SIGRTMIN+3", config);
        Assert.Contains("container: pscontainers", config);

        ps.Run("Start-Container $args[0]", name);
        // systemd reaches its default target; "starting" while units still run, so wait for the end.
        var state = WaitForBoot(ps, name);
        Assert.Equal("/usr/lib/systemd/systemd", Exec(ps, name, "readlink -f /proc/1/exe"));
        var failed = Exec(ps, name, "systemctl --failed --no-legend --plain --no-pager");
        Assert.True(state == "running", $"systemctl is-system-running said '{state}'; failed units:\n{failed}");
        // systemd runs on its own cgroup2 tree, which it could write (its scopes and slices are there).
        Assert.Equal("0::/init.scope", Exec(ps, name, "cat /proc/1/cgroup").Split('\n').Single(l => l.StartsWith("0::")));
        Assert.Equal("active", Exec(ps, name, "systemctl is-active console-getty.service"));
        // The getty's prompt went to the console, which the supervisor logs.
        // (agetty prints it a moment after systemd counts the unit as started: wait for it, bounded.)
        var prompt = $"{name} login:";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30 * TestPaths.SlowFactor);
        string log;
        while (!(log = string.Join("\n", _store.Manager.ReadConsoleLog(name))).Contains(prompt) && DateTime.UtcNow < deadline) Thread.Sleep(200);
        Assert.Contains(prompt, log);

        // A user with a password logs in through login(1) on a terminal (PAM checks the password).
        Exec(ps, name, "useradd -m -s /bin/sh psctest && echo psctest:Psc-Secret-1 | chpasswd");
        var ok = (ContainerCommandResult)ps.Run("Invoke-ContainerCommand $args[0] perl,-e,$args[1],psctest,Psc-Secret-1 -Timeout 60", name, LoginTerminal).Single().BaseObject;
        Assert.True(ok.ExitCode == 0, string.Join("\n", ok.Output.Concat(ok.Error)));
        Assert.Contains(ok.Output, l => l.Contains("uid=1000(psctest)"));
        var wrong = (ContainerCommandResult)ps.Run("Invoke-ContainerCommand $args[0] perl,-e,$args[1],psctest,wrong-password -Timeout 60", name, LoginTerminal).Single().BaseObject;
        Assert.Equal(1, wrong.ExitCode);
        Assert.DoesNotContain(wrong.Output, l => l.Contains("uid=1000"));

        // The same user logs in on the console itself, through the supervisor's console socket as
        // Enter-Container -Console's relay does: agetty's prompt, login(1), a shell on /dev/console.
        using (var console = ConsoleSocketClient.Connect(_store.Manager.Store.ConsoleSocketPath(name)))
        {
            ConsoleSocketClient.Type(console, "\r");
            Assert.Contains("login:", ConsoleSocketClient.ReadUntil(console, "login:"));
            ConsoleSocketClient.Type(console, "psctest\r");
            Assert.Contains("Password:", ConsoleSocketClient.ReadUntil(console, "Password:"));
            ConsoleSocketClient.Type(console, "Psc-Secret-1\r");
            Assert.Contains("$", ConsoleSocketClient.ReadUntil(console, "$ "));
            ConsoleSocketClient.Type(console, "echo \"T=$(tty)=T\"; id\r");
            var session = ConsoleSocketClient.ReadUntil(console, "uid=1000(psctest)");
            Assert.Contains("uid=1000(psctest)", session);
            Assert.Contains("T=/dev/console=T", session);
            ConsoleSocketClient.Type(console, "exit\r");
            // agetty comes back for the next login.
            Assert.Contains("login:", ConsoleSocketClient.ReadUntil(console, "login:"));
        }

        // SIGRTMIN+3: systemd runs its shutdown and halts, well within the timeout; no kill.
        var cgroupPath = ((ContainerInfo)ps.Run("Get-Container $args[0]", name).Single().BaseObject).CgroupPath;
        Assert.NotNull(cgroupPath);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var stopped = (ContainerInfo)ps.Run("Stop-Container $args[0] -Timeout 30 -PassThru", name).Single().BaseObject;
        Assert.Equal(ContainerStatus.Stopped, stopped.State);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(25), $"stop took {watch.Elapsed}");
        // systemd's own end of a halt, not a kill: its last words on the console.
        Assert.Contains("Halting system.", string.Join("\n", _store.Manager.ReadConsoleLog(name)));
        foreach (var driver in HostCgroups.Host.Drivers)
            foreach (var dir in driver.Directories(cgroupPath!))
                Assert.False(Directory.Exists(dir), $"{dir} is left after the stop");

        ps.Run("Remove-Container $args[0]", name);
    }

    private static string Exec(ModuleSession ps, string name, string script)
    {
        var r = (ContainerCommandResult)ps.Run("Invoke-ContainerCommand $args[0] sh,-c,$args[1] -Timeout 60", name, script).Single().BaseObject;
        return string.Join("\n", r.Output).Trim();
    }

    private static string WaitForBoot(ModuleSession ps, string name)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        string state;
        do
        {
            state = Exec(ps, name, "systemctl is-system-running || true");
            if (state is not ("starting" or "initializing" or "")) return state;
            Thread.Sleep(1000);
        } while (DateTime.UtcNow < deadline);
        return state;
    }
}
