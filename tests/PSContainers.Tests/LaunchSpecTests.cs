using System.Text;
using PSContainers.Runtime;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Launcher;

namespace PSContainers.Tests;

public sealed class LaunchSpecTests
{
    private static byte[] Nul(params string[] items) => Encoding.UTF8.GetBytes(string.Concat(items.Select(i => i + "\0")));

    private static string Show(byte[] bytes) => Encoding.UTF8.GetString(bytes).Replace("\0", "\\0");

    private static void AssertBytes(byte[] expected, byte[] actual) => Assert.Equal(Show(expected), Show(actual));

    [Fact]
    public void Serialize_StartSpec_ExactBytes()
    {
        var spec = new LaunchSpec
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
        var spec = new LaunchSpec
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
        var spec = new LaunchSpec();
        spec.Command.Add("/bin/true");
        AssertBytes(Nul("flags", "0", "arg", "/bin/true"), spec.Serialize());
    }

    [Fact]
    public void Serialize_RejectsNul()
    {
        var arg = new LaunchSpec();
        arg.Command.Add("a\0b");
        var ex = Assert.Throws<ContainerException>(() => arg.Serialize());
        Assert.Equal("InvalidArgument", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains("a\\0b", ex.Message);

        var env = new LaunchSpec();
        env.Environment.Add("X=\0");
        Assert.Throws<ContainerException>(() => env.Serialize());

        var mount = new LaunchSpec();
        mount.Mounts.Add(new MountEntry("tmpfs", "/tmp", "tmpfs", MountFlags.None, "size=1m\0,exec"));
        Assert.Throws<ContainerException>(() => mount.Serialize());

        var host = new LaunchSpec { Hostname = "\0" };
        Assert.Throws<ContainerException>(() => host.Serialize());
    }

    // ---- the real helper parses what Serialize writes ----------------------------------------

    [Fact]
    public void Helper_ExecWithoutPid_Exits125WithAMessage()
    {
        var spec = new LaunchSpec();
        spec.Command.Add("/bin/true");
        var result = PscHelper.Run("exec", spec);
        Assert.Equal(125, result.ExitCode);
        Assert.Contains(result.Error, l => l.Contains("psc-helper:") && l.Contains("pid missing"));
        Assert.Empty(result.Output);
    }

    [Fact]
    public void Helper_SpecWithoutProgram_Exits125()
    {
        var result = PscHelper.Run("exec", new LaunchSpec { TargetPid = Environment.ProcessId });
        Assert.Equal(125, result.ExitCode);
        Assert.Contains(result.Error, l => l.Contains("no program to run"));
    }

    [Fact]
    public void Helper_ExecIntoOwnNamespaces_RunsTheCommandWithArgsEnvAndCwd()
    {
        // Joining this test process's own uts and ipc namespaces is a no-op, so this runs anywhere as root
        // and checks that every field Serialize writes reaches the program intact.
        var spec = new LaunchSpec
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
        var result = PscHelper.Run("exec", spec);
        Assert.True(result.ExitCode == 7, $"exit {result.ExitCode}: {string.Join("\n", result.Error)}");
        Assert.Equal(new[] { "a b  c|/tmp|x y||" }, result.Output);
    }

    [Fact]
    public void Helper_ExecOfAMissingProgram_Exits127()
    {
        var spec = new LaunchSpec { TargetPid = Environment.ProcessId };
        spec.Command.Add("/nonexistent/program");
        var result = PscHelper.Run("exec", spec);
        Assert.Equal(127, result.ExitCode);
        Assert.Contains(result.Error, l => l.Contains("/nonexistent/program"));
    }
}
