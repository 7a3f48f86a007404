using PSContainers.Runtime;
using PSContainers.Runtime.Config;
using Xunit;

namespace PSContainers.Tests;

public class SignalsTests
{
    [Theory]
    [InlineData("SIGTERM", 15)]
    [InlineData("TERM", 15)]
    [InlineData("term", 15)]
    [InlineData("SigTerm", 15)]
    [InlineData("SIGHUP", 1)]
    [InlineData("KILL", 9)]
    [InlineData("SIGPWR", 30)]
    [InlineData("SIGSYS", 31)]
    [InlineData("STKFLT", 16)]
    [InlineData("SIGCHLD", 17)]
    [InlineData("SIGCLD", 17)]
    [InlineData("SIGIOT", 6)]
    [InlineData("POLL", 29)]
    [InlineData("WINCH", 28)]
    [InlineData("SIGRTMIN", 34)]
    [InlineData("RTMIN+0", 34)]
    [InlineData("SIGRTMIN+1", 35)]
    [InlineData("rtmin+30", 64)]
    [InlineData("SIGRTMAX", 64)]
    [InlineData("SIGRTMAX-1", 63)]
    [InlineData("RTMAX-30", 34)]
    [InlineData("1", 1)]
    [InlineData("15", 15)]
    [InlineData("32", 32)]
    [InlineData("64", 64)]
    public void Parses(string text, int expected)
    {
        Assert.True(Signals.TryParse(text, out int signal));
        Assert.Equal(expected, signal);
        Assert.Equal(expected, Signals.Parse(text));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("SIG")]
    [InlineData("0")]
    [InlineData("65")]
    [InlineData("-1")]
    [InlineData("+9")]
    [InlineData(" 9")]
    [InlineData("SIGFOO")]
    [InlineData("SIGSIGTERM")]
    [InlineData("RTMIN+31")]
    [InlineData("RTMAX-31")]
    [InlineData("RTMIN-1")]
    [InlineData("RTMAX+1")]
    [InlineData("RTMIN+")]
    [InlineData("1000")]
    public void Rejects(string? text)
    {
        Assert.False(Signals.TryParse(text, out _));
        var ex = Assert.Throws<ContainerException>(() => Signals.Parse(text));
        Assert.Equal("InvalidSignal", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.InvalidArgument, ex.Kind);
    }

    [Theory]
    [InlineData(1, "SIGHUP")]
    [InlineData(9, "SIGKILL")]
    [InlineData(15, "SIGTERM")]
    [InlineData(31, "SIGSYS")]
    [InlineData(32, "32")]
    [InlineData(34, "SIGRTMIN")]
    [InlineData(35, "SIGRTMIN+1")]
    [InlineData(49, "SIGRTMIN+15")]
    [InlineData(50, "SIGRTMAX-14")]
    [InlineData(63, "SIGRTMAX-1")]
    [InlineData(64, "SIGRTMAX")]
    public void Names(int signal, string expected) => Assert.Equal(expected, Signals.Name(signal));

    [Fact]
    public void EveryNameParsesBack()
    {
        for (int i = 1; i <= 64; i++)
            Assert.Equal(i, Signals.Parse(Signals.Name(i)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65)]
    public void NameRejectsOutOfRange(int signal) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => Signals.Name(signal));
}
