using System.Globalization;
using System.Text;

namespace PSContainers.Runtime.State;

/// <summary>
/// Container names are used unescaped as a directory name in the store, a cgroup directory name and the
/// default hostname, so they are restricted to what is safe in all three: an ASCII letter or digit, then
/// letters, digits, '_', '.', '-', at most <see cref="MaxLength"/> characters, not ending in '.'.
/// </summary>
public static class ContainerNames
{
    public const int MaxLength = 64;

    // cgroup v2 puts interface files (cgroup.procs, memory.max, ...) next to child cgroups, so a child
    // named after one fails mkdir with EEXIST or, worse, shadows a future controller's file.
    private static readonly string[] CgroupPrefixes =
        { "cgroup.", "cpu.", "cpuset.", "io.", "memory.", "pids.", "rdma.", "hugetlb.", "misc.", "irq." };

    public static bool IsValid(string? name, out string? reason)
    {
        reason = Check(name);
        return reason is null;
    }

    /// <summary>Throws ContainerException "InvalidContainerName" saying which rule the name breaks.</summary>
    public static void Validate(string? name)
    {
        string? reason = Check(name);
        if (reason is not null)
            throw new ContainerException("InvalidContainerName", ContainerErrorKind.InvalidArgument,
                $"Invalid container name '{Display(name)}': {reason}.", name);
    }

    private static string? Check(string? name)
    {
        if (string.IsNullOrEmpty(name))
            return "the name must not be empty";
        if (name.Length > MaxLength)
            return $"the name is {name.Length} characters long, the maximum is {MaxLength}";
        if (name is "." or "..")
            return "'.' and '..' are not container names";
        if (name.Contains('/'))
            return "the name must not contain '/'";
        foreach (char c in name)
        {
            if (char.IsWhiteSpace(c))
                return "the name must not contain whitespace";
            if (char.IsControl(c))
                return "the name must not contain control characters";
        }
        if (name[0] == '-')
            return "the name must not start with '-' (it would be taken for an option)";
        if (!IsAsciiLetterOrDigit(name[0]))
            return "the name must start with a letter or digit (A-Z, a-z, 0-9)";
        foreach (char c in name)
        {
            if (!IsAsciiLetterOrDigit(c) && c is not ('_' or '.' or '-'))
                return $"the character '{c}' is not allowed (use letters, digits, '_', '.', '-')";
        }
        if (name[^1] == '.')
            return "the name must not end with '.'";
        foreach (string prefix in CgroupPrefixes)
        {
            if (name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                return $"names starting with '{prefix}' clash with cgroup interface files";
        }
        return null;
    }

    private static bool IsAsciiLetterOrDigit(char c) => char.IsAsciiLetterOrDigit(c);

    // Control characters in an error message would garble the terminal; show them as escapes.
    private static string Display(string? name)
    {
        if (name is null)
            return "";
        var sb = new StringBuilder(name.Length);
        foreach (char c in name)
        {
            if (char.IsControl(c))
                sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            else
                sb.Append(c);
        }
        return sb.ToString();
    }
}
