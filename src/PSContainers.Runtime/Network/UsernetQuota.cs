using System.Globalization;
using System.Text.RegularExpressions;

using PSContainers.Runtime.IdMapping;

namespace PSContainers.Runtime.Network;

/// <summary>One line of the usernet file: "user type bridge count" or "@group type bridge count".</summary>
public sealed record UsernetEntry(string Name, string Type, string Bridge, int Count, int Line)
{
    public bool IsGroup => Name.StartsWith('@');
}

/// <summary>
/// The veth quota root grants to unprivileged users, in the format of LXC's /etc/lxc/lxc-usernet:
/// one "user|@group type bridge count" per line, # comments. Like lxc-user-nic, the lines that
/// match a user (by name, or a group it belongs to) add up to how many veths it may attach to
/// that bridge. Unlike lxc-user-nic, a malformed line is an error naming line and column, not
/// silently skipped, so a typo never grants or withholds a quota unnoticed.
/// </summary>
public sealed class UsernetQuota
{
    public const string DefaultPath = "/etc/pscontainers/usernet";
    /// <summary>The only interface type the quota covers (lxc-user-nic knows only veth too).</summary>
    public const string VethType = "veth";

    private static readonly Regex UserName = new(@"^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$", RegexOptions.CultureInvariant);

    public string Path { get; }
    public IReadOnlyList<UsernetEntry> Entries { get; }

    private UsernetQuota(string path, IReadOnlyList<UsernetEntry> entries)
    {
        Path = path;
        Entries = entries;
    }

    /// <summary>Reads the file; a missing file grants nothing.</summary>
    public static UsernetQuota Load(string path = DefaultPath) =>
        File.Exists(path) ? Parse(File.ReadAllText(path), path) : new UsernetQuota(path, Array.Empty<UsernetEntry>());

    public static UsernetQuota Parse(string text, string path = DefaultPath)
    {
        var entries = new List<UsernetEntry>();
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            var hash = line.IndexOf('#');
            var content = hash >= 0 ? line[..hash] : line;
            var fields = Regex.Matches(content, @"\S+").Select(m => (Text: m.Value, Column: m.Index + 1)).ToList();
            if (fields.Count == 0) continue;
            int number = i + 1;
            ContainerException Error(int column, string message) =>
                new("InvalidUsernetFile", ContainerErrorKind.ParserError, $"{path}:{number}:{column}: {message}", path);

            if (fields.Count != 4)
                throw Error(fields.Count > 4 ? fields[4].Column : content.TrimEnd().Length + 1,
                    $"expected 'user type bridge count' (or '@group type bridge count'), found {fields.Count} field{(fields.Count == 1 ? "" : "s")}.");
            var (name, nameColumn) = fields[0];
            var bare = name.StartsWith('@') ? name[1..] : name;
            if (!UserName.IsMatch(bare))
                throw Error(nameColumn, $"'{name}' is not a user name or @group.");
            if (fields[1].Text != VethType)
                throw Error(fields[1].Column, $"unknown type '{fields[1].Text}'; the quota covers '{VethType}' interfaces.");
            var (bridge, bridgeColumn) = fields[2];
            if (bridge.Length > 15 || bridge.Any(c => c == '/' || c == ':' || char.IsWhiteSpace(c)) || bridge is "." or "..")
                throw Error(bridgeColumn, $"'{bridge}' is not an interface name (at most 15 characters, no '/' or ':').");
            if (!int.TryParse(fields[3].Text, NumberStyles.None, CultureInfo.InvariantCulture, out var count))
                throw Error(fields[3].Column, $"count '{fields[3].Text}' is not a whole number from 0 to {int.MaxValue}.");
            entries.Add(new UsernetEntry(name, fields[1].Text, bridge, count, number));
        }
        return new UsernetQuota(path, entries);
    }

    /// <summary>The lines that grant the user veths on the bridge: its own, and those of its groups.</summary>
    public IReadOnlyList<UsernetEntry> EntriesFor(string user, IEnumerable<string> groups, string bridge)
    {
        var groupSet = new HashSet<string>(groups, StringComparer.Ordinal);
        return Entries.Where(e => e.Type == VethType && e.Bridge == bridge &&
                                  (e.IsGroup ? groupSet.Contains(e.Name[1..]) : e.Name == user)).ToList();
    }

    /// <summary>How many veths the user may attach to the bridge (the sum of the matching lines, as lxc-user-nic counts).</summary>
    public int AllowedVeths(string user, IEnumerable<string> groups, string bridge) =>
        (int)Math.Min(int.MaxValue, EntriesFor(user, groups, bridge).Sum(e => (long)e.Count));

    /// <summary>The same for an account, with its groups from the C library (getgrouplist).</summary>
    public int AllowedVeths(UserAccount user, string bridge) =>
        AllowedVeths(user.Name, UserAccounts.GroupNames(user), bridge);
}
