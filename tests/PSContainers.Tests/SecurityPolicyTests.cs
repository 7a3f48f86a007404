using System.Text;
using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.Security;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Containers;

namespace PSContainers.Tests;

/// <summary>
/// The security section without a kernel: config parsing with line/column errors, capability
/// masks, the spec bytes, and the generated seccomp programs run through a BPF interpreter.
/// (ContainerSecurityTests runs the same programs through the kernel.)
/// </summary>
public sealed class SecurityPolicyTests
{
    private const uint Allow = SeccompCompiler.RetAllow, Kill = SeccompCompiler.RetKillProcess;
    private static uint Errno(int e) => SeccompCompiler.RetErrno | (uint)e;
    private const int EPERM = 1, EACCES = 13, ENOSYS = 38;

    private static int Nr(string name, SeccompArch arch) => SyscallTable.Number(name, arch) ?? throw new Xunit.Sdk.XunitException($"{name} not on {arch}");

    private static uint ArchValue(SeccompArch arch) => arch == SeccompArch.X86_64 ? SeccompCompiler.AuditArchX86_64 : SeccompCompiler.AuditArchAarch64;

    [Theory]
    [InlineData(SeccompArch.X86_64)]
    [InlineData(SeccompArch.Aarch64)]
    public void DefaultProfile_Verdicts(SeccompArch arch)
    {
        var program = SeccompCompiler.Compile(SeccompProfile.Default, arch);
        var a = ArchValue(arch);
        uint Verdict(string name, params ulong[] args) => SeccompInterpreter.Run(program, a, Nr(name, arch), args);
        foreach (var denied in new[] { "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "open_by_handle_at", "bpf", "perf_event_open", "userfaultfd", "acct", "swapon", "syslog" })
            Assert.Equal(Errno(EPERM), Verdict(denied));
        foreach (var enosys in new[] { "keyctl", "add_key", "request_key", "clone3", "io_uring_setup" })
            Assert.Equal(Errno(ENOSYS), Verdict(enosys));
        foreach (var allowed in new[] { "read", "write", "openat", "execve", "clone", "mount", "unshare", "setns", "reboot", "ptrace" })
            Assert.Equal(Allow, Verdict(allowed));
        // umount2: only MNT_FORCE (bit 0 of flags) is refused, whatever else is set, in either half.
        Assert.Equal(Allow, Verdict("umount2", 0x1000, 0));
        Assert.Equal(Allow, Verdict("umount2", 0x1000, 2 /* MNT_DETACH */));
        Assert.Equal(Errno(EACCES), Verdict("umount2", 0x1000, 1));
        Assert.Equal(Errno(EACCES), Verdict("umount2", 0x1000, 0xFFFF_FFFF_0000_0003));
        Assert.Equal(Allow, Verdict("umount2", 0x1000, 0x1_0000_0000));
        // After the umount2 block (which reloads the number) the rules still see the syscall.
        Assert.Equal(Errno(ENOSYS), SeccompInterpreter.Run(program, a, Nr("clone3", arch), 0, 1));
        // Other ABIs of the same kernel are killed: their numbers would bypass the table.
        Assert.Equal(Kill, SeccompInterpreter.Run(program, arch == SeccompArch.X86_64 ? 0x40000003u /* i386 */ : 0x40000028u /* arm */, 0));
        Assert.Equal(Kill, SeccompInterpreter.Run(program, SeccompCompiler.AuditArchX86_64 ^ ArchValue(arch) ^ SeccompCompiler.AuditArchAarch64, 0));
    }

    [Fact]
    public void X86_64_X32Numbers_AreKilled()
    {
        var program = SeccompCompiler.Compile(SeccompProfile.Default, SeccompArch.X86_64);
        Assert.Equal(Kill, SeccompInterpreter.Run(program, SeccompCompiler.AuditArchX86_64, 0x40000000 | 528 /* x32 kexec_load */));
        Assert.Equal(Kill, SeccompInterpreter.Run(program, SeccompCompiler.AuditArchX86_64, 0x40000000));
    }

    [Fact]
    public void ProfileFile_AllowList_WithArgumentConditions()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "p.yaml");
        File.WriteAllText(path, """
            defaultAction: errno
            defaultErrno: EACCES
            syscalls:
              - names: [read, write, exit_group]
                action: allow
              - names: [personality]
                action: allow
                args: [{ index: 0, op: eq, value: 0xffffffff }]
              - names: [socket]
                action: errno
                errno: EAFNOSUPPORT
                args: [{ index: 0, op: ne, value: 1 }]
              - names: [socket]
                action: allow
              - names: [ptrace]
                action: kill
            """);
        var p = ConfigLoader.LoadSeccompProfile(path);
        var prog = SeccompCompiler.Compile(p, SeccompArch.X86_64);
        uint V(string n, params ulong[] args) => SeccompInterpreter.Run(prog, SeccompCompiler.AuditArchX86_64, Nr(n, SeccompArch.X86_64), args);
        Assert.Equal(Allow, V("read"));
        Assert.Equal(Errno(EACCES), V("openat"));
        Assert.Equal(Allow, V("personality", 0xffffffff));
        Assert.Equal(Errno(EACCES), V("personality", 0x1_ffffffff));
        Assert.Equal(Errno(EACCES), V("personality", 8));
        Assert.Equal(Allow, V("socket", 1));                 // AF_UNIX
        Assert.Equal(Errno(97), V("socket", 2));             // AF_INET
        Assert.Equal(Errno(97), V("socket", 0x1_0000_0001)); // differs in the high half
        Assert.Equal(Kill, V("ptrace"));
    }

