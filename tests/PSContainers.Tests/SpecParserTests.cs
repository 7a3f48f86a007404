using System.Diagnostics;
using PSContainers.Runtime.Namespaces;

namespace PSContainers.Tests;

/// <summary>
/// psc-helper's spec parser and reply lines on their own: tests/native/spec-parser-test.c, built
/// with AddressSanitizer and UBSan by this project. Its cases feed valid and hostile specs (missing,
/// unknown, misplaced and repeated keys, overlong values, bad numbers, embedded NULs); its --dump
/// mode shows what the parser read from bytes the C# spec classes wrote.
/// </summary>
public sealed class SpecParserTests
{
    private static string Program => Path.Combine(AppContext.BaseDirectory, "spec-parser-test");

    private static (int ExitCode, string Output, string Error) Run(byte[]? input, params string[] args)
    {
        Assert.True(File.Exists(Program), $"{Program} was not built (tests/PSContainers.Tests.csproj, BuildSpecParserTest)");
        var psi = new ProcessStartInfo(Program) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var error = p.StandardError.ReadToEndAsync();
        if (input is not null) p.StandardInput.BaseStream.Write(input);
        p.StandardInput.Close();
        var output = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(60_000), "spec-parser-test did not finish");
        return (p.ExitCode, output, error.Result);
    }

    [Fact]
    public void Parser_AcceptsValidSpecs_AndRefusesHostileOnes()
    {
        var (code, output, error) = Run(null);
        Assert.True(code == 0, $"spec-parser-test failed ({code}):\n{string.Join("\n", output.Split('\n').Where(l => !l.StartsWith("ok ")))}\n{error}");
        // Every case ran (a crash half-way would also fail above).
        Assert.Matches(@"^(\d+) of \1 cases passed$", output.Trim().Split('\n').Last());
        Assert.True(output.Split('\n').Count(l => l.StartsWith("ok ")) >= 80);
    }

    private static string[] Dump(HelperSpec spec)
    {
        var (code, output, error) = Run(spec.SerializeFramed(), "--dump", spec.HelperCommand);
        Assert.True(code == 0, $"the parser refused the spec C# wrote: {error}");
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    [Fact]
    public void WhatCSharpWrites_IsWhatTheParserReads_ForEveryCommand()
    {
        var start = new StartSpec
        {
            Namespaces = NamespaceKind.ContainerDefault | NamespaceKind.User, Rootfs = "/store/wéb/rootfs", Hostname = "web",
            WorkingDirectory = "/srv", ConsoleLog = "/store/web/console.log", ConsoleLogMaxBytes = 1 << 20, PauseBeforeExec = true,
            ExitRecord = "/store/web/exit", RunRecord = "/store/web/run", UidMap = "0 100000 65536", GidMap = "0 200000 65536",
            CgroupV2Directory = "/sys/fs/cgroup/unified/web", LoopbackUp = true, CapabilityDropMask = ulong.MaxValue,
            NoNewPrivileges = true, SeccompFilter = new byte[] { 6, 0, 0, 0, 0, 0, 0xff, 0x7f },
        };
        start.RootMounts.Add(new MountEntry("overlay", "", "overlay", MountFlags.None, "lowerdir=/a,upperdir=/b"));
        start.LinksUp.Add("veth0");
        start.CgroupProcsFiles.Add("/sys/fs/cgroup/memory/web/cgroup.procs");
        start.CgroupDirectories.Add("/sys/fs/cgroup/memory/web");
        start.Mounts.Add(new MountEntry("/dev/null", "/dev/null", "", MountFlags.Bind | MountFlags.FileTarget));
        start.Mounts.Add(new MountEntry("", "/proc/kcore", "", MountFlags.Mask));
        start.Symlinks.Add(("/proc/self/fd", "/dev/fd"));
        start.Environment.Add("A=b c");
        start.Command.AddRange(new[] { "/sbin/init", "" });
        Assert.Equal(new[]
        {
            "flags=2114060288", "rootfs=/store/wéb/rootfs", "hostname=web", "cwd=/srv", "console=/store/web/console.log", "logmax=1048576",
            "pause=1", "rootmount=overlay||overlay|0|lowerdir=/a,upperdir=/b", "exitfile=/store/web/exit", "runrecord=/store/web/run",
            "uidmap=0 100000 65536", "gidmap=0 200000 65536", "cgroupv2=/sys/fs/cgroup/unified/web", "lo-up=1", "link-up=veth0",
            "cgroup=/sys/fs/cgroup/memory/web/cgroup.procs", "cgdir=/sys/fs/cgroup/memory/web",
            "mount=/dev/null|/dev/null||8796093026304|", "mount=|/proc/kcore||17592186044416|", "symlink=/proc/self/fd|/dev/fd",
            "capdrop=18446744073709551615", "nonewprivs=1", "seccomp=060000000000FF7F", "env=A=b c", "arg=/sbin/init", "arg=",
        }, Dump(start));

        var exec = new ExecSpec { TargetPid = 4321, Namespaces = NamespaceKind.Network | NamespaceKind.User | NamespaceKind.Mount, WorkingDirectory = "/", Terminal = true };
        exec.Command.Add("sh");
        Assert.Equal(new[] { "pid=4321", "ns=user", "ns=mnt", "ns=net", "cwd=/", "tty=1", "arg=sh" }, Dump(exec));

        var restore = new RestoreSpec { ConsoleLog = "/c", ConsoleLogMaxBytes = 0, CriuSocketFd = 9 };
        restore.CgroupDirectories.Add("/sys/fs/cgroup/pids/x");
        restore.Command.AddRange(new[] { "criu", "swrk", "3" });
        Assert.Equal(new[] { "console=/c", "logmax=0", "criufd=9", "cgdir=/sys/fs/cgroup/pids/x", "arg=criu", "arg=swrk", "arg=3" }, Dump(restore));

        var netns = new NetNsExecSpec { NetNsPath = "/run/netns/lab", EtcDirectory = "/etc/netns/lab" };
        netns.Command.Add("ip");
        Assert.Equal(new[] { "netns=/run/netns/lab", "etcdir=/etc/netns/lab", "arg=ip" }, Dump(netns));

        var tree = new UsernsTreeSpec { CallerId = uint.MaxValue, OwnersFile = "/tmp/owners" };
        tree.Command.AddRange(new[] { "shift", "/store/x" });
        Assert.Equal(new[] { "callerid=4294967295", "owners=/tmp/owners", "arg=shift", "arg=/store/x" }, Dump(tree));
    }
}
