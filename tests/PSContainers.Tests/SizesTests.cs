using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using Xunit;

namespace PSContainers.Tests;

public class SizesTests
{
    [Theory]
    [InlineData("0", 0L)]
    [InlineData("512", 512L)]
    [InlineData("512B", 512L)]
    [InlineData("512K", 512L * 1024)]
    [InlineData("512KB", 512L * 1024)]
    [InlineData("512KiB", 512L * 1024)]
    [InlineData("512kib", 512L * 1024)]
    [InlineData("512mb", 512L * 1024 * 1024)]
    [InlineData("512MB", 512L * 1024 * 1024)]
    [InlineData("256M", 268435456L)]
    [InlineData("1.5G", 1610612736L)]
    [InlineData("1.50G", 1610612736L)]
    [InlineData("2T", 2L << 40)]
    [InlineData("1E", 1L << 60)]
    [InlineData("7EiB", 7L << 60)]
    [InlineData("0.5K", 512L)]
    [InlineData("1.3K", 1331L)] // rounded down to whole bytes
    [InlineData(" 1 G ", 1L << 30)]
    [InlineData("9223372036854775807", long.MaxValue)]
    public void Parses(string text, long expected)
    {
        Assert.True(Sizes.TryParse(text, out long bytes));
        Assert.Equal(expected, bytes);
        Assert.Equal(expected, Sizes.Parse(text, "test"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("-1")]
    [InlineData("-1M")]
    [InlineData("+1M")]
    [InlineData("12Q")]
    [InlineData("M")]
    [InlineData("1.5")]
    [InlineData("1.")]
    [InlineData(".5M")]
    [InlineData("1iB")]
    [InlineData("1MiBB")]
    [InlineData("1,5M")]
    [InlineData("0x10")]
    [InlineData("1e3")]
    [InlineData("8E")]
    [InlineData("9223372036854775808")]
    [InlineData("99999999999999999999999999999999G")]
    [InlineData("١٢")] // non-ASCII digits
    public void Rejects(string? text)
    {
        Assert.False(Sizes.TryParse(text, out _));
        var ex = Assert.Throws<ContainerException>(() => Sizes.Parse(text, "limits.memory"));
        Assert.Equal("InvalidSize", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains("limits.memory", ex.Message);
    }

    [Theory]
    [InlineData(0L, "0")]
    [InlineData(1L, "1")]
    [InlineData(1536L, "1536")]
    [InlineData(1024L, "1K")]
    [InlineData(268435456L, "256M")]
    [InlineData(3L << 30, "3G")]
    [InlineData(1L << 60, "1E")]
    [InlineData(long.MaxValue, "9223372036854775807")]
    public void FormatsExactly(long bytes, string expected)
    {
        Assert.Equal(expected, Sizes.Format(bytes));
        Assert.Equal(bytes, Sizes.Parse(Sizes.Format(bytes), "test"));
    }

    [Fact]
    public void FormatRejectsNegative() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => Sizes.Format(-1));
}