    [Fact]
    public void ConfigAllowAndDeny_OverrideTheProfile()
    {
        var s = SecurityPlan.Resolve(new SecurityConfig { SeccompAllow = { "keyctl" }, SeccompDeny = { "getppid" }, SeccompErrno = "EXDEV" });
        uint V(string n) => SeccompInterpreter.Run(s.SeccompFilter!, ArchValue(SyscallTable.HostArch), Nr(n, SyscallTable.HostArch));
        Assert.Equal(Allow, V("keyctl"));
        Assert.Equal(Errno(18), V("getppid"));
        Assert.Equal(Errno(EPERM), V("kexec_load"));
        Assert.Null(SecurityPlan.Resolve(new SecurityConfig { SeccompProfile = "unconfined" }).SeccompFilter);
    }

    [Fact]
    public void CapabilityMasks()
    {
        var defaults = Capabilities.DropMask(null, null);
        Assert.Equal(Capabilities.DefaultDrop.OrderBy(Capabilities.Number), Capabilities.NamesOf(defaults));
        Assert.Equal(0UL, defaults & (1UL << 21)); // sys_admin kept
        Assert.Equal(defaults | 1UL << 21, Capabilities.DropMask(new[] { "default", "CAP_SYS_ADMIN" }, null));
        Assert.Equal(0UL, Capabilities.DropMask(Array.Empty<string>(), null));
        // keep: everything else goes, also capabilities newer than this table.
        var keep = Capabilities.DropMask(null, new[] { "chown", "kill" });
        Assert.Equal(~((1UL << 0) | (1UL << 5)), keep);
        var ex = Assert.Throws<ContainerException>(() => Capabilities.DropMask(new[] { "sys_modul" }, null));
        Assert.Contains("sys_modul", ex.Message);
    }

