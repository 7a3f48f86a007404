using System.Buffers.Binary;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// Runs a classic BPF seccomp program (the bytes the runtime sends to the helper) on a
/// struct seccomp_data, like the kernel does, for the instructions seccomp programs use: 32-bit
/// absolute loads, AND, conditional jumps on constants, unconditional jumps and returns. Anything
/// else is an error, so a generator bug cannot hide behind a lenient interpreter.
/// </summary>
public static class SeccompInterpreter
{
    public static uint Run(byte[] program, uint arch, int nr, params ulong[] args)
    {
        var data = new byte[64];
        BinaryPrimitives.WriteInt32LittleEndian(data, nr);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(4), arch);
        for (var i = 0; i < args.Length; i++) BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(16 + 8 * i), args[i]);
        Assert.True(program.Length % 8 == 0 && program.Length > 0, "a program is a whole number of 8-byte instructions");
        uint a = 0;
        var count = program.Length / 8;
        for (var pc = 0; pc < count; pc++)
        {
            var insn = program.AsSpan(pc * 8);
            var code = BinaryPrimitives.ReadUInt16LittleEndian(insn);
            byte jt = insn[2], jf = insn[3];
            var k = BinaryPrimitives.ReadUInt32LittleEndian(insn[4..]);
            switch (code)
            {
                case 0x20: // ld w abs
                    Assert.True(k % 4 == 0 && k < 64, $"load offset {k} outside seccomp_data");
                    a = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan((int)k));
                    break;
                case 0x54: a &= k; break;             // alu and k
                case 0x05: pc += (int)k; break;       // ja
                case 0x15: pc += a == k ? jt : jf; break; // jeq k
                case 0x35: pc += a >= k ? jt : jf; break; // jge k
                case 0x25: pc += a > k ? jt : jf; break;  // jgt k
                case 0x45: pc += (a & k) != 0 ? jt : jf; break; // jset k
                case 0x06: return k;                  // ret k
                default: throw new Xunit.Sdk.XunitException($"instruction 0x{code:x} at {pc} is not one the generator should emit");
            }
            Assert.True(pc + 1 <= count, $"jump past the end at {pc}");
        }
        throw new Xunit.Sdk.XunitException("the program fell off its end without a return");
    }
}
