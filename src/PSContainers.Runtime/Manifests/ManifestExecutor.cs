using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Filesystem;
using PSContainers.Runtime.Devices;
using PSContainers.Runtime.Network;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Storage;

namespace PSContainers.Runtime.Manifests;

/// <summary>How a resource ended an apply.</summary>
public enum ManifestOutcome
{
    /// <summary>It already was as declared: nothing was written.</summary>
    Unchanged,
    /// <summary>It converged; <see cref="ManifestResult.Changes"/> says how.</summary>
    Changed,
    /// <summary>Some drift needs a restart that -AllowRestart did not allow (or an adoption -Adopt did not): left as it was.</summary>
    NotApplied,
    Failed,
    /// <summary>Not tried: a resource it depends on failed or was skipped.</summary>
    Skipped,
}

/// <summary>One resource's part of an apply (Invoke-ContainerManifest's output).</summary>
public sealed class ManifestResult
{
    public string Manifest { get; init; } = "";
    public string Resource { get; init; } = "";
    public ManifestResourceKind Kind { get; init; }
    public string Name { get; init; } = "";
    public ManifestOutcome Outcome { get; set; }
    /// <summary>The steps carried out, as the plan words them.</summary>
    public List<string> Changes { get; } = new();
    /// <summary>Why it failed, was skipped or not applied.</summary>
    public string? Reason { get; set; }
    public ContainerException? Error { get; set; }
    public TimeSpan Duration { get; set; }
    public bool Converged => Outcome is ManifestOutcome.Unchanged or ManifestOutcome.Changed;

    public override string ToString() => $"{Resource}: {Outcome}";
}

public sealed class ManifestApplyOptions
{
    public bool AllowRestart { get; init; }
    public bool Prune { get; init; }
    public bool Adopt { get; init; }
    public int ThrottleLimit { get; init; } = 4;
}

/// <summary>
/// Converges the machine to a manifest: resources in dependency order, independent ones in parallel
/// (at most ThrottleLimit at once). A resource acts on its drift as it is when its turn comes; it
/// starts only after everything it depends on converged (a started container after its readiness
/// probe passed). A failure fails that resource and skips its dependents; the others go on.
/// </summary>
public sealed class ManifestExecutor(ManifestPlanner planner, ManifestApplyOptions options, IReadOnlyList<ManifestDrift>? plan = null)
{
    public const string ReadinessErrorId = "ManifestReadinessFailed";
    public const string NotOwnedErrorId = "ManifestContainerNotOwned";

    private ContainerManager Manager => planner.Manager;
    private Manifest Manifest => planner.Manifest;

    /// <summary>Called (from worker threads) as each resource finishes.</summary>
    public event Action<ManifestResult>? Finished;

    public IReadOnlyList<ManifestResult> Apply(CancellationToken ct = default)
    {
        using var throttle = new SemaphoreSlim(Math.Max(1, options.ThrottleLimit));
        var tasks = new Dictionary<string, Task<ManifestResult>>();
        var all = new List<Task<ManifestResult>>();
        if (options.Prune)
            foreach (var name in planner.Dropped())
                all.Add(Run(ManifestResource.IdOf(ManifestResourceKind.Container, name), ManifestResourceKind.Container, name, Array.Empty<Task<ManifestResult>>(), throttle, ct,
                    r => { Manager.Remove(name, force: true); r.Changes.Add($"remove container {name} (dropped from the manifest)"); }));
        foreach (var resource in Manifest.Resources)
        {
            var deps = resource.DependsOn.Select(d => tasks[d]).ToArray();
            var task = Run(resource.Id, resource.Kind, resource.Name, deps, throttle, ct, r =>
            {
                // Planned just before with no drift, and nothing it depends on changed since: a second
                // look would find the same (a no-op apply reads each resource once, not twice).
                if (plan is not null && plan.All(d => d.Resource != resource.Id) && resource.DependsOn.All(d => tasks[d].Result.Outcome == ManifestOutcome.Unchanged)
                    && !(resource is ManifestContainer { Readiness: not null } && Manifest.DependentsOf(resource.Id).Any(dep => plan.Any(d => d.Resource == dep.Id))))
                    return;
                Converge(resource, r, ct);
            });
            tasks[resource.Id] = task;
            all.Add(task);
        }
        Task.WaitAll(all.ToArray<Task>(), CancellationToken.None);
        if (options.Prune) PruneNetwork(all, throttle, ct);
        return all.Select(t => t.Result).ToList();
    }

