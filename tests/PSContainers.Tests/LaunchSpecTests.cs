using System.Text;
using PSContainers.Runtime;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Launcher;

namespace PSContainers.Tests;

/// <summary>The C# side of the psc-helper protocol: the generated spec classes' bytes, the limits they share
/// with psc-helper, the reply lines, and the real helper reading what they write. (The C side alone: SpecParserTests.)</summary>
public sealed class LaunchSpecTests
{
    private static byte[] Nul(params string[] items) => Encoding.UTF8.GetBytes(string.Concat(items.Select(i => i + "\0")));

    private static string Show(byte[] bytes) => Encoding.UTF8.GetString(bytes).Replace("\0", "\\0");

    private static void AssertBytes(byte[] expected, byte[] actual) => Assert.Equal(Show(expected), Show(actual));

    [Fact]
    public void Serialize_StartSpec_ExactBytes()
    {
        var spec = new StartSpec
        {
            Namespaces = NamespaceKind.Mount | NamespaceKind.Pid,
            Rootfs = "/store/web/rootfs",
            Hostname = "wéb",
            WorkingDirectory = "/",
            ConsoleLog = "/store/web/console.log",
            ConsoleLogMaxBytes = 1048576,
            ExitRecord = "/store/web/exit",
        };
        spec.CgroupProcsFiles.Add("/sys/fs/cgroup/memory/pscontainers/web/cgroup.procs");
        spec.CgroupDirectories.Add("/sys/fs/cgroup/unified/pscontainers/web");
        spec.Mounts.Add(new MountEntry("proc", "/proc", "proc", MountFlags.NoSuid | MountFlags.NoDev | MountFlags.NoExec));
        spec.Mounts.Add(new MountEntry("/data", "/mnt/data", "", MountFlags.Bind | MountFlags.Recursive | MountFlags.Optional, "mode=755"));
        spec.Symlinks.Add(("/proc/self/fd", "/dev/fd"));
        spec.Environment.Add("PATH=/bin");
        spec.Environment.Add("EMPTY=");
        spec.Command.Add("/bin/sh");
        spec.Command.Add("-c");
        spec.Command.Add("echo 'a b'");

        var expected = Nul(
            "flags", "537001984", // CLONE_NEWNS | CLONE_NEWPID
            "rootfs", "/store/web/rootfs",
            "hostname", "wéb",
            "cwd", "/",
            "console", "/store/web/console.log", "logmax", "1048576",
            "exitfile", "/store/web/exit",
            "cgroup", "/sys/fs/cgroup/memory/pscontainers/web/cgroup.procs",
            "cgdir", "/sys/fs/cgroup/unified/pscontainers/web",
            "mount", "proc", "/proc", "proc", "14", "",
            "mount", "/data", "/mnt/data", "", (4096UL + 16384UL + (1UL << 42)).ToString(), "mode=755",
            "symlink", "/proc/self/fd", "/dev/fd",
            "env", "PATH=/bin", "env", "EMPTY=",
            "arg", "/bin/sh", "arg", "-c", "arg", "echo 'a b'");
        AssertBytes(expected, spec.Serialize());
        // UTF-8 on the wire: é is the two bytes C3 A9.
        var bytes = spec.Serialize();
        var host = Encoding.ASCII.GetBytes("hostname\0");
        var at = bytes.AsSpan().IndexOf(host) + host.Length;
        Assert.Equal(new byte[] { (byte)'w', 0xC3, 0xA9, (byte)'b', 0 }, bytes[at..(at + 5)]);
    }

    [Fact]
    public void Serialize_ExecSpec_ExactBytes()
    {
        var spec = new ExecSpec
        {
            TargetPid = 4321,
            Namespaces = NamespaceKind.User | NamespaceKind.Mount | NamespaceKind.Pid | NamespaceKind.Network,
            WorkingDirectory = "/root",
        };
        spec.CgroupProcsFiles.Add("/sys/fs/cgroup/unified/pscontainers/web/cgroup.procs");
        spec.Environment.Add("TERM=xterm");
        spec.Command.Add("ls");
        spec.Command.Add("-l");
        var expected = Nul(
            "pid", "4321",
            "ns", "user", "ns", "mnt", "ns", "pid", "ns", "net", // user first: it grants the rights for the others
            "cwd", "/root",
            "cgroup", "/sys/fs/cgroup/unified/pscontainers/web/cgroup.procs",
            "env", "TERM=xterm",
            "arg", "ls", "arg", "-l");
        AssertBytes(expected, spec.Serialize());
    }

    [Fact]
    public void Serialize_MinimalSpec()
    {
        var spec = new StartSpec();
        spec.Command.Add("/bin/true");
        AssertBytes(Nul("flags", "0", "arg", "/bin/true"), spec.Serialize());
    }

