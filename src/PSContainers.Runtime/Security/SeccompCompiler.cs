using System.Buffers.Binary;

namespace PSContainers.Runtime.Security;

/// <summary>
/// Compiles a <see cref="SeccompProfile"/> to a classic BPF program (struct sock_filter[], 8 bytes
/// each, little endian) for seccomp(SECCOMP_SET_MODE_FILTER). Layout:
/// <code>
///   ld arch; jeq ARCH ? next : ret KILL_PROCESS     other ABIs (i386/x32 on x86_64, arm32 on aarch64)
///   ld nr;   (x86_64) jge 0x40000000 ? ret KILL_PROCESS   x32 numbers would bypass the table
///   per rule and syscall: jeq NR ? [argument checks] ret ACTION : next
///   ret DEFAULT
/// </code>
/// A foreign ABI is killed (libseccomp's "bad arch" default): its numbers differ, so the rules would
/// not apply to it. Syscalls a profile names that this architecture does not have are skipped.
/// </summary>
public static class SeccompCompiler
{
    // linux/filter.h, linux/bpf_common.h
    private const ushort LdAbsW = 0x20, JeqK = 0x15, JgeK = 0x35, AndK = 0x54, RetK = 0x06;
    // linux/seccomp.h
    public const uint RetKillProcess = 0x80000000, RetErrno = 0x00050000, RetLog = 0x7ffc0000, RetAllow = 0x7fff0000;
    // linux/audit.h
    public const uint AuditArchX86_64 = 0xC000003E, AuditArchAarch64 = 0xC00000B7;
    private const uint X32SyscallBit = 0x40000000;
    // struct seccomp_data
    private const uint OffNr = 0, OffArch = 4, OffArgs = 16;
    /// <summary>BPF_MAXINSNS.</summary>
    public const int MaxInstructions = 4096;

    public readonly record struct Insn(ushort Code, byte Jt, byte Jf, uint K);

    public static byte[] Compile(SeccompProfile profile, SeccompArch arch) => Encode(Program(profile, arch));

    public static byte[] Encode(IReadOnlyList<Insn> program)
    {
        var bytes = new byte[program.Count * 8];
        for (var i = 0; i < program.Count; i++)
        {
            var span = bytes.AsSpan(i * 8);
            BinaryPrimitives.WriteUInt16LittleEndian(span, program[i].Code);
            span[2] = program[i].Jt;
            span[3] = program[i].Jf;
            BinaryPrimitives.WriteUInt32LittleEndian(span[4..], program[i].K);
        }
        return bytes;
    }

    public static List<Insn> Program(SeccompProfile profile, SeccompArch arch)
    {
        var table = SyscallTable.For(arch);
        var p = new List<Insn>
        {
            new(LdAbsW, 0, 0, OffArch),
            new(JeqK, 1, 0, arch == SeccompArch.X86_64 ? AuditArchX86_64 : AuditArchAarch64),
            new(RetK, 0, 0, RetKillProcess),
            new(LdAbsW, 0, 0, OffNr),
        };
        if (arch == SeccompArch.X86_64)
        {
            p.Add(new(JgeK, 0, 1, X32SyscallBit));
            p.Add(new(RetK, 0, 0, RetKillProcess));
        }
        foreach (var rule in profile.Rules)
        {
            var ret = Return(rule.Action, rule.Errno);
            foreach (var name in rule.Names.Distinct())
            {
                if (!table.TryGetValue(name, out var nr)) continue;
                p.AddRange(Block((uint)nr, rule.Args ?? Array.Empty<SeccompArg>(), ret));
            }
        }
        p.Add(new(RetK, 0, 0, Return(profile.DefaultAction, profile.DefaultErrno)));
        if (p.Count > MaxInstructions)
            throw new ContainerException("SeccompProfileTooLarge", ContainerErrorKind.InvalidArgument,
                $"The seccomp profile compiles to {p.Count} BPF instructions; the kernel takes at most {MaxInstructions}. Merge rules or use fewer argument conditions.");
        return p;
    }

    private static uint Return(SeccompAction action, int errno) => action switch
    {
        SeccompAction.Allow => RetAllow,
        SeccompAction.Errno => RetErrno | ((uint)errno & 0xFFFF),
        SeccompAction.Kill => RetKillProcess,
        _ => RetLog,
    };

    private const ushort Ja = 0x05; // BPF_JMP | BPF_JA: a 32-bit forward offset

    /// <summary>Where a condition's branch goes: on (0), the end of this argument's checks (it held), or the failure exit.</summary>
    private enum To : byte { Next, Pass, Fail }