    public const string PruneInUseErrorId = "ManifestPruneInUse";

    /// <summary>
    /// Removes the bridges, then the namespaces, this manifest made and no longer declares: after every
    /// other resource converged (a container moved off a dropped bridge has left it by then) and only
    /// when the dropped container prunes all succeeded. Something still using one (a port on the
    /// bridge, a link or a process in the namespace) is not this manifest's to break: left, and said.
    /// </summary>
    private void PruneNetwork(List<Task<ManifestResult>> all, SemaphoreSlim throttle, CancellationToken ct)
    {
        var containerPrunes = all.Where(t => t.Result.Kind == ManifestResourceKind.Container && Manifest.Find(t.Result.Resource) is null).ToArray();
        var dropped = planner.DroppedBridges();
        var bridges = dropped.Select(b => Run(ManifestResource.IdOf(ManifestResourceKind.Bridge, b.Name), ManifestResourceKind.Bridge, b.Name, containerPrunes, throttle, ct, r =>
        {
            using var client = new NetworkClient(b.Namespace is null ? NetworkLocation.Host : NetworkLocation.ForNamespace(b.Namespace));
            var ports = client.GetLinks().Where(l => l.Master == b.Name).Select(l => l.Name).ToList();
            if (ports.Count > 0)
                throw new ContainerException("ManifestPruneInUse", ContainerErrorKind.ResourceBusy,
                    $"Bridge '{b.Name}'{(b.Namespace is null ? "" : $" in namespace {b.Namespace}")} was made by manifest '{Manifest.Id}' and dropped from it, but {string.Join(", ", ports)} " +
                    $"{(ports.Count == 1 ? "is" : "are")} still attached: it is left as it is. Detach them (or remove what uses them) and apply again.", b.Name);
            client.DeleteLink(b.Name);
            r.Changes.Add(ManifestPlanner.BridgeStep(b.Name, b.Namespace));
        })).ToArray();
        all.AddRange(bridges);
        // A namespace waits for the bridges pruned inside it (a bridge that stays keeps it, too).
        var namespaces = planner.DroppedNamespaces().Select(n => Run(ManifestResource.IdOf(ManifestResourceKind.Namespace, n), ManifestResourceKind.Namespace, n,
            bridges.Where((_, i) => dropped[i].Namespace == n).ToArray(), throttle, ct, r =>
        {
            List<string> links;
            using (var client = new NetworkClient(NetworkLocation.ForNamespace(n)))
                links = client.GetLinks().Where(l => l.Name != "lo").Select(l => l.Name).ToList();
            var pids = NetNamespaces.Get(n).Pids;
            if (links.Count > 0 || pids.Length > 0)
                throw new ContainerException("ManifestPruneInUse", ContainerErrorKind.ResourceBusy,
                    $"Network namespace '{n}' was made by manifest '{Manifest.Id}' and dropped from it, but it still holds " +
                    string.Join(" and ", new[] { links.Count > 0 ? $"links {string.Join(", ", links)}" : null, pids.Length > 0 ? $"processes {string.Join(", ", pids)}" : null }.OfType<string>()) +
                    ": it is left as it is. Remove them and apply again.", n);
            NetNamespaces.Remove(n);
            r.Changes.Add($"remove network namespace {n} (dropped from the manifest)");
        })).ToArray();
        all.AddRange(namespaces);
        Task.WaitAll(bridges.Concat(namespaces).ToArray<Task>(), CancellationToken.None);
    }

