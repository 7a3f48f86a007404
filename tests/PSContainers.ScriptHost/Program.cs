using System.Management.Automation;
using System.Management.Automation.Runspaces;

// pwsh-compatible subset: [-NoProfile] [-NonInteractive] [-NoLogo] (-Command <script> [args] | -Command - | -File <path> [args]).
// Output objects are written one per line (their ToString()); errors go to stderr as
// "<FullyQualifiedErrorId>: <message>". Exit code: the script's `exit N`, else 1 if any error was written, else 0.
string? script = null;
var scriptArgs = new List<object>();
for (int i = 0; i < args.Length; i++)
{
    var a = args[i];
    if (a.Equals("-NoProfile", StringComparison.OrdinalIgnoreCase) || a.Equals("-NonInteractive", StringComparison.OrdinalIgnoreCase)
        || a.Equals("-NoLogo", StringComparison.OrdinalIgnoreCase)) continue;
    if ((a.Equals("-Command", StringComparison.OrdinalIgnoreCase) || a.Equals("-c", StringComparison.OrdinalIgnoreCase)) && i + 1 < args.Length)
    {
        script = args[++i] == "-" ? Console.In.ReadToEnd() : args[i];
        scriptArgs.AddRange(args.Skip(i + 1));
        break;
    }
    if ((a.Equals("-File", StringComparison.OrdinalIgnoreCase) || a.Equals("-f", StringComparison.OrdinalIgnoreCase)) && i + 1 < args.Length)
    {
        script = File.ReadAllText(args[++i]);
        scriptArgs.AddRange(args.Skip(i + 1));
        break;
    }
    Console.Error.WriteLine($"psc-scripthost: unknown argument '{a}'. Usage: psc-scripthost [-NoProfile] [-NonInteractive] -Command <script>|- [args] | -File <path> [args]");
    return 64;
}
if (script is null)
{
    Console.Error.WriteLine("psc-scripthost: -Command or -File is required.");
    return 64;
}

var host = new ExitCodeHost();
using var runspace = RunspaceFactory.CreateRunspace(host, InitialSessionState.CreateDefault2());
runspace.Open();
using var ps = PowerShell.Create();
ps.Runspace = runspace;
ps.AddScript(script);
foreach (var a in scriptArgs) ps.AddArgument(a);

var output = new PSDataCollection<PSObject>();
output.DataAdded += (_, e) => Console.Out.WriteLine(output[e.Index]?.BaseObject?.ToString());
ps.Streams.Error.DataAdded += (_, e) =>
{
    var err = ps.Streams.Error[e.Index];
    Console.Error.WriteLine($"{err.FullyQualifiedErrorId}: {err}");
};
ps.Streams.Warning.DataAdded += (_, e) => Console.Error.WriteLine("WARNING: " + ps.Streams.Warning[e.Index].Message);
bool failed = false;
try { ps.Invoke(null, output); }
catch (RuntimeException ex)
{
    // `exit N` surfaces as an ExitException in a hosted runspace; its argument is the exit code.
    Console.Error.WriteLine($"{ex.ErrorRecord.FullyQualifiedErrorId}: {ex.Message}");
    failed = true;
}
Console.Out.Flush();
if (host.ExitCode is { } exitCode) return exitCode;
return failed || ps.HadErrors ? 1 : 0;

/// <summary>The engine reports a top-level `exit N` to its host (SetShouldExit); this host only keeps the code.</summary>
sealed class ExitCodeHost : System.Management.Automation.Host.PSHost
{
    public int? ExitCode { get; private set; }
    public override void SetShouldExit(int exitCode) => ExitCode = exitCode;
    public override string Name => "psc-scripthost";
    public override Version Version => new(1, 0);
    public override Guid InstanceId { get; } = Guid.NewGuid();
    public override System.Management.Automation.Host.PSHostUserInterface? UI => null;
    public override System.Globalization.CultureInfo CurrentCulture => System.Globalization.CultureInfo.CurrentCulture;
    public override System.Globalization.CultureInfo CurrentUICulture => System.Globalization.CultureInfo.CurrentUICulture;
    public override void EnterNestedPrompt() => throw new NotSupportedException("psc-scripthost is non-interactive.");
    public override void ExitNestedPrompt() => throw new NotSupportedException("psc-scripthost is non-interactive.");
    public override void NotifyBeginApplication() { }
    public override void NotifyEndApplication() { }
}
