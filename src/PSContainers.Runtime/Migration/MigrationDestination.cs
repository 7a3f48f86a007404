using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;

namespace PSContainers.Runtime.Migration;

/// <summary>An SSH server to migrate to: ssh://[user@]host[:port].</summary>
public sealed record SshEndpoint(string Host, string? User, int? Port)
{
    public override string ToString() =>
        "ssh://" + (User is null ? "" : User + "@") + (Host.Contains(':') ? $"[{Host}]" : Host) + (Port is null ? "" : ":" + Port.Value.ToString(CultureInfo.InvariantCulture));
}

/// <summary>
/// Where Move-Container takes a container: another store on this host (an absolute path), or a
/// store on another host, written as one URI: <c>ssh://[user@]host[:port]/absolute/store/path</c>.
/// </summary>
public sealed partial class MigrationDestination
{
    /// <summary>The destination store: a local path, or the path on the remote host.</summary>
    public string StorePath { get; }
    /// <summary>The SSH server, or null for a store on this host.</summary>
    public SshEndpoint? Ssh { get; }
    public bool IsRemote => Ssh is not null;

    private MigrationDestination(string storePath, SshEndpoint? ssh)
    {
        StorePath = storePath;
        Ssh = ssh;
    }

    public override string ToString() => Ssh is null ? StorePath : Ssh + StorePath;

    public static MigrationDestination Local(string storePath)
    {
        CheckPath(storePath, storePath);
        return new MigrationDestination(Path.TrimEndingDirectorySeparator(Path.GetFullPath(storePath)), null);
    }

    /// <summary>True when <paramref name="text"/> is meant as an SSH destination (ssh://, or scp-like user@host:/path).</summary>
    public static bool LooksRemote(string text) => text.StartsWith("ssh://", StringComparison.OrdinalIgnoreCase) || ScpLike().IsMatch(text);

    /// <summary>Parses ssh://[user@]host[:port]/store/path or an absolute local store path.</summary>
    public static MigrationDestination Parse(string text)
    {
        if (!text.StartsWith("ssh://", StringComparison.OrdinalIgnoreCase))
        {
            if (ScpLike().IsMatch(text))
                throw Invalid(text, $"'{text}' looks like an scp destination. Write SSH destinations as ssh://[user@]host[:port]/store/path, e.g. ssh://{text.Replace(":/", "/", StringComparison.Ordinal)}.");
            if (!Path.IsPathRooted(text))
                throw Invalid(text, $"'{text}' is neither an absolute store path nor an ssh://[user@]host[:port]/store/path destination.");
            return Local(text);
        }
        var rest = text["ssh://".Length..];
        var slash = rest.IndexOf('/');
        if (slash < 0)
            throw Invalid(text, $"'{text}' names no store on the remote host. Add its absolute path: ssh://host/var/lib/pscontainers.");
        var authority = rest[..slash];
        var path = rest[slash..];
        string? user = null;
        var at = authority.LastIndexOf('@');
        if (at >= 0)
        {
            user = authority[..at];
            authority = authority[(at + 1)..];
            if (!UserName().IsMatch(user))
                throw Invalid(text, $"'{user}' is not a valid user name (letters, digits, '.', '_', '-'; not starting with '-').");
        }
        string host;
        int? port = null;
        string? portText = null;
        if (authority.StartsWith('['))
        {
            var close = authority.IndexOf(']');
            if (close < 0) throw Invalid(text, $"'{authority}': an IPv6 address in brackets lacks its ']'.");
            host = authority[1..close];
            if (!IPAddress.TryParse(host, out var ip) || ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
                throw Invalid(text, $"'{host}' is not an IPv6 address.");
            var after = authority[(close + 1)..];
            if (after.Length > 0)
            {
                if (!after.StartsWith(':')) throw Invalid(text, $"Unexpected '{after}' after the IPv6 address.");
                portText = after[1..];
            }
        }
        else
        {
            var colon = authority.LastIndexOf(':');
            host = colon < 0 ? authority : authority[..colon];
            if (colon >= 0) portText = authority[(colon + 1)..];
            if (!HostName().IsMatch(host))
                throw Invalid(text, $"'{host}' is not a valid host name or IPv4 address.");
        }
        if (portText is not null)
        {
            if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var p) || p is < 1 or > 65535)
                throw Invalid(text, $"'{portText}' is not a TCP port (1-65535).");
            port = p;
        }
        CheckPath(path, text);
        if (path.Length > 1) path = path.TrimEnd('/');
        return new MigrationDestination(path, new SshEndpoint(host, user, port));
    }

    static void CheckPath(string path, string text)
    {
        if (path.Length == 0 || path.Any(char.IsControl))
            throw Invalid(text, $"The store path '{path}' is empty or holds control characters.");
        if (path == "/") throw Invalid(text, "The store path cannot be '/'; name the store directory.");
    }

    static ContainerException Invalid(string text, string message) =>
        new("InvalidDestination", ContainerErrorKind.InvalidArgument, message, text);

    [GeneratedRegex(@"^([A-Za-z0-9_.-]+@)?[A-Za-z0-9.-]+:/")]
    private static partial Regex ScpLike();

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9._-]*$")]
    private static partial Regex UserName();

    // RFC 1123 labels; no leading '-', so a host can never be read by ssh as an option.
    [GeneratedRegex(@"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")]
    private static partial Regex HostName();
}