    private Task<ManifestResult> Run(string id, ManifestResourceKind kind, string name, Task<ManifestResult>[] deps,
        SemaphoreSlim throttle, CancellationToken ct, Action<ManifestResult> work) => Task.Run(async () =>
    {
        var result = new ManifestResult { Manifest = Manifest.Id, Resource = id, Kind = kind, Name = name };
        await Task.WhenAll(deps).ConfigureAwait(false);
        var blocked = deps.Select(d => d.Result).Where(d => d.Outcome is ManifestOutcome.Failed or ManifestOutcome.Skipped).ToList();
        if (blocked.Count > 0)
        {
            result.Outcome = ManifestOutcome.Skipped;
            result.Reason = "depends on " + string.Join(", ", blocked.Select(b => $"{b.Resource}, which {(b.Outcome == ManifestOutcome.Failed ? "failed" : "was skipped")}"));
        }
        else if (ct.IsCancellationRequested)
        {
            result.Outcome = ManifestOutcome.Skipped;
            result.Reason = "the apply was stopped";
        }
        else
        {
            await throttle.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            var watch = System.Diagnostics.Stopwatch.StartNew();
            try
            {
                work(result);
                if (result.Outcome != ManifestOutcome.NotApplied)
                    result.Outcome = result.Changes.Count > 0 ? ManifestOutcome.Changed : ManifestOutcome.Unchanged;
            }
            catch (Exception ex) when (ex is ContainerException or IOException or UnauthorizedAccessException or OperationCanceledException)
            {
                result.Outcome = ManifestOutcome.Failed;
                result.Error = ex as ContainerException ?? new ContainerException("ManifestApplyFailed", ContainerErrorKind.DeviceError, $"{id}: {ex.Message}", name, ex);
                result.Reason = result.Error.Message;
            }
            finally
            {
                result.Duration = watch.Elapsed;
                throttle.Release();
            }
        }
        Finished?.Invoke(result);
        return result;
    }, CancellationToken.None);

    private void Converge(ManifestResource resource, ManifestResult result, CancellationToken ct)
    {
        var drift = planner.Diff(resource, options.Adopt);
        if (drift.Count == 0 && resource is not ManifestContainer) return;
        switch (resource)
        {
            case ManifestContainer c:
                bool probed = drift.Count > 0 && ConvergeContainer(c, drift, result, ct);
                // Already running (an earlier apply started it, perhaps without its probe passing): a
                // dependent about to converge still waits for the probe; with nothing to do, no probe runs.
                if (!probed && c.Readiness is not null && c.State == ManifestState.Running && result.Outcome != ManifestOutcome.NotApplied
                    && Manifest.DependentsOf(c.Id).Any(d => planner.Diff(d, options.Adopt).Count > 0))
                    Probe(c, result, ct, record: false);
                break;
            case ManifestBridge b: ConvergeBridge(b, drift, result, Manifest.Id); break;
            case ManifestNamespace n: ConvergeNamespace(n, drift, result, Manifest.Id); break;
        }
    }

    // ---- containers -------------------------------------------------------------------------------