    /// <summary>
    /// jeq NR, 0, skip-block; conditions (a mismatch jumps to the final "ld nr"); ret; ld nr.
    /// A holds the syscall number on entry and on every way out.
    /// A conditional jump's offsets are 8 bits (at most 255 instructions forward). A block too long
    /// for that gets trampolines: "jeq NR, 1, 0; ja skip-block", and each argument's checks end in
    /// "ja fail" (32-bit offset), which its failing branches reach in a few instructions.
    /// </summary>
    private static IEnumerable<Insn> Block(uint nr, IReadOnlyList<SeccompArg> args, uint ret)
    {
        if (args.Count == 0)
            return new[] { new Insn(JeqK, 0, 1, nr), new Insn(RetK, 0, 0, ret) };
        var chunks = args.Select(Checks).ToList();
        var bodyCount = chunks.Sum(c => c.Count);
        var block = new List<Insn>();
        if (bodyCount + 2 <= byte.MaxValue)
        {
            // Short: every failure jumps straight to "ld nr".
            block.Add(new(JeqK, 0, (byte)(bodyCount + 2), nr));
            var at = 0;
            foreach (var chunk in chunks)
            {
                for (var i = 0; i < chunk.Count; i++)
                {
                    var (insn, jt, jf) = chunk[i];
                    byte Off(To to) => to switch
                    {
                        To.Pass => (byte)(chunk.Count - i - 1),
                        To.Fail => (byte)(bodyCount - (at + i)), // over the rest of the body and the ret
                        _ => 0,
                    };
                    block.Add(insn with { Jt = Off(jt), Jf = Off(jf) });
                }
                at += chunk.Count;
            }
        }
        else
        {
            // Long: each chunk is its checks plus "ja fail"; a check that held jumps over that ja.
            var longBody = bodyCount + chunks.Count;
            block.Add(new(JeqK, 1, 0, nr));
            block.Add(new(Ja, 0, 0, (uint)(longBody + 2)));
            var at = 0;
            foreach (var chunk in chunks)
            {
                if (chunk.Count + 1 > byte.MaxValue) throw new InvalidOperationException("an argument check is longer than a jump");
                for (var i = 0; i < chunk.Count; i++)
                {
                    var (insn, jt, jf) = chunk[i];
                    var last = i == chunk.Count - 1;
                    byte Off(To to) => to switch
                    {
                        To.Pass => (byte)(chunk.Count - i),     // past the ja
                        To.Fail => (byte)(chunk.Count - i - 1), // onto the ja
                        _ => last ? (byte)1 : (byte)0,          // falling through the last check: past the ja
                    };
                    block.Add(insn with { Jt = Off(jt), Jf = Off(jf) });
                }
                at += chunk.Count + 1;
                block.Add(new(Ja, 0, 0, (uint)(longBody - at + 1))); // over the rest of the body and the ret
            }
        }
        block.Add(new(RetK, 0, 0, ret));
        block.Add(new(LdAbsW, 0, 0, OffNr));
        return block;
    }

    /// <summary>One argument's checks: loads, masks and conditional jumps with symbolic targets.</summary>
    private static List<(Insn Insn, To Jt, To Jf)> Checks(SeccompArg a)
    {
        uint lo = OffArgs + 8 * (uint)a.Index, hi = lo + 4;
        uint vlo = (uint)a.Value, vhi = (uint)(a.Value >> 32), mlo = (uint)a.Mask, mhi = (uint)(a.Mask >> 32);
        return a.Op switch
        {
            SeccompOp.Eq => new()
            {
                (new(LdAbsW, 0, 0, hi), To.Next, To.Next),
                (new(JeqK, 0, 0, vhi), To.Next, To.Fail),
                (new(LdAbsW, 0, 0, lo), To.Next, To.Next),
                (new(JeqK, 0, 0, vlo), To.Next, To.Fail),
            },
            SeccompOp.MaskedEq => new()
            {
                (new(LdAbsW, 0, 0, hi), To.Next, To.Next),
                (new(AndK, 0, 0, mhi), To.Next, To.Next),
                (new(JeqK, 0, 0, vhi & mhi), To.Next, To.Fail),
                (new(LdAbsW, 0, 0, lo), To.Next, To.Next),
                (new(AndK, 0, 0, mlo), To.Next, To.Next),
                (new(JeqK, 0, 0, vlo & mlo), To.Next, To.Fail),
            },
            // Ne: holds when either half differs
            _ => new()
            {
                (new(LdAbsW, 0, 0, hi), To.Next, To.Next),
                (new(JeqK, 0, 0, vhi), To.Next, To.Pass),
                (new(LdAbsW, 0, 0, lo), To.Next, To.Next),
                (new(JeqK, 0, 0, vlo), To.Fail, To.Next),
            },
        };
    }
}
