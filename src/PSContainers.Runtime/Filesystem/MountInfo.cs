using System.Text.RegularExpressions;

namespace PSContainers.Runtime.Filesystem;

/// <summary>One line of /proc/PID/mountinfo (proc(5)), its paths unescaped.</summary>
/// <param name="Root">The path within the mounted filesystem that is mounted here ("/" unless a bind of a subtree).</param>
/// <param name="SuperOptions">The filesystem's own options (for cgroup v1: its controllers).</param>
public sealed record MountInfoEntry(int Id, int ParentId, string Root, string MountPoint, string Options, string FsType, string Source, string SuperOptions);

/// <summary>
/// The one reader of mountinfo. The kernel escapes space, tab, newline and backslash in paths as
/// \ooo; a reader that undoes only some of them (\040) misplaces a mount whose path has another,
/// which a container's own mounts can choose. Optional fields end at the " - " separator.
/// </summary>
public static partial class MountInfo
{
    /// <summary>The mounts of this process's mount namespace, in the kernel's order; none if it cannot be read.</summary>
    public static IReadOnlyList<MountInfoEntry> Current() => Read("/proc/self/mountinfo");

    /// <summary>The mounts listed in <paramref name="path"/> (a /proc/PID/mountinfo); none if it cannot be read.</summary>
    public static IReadOnlyList<MountInfoEntry> Read(string path)
    {
        try { return Parse(File.ReadLines(path)); }
        catch (IOException) { return Array.Empty<MountInfoEntry>(); }
        catch (UnauthorizedAccessException) { return Array.Empty<MountInfoEntry>(); }
    }

    /// <summary>Parses mountinfo lines; a malformed line is skipped.</summary>
    public static IReadOnlyList<MountInfoEntry> Parse(IEnumerable<string> lines)
    {
        var result = new List<MountInfoEntry>();
        foreach (var line in lines)
        {
            // id parent maj:min root mountpoint opts [optional...] - fstype source superopts
            var sep = line.IndexOf(" - ", StringComparison.Ordinal);
            if (sep < 0) continue;
            var left = line[..sep].Split(' ');
            var right = line[(sep + 3)..].Split(' ');
            if (left.Length < 6 || right.Length < 3) continue;
            if (!int.TryParse(left[0], out var id) || !int.TryParse(left[1], out var parent)) continue;
            result.Add(new MountInfoEntry(id, parent, Unescape(left[3]), Unescape(left[4]), left[5], right[0], Unescape(right[1]), right[2]));
        }
        return result;
    }

    /// <summary>The mount points at or below <paramref name="dir"/> (an absolute path without a trailing slash).</summary>
    public static IEnumerable<string> PointsBelow(IEnumerable<MountInfoEntry> mounts, string dir) =>
        mounts.Select(m => m.MountPoint).Where(p => p == dir || p.StartsWith(dir + "/", StringComparison.Ordinal));

    private static string Unescape(string s) => s.Contains('\\') ? Octal().Replace(s, m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString()) : s;

    [GeneratedRegex(@"\\([0-7]{3})")]
    private static partial Regex Octal();
}