    /// <summary>Converges a container; true when it (re)started it and its probe passed.</summary>
    private bool ConvergeContainer(ManifestContainer c, IReadOnlyList<ManifestDrift> drift, ManifestResult result, CancellationToken ct)
    {
        if (drift.FirstOrDefault(d => d.Action == ManifestAction.Remove) is { } remove)
        {
            RequireOwned(c, result);
            Manager.Remove(c.Name, force: true);
            result.Changes.Add(remove.Step);
            return false;
        }
        if (drift.FirstOrDefault(d => d.Action == ManifestAction.Create) is { } create)
        {
            Create(c, ct);
            result.Changes.Add(create.Step);
        }
        else if (drift.Any(d => d.Action == ManifestAction.Adopt))
        {
            RequireOwned(c, result);
            ManifestOwnership.Mark(Manager.Store, c.Name, Manifest.Id);
            result.Changes.Add(drift.First(d => d.Action == ManifestAction.Adopt).Step.Replace(" (refused without -Adopt: ", " (", StringComparison.Ordinal));
        }

        var sets = drift.Where(d => d.Action == ManifestAction.Set).ToList();
        var needRestart = sets.Where(d => d.RequiresRestart).ToList();
        bool restart = needRestart.Count > 0 && c.State == ManifestState.Running && options.AllowRestart;
        var applied = sets.Where(d => !d.RequiresRestart || restart).ToList();
        if (needRestart.Count > 0 && !restart)
        {
            result.Outcome = ManifestOutcome.NotApplied;
            result.Reason = $"{string.Join(", ", needRestart.Select(d => d.Property))} changed and {c.Name} runs: applying needs a restart; run with -AllowRestart to restart it";
        }
        if (applied.Count > 0)
        {
            // NICs first, plugged and unplugged live through the same path as Add-ContainerNetworkInterface
            // (which records the network list itself; WriteConfig then finds it as declared).
            if (applied.Any(d => d.Live && d.Property == "network") && !restart)
                new ContainerNetworkInterfaces(Manager).ApplyNetwork(c.Name, c.Config.Network);
            WriteConfig(c, applied.Select(d => d.Property).Distinct().ToList());
            // Limits of a running container go to its cgroup too, through the same path as Set-ContainerLimit.
            if (applied.Any(d => d.Live && d.Property.StartsWith("limits.", StringComparison.Ordinal)) && !restart)
                new ContainerLimits(Manager).SetLimits(c.Name, c.Config.Limits, persist: false);
            result.Changes.AddRange(applied.Select(d => d.Step));
        }

        if (drift.Any(d => d.Action == ManifestAction.Stop))
        {
            Manager.Stop(c.Name);
            result.Changes.Add($"stop container {c.Name}");
            return false;
        }
        else if (restart)
        {
            Manager.Restart(c.Name);
            result.Changes.Add($"restart {c.Name} (needs restart: {string.Join(", ", needRestart.Select(d => d.Property))} changed)");
            Probe(c, result, ct, record: true);
            return true;
        }
        else if (drift.Any(d => d.Action == ManifestAction.Start))
        {
            Manager.Start(c.Name);
            result.Changes.Add($"start container {c.Name}");
            Probe(c, result, ct, record: true);
            return true;
        }
        return false;
    }

    private void RequireOwned(ManifestContainer c, ManifestResult result)
    {
        var owner = ManifestOwnership.OwnerOf(Manager.Store, c.Name);
        if (owner == Manifest.Id || options.Adopt) return;
        throw new ContainerException("ManifestContainerNotOwned", ContainerErrorKind.InvalidOperation,
            $"Container '{c.Name}' exists but {(owner is null ? "was not made by this manifest" : $"belongs to manifest '{owner}'")} ({Manifest.Id}); " +
            "it is left as it is. Run with -Adopt to let this manifest take it over, or rename one of them.", c.Name);
    }

    private void Create(ManifestContainer c, CancellationToken ct)
    {
        if (c.Archive is not null)
        {
            ContainerArchive.Import(Manager, c.Archive, c.Name, ct: ct);
            ManifestOwnership.Mark(Manager.Store, c.Name, Manifest.Id);
            // The archive brings its own config; the manifest's keys are laid over it.
            var paths = ManifestPlanner.ComparedPaths(c, planner.DesiredYaml(c));
            if (paths.Count > 0) WriteConfig(c, paths);
            return;
        }
        // The body goes through New-Container's own path (its defaults, validation and rollback) as a config file.
        var store = Manager.Store;
        store.EnsureRoot();
        ContainerStore.CreatePrivateDirectory(store.TempDirectory);
        var temp = store.NewTempDirectory(c.Name);
        try
        {
            var configPath = Path.Combine(temp, "manifest-config.yaml");
            File.WriteAllText(configPath, ConfigLoader.Serialize(c.Config));
            var options = new CreateOptions
            {
                Template = c.Config.Rootfs is not null && c.Config.Template is null ? null : c.Config.Template,
                ConfigPath = configPath,
                TemplateOptions = c.TemplateOptions,
            };
            Manager.Create(c.Name, options, cancellationToken: ct);
        }
        finally
        {
            FsNative.DeleteTree(temp);
        }
        ManifestOwnership.Mark(store, c.Name, Manifest.Id);
    }

