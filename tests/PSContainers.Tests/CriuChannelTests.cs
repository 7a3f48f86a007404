using Google.Protobuf;
using Microsoft.Win32.SafeHandles;
using PSContainers.Runtime.Checkpoint;

namespace PSContainers.Tests;

/// <summary>The RPC channel to `criu swrk`, with a socket pair and no criu: the answer's timing is the test's.</summary>
public class CriuChannelTests
{
    private static void Answer(CriuChannel channel, criu_resp response)
    {
        // write() on a SOCK_SEQPACKET socket is one record, as criu's own send is.
        using var peer = new FileStream(new SafeFileHandle(channel.PeerFd, ownsHandle: false), FileAccess.Write, bufferSize: 0);
        peer.Write(response.ToByteArray());
    }

    [Fact]
    public void AnAnswerSentJustBeforeCriuExits_IsTaken_NotReportedAsNoAnswer()
    {
        // swrk serves one request and exits: the answer can land between a poll that found nothing
        // and the check that finds criu gone. That answer counts.
        using var channel = CriuChannel.Create();
        var checks = 0;
        bool PeerAlive()
        {
            if (++checks == 1) Answer(channel, new criu_resp { Type = criu_req_type.Check, Success = true });
            return false;
        }
        var resp = channel.Call(new criu_req { Type = criu_req_type.Check }, PeerAlive, TimeSpan.FromSeconds(30), "CriuCheckFailed", "check", null, null);
        Assert.True(resp.Success);
        Assert.Equal(criu_req_type.Check, resp.Type);
    }

    [Fact]
    public void CriuGoneWithoutAnAnswer_IsReportedAsSuch()
    {
        using var channel = CriuChannel.Create();
        var ex = Assert.Throws<PSContainers.Runtime.ContainerException>(() =>
            channel.Call(new criu_req { Type = criu_req_type.Check }, () => false, TimeSpan.FromSeconds(30), "CriuCheckFailed", "check", null, null));
        Assert.Equal("CriuCheckFailed", ex.ErrorId);
        Assert.Contains("exited without answering", ex.Message);
    }
}
