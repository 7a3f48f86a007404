using System.Net.Sockets;
using System.Text;
using PSContainers.Runtime.Namespaces;
using Xunit;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// A test's end of a supervisor's console socket, speaking what Enter-Container -Console's relay
/// speaks (ConsoleSocketProtocol): borrow the console, send typed frames, read its output.
/// </summary>
public static class ConsoleSocketClient
{
    /// <summary>Connects and checks that the console is lent (asking again while the supervisor has not yet seen the previous caller's end: busy).</summary>
    public static Socket Connect(string path)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        for (;;)
        {
            var sock = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified) { ReceiveTimeout = 30_000 };
            try
            {
                sock.Connect(new UnixDomainSocketEndPoint(path));
                var answer = new byte[16];
                Assert.Equal(1, sock.Receive(answer));
                if (answer[0] == ConsoleSocketProtocol.Busy && DateTime.UtcNow < deadline) { sock.Dispose(); Thread.Sleep(100); continue; }
                Assert.Equal((char)ConsoleSocketProtocol.Attached, (char)answer[0]);
                return sock;
            }
            catch { sock.Dispose(); throw; }
        }
    }

    /// <summary>One frame: its type byte, then the payload.</summary>
    public static void SendFrame(Socket sock, byte type, string payload)
    {
        var frame = new byte[1 + payload.Length];
        frame[0] = type;
        Encoding.ASCII.GetBytes(payload, frame.AsSpan(1));
        Assert.Equal(frame.Length, sock.Send(frame));
    }

    /// <summary>Typed input, as the relay sends what the caller types.</summary>
    public static void Type(Socket sock, string text) => SendFrame(sock, ConsoleSocketProtocol.InputFrame, text);

    /// <summary>The console's output until the text appears (or the supervisor closes the connection; bounded).</summary>
    public static string ReadUntil(Socket sock, string text)
    {
        var seen = new StringBuilder();
        var buf = new byte[65536];
        var deadline = DateTime.UtcNow.AddSeconds(30 * TestPaths.SlowFactor);
        while (!seen.ToString().Contains(text) && DateTime.UtcNow < deadline)
        {
            int n;
            try { n = sock.Receive(buf); }
            catch (SocketException) { break; } // the receive timeout
            if (n == 0) break;
            seen.Append(Encoding.UTF8.GetString(buf, 0, n));
        }
        return seen.ToString();
    }
}
