using System.Globalization;

namespace PSContainers.Runtime.Cgroups;

/// <summary>
/// A limit as the kernel reports it: a number, or "max" (no limit; <see cref="CgroupLimits.Unlimited"/>
/// inside). Shows as "max" instead of 9223372036854775807 wherever it is printed (list views,
/// Select-Object, string conversion), and still compares as a number in scripts:
/// <c>$u.PidsMax -eq 'max'</c>, <c>$u.MemoryMax.IsUnlimited</c>, <c>$u.MemoryMax -gt 64MB</c>
/// (unlimited is greater than every number), <c>[long]$u.MemoryMax</c>; also with the number on the
/// left (<c>64MB -eq $l.MemoryMax</c>, Pester's <c>Should -Be 64MB</c>), for which PowerShell
/// converts it to the number's type (<see cref="IConvertible"/>: max fits none but long).
/// </summary>
public readonly struct CgroupLimitValue : IComparable, IComparable<CgroupLimitValue>, IEquatable<CgroupLimitValue>, IFormattable, IConvertible
{
    public CgroupLimitValue(long value) => Value = value;

    /// <summary>The number (<see cref="long.MaxValue"/> when unlimited).</summary>
    public long Value { get; }
    public bool IsUnlimited => Value == CgroupLimits.Unlimited;

    public static CgroupLimitValue Unlimited => new(CgroupLimits.Unlimited);

    public static implicit operator CgroupLimitValue(long value) => new(value);
    public static implicit operator long(CgroupLimitValue value) => value.Value;

    /// <summary>"max" (also "unlimited", "-1" as cgroup v1 writes it) or a number: how PowerShell converts strings to it.</summary>
    public static CgroupLimitValue Parse(string text)
    {
        var t = text.Trim();
        if (t.Equals("max", StringComparison.OrdinalIgnoreCase) || t.Equals("unlimited", StringComparison.OrdinalIgnoreCase) || t == "-1") return Unlimited;
        return new(long.Parse(t, NumberStyles.Integer, CultureInfo.InvariantCulture));
    }

    public int CompareTo(CgroupLimitValue other) => Value.CompareTo(other.Value);

    public int CompareTo(object? obj) => obj switch
    {
        null => 1,
        CgroupLimitValue v => CompareTo(v),
        string s => CompareTo(Parse(s)),
        IConvertible c => Value.CompareTo(c.ToInt64(CultureInfo.InvariantCulture)),
        _ => throw new ArgumentException($"Cannot compare a cgroup limit with {obj.GetType().Name}.", nameof(obj)),
    };

    public bool Equals(CgroupLimitValue other) => Value == other.Value;
    public override bool Equals(object? obj) => obj switch
    {
        CgroupLimitValue v => Equals(v),
        long l => Value == l,
        int i => Value == i,
        _ => false,
    };
    public override int GetHashCode() => Value.GetHashCode();
    public static bool operator ==(CgroupLimitValue a, CgroupLimitValue b) => a.Equals(b);
    public static bool operator !=(CgroupLimitValue a, CgroupLimitValue b) => !a.Equals(b);

    public override string ToString() => IsUnlimited ? "max" : Value.ToString(CultureInfo.InvariantCulture);
    public string ToString(IFormatProvider? provider) => ToString(null, provider);
    public string ToString(string? format, IFormatProvider? provider) => IsUnlimited ? "max" : Value.ToString(format, provider);

    // IConvertible: the number, checked (max overflows every type but long, so it equals no smaller number).
    private IConvertible Number => Value;
    TypeCode IConvertible.GetTypeCode() => TypeCode.Object;
    bool IConvertible.ToBoolean(IFormatProvider? provider) => Number.ToBoolean(provider);
    byte IConvertible.ToByte(IFormatProvider? provider) => Number.ToByte(provider);
    char IConvertible.ToChar(IFormatProvider? provider) => Number.ToChar(provider);
    DateTime IConvertible.ToDateTime(IFormatProvider? provider) => Number.ToDateTime(provider);
    decimal IConvertible.ToDecimal(IFormatProvider? provider) => Number.ToDecimal(provider);
    double IConvertible.ToDouble(IFormatProvider? provider) => Number.ToDouble(provider);
    short IConvertible.ToInt16(IFormatProvider? provider) => Number.ToInt16(provider);
    int IConvertible.ToInt32(IFormatProvider? provider) => Number.ToInt32(provider);
    long IConvertible.ToInt64(IFormatProvider? provider) => Value;
    sbyte IConvertible.ToSByte(IFormatProvider? provider) => Number.ToSByte(provider);
    float IConvertible.ToSingle(IFormatProvider? provider) => Number.ToSingle(provider);
    object IConvertible.ToType(Type conversionType, IFormatProvider? provider) =>
        conversionType == typeof(CgroupLimitValue) ? this : conversionType == typeof(string) ? ToString(provider) : Number.ToType(conversionType, provider);
    ushort IConvertible.ToUInt16(IFormatProvider? provider) => Number.ToUInt16(provider);
    uint IConvertible.ToUInt32(IFormatProvider? provider) => Number.ToUInt32(provider);
    ulong IConvertible.ToUInt64(IFormatProvider? provider) => Number.ToUInt64(provider);
}
