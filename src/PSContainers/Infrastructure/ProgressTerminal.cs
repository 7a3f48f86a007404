using System.Management.Automation;

namespace PSContainers.Infrastructure;

/// <summary>
/// Whether progress can be drawn without waiting on the terminal. pwsh's console host reads the
/// cursor position for each draw: .NET writes ESC[6n and, when no reply comes, waits seconds for it
/// (about 10 s for the first, measured), and a draw asks several times; a terminal that never answers
/// (a serial or hypervisor console, `script` writing to a file) turned a 2 s New-Container into 29 s.
/// Asked once per process with a short timeout of our own, when the first progress record would be
/// drawn: an answering terminal replies within milliseconds.
/// </summary>
internal static class ProgressTerminal
{
    /// <summary>Longer than a terminal takes to answer, locally or over ssh.</summary>
    private static readonly TimeSpan NoAnswer = TimeSpan.FromMilliseconds(500);
    private static int _verdict; // 0 not asked yet, 1 answers, 2 does not answer

    public static bool CanDraw(PSCmdlet cmdlet)
    {
        // Only pwsh's console host on a terminal asks the terminal; other hosts and redirected
        // consoles (.NET does not ask then) draw, or collect the records, without waiting.
        if (cmdlet.Host?.Name != "ConsoleHost" || Console.IsInputRedirected || Console.IsOutputRedirected) return true;
        // Not drawn anyway: no reason to ask.
        if (cmdlet.SessionState.PSVariable.GetValue("ProgressPreference") is ActionPreference.SilentlyContinue or ActionPreference.Ignore) return true;
        if (_verdict == 0)
        {
            _verdict = PSContainers.Runtime.Native.Terminal.AnswersCursorQuery(NoAnswer) ? 1 : 2;
            if (_verdict == 2)
                cmdlet.WriteVerbose($"Progress is not shown: this terminal did not answer a cursor position query (ESC[6n) within {NoAnswer.TotalMilliseconds:0} ms, and drawing progress would wait on it each time.");
        }
        return _verdict == 1;
    }
}