    [Fact]
    public void Config_ParsesAndRoundTrips()
    {
        var c = ConfigLoader.Parse("""
            security:
              capabilities: { drop: [default, CAP_SYS_ADMIN] }
              seccomp: { profile: /etc/psc/strict.yaml, errno: enosys, deny: [ptrace], allow: [keyctl] }
              proc: rw
              sys: rw
              maskedPaths: [/proc/kcore]
              devices: unconfined
              noNewPrivileges: true
            """, "config.yaml");
        var s = c.Security;
        Assert.Equal(new[] { "default", "sys_admin" }, s.CapabilitiesDrop);
        Assert.Null(s.CapabilitiesKeep);
        Assert.Equal("/etc/psc/strict.yaml", s.SeccompProfile);
        Assert.Equal("ENOSYS", s.SeccompErrno);
        Assert.Equal(new[] { "ptrace" }, s.SeccompDeny);
        Assert.Equal(new[] { "keyctl" }, s.SeccompAllow);
        Assert.Equal(("rw", "rw", "unconfined"), (s.Proc, s.Sys, s.Devices));
        Assert.Equal(new[] { "/proc/kcore" }, s.MaskedPaths);
        Assert.True(s.NoNewPrivileges);
        var again = ConfigLoader.Parse(ConfigLoader.Serialize(c), "again").Security;
        Assert.Equal(ConfigLoader.Serialize(c), ConfigLoader.Serialize(ConfigLoader.Parse(ConfigLoader.Serialize(c), "again")));
        Assert.Equal(s.CapabilitiesDrop, again.CapabilitiesDrop);
        Assert.Equal(s.SeccompProfile, again.SeccompProfile);
        Assert.Equal(s.MaskedPaths, again.MaskedPaths);
        Assert.True(again.NoNewPrivileges);
        // Empty lists are kept (they mean "none"), and the defaults write no section at all.
        var none = ConfigLoader.Parse("security: { capabilities: { keep: [] }, maskedPaths: [] }", "c");
        Assert.Equal(Array.Empty<string>(), none.Security.CapabilitiesKeep);
        Assert.Equal(Array.Empty<string>(), ConfigLoader.Parse(ConfigLoader.Serialize(none), "c").Security.MaskedPaths);
        Assert.DoesNotContain("security", ConfigLoader.Serialize(new ContainerConfig()));
    }

