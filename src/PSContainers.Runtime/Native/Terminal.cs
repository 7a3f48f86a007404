using System.Diagnostics;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace PSContainers.Runtime.Native;

/// <summary>Questions to the terminal on stdin/stdout.</summary>
public static unsafe class Terminal
{
    /// <summary>
    /// Whether the terminal answers a cursor position query (ESC[6n) within <paramref name="timeout"/>.
    /// The reply is read here (stdin without echo or line buffering for that moment, then as it was)
    /// so it never shows up as typed input. False when stdin or stdout is not a terminal.
    /// </summary>
    public static bool AnswersCursorQuery(TimeSpan timeout)
    {
        if (LibC.isatty(0) != 1 || LibC.isatty(1) != 1) return false;
        termios saved;
        if (LibC.tcgetattr(0, &saved) != 0) return false;
        var raw = saved;
        raw.c_lflag &= ~(LibC.ICANON | LibC.ECHO);
        raw.c_cc[LibC.VMIN] = 0;
        raw.c_cc[LibC.VTIME] = 0;
        if (LibC.tcsetattr(0, (int)LibC.TCSANOW, &raw) != 0) return false;
        try
        {
            var query = "\u001b[6n"u8;
            fixed (byte* q = query)
                if (LibC.write(1, q, query.Length) != query.Length) return false;
            // The reply is ESC [ row ; col R.
            var clock = Stopwatch.StartNew();
            var reply = stackalloc byte[64];
            var got = 0;
            while (got < 64)
            {
                var left = timeout - clock.Elapsed;
                if (left <= TimeSpan.Zero) return false;
                var pfd = new pollfd { fd = 0, events = LibC.POLLIN };
                var rc = LibC.poll(&pfd, 1, (int)Math.Ceiling(left.TotalMilliseconds));
                if (rc < 0 && Marshal.GetLastPInvokeError() == LibC.EINTR) continue;
                if (rc <= 0) return false;
                var n = LibC.read(0, reply + got, 64 - got);
                if (n <= 0) return false;
                got += (int)n;
                if (reply[got - 1] == (byte)'R') return true;
            }
            return false;
        }
        finally { LibC.tcsetattr(0, (int)LibC.TCSANOW, &saved); }
    }
}
