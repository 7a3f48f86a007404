using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// A PowerShell runspace (the real engine from System.Management.Automation) that has imported the
/// built module folder out/PSContainers, with -StorePath defaulted to a test store. Several
/// sessions on one store act like several pwsh windows on one machine.
/// </summary>
public sealed class ModuleSession : IDisposable
{
    public Runspace Runspace { get; }

    public ModuleSession(string storePath)
    {
        Runspace = RunspaceFactory.CreateRunspace(InitialSessionState.CreateDefault2());
        Runspace.Open();
        var result = Invoke("Import-Module $args[0] -ErrorAction Stop; $PSDefaultParameterValues['*:StorePath'] = $args[1]",
            TestPaths.ModuleFolder, storePath);
        if (result.Errors.Count > 0) throw new InvalidOperationException("Import-Module failed: " + result.Errors[0]);
    }

    public sealed record Result(Collection<PSObject> Output, IReadOnlyList<ErrorRecord> Errors, IReadOnlyList<ProgressRecord> Progress)
    {
        public T Single<T>() => (T)Assert.Single(Output).BaseObject;
        public ErrorRecord SingleError => Assert.Single(Errors);
        /// <summary>What the script wrote with Write-Verbose (and cmdlets' WriteVerbose, given -Verbose).</summary>
        public IReadOnlyList<string> Verbose { get; init; } = Array.Empty<string>();
        public IReadOnlyList<string> Warnings { get; init; } = Array.Empty<string>();
    }

    /// <summary>Runs a script; terminating errors are returned as errors too, never thrown.</summary>
    public Result Invoke(string script, params object?[] args)
    {
        using var ps = PowerShell.Create();
        ps.Runspace = Runspace;
        ps.AddScript(script);
        foreach (var a in args) ps.AddArgument(a);
        Collection<PSObject> output;
        var errors = new List<ErrorRecord>();
        try { output = ps.Invoke(); }
        catch (RuntimeException ex)
        {
            output = new Collection<PSObject>();
            errors.Add(ex.ErrorRecord);
        }
        errors.InsertRange(0, ps.Streams.Error);
        return new Result(output, errors, ps.Streams.Progress.ToList())
        {
            Verbose = ps.Streams.Verbose.Select(v => v.Message).ToList(),
            Warnings = ps.Streams.Warning.Select(w => w.Message).ToList(),
        };
    }

    /// <summary>Runs a script that must not fail; returns its output.</summary>
    public Collection<PSObject> Run(string script, params object?[] args)
    {
        var r = Invoke(script, args);
        if (r.Errors.Count > 0)
            throw new Xunit.Sdk.XunitException($"Script failed: {script}\n{string.Join("\n", r.Errors.Select(e => $"{e.FullyQualifiedErrorId}: {e}"))}");
        return r.Output;
    }

    public void Dispose() => Runspace.Dispose();
}
