using System.Globalization;

namespace PSContainers.Runtime.Config;

/// <summary>
/// Linux signal names and numbers (x86_64 and arm64 share the generic numbering). Names are accepted
/// with or without the SIG prefix, in any case; real-time signals as RTMIN, RTMIN+n, RTMAX-n.
/// Numbers 1-64 are accepted as-is, including 32 and 33 which glibc reserves and has no name for.
/// </summary>
public static class Signals
{
    public const int Max = 64;
    public const int RtMin = 34;
    public const int RtMax = 64;
    public const string SyntaxHelp = "use a name such as SIGTERM, TERM or SIGPWR, or a number 1-64";

    private static readonly string[] Names =
    {
        "", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE",
        "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ",
        "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    };

    // Historical aliases the kernel headers still define; Name() never returns them.
    private static readonly Dictionary<string, int> Aliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["IOT"] = 6,
        ["CLD"] = 17,
        ["POLL"] = 29,
    };

    public static bool TryParse(string? nameOrNumber, out int signal)
    {
        signal = 0;
        if (string.IsNullOrEmpty(nameOrNumber))
            return false;
        string s = nameOrNumber;

        if (char.IsAsciiDigit(s[0]))
            return TryParseSmallNumber(s, out signal) && signal is >= 1 and <= Max;

        if (s.StartsWith("SIG", StringComparison.OrdinalIgnoreCase))
            s = s[3..];
        if (s.Length == 0)
            return false;

        for (int i = 1; i < Names.Length; i++)
        {
            if (string.Equals(Names[i], s, StringComparison.OrdinalIgnoreCase))
            {
                signal = i;
                return true;
            }
        }
        if (Aliases.TryGetValue(s, out signal))
            return true;

        if (s.StartsWith("RTMIN", StringComparison.OrdinalIgnoreCase))
            return TryParseOffset(s[5..], '+', RtMin, out signal);
        if (s.StartsWith("RTMAX", StringComparison.OrdinalIgnoreCase))
            return TryParseOffset(s[5..], '-', RtMax, out signal);
        signal = 0;
        return false;
    }

    /// <summary>Parses a signal or throws ContainerException "InvalidSignal".</summary>
    public static int Parse(string? nameOrNumber)
    {
        if (TryParse(nameOrNumber, out int signal))
            return signal;
        throw new ContainerException("InvalidSignal", ContainerErrorKind.InvalidArgument,
            $"invalid signal '{nameOrNumber}' ({SyntaxHelp})", nameOrNumber);
    }

    /// <summary>
    /// The canonical name (SIGTERM, SIGRTMIN+3, SIGRTMAX-2) the way <c>kill -l</c> prints it; "32"/"33"
    /// for the two unnamed numbers. Every result is accepted by <see cref="Parse"/>.
    /// </summary>
    public static string Name(int signal)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(signal, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(signal, Max);
        if (signal < Names.Length)
            return "SIG" + Names[signal];
        if (signal < RtMin)
            return signal.ToString(CultureInfo.InvariantCulture);
        // kill -l splits the range in the middle: RTMIN..RTMIN+15, then RTMAX-14..RTMAX.
        int fromMin = signal - RtMin;
        int fromMax = RtMax - signal;
        if (fromMin == 0)
            return "SIGRTMIN";
        if (fromMax == 0)
            return "SIGRTMAX";
        return fromMin <= 15
            ? "SIGRTMIN+" + fromMin.ToString(CultureInfo.InvariantCulture)
            : "SIGRTMAX-" + fromMax.ToString(CultureInfo.InvariantCulture);
    }

    private static bool TryParseOffset(string rest, char sign, int origin, out int signal)
    {
        signal = 0;
        if (rest.Length == 0)
        {
            signal = origin;
            return true;
        }
        if (rest[0] != sign || !TryParseSmallNumber(rest[1..], out int offset))
            return false;
        signal = sign == '+' ? origin + offset : origin - offset;
        return signal is >= RtMin and <= RtMax;
    }

    // Digits only: int.TryParse would also take signs, whitespace and other cultures' digits.
    private static bool TryParseSmallNumber(string s, out int value)
    {
        value = 0;
        if (s.Length is 0 or > 3)
            return false;
        foreach (char c in s)
        {
            if (!char.IsAsciiDigit(c))
                return false;
            value = value * 10 + (c - '0');
        }
        return true;
    }
}
