using System.Text;

namespace PSContainers.Runtime.Containers;

/// <summary>
/// Makes a container's console output safe to show on the caller's terminal. Whatever a container
/// prints is untrusted: an escape sequence (CSI, OSC, DCS...) written to the caller's terminal can
/// retitle it, rewrite what is on screen, or on some terminals answer back into its input. Every
/// control character except the tab becomes visible text: C0 controls and DEL as their Unicode
/// Control Pictures (ESC is "␛", BEL "␇"), 8-bit C1 controls as the ESC form they stand for ("␛["
/// for CSI, U+009B). Carriage returns (the pty's CRLF) are dropped. Lines are split by the caller.
/// </summary>
public static class ConsoleText
{
    public static string Render(string line)
    {
        var i = 0;
        while (i < line.Length && !NeedsRendering(line[i])) i++;
        if (i == line.Length) return line;
        var sb = new StringBuilder(line.Length + 8);
        sb.Append(line, 0, i);
        for (; i < line.Length; i++)
        {
            var c = line[i];
            if (!NeedsRendering(c)) sb.Append(c);
            else if (c == '\r') { /* the pty's CRLF */ }
            else if (c < 0x20) sb.Append((char)(0x2400 + c));
            else if (c == 0x7F) sb.Append('\u2421');
            else sb.Append('\u241B').Append((char)(c - 0x40)); // C1: ESC + (c - 0x40)
        }
        return sb.ToString();
    }

    private static bool NeedsRendering(char c) => c != '\t' && (c < 0x20 || c is >= (char)0x7F and <= (char)0x9F);
}

/// <summary>
/// Reads a console log as it grows: complete lines only (a partial last line waits for its newline,
/// unless the reader is told the writer is done), across the supervisor's rotation (the file renamed
/// to console.log.1 and a new one started: the old one is read to its end first) and truncation.
/// </summary>
public sealed class ConsoleLogReader : IDisposable
{
    private readonly string _path;
    private readonly bool _raw;
    private FileStream? _stream;
    private readonly List<byte> _partial = new();
    private readonly byte[] _buffer = new byte[64 * 1024];

    public ConsoleLogReader(string path, bool raw)
    {
        _path = path;
        _raw = raw;
    }

    /// <summary>The lines written since the last call (rendered harmless unless raw). <paramref name="final"/>: also the unterminated rest.</summary>
    public List<string> ReadLines(bool final = false)
    {
        var lines = new List<string>();
        while (true)
        {
            if (_stream is null && !TryOpen()) break;
            var stream = _stream!;
            if (stream.Length < stream.Position) stream.Position = 0; // truncated in place
            int n;
            while ((n = stream.Read(_buffer, 0, _buffer.Length)) > 0) Split(_buffer.AsSpan(0, n), lines);
            // At the end of this file: if the path now names another file (rotated), go on with that one.
            if (!Replaced(stream)) break;
            stream.Dispose();
            _stream = null;
        }
        if (final && _partial.Count > 0)
        {
            lines.Add(Decode(_partial.ToArray()));
            _partial.Clear();
        }
        return lines;
    }

    private bool TryOpen()
    {
        try
        {
            // The supervisor keeps appending (and may rename it): open shared.
            _stream = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            return true;
        }
        catch (FileNotFoundException) { return false; }
        catch (DirectoryNotFoundException) { return false; }
    }

    private unsafe bool Replaced(FileStream stream)
    {
        Tmds.Linux.stat open, now;
        if (Tmds.Linux.LibC.fstat((int)stream.SafeFileHandle.DangerousGetHandle(), &open) != 0) return false;
        var bytes = Encoding.UTF8.GetBytes(_path + "\0");
        fixed (byte* p = bytes)
            if (Tmds.Linux.LibC.stat(p, &now) != 0) return false; // gone for now: keep what we have
        return open.st_ino != now.st_ino || open.st_dev != now.st_dev;
    }

    private void Split(ReadOnlySpan<byte> data, List<string> lines)
    {
        int nl;
        while ((nl = data.IndexOf((byte)'\n')) >= 0)
        {
            _partial.AddRange(data[..nl]);
            lines.Add(Decode(_partial.ToArray()));
            _partial.Clear();
            data = data[(nl + 1)..];
        }
        _partial.AddRange(data);
    }

    private string Decode(byte[] line)
    {
        var text = Encoding.UTF8.GetString(line);
        return _raw ? text : ConsoleText.Render(text);
    }

    public void Dispose() => _stream?.Dispose();
}