    [Theory]
    [InlineData("security:\n  capabilities: { drop: [sys_modul] }", 2, 26, "unknown capability 'sys_modul'")]
    [InlineData("security:\n  capabilities:\n    drop: [sys_time]\n    keep: [chown]", 4, 11, "either drop")]
    [InlineData("security:\n  seccomp: { deny: [kexec] }", 2, 21, "unknown system call 'kexec'")]
    [InlineData("security:\n  seccomp: { errno: EWHAT }", 2, 21, "invalid value 'EWHAT'")]
    [InlineData("security:\n  seccomp: { profile: strict }", 2, 23, "expected default, unconfined")]
    [InlineData("security:\n  proc: ro", 2, 9, "expected one of: mixed, rw")]
    [InlineData("security:\n  maskedPaths: [proc/kcore]", 2, 17, "must be absolute")]
    [InlineData("security:\n  apparmor: x", 2, 3, "unknown key 'apparmor' under 'security'")]
    public void Config_Errors_NameLineAndColumn(string yaml, int line, int column, string message)
    {
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.Parse(yaml, "config.yaml"));
        Assert.Equal("InvalidConfig", ex.ErrorId);
        Assert.True(ex.Message.StartsWith($"config.yaml:{line}:{column}: "), ex.Message);
        Assert.Contains(message, ex.Message);
    }

    [Theory]
    [InlineData("defaultAction: deny", 1, 16, "invalid value 'deny' for defaultAction")]
    [InlineData("syscalls:\n  - { names: [read] }", 2, 5, "needs an action")]
    [InlineData("syscalls:\n  - { names: [raed], action: allow }", 2, 15, "unknown system call 'raed'")]
    [InlineData("syscalls:\n  - { names: [read], action: allow, args: [{ index: 6, value: 1 }] }", 2, 53, "argument index from 0 to 5")]
    [InlineData("syscalls:\n  - { names: [read], action: allow, args: [{ index: 0, op: maskedEq, value: 1 }] }", 2, 44, "needs mask")]
    public void ProfileFile_Errors_NameFileLineAndColumn(string yaml, int line, int column, string message)
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "bad.yaml");
        File.WriteAllText(path, yaml);
        var ex = Assert.Throws<ContainerException>(() => ConfigLoader.LoadSeccompProfile(path));
        Assert.True(ex.Message.StartsWith($"{path}:{line}:{column}: "), ex.Message);
        Assert.Contains(message, ex.Message);
        var missing = Assert.Throws<ContainerException>(() => ConfigLoader.LoadSeccompProfile(path + ".none"));
        Assert.Equal("SeccompProfileNotFound", missing.ErrorId);
    }

    [Fact]
    public void Spec_CarriesMaskFilterAndNoNewPrivs()
    {
        var spec = new ExecSpec { TargetPid = 42 };
        spec.Command.Add("true");
        SecurityPlan.Apply(spec, new ContainerConfig { Security = new SecurityConfig { CapabilitiesDrop = new() { "chown", "sys_module" } } }, attach: true);
        var text = Encoding.UTF8.GetString(spec.Serialize());
        Assert.Contains("capdrop\0" + (1UL | 1UL << 16) + "\0", text);
        Assert.Contains("nonewprivs\01\0", text);
        var hex = text.Split('\0').SkipWhile(s => s != "seccomp").Skip(1).First();
        Assert.Equal(Convert.ToHexString(SeccompCompiler.Compile(SeccompProfile.Default, SyscallTable.HostArch)), hex);
        // init gets no_new_privs only when asked.
        var init = new StartSpec();
        SecurityPlan.Apply(init, new ContainerConfig(), attach: false);
        Assert.False(init.NoNewPrivileges);
    }

    [Fact]
    public void MountPlan_ProcSysAndMasks_FollowTheConfig()
    {
        static List<MountEntry> Plan(SecurityConfig s)
        {
            var spec = new StartSpec();
            MountPlan.AddDefaults(spec, new ContainerConfig { Security = s });
            return spec.Mounts;
        }
        var d = Plan(new SecurityConfig());
        Assert.Equal(SecurityPlan.ProcReadOnlyPaths, d.Where(m => m.Flags.HasFlag(MountFlags.Bind | MountFlags.ReadOnly | MountFlags.SourceInRoot)).Select(m => m.Target));
        Assert.True(d.Single(m => m.Target == "/sys").Flags.HasFlag(MountFlags.ReadOnly));
        Assert.Equal(SecurityPlan.DefaultMaskedPaths, d.Where(m => m.Flags == MountFlags.Mask).Select(m => m.Target));
        // Masks come after /proc and /sys, before /dev.
        Assert.True(d.FindIndex(m => m.Flags == MountFlags.Mask) > d.FindIndex(m => m.Target == "/sys"));
        Assert.True(d.FindLastIndex(m => m.Flags == MountFlags.Mask) < d.FindIndex(m => m.Target == "/dev"));
        var open = Plan(new SecurityConfig { Proc = "rw", Sys = "rw", MaskedPaths = new() });
        Assert.DoesNotContain(open, m => m.Target.StartsWith("/proc/") || m.Flags.HasFlag(MountFlags.Mask));
        Assert.False(open.Single(m => m.Target == "/sys").Flags.HasFlag(MountFlags.ReadOnly));
    }

    [Fact]
    public void EffectiveLimits_DefaultDeviceRulesFirst_ThenTheConfigs()
    {
        var config = ConfigLoader.Parse("limits: { devices: [allow b 7:* rwm] }", "c");
        var rules = SecurityPlan.EffectiveLimits(config).Devices.Select(r => r.ToString()).ToList();
        Assert.Equal("deny a *:* rwm", rules[0]);
        Assert.Equal("allow b 7:* rwm", rules[^1]);
        Assert.Contains("allow c 1:3 rwm", rules);
        config.Security.Devices = "unconfined";
        Assert.Equal(new[] { "allow b 7:* rwm" }, SecurityPlan.EffectiveLimits(config).Devices.Select(r => r.ToString()));
    }
}