    [Fact]
    public void Serialize_RejectsNul()
    {
        var arg = new ExecSpec();
        arg.Command.Add("a\0b");
        var ex = Assert.Throws<ContainerException>(() => arg.Serialize());
        Assert.Equal("InvalidArgument", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains("a\\0b", ex.Message);

        var env = new NetNsExecSpec();
        env.Environment.Add("X=\0");
        Assert.Throws<ContainerException>(() => env.Serialize());

        var mount = new StartSpec();
        mount.Mounts.Add(new MountEntry("tmpfs", "/tmp", "tmpfs", MountFlags.None, "size=1m\0,exec"));
        Assert.Throws<ContainerException>(() => mount.Serialize());

        var host = new StartSpec { Hostname = "\0" };
        Assert.Throws<ContainerException>(() => host.Serialize());
    }

    [Fact]
    public void Serialize_RefusesWhatTheHelperWouldRefuse_NamingTheKey()
    {
        // The limits come from psc-protocol.h, like the helper's: a value over them fails here, before any process starts.
        var cwd = new ExecSpec { TargetPid = 1, WorkingDirectory = "/" + new string('d', 4095) };
        var ex = Assert.Throws<ContainerException>(() => cwd.Serialize());
        Assert.Equal("InvalidArgument", ex.ErrorId);
        Assert.Contains("'cwd' is too long", ex.Message);
        Assert.Contains("4096 bytes, at most 4095", ex.Message);
        new ExecSpec { TargetPid = 1, WorkingDirectory = new string('d', 4095) }.Serialize();
        // Bytes, not characters: 2048 'é' are 4096 bytes of UTF-8.
        Assert.Throws<ContainerException>(() => new StartSpec { Rootfs = new string('é', 2048) }.Serialize());
        var many = new ExecSpec { TargetPid = 1 };
        many.Command.AddRange(Enumerable.Repeat("x", 257));
        Assert.Contains("at most 256 'arg'", Assert.Throws<ContainerException>(() => many.Serialize()).Message);
        var roots = new StartSpec();
        for (var i = 0; i < 9; i++) roots.RootMounts.Add(new MountEntry("overlay", "", "overlay", MountFlags.None));
        Assert.Contains("at most 8 'rootmount'", Assert.Throws<ContainerException>(() => roots.Serialize()).Message);
        Assert.Throws<ContainerException>(() => new ExecSpec { TargetPid = -1 }.Serialize());
    }

    [Fact]
    public void EachCommand_HasItsOwnSpec_WithOnlyItsKeys()
    {
        Assert.Equal(new[] { "start", "restore", "exec", "netns-exec", "userns-tree", "console", "device", "nic-up" }, HelperProtocol.Commands);
        Assert.Equal("start", new StartSpec().HelperCommand);
        Assert.Equal("restore", new RestoreSpec().HelperCommand);
        Assert.Equal("exec", new ExecSpec().HelperCommand);
        Assert.Equal("netns-exec", new NetNsExecSpec().HelperCommand);
        Assert.Equal("userns-tree", new UsernsTreeSpec().HelperCommand);
        Assert.Equal("console", new ConsoleSpec().HelperCommand);
        Assert.Equal("device", new DeviceSpec().HelperCommand);
        Assert.Equal("nic-up", new NicUpSpec().HelperCommand);
        // Bringing hot-plugged links up names the init (with its start time) and the links: nothing to run.
        Assert.Null(typeof(NicUpSpec).GetProperty("Command"));
        Assert.Null(typeof(NicUpSpec).GetProperty("Environment"));
        Assert.Null(typeof(NicUpSpec).GetProperty("Namespaces"));
        var up = new NicUpSpec { TargetPid = 42, TargetStartTime = 7 };
        up.LinksUp.Add("eth1");
        Assert.Equal(Show(Nul("pid", "42", "pidstart", "7", "link-up", "eth1")), Show(up.Serialize()));
        // A device change names the container's init and the node: no program, no environment.
        Assert.Null(typeof(DeviceSpec).GetProperty("Command"));
        Assert.Null(typeof(DeviceSpec).GetProperty("Environment"));
        // A console attach names only the socket and the escape key: no program, no environment.
        Assert.Null(typeof(ConsoleSpec).GetProperty("Command"));
        Assert.Null(typeof(ConsoleSpec).GetProperty("Environment"));
        Assert.Equal(Show(Nul("consolesock", "/s", "escape", "2")), Show(new ConsoleSpec { ConsoleSocket = "/s", EscapeKey = 2 }.Serialize()));
        // A restore has no mounts or rootfs, an exec no clone flags, a netns-exec no pid.
        Assert.Null(typeof(RestoreSpec).GetProperty("Mounts"));
        Assert.Null(typeof(RestoreSpec).GetProperty("Rootfs"));
        Assert.Null(typeof(ExecSpec).GetProperty("RootMounts"));
        Assert.Null(typeof(NetNsExecSpec).GetProperty("TargetPid"));
        Assert.Null(typeof(UsernsTreeSpec).GetProperty("SeccompFilter"));
        Assert.NotNull(typeof(RestoreSpec).GetProperty("CriuSocketFd"));
        var restore = new RestoreSpec { CriuSocketFd = 7, ConsoleLog = "/c", ConsoleLogMaxBytes = 0 };
        restore.Command.Add("criu");
        Assert.Equal(Show(Nul("console", "/c", "logmax", "0", "criufd", "7", "arg", "criu")), Show(restore.Serialize()));
    }

    [Fact]
    public void MountFlags_AreTheKernelsAndTheHelpersBits()
    {
        // Generated from sys/mount.h and psc-protocol.h: MS_RDONLY 1, MS_NOSUID 2, MS_NODEV 4, MS_NOEXEC 8, MS_BIND 4096, MS_REC 16384.
        Assert.Equal(1UL, (ulong)MountFlags.ReadOnly);
        Assert.Equal(14UL, (ulong)(MountFlags.NoSuid | MountFlags.NoDev | MountFlags.NoExec));
        Assert.Equal(4096UL, (ulong)MountFlags.Bind);
        Assert.Equal(16384UL, (ulong)MountFlags.Recursive);
        Assert.Equal(1UL << 40, (ulong)MountFlags.SourceInRoot);
        Assert.Equal(1UL << 44, (ulong)MountFlags.Mask);
    }

    [Fact]
    public void Replies_AreParsedByShape_AndMalformedLinesSaySo()
    {
        Assert.Equal(new HelperProtocol.Started(12, 34), HelperProtocol.Started.Parse("ok 12 34"));
        Assert.Equal(new HelperProtocol.StartPaused(5, 6), HelperProtocol.StartPaused.Parse("paused 5 6"));
        Assert.Equal(new HelperProtocol.RestorePaused(5, 6, "/dev/pts/3"), HelperProtocol.RestorePaused.Parse("paused 5 6 /dev/pts/3"));
        Assert.Null(HelperProtocol.RestorePaused.Parse("paused 5 6 -").ConsolePty);
        Assert.Equal("go", new HelperProtocol.Go().Format());
        Assert.Equal("go 4242", new HelperProtocol.GoRestored(4242).Format());
        Assert.Equal("abort", new HelperProtocol.Abort().Format());
        Assert.Equal("paused 1 2 -", new HelperProtocol.RestorePaused(1, 2, null).Format());
        Assert.True(HelperProtocol.StartPaused.Matches("paused 1 2"));
        Assert.False(HelperProtocol.StartPaused.Matches("pausedx 1 2"));
        Assert.False(HelperProtocol.Started.Matches("okay"));
        foreach (var bad in new[] { "ok 12", "ok 12 34 56", "ok 12 x", "ok 0 5", "ok -1 5", "ok  12 34", "ready 12 34", "ok 99999999999 1", "ok 1 2 " })
        {
            var ex = Assert.Throws<ContainerException>(() => HelperProtocol.Started.Parse(bad));
            Assert.Equal("HelperProtocolError", ex.ErrorId);
            Assert.Contains(bad, ex.Message);
        }
    }

    // ---- the real helper parses what Serialize writes ----------------------------------------

    [Fact]
    public void Helper_ExecWithoutPid_Exits125WithAMessage()
    {
        var spec = new ExecSpec();
        spec.Command.Add("/bin/true");
        var result = PscHelper.Run(spec);
        Assert.Equal(125, result.ExitCode);
        Assert.Contains(result.Error, l => l.Contains("psc-helper:") && l.Contains("exec needs 'pid'"));
        Assert.Empty(result.Output);
    }

    [Fact]
    public void Helper_SpecWithoutProgram_Exits125()
    {
        var result = PscHelper.Run(new ExecSpec { TargetPid = Environment.ProcessId });
        Assert.Equal(125, result.ExitCode);
        Assert.Contains(result.Error, l => l.Contains("exec needs 'arg'") && l.Contains("the program to run"));
    }

    [Fact]
    public void Helper_ExecIntoOwnNamespaces_RunsTheCommandWithArgsEnvAndCwd()
    {
        // Joining this test process's own uts and ipc namespaces is a no-op, so this runs anywhere as root
        // and checks that every field Serialize writes reaches the program intact.
        var spec = new ExecSpec
        {
            TargetPid = Environment.ProcessId,
            Namespaces = NamespaceKind.Uts | NamespaceKind.Ipc,
            WorkingDirectory = "/tmp",
        };
        spec.Environment.Add("FOO=a b  c");
        spec.Environment.Add("PATH=/usr/bin:/bin");
        spec.Command.Add("sh");
        spec.Command.Add("-c");
        spec.Command.Add("printf '%s|' \"$FOO\" \"$PWD\" \"$1\" \"$2\"; echo; exit 7");
        spec.Command.Add("argv0");
        spec.Command.Add("x y");
        spec.Command.Add("");
        var result = PscHelper.Run(spec);
        Assert.True(result.ExitCode == 7, $"exit {result.ExitCode}: {string.Join("\n", result.Error)}");
        Assert.Equal(new[] { "a b  c|/tmp|x y||" }, result.Output);
    }

    [Fact]
    public void Helper_ExecOfAMissingProgram_Exits127()
    {
        var spec = new ExecSpec { TargetPid = Environment.ProcessId };
        spec.Command.Add("/nonexistent/program");
        var result = PscHelper.Run(spec);
        Assert.Equal(127, result.ExitCode);
        Assert.Contains(result.Error, l => l.Contains("/nonexistent/program"));
    }
}
