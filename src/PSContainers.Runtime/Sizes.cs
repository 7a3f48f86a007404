using System.Globalization;
using System.Text.RegularExpressions;

namespace PSContainers.Runtime;

/// <summary>
/// Byte sizes as people write them: <c>512</c>, <c>512K</c>, <c>512KB</c>, <c>512KiB</c>, <c>1.5G</c>.
/// Every suffix is binary (K = 1024) whether or not it has the <c>i</c>: PowerShell's <c>512MB</c> literal
/// is already 512*1024*1024, so the string "512MB" has to mean the same or the two would silently differ.
/// </summary>
public static class Sizes
{
    public const string SyntaxHelp = "use bytes or a suffix K, M, G, T with optional B or iB, e.g. 512M or 512MB";

    // Units past T are accepted because limits go up to 1 EiB; a bare "B" means bytes.
    private static readonly Regex Pattern = new(
        @"^(?<int>[0-9]+)(?:\.(?<frac>[0-9]+))?[ ]*(?:(?<unit>[KMGTPE])(?:i?B)?|B)?$",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture);

    private const string Units = "KMGTPE";

    public static bool TryParse(string? text, out long bytes)
    {
        bytes = 0;
        if (text is null)
            return false;
        var m = Pattern.Match(text.Trim());
        if (!m.Success)
            return false;

        int shift = m.Groups["unit"].Success ? 10 * (Units.IndexOf(char.ToUpperInvariant(m.Groups["unit"].Value[0])) + 1) : 0;
        string intPart = m.Groups["int"].Value.TrimStart('0');
        string fracPart = m.Groups["frac"].Success ? m.Groups["frac"].Value.TrimEnd('0') : "";

        // A fraction of a byte is meaningless; with a unit the result is rounded down to whole bytes.
        if (shift == 0 && fracPart.Length > 0)
            return false;
        // Keep the digit strings short enough that decimal arithmetic can neither overflow nor round.
        if (intPart.Length > 19 || fracPart.Length > 18)
            return false;

        decimal value = intPart.Length == 0 ? 0m : decimal.Parse(intPart, NumberStyles.None, CultureInfo.InvariantCulture);
        if (fracPart.Length > 0)
            value += decimal.Parse("0." + fracPart, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);

        decimal multiplier = 1m;
        for (int i = 0; i < shift; i++)
            multiplier *= 2;
        if (value > long.MaxValue / multiplier)
            return false;
        decimal result = decimal.Floor(value * multiplier);
        if (result > long.MaxValue)
            return false;
        bytes = (long)result;
        return true;
    }

    /// <summary>Parses a size or throws ContainerException "InvalidSize" naming <paramref name="what"/>.</summary>
    public static long Parse(string? text, string what)
    {
        if (TryParse(text, out long bytes))
            return bytes;
        throw new ContainerException("InvalidSize", ContainerErrorKind.InvalidArgument,
            $"invalid size '{text}' for {what} ({SyntaxHelp})", text);
    }

    /// <summary>
    /// Formats with the largest unit that divides evenly (268435456 -> "256M", 1536 -> "1536"), so the
    /// text always parses back to exactly the same number.
    /// </summary>
    public static string Format(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes == 0)
            return "0";
        for (int i = Units.Length; i >= 1; i--)
        {
            long unit = 1L << (10 * i);
            if (bytes % unit == 0)
                return (bytes / unit).ToString(CultureInfo.InvariantCulture) + Units[i - 1];
        }
        return bytes.ToString(CultureInfo.InvariantCulture);
    }
}
