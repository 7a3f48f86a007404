using PSContainers.Runtime;
using PSContainers.Runtime.State;
using Xunit;

namespace PSContainers.Tests;

public class ContainerNamesTests
{
    [Theory]
    [InlineData("web1")]
    [InlineData("a")]
    [InlineData("0")]
    [InlineData("Web_1.example-test")]
    [InlineData("a..b")]
    [InlineData("a-")]
    public void AcceptsValidNames(string name)
    {
        Assert.True(ContainerNames.IsValid(name, out string? reason));
        Assert.Null(reason);
        ContainerNames.Validate(name);
    }

    [Fact]
    public void AcceptsMaxLength() => ContainerNames.Validate(new string('a', ContainerNames.MaxLength));

    [Theory]
    [InlineData(null, "must not be empty")]
    [InlineData("", "must not be empty")]
    [InlineData(".", "'.' and '..'")]
    [InlineData("..", "'.' and '..'")]
    [InlineData(".hidden", "must start with a letter or digit")]
    [InlineData("_x", "must start with a letter or digit")]
    [InlineData("-rf", "must not start with '-'")]
    [InlineData("a/b", "must not contain '/'")]
    [InlineData("../etc", "must not contain '/'")]
    [InlineData("a b", "whitespace")]
    [InlineData("a\tb", "whitespace")]
    [InlineData("a\u0007b", "control characters")]
    [InlineData("web.", "must not end with '.'")]
    [InlineData("web:1", "':' is not allowed")]
    [InlineData("wéb", "'é' is not allowed")]
    [InlineData("cgroup.procs", "cgroup interface files")]
    [InlineData("memory.max", "cgroup interface files")]
    public void RejectsInvalidNames(string? name, string expectedReason)
    {
        Assert.False(ContainerNames.IsValid(name, out string? reason));
        Assert.Contains(expectedReason, reason);
        var ex = Assert.Throws<ContainerException>(() => ContainerNames.Validate(name));
        Assert.Equal("InvalidContainerName", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains(expectedReason, ex.Message);
        Assert.Equal(name, ex.Target);
    }

    [Fact]
    public void RejectsTooLong()
    {
        string name = new('a', ContainerNames.MaxLength + 1);
        var ex = Assert.Throws<ContainerException>(() => ContainerNames.Validate(name));
        Assert.Contains("65 characters long, the maximum is 64", ex.Message);
        Assert.Contains(name, ex.Message);
    }

    [Fact]
    public void MessageEscapesControlCharacters()
    {
        var ex = Assert.Throws<ContainerException>(() => ContainerNames.Validate("a\nb"));
        Assert.Contains("'a\\u000ab'", ex.Message);
        Assert.DoesNotContain("\n", ex.Message);
    }
}
