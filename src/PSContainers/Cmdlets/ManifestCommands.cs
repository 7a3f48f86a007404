using System.Management.Automation;
using PSContainers.Infrastructure;
using PSContainers.Runtime;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Manifests;

namespace PSContainers.Cmdlets;

/// <summary>What both manifest cmdlets take: the manifest files or folders.</summary>
public abstract class ManifestCmdlet : ContainerCmdlet
{
    /// <summary>Manifest files, or folders whose *.yaml / *.yml files compose one manifest.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    /// <summary>Take over containers of the declared names that this manifest did not make.</summary>
    [Parameter]
    public SwitchParameter Adopt { get; set; }

    /// <summary>Also remove the containers this manifest made and no longer declares.</summary>
    [Parameter]
    public SwitchParameter Prune { get; set; }

    private readonly List<string> _paths = new();

    // Pipeline input (Get-ChildItem *.yaml | ...) composes into one manifest, read at the end.
    protected override void ProcessRecord()
    {
        foreach (var p in Path)
        {
            try { _paths.AddRange(GetResolvedProviderPathFromPSPath(p, out _)); }
            catch (ItemNotFoundException) { _paths.Add(GetUnresolvedProviderPathFromPSPath(p)); }
        }
    }

    protected override void EndProcessing()
    {
        Manifest manifest;
        try { manifest = ManifestParser.Load(_paths); }
        catch (ContainerException ex)
        {
            ThrowTerminatingError(ToErrorRecord(ex));
            return;
        }
        Run(manifest);
    }

    protected abstract void Run(Manifest manifest);
}

/// <summary>
/// Compares a manifest with the store and the host: one ManifestDrift per difference, in the order
/// Invoke-ContainerManifest would converge them; nothing at all when everything is as declared.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "ContainerManifest")]
[OutputType(typeof(ManifestDrift))]
public sealed class TestContainerManifestCommand : ManifestCmdlet
{
    /// <summary>Return $true when nothing drifted, $false otherwise (instead of the drift objects).</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    protected override void Run(Manifest manifest)
    {
        IReadOnlyList<ManifestDrift> plan = Array.Empty<ManifestDrift>();
        if (!Try(() => plan = new ManifestPlanner(Manager, manifest).Plan(Prune, Adopt))) return;
        if (Quiet) WriteObject(plan.Count == 0);
        else foreach (var d in plan) WriteObject(d);
    }
}

/// <summary>
/// Converges the store and the host to a manifest: creates, changes, starts, stops and removes in
/// dependency order, independent resources in parallel. -WhatIf prints the plan step by step.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "ContainerManifest", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ManifestResult))]
public sealed class InvokeContainerManifestCommand : ManifestCmdlet
{
    /// <summary>Restart running containers whose changed settings take effect only at a start.</summary>
    [Parameter]
    public SwitchParameter AllowRestart { get; set; }

    /// <summary>How many resources converge at once.</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int ThrottleLimit { get; set; } = 4;

    [Parameter]
    public SwitchParameter AsJob { get; set; }

    private readonly CancellationTokenSource _stop = new();

    // Ctrl+C: resources not begun are skipped; those under way finish their step.
    protected override void StopProcessing() => _stop.Cancel();

    protected override void Run(Manifest manifest)
    {
        IReadOnlyList<ManifestDrift> plan = Array.Empty<ManifestDrift>();
        if (!Try(() => plan = new ManifestPlanner(Manager, manifest).Plan(Prune, Adopt))) return;
        var target = $"manifest {manifest.Id}";
        if (MyInvocation.BoundParameters.ContainsKey("WhatIf"))
        {
            // The plan, in order: one line per step.
            if (plan.Count == 0) WriteInformation(new InformationRecord($"{target}: nothing to change", "Invoke-ContainerManifest"), new[] { "PSHOST" });
            foreach (var step in plan) ShouldProcess($"{step.Order}. {step.Step}", "", "");
            return;
        }
        if (plan.Count > 0 && !ShouldProcess(target, $"Apply {plan.Count} step(s): {string.Join("; ", plan.Select(s => s.Step))}")) return;
        var options = new ManifestApplyOptions { AllowRestart = AllowRestart, Prune = Prune, Adopt = Adopt, ThrottleLimit = ThrottleLimit };
        if (AsJob)
        {
            StartJob(target, (job, manager) =>
            {
                var executor = new ManifestExecutor(new ManifestPlanner(manager, manifest), options, plan);
                foreach (var r in executor.Apply(job.Token))
                {
                    job.Output.Add(PSObject.AsPSObject(r));
                    if (r.Error is { } e) job.Error.Add(ToErrorRecord(e));
                }
            });
            return;
        }
        var results = new ManifestExecutor(new ManifestPlanner(Manager, manifest), options, plan).Apply(_stop.Token);
        FlushMessages();
        if (results.All(r => r.Outcome == ManifestOutcome.Unchanged))
            WriteVerbose($"{target}: nothing changed ({results.Count} resources already as declared)");
        foreach (var r in results)
        {
            WriteObject(r);
            if (r.Error is { } e) WriteError(ToErrorRecord(e));
        }
    }
}
