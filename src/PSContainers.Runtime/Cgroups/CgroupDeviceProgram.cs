using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using PSContainers.Runtime.Filesystem;
using Tmds.Linux;

namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// Device rules on cgroup v2, which has no devices.allow/deny: a small BPF_PROG_TYPE_CGROUP_DEVICE
/// program assembled here from the rules (last matching rule wins, nothing matching = allowed, as a
/// fresh v1 cgroup) and attached to the cgroup directory with BPF_PROG_ATTACH. Attaching again
/// replaces it. The rules in force are read back by decoding the attached program's instructions.
/// </summary>
public static unsafe class CgroupDeviceProgram
{
    public const string ProgramName = "psc_devices";

    private const int BPF_PROG_LOAD = 5, BPF_PROG_ATTACH = 8, BPF_PROG_GET_FD_BY_ID = 13, BPF_OBJ_GET_INFO_BY_FD = 15, BPF_PROG_QUERY = 16;
    private const int BPF_PROG_TYPE_CGROUP_DEVICE = 15, BPF_CGROUP_DEVICE = 6;
    private const int DEV_BLOCK = 1, DEV_CHAR = 2, ACC_MKNOD = 1, ACC_READ = 2, ACC_WRITE = 4;

    private static long SysBpf => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 321,
        Architecture.Arm64 => 280,
        Architecture.Arm => 386,
        var a => throw new PlatformNotSupportedException($"bpf(2) syscall number unknown for {a}"),
    };

    private readonly record struct Insn(byte Code, byte Dst, byte Src, short Off, int Imm);

    // Opcodes (linux/bpf_common.h, linux/bpf.h).
    private const byte LdxMemW = 0x61, And64K = 0x57, Rsh64K = 0x77, Mov64X = 0xbf, Mov64K = 0xb7, JneK = 0x55, JeqK = 0x15, JneX = 0x5d, Exit = 0x95;

    private static int AccessBits(DeviceAccess a) =>
        ((a & DeviceAccess.Mknod) != 0 ? ACC_MKNOD : 0) | ((a & DeviceAccess.Read) != 0 ? ACC_READ : 0) | ((a & DeviceAccess.Write) != 0 ? ACC_WRITE : 0);

    /// <summary>Assembles the program for <paramref name="rules"/> (exposed for tests).</summary>
    internal static byte[] Assemble(IReadOnlyList<DeviceRule> rules)
    {
        var insns = new List<Insn>
        {
            new(LdxMemW, 2, 1, 0, 0), // r2 = ctx->access_type
            new(And64K, 2, 0, 0, 0xffff), // r2 = device type
            new(LdxMemW, 3, 1, 0, 0),
            new(Rsh64K, 3, 0, 0, 16), // r3 = requested access
            new(LdxMemW, 4, 1, 4, 0), // r4 = major
            new(LdxMemW, 5, 1, 8, 0), // r5 = minor
        };
        // Last rule first: the first block that matches decides. The verifier rejects unreachable
        // code, so nothing is emitted after a rule that matches everything.
        var total = false;
        foreach (var rule in rules.Reverse())
        {
            total = rule.Type == 'a' && rule.Major is null && rule.Minor is null && rule.Access == DeviceAccess.All;
            var block = new List<Insn>();
            if (rule.Type != 'a') block.Add(new(JneK, 2, 0, 0, rule.Type == 'b' ? DEV_BLOCK : DEV_CHAR));
            if (rule.Major is { } major) block.Add(new(JneK, 4, 0, 0, major));
            if (rule.Minor is { } minor) block.Add(new(JneK, 5, 0, 0, minor));
            if (rule.Access != DeviceAccess.All)
            {
                block.Add(new(Mov64X, 1, 3, 0, 0));
                block.Add(new(And64K, 1, 0, 0, AccessBits(rule.Access)));
                // allow: the request must be within the rule's access; deny: any overlap denies.
                block.Add(rule.Allow ? new(JneX, 1, 3, 0, 0) : new(JeqK, 1, 0, 0, 0));
            }
            block.Add(new(Mov64K, 0, 0, 0, rule.Allow ? 1 : 0));
            block.Add(new(Exit, 0, 0, 0, 0));
            // Conditional jumps skip to the end of this block.
            for (var i = 0; i < block.Count; i++)
                if (block[i].Code is JneK or JneX or JeqK) block[i] = block[i] with { Off = (short)(block.Count - i - 1) };
            insns.AddRange(block);
            if (total) break;
        }
        if (!total)
        {
            insns.Add(new(Mov64K, 0, 0, 0, 1));
            insns.Add(new(Exit, 0, 0, 0, 0));
        }
        var bytes = new byte[insns.Count * 8];
        for (var i = 0; i < insns.Count; i++)
        {
            var s = bytes.AsSpan(i * 8, 8);
            s[0] = insns[i].Code;
            s[1] = (byte)(insns[i].Dst | (insns[i].Src << 4));
            BinaryPrimitives.WriteInt16LittleEndian(s[2..], insns[i].Off);
            BinaryPrimitives.WriteInt32LittleEndian(s[4..], insns[i].Imm);
        }
        return bytes;
    }

    /// <summary>
    /// Decodes a program made by <see cref="Assemble"/> (possibly trimmed by the verifier's dead-code
    /// removal) back to rules with the same effect.
    /// </summary>
    internal static List<DeviceRule> Disassemble(ReadOnlySpan<byte> code)
    {
        var reversed = new List<DeviceRule>();
        char type = 'a';
        int? major = null, minor = null;
        int access = ACC_MKNOD | ACC_READ | ACC_WRITE;
        for (var i = 6 * 8; i + 8 <= code.Length; i += 8)
        {
            byte op = code[i], dst = (byte)(code[i + 1] & 0xf);
            int imm = BinaryPrimitives.ReadInt32LittleEndian(code.Slice(i + 4, 4));
            switch (op)
            {
                case JneK when dst == 2: type = imm == DEV_BLOCK ? 'b' : 'c'; break;
                case JneK when dst == 4: major = imm; break;
                case JneK when dst == 5: minor = imm; break;
                case And64K when dst == 1: access = imm; break;
                case Mov64K when dst == 0:
                    var allow = imm != 0;
                    var a = (DeviceAccess)0;
                    if ((access & ACC_READ) != 0) a |= DeviceAccess.Read;
                    if ((access & ACC_WRITE) != 0) a |= DeviceAccess.Write;
                    if ((access & ACC_MKNOD) != 0) a |= DeviceAccess.Mknod;
                    var rule = new DeviceRule(allow, type, major, minor, a);
                    var unconditional = type == 'a' && major is null && minor is null && a == DeviceAccess.All;
                    // Past an unconditional block nothing is reachable; "allow everything" there is the default.
                    if (unconditional)
                    {
                        if (!allow) reversed.Add(rule);
                        reversed.Reverse();
                        return reversed;
                    }
                    reversed.Add(rule);
                    type = 'a'; major = minor = null; access = ACC_MKNOD | ACC_READ | ACC_WRITE;
                    break;
            }
        }
        reversed.Reverse();
        return reversed;
    }

    private static long Bpf(int cmd, byte[] attr)
    {
        fixed (byte* p = attr)
        {
            long rc = (long)LibC.syscall((int)SysBpf, cmd, p, attr.Length);
            return rc;
        }
    }

    private static ContainerException BpfError(string what, string dir, int errno) =>
        new("CgroupDeviceProgramFailed", errno == LibC.EPERM ? ContainerErrorKind.PermissionDenied : ContainerErrorKind.InvalidOperation,
            $"Cannot {what} the eBPF device program for {dir}: {Marshal.GetPInvokeErrorMessage(errno)}" +
            (errno == LibC.EPERM ? " (root with CAP_BPF/CAP_SYS_ADMIN is needed, and no ancestor may hold a non-overridable device program)." : "."), dir);

    private static int OpenDirectory(string dir)
    {
        var bytes = Encoding.UTF8.GetBytes(dir + "\0");
        fixed (byte* p = bytes)
        {
            int fd = LibC.open(p, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC);
            if (fd < 0)
                throw new ContainerException("CgroupNotFound", ContainerErrorKind.ObjectNotFound,
                    $"Cannot open cgroup directory {dir}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}.", dir);
            return fd;
        }
    }

    /// <summary>Loads the program for <paramref name="rules"/> and attaches it to the cgroup directory, replacing ours.</summary>
    public static void Attach(string cgroupDir, IReadOnlyList<DeviceRule> rules)
    {
        var code = Assemble(rules);
        var license = Encoding.ASCII.GetBytes("GPL\0");
        var log = new byte[16384];
        int progFd;
        fixed (byte* pc = code, pl = license, plog = log)
        {
            var attr = new byte[144];
            BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(0), BPF_PROG_TYPE_CGROUP_DEVICE);
            BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(4), (uint)(code.Length / 8));
            BinaryPrimitives.WriteUInt64LittleEndian(attr.AsSpan(8), (ulong)pc);
            BinaryPrimitives.WriteUInt64LittleEndian(attr.AsSpan(16), (ulong)pl);
            BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(24), 1);
            BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(28), (uint)log.Length);
            BinaryPrimitives.WriteUInt64LittleEndian(attr.AsSpan(32), (ulong)plog);
            Encoding.ASCII.GetBytes(ProgramName).CopyTo(attr.AsSpan(48));
            BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(68), BPF_CGROUP_DEVICE);
            progFd = (int)Bpf(BPF_PROG_LOAD, attr);
            if (progFd < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                var verifier = Encoding.ASCII.GetString(log).TrimEnd('\0').Trim();
                var ex = BpfError("load", cgroupDir, errno);
                if (verifier.Length > 0) throw new ContainerException(ex.ErrorId, ex.Kind, ex.Message + " Verifier: " + verifier, cgroupDir);
                throw ex;
            }
        }
        try
        {
            var foreign = AttachedProgram(cgroupDir);
            if (foreign is { Ours: false })
                throw new ContainerException("CgroupDeviceProgramForeign", ContainerErrorKind.ResourceExists,
                    $"{cgroupDir} already has a device program '{foreign.Value.Name}' that PSContainers did not make; it is left alone (detach it with bpftool first).", cgroupDir);
            int cg = OpenDirectory(cgroupDir);
            try
            {
                var attr = new byte[144];
                BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(0), (uint)cg);
                BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(4), (uint)progFd);
                BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(8), BPF_CGROUP_DEVICE);
                // Flags 0: one program per cgroup, a new attach replaces it.
                if (Bpf(BPF_PROG_ATTACH, attr) < 0) throw BpfError("attach", cgroupDir, Marshal.GetLastPInvokeError());
            }
            finally { LibC.close(cg); }
        }
        finally { LibC.close(progFd); }
    }

    private static (uint Id, string Name, bool Ours)? AttachedProgram(string cgroupDir)
    {
        int cg = OpenDirectory(cgroupDir);
        try
        {
            var ids = new uint[8];
            fixed (uint* pid = ids)
            {
                var attr = new byte[144];
                BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(0), (uint)cg);
                BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(4), BPF_CGROUP_DEVICE);
                BinaryPrimitives.WriteUInt64LittleEndian(attr.AsSpan(16), (ulong)pid);
                BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(24), (uint)ids.Length);
                if (Bpf(BPF_PROG_QUERY, attr) < 0) throw BpfError("query", cgroupDir, Marshal.GetLastPInvokeError());
                var count = BinaryPrimitives.ReadUInt32LittleEndian(attr.AsSpan(24));
                if (count == 0) return null;
                var (name, _) = ProgramInfo(ids[0], cgroupDir, withCode: false);
                return (ids[0], name, name == ProgramName);
            }
        }
        finally { LibC.close(cg); }
    }

    private static (string Name, byte[] Code) ProgramInfo(uint id, string cgroupDir, bool withCode)
    {
        var get = new byte[144];
        BinaryPrimitives.WriteUInt32LittleEndian(get.AsSpan(0), id);
        int fd = (int)Bpf(BPF_PROG_GET_FD_BY_ID, get);
        if (fd < 0) throw BpfError("open", cgroupDir, Marshal.GetLastPInvokeError());
        try
        {
            var info = new byte[256];
            byte[] code = Array.Empty<byte>();
            for (var pass = 0; pass < 2; pass++)
            {
                fixed (byte* pi = info, pcode = code)
                {
                    if (pass == 1) BinaryPrimitives.WriteUInt64LittleEndian(info.AsSpan(32), (ulong)pcode);
                    var attr = new byte[144];
                    BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(0), (uint)fd);
                    BinaryPrimitives.WriteUInt32LittleEndian(attr.AsSpan(4), (uint)info.Length);
                    BinaryPrimitives.WriteUInt64LittleEndian(attr.AsSpan(8), (ulong)pi);
                    if (Bpf(BPF_OBJ_GET_INFO_BY_FD, attr) < 0) throw BpfError("inspect", cgroupDir, Marshal.GetLastPInvokeError());
                }
                var len = (int)BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(20));
                if (!withCode || len == 0 || pass == 1) break;
                code = new byte[len];
                Array.Clear(info);
                BinaryPrimitives.WriteUInt32LittleEndian(info.AsSpan(20), (uint)len);
            }
            var name = Encoding.ASCII.GetString(info, 64, 16).TrimEnd('\0');
            return (name, code);
        }
        finally { LibC.close(fd); }
    }

    /// <summary>
    /// The rules enforced by our program on <paramref name="cgroupDir"/>; null when none is attached or
    /// the directory is not on a cgroup2 mount (a test tree).
    /// </summary>
    public static IReadOnlyList<DeviceRule>? ReadRules(string cgroupDir)
    {
        if (!IsCgroup2(cgroupDir)) return null;
        var attached = AttachedProgram(cgroupDir);
        if (attached is null) return null;
        if (!attached.Value.Ours)
            throw new ContainerException("CgroupDeviceProgramForeign", ContainerErrorKind.ResourceExists,
                $"{cgroupDir} has a device program '{attached.Value.Name}' that PSContainers did not make; its rules cannot be read.", cgroupDir);
        var (_, code) = ProgramInfo(attached.Value.Id, cgroupDir, withCode: true);
        if (code.Length == 0)
            throw new ContainerException("CgroupDeviceProgramUnreadable", ContainerErrorKind.PermissionDenied,
                $"The kernel does not show the instructions of the device program on {cgroupDir} (kernel.kptr_restrict=2?), so its rules cannot be read.", cgroupDir);
        return Disassemble(code);
    }

    /// <summary>Is <paramref name="dir"/> on a cgroup2 mount (by the longest matching mount point in mountinfo)?</summary>
    public static bool IsCgroup2(string dir)
    {
        string? best = null, bestType = null;
        foreach (var m in MountInfo.Current())
        {
            var mount = m.MountPoint;
            var under = dir == mount || dir.StartsWith(mount.TrimEnd('/') + "/", StringComparison.Ordinal);
            if (under && (best is null || mount.Length >= best.Length))
            {
                best = mount;
                bestType = m.FsType;
            }
        }
        return bestType == "cgroup2" && Directory.Exists(dir);
    }
}
