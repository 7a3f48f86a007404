using PSContainers.Runtime;
using PSContainers.Runtime.IdMapping;
using PSContainers.Tests.Infrastructure;
using PSContainers.Runtime.Network;

namespace PSContainers.Tests;

/// <summary>The usernet quota file (LXC's lxc-usernet format): parsing, errors with positions, and the per-user count.</summary>
public sealed class UsernetQuotaTests
{
    private const string Sample =
        "# user type bridge count\n" +
        "alice veth pscbr0 2   # two for alice\n" +
        "\n" +
        "@staff\tveth pscbr0 3\n" +
        "@staff veth lxcbr0 1\n" +
        "bob veth pscbr0 0\n";

    [Fact]
    public void Parse_ReadsUserAndGroupLines_SkippingCommentsAndBlankLines()
    {
        var quota = UsernetQuota.Parse(Sample, "/x/usernet");
        Assert.Equal(new[] { ("alice", "pscbr0", 2, 2), ("@staff", "pscbr0", 3, 4), ("@staff", "lxcbr0", 1, 5), ("bob", "pscbr0", 0, 6) },
            quota.Entries.Select(e => (e.Name, e.Bridge, e.Count, e.Line)));
        Assert.True(quota.Entries[1].IsGroup);
    }

    [Fact]
    public void AllowedVeths_AddsTheUsersLineAndItsGroupsLines_PerBridge()
    {
        var quota = UsernetQuota.Parse(Sample);
        Assert.Equal(5, quota.AllowedVeths("alice", new[] { "alice", "staff" }, "pscbr0"));
        Assert.Equal(2, quota.AllowedVeths("alice", new[] { "alice" }, "pscbr0"));
        Assert.Equal(1, quota.AllowedVeths("alice", new[] { "staff" }, "lxcbr0"));
        Assert.Equal(0, quota.AllowedVeths("carol", new[] { "users" }, "pscbr0"));
        Assert.Equal(0, quota.AllowedVeths("bob", Array.Empty<string>(), "pscbr0"));
        Assert.Equal(0, quota.AllowedVeths("alice", new[] { "staff" }, "otherbr"));
    }

    [Fact]
    public void AllowedVeths_ForAnAccount_UsesItsRealGroups()
    {
        // daemon's primary group is daemon on every Debian system (getgrouplist).
        var daemon = UserAccounts.Require("daemon");
        Assert.Contains("daemon", UserAccounts.GroupNames(daemon));
        var quota = UsernetQuota.Parse("daemon veth br0 1\n@daemon veth br0 4\n@nogroup veth br0 7\n");
        Assert.Equal(5, quota.AllowedVeths(daemon, "br0"));
    }

    [Theory]
    [InlineData("alice veth br0", "/q:1:15: expected 'user type bridge count'")]
    [InlineData("alice veth br0 1 extra", "/q:1:18: expected")]
    [InlineData("\nalice macvlan br0 1", "/q:2:7: unknown type 'macvlan'")]
    [InlineData("alice veth br0 -1", "/q:1:16: count '-1'")]
    [InlineData("alice veth br0 many", "/q:1:16: count 'many'")]
    [InlineData("alice veth averyveryverylongbridge 1", "/q:1:12: 'averyveryverylongbridge' is not an interface name")]
    [InlineData("al/ice veth br0 1", "/q:1:1: 'al/ice' is not a user name")]
    [InlineData("  @ veth br0 1", "/q:1:3: '@' is not a user name")]
    public void Parse_ErrorsNameFileLineAndColumn(string text, string expected)
    {
        var ex = Assert.Throws<ContainerException>(() => UsernetQuota.Parse(text, "/q"));
        Assert.Equal("InvalidUsernetFile", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.ParserError, ex.Kind);
        Assert.StartsWith(expected, ex.Message);
    }

    [Fact]
    public void Load_AMissingFileGrantsNothing_AndAFileIsRead()
    {
        using var dir = new TempDir();
        Assert.Empty(UsernetQuota.Load(dir.Combine("usernet")).Entries);
        var path = dir.Write("usernet", "root veth br0 2\n");
        Assert.Equal(2, UsernetQuota.Load(path).AllowedVeths("root", Array.Empty<string>(), "br0"));
        Assert.Equal("/etc/pscontainers/usernet", UsernetQuota.DefaultPath);
    }
}