    /// <summary>Lays the declared values of <paramref name="paths"/> over the container's config.yaml, under its lock; validated as a whole before it is written.</summary>
    private void WriteConfig(ManifestContainer c, IReadOnlyList<string> paths)
    {
        var configPath = Manager.Store.ConfigPath(c.Name);
        using var _ = Manager.Store.Lock(c.Name);
        var merged = ConfigYaml.Of(ConfigLoader.Load(configPath));
        var desired = planner.DesiredYaml(c);
        foreach (var path in paths) ConfigYaml.Set(merged, path, ConfigYaml.At(desired, path));
        var config = ConfigLoader.Parse(ConfigYaml.Write(merged), $"{configPath} (with {string.Join(", ", paths)} from {c.Source})");
        ConfigLoader.Validate(config);
        AtomicFile.WriteAllText(configPath, ConfigLoader.Serialize(config));
    }

    /// <summary>Runs the readiness probe until it succeeds or its timeout passes.</summary>
    private void Probe(ManifestContainer c, ManifestResult result, CancellationToken ct, bool record)
    {
        if (c.Readiness is not { } probe) return;
        var deadline = DateTime.UtcNow + probe.Timeout;
        string last = "";
        int attempts = 0;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            attempts++;
            var remaining = deadline - DateTime.UtcNow;
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(remaining > TimeSpan.Zero ? remaining : TimeSpan.FromMilliseconds(1));
            try
            {
                var run = Manager.Exec(c.Name, probe.Command, cancellationToken: cts.Token);
                if (run.Succeeded)
                {
                    if (record) result.Changes.Add($"readiness probe of {c.Name} passed (attempt {attempts})");
                    return;
                }
                last = $"exit code {run.ExitCode}" + (run.Error.Length > 0 ? $": {string.Join(" ", run.Error.TakeLast(3))}" : "");
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested) { last = "the probe did not finish in time"; }
            catch (ContainerException ex) { last = ex.Message; }
            if (DateTime.UtcNow + probe.Interval > deadline)
                throw new ContainerException("ManifestReadinessFailed", ContainerErrorKind.OperationTimeout,
                    $"The readiness probe of '{c.Name}' ({string.Join(" ", probe.Command)}) did not succeed within {probe.Timeout.TotalSeconds:0.###}s ({attempts} attempts; last: {last}). " +
                    "Its dependents were not started. Check the container (Get-ContainerConsoleLog), or give the probe a longer timeout.", c.Name);
            Thread.Sleep(probe.Interval);
        }
    }

    // ---- bridges and namespaces --------------------------------------------------------------------

    private static void ConvergeBridge(ManifestBridge b, IReadOnlyList<ManifestDrift> drift, ManifestResult result, string manifestId)
    {
        using var client = ManifestPlanner.ClientFor(b);
        foreach (var d in drift)
        {
            switch (d.Action, d.Property)
            {
                case (ManifestAction.Remove, _): client.DeleteLink(b.Name); break;
                case (ManifestAction.Create, _):
                    client.CreateBridge(b.Name, b.Mtu);
                    // Marked at once: a bridge it made is one -Prune may later remove.
                    ManifestOwnership.MarkLink(client, b.Name, manifestId);
                    foreach (var a in b.Addresses) client.AddAddress(b.Name, a);
                    client.SetLink(b.Name, new LinkChanges { Up = true });
                    break;
                case (ManifestAction.Set, "addresses") when d.Desired != "(none)": client.AddAddress(b.Name, d.Desired!); break;
                case (ManifestAction.Set, "addresses"): client.RemoveAddress(b.Name, d.Actual!); break;
                case (ManifestAction.Set, "mtu"): client.SetLink(b.Name, new LinkChanges { Mtu = b.Mtu }); break;
                case (ManifestAction.Set, "up"): client.SetLink(b.Name, new LinkChanges { Up = true }); break;
                default:
                    throw new ContainerException("ManifestBridgeConflict", ContainerErrorKind.ResourceExists, $"bridge/{b.Name}: {d.Step}.", b.Name);
            }
            result.Changes.Add(d.Step);
        }
    }

    private static void ConvergeNamespace(ManifestNamespace n, IReadOnlyList<ManifestDrift> drift, ManifestResult result, string manifestId)
    {
        foreach (var d in drift)
        {
            if (d.Action == ManifestAction.Create)
            {
                NetNamespaces.Create(n.Name);
                ManifestOwnership.MarkNamespace(n.Name, manifestId);
            }
            else NetNamespaces.Remove(n.Name);
            result.Changes.Add(d.Step);
        }
    }
}
