using System.Text.RegularExpressions;
using PSContainers.Runtime;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// The runtime's dependencies point one way: from the operations on containers down to the pieces
/// that face the kernel. Read from the compiled assembly (signatures and the IL of every method
/// body, see <see cref="TypeReferenceScan"/>), so a reference hidden in a lambda or a fully
/// qualified name counts too. A new folder must be given its place here.
/// </summary>
public sealed class RuntimeLayerTests
{
    /// <summary>
    /// Top to bottom. A namespace may use the namespaces of the layers below its own, never one
    /// above it, nor another namespace of its own layer.
    /// </summary>
    private static readonly string[][] Layers =
    {
        new[] { "Manifests" },       // Test-/Invoke-ContainerManifest: parse, plan and converge declared containers, bridges, namespaces
        new[] { "Migration" },       // Move-Container: export, checkpoint, import into another store (opened through Composition)
        new[] { "Composition" },     // composes a store's runtime: the lifecycle with its hooks and checkpoint support
        new[] { "HostCheck" },       // Test-ContainerHost: asks every piece below whether the host can run it
        new[] { "Checkpoint" },      // CRIU checkpoint/restore, through the lifecycle's launch path
        new[] { "Oci" },             // New-Container -Template oci: OCI / docker save images read offline, layers applied with the import's checks
        new[] { "Storage" },         // copy, snapshots, diff, export/import of containers; rename
        new[] { "Autostart", "Files", "Devices" }, // autostart settings, lxc-autostart's order, the boot unit; files copied into and out of a container; device nodes added live
        new[] { "NetworkHooks", "Hooks" }, // the start hooks that give a container its network; init's prlimits and OOM score
        new[] { "Stats" },           // Measure-Container: usage of many containers, sampled cheaply and often
        new[] { "Batch" },           // many containers at once: lifecycle operations in parallel under a throttle
        new[] { "Containers" },      // the lifecycle: create, start, stop, remove, one launch path
        new[] { "Events" },          // the store's event journal: records, appends, reads, live follow
        new[] { "Templates" },       // rootfs builders
        new[] { "Backends" },        // where a rootfs lives (dir, overlay, btrfs)
        new[] { "Config" },          // config.yaml: model and loader
        new[] { "IdRanges" },        // isolated id blocks of a store (idMapIsolated), under a store-wide lock
        new[] { "State", "Security", "Network" }, // kernel-facing pieces and the store
        new[] { "UserNamespaces" },
        new[] { "Host" },            // who calls: root or not, ids, the cgroup layout and delegation
        new[] { "Cgroups" },
        new[] { "IdMapping" },       // /etc/subuid, /etc/subgid, accounts
        new[] { "Launcher" },        // psc-helper: the native process launcher and its spec
        new[] { "Namespaces" },
        new[] { "Filesystem", "Processes" }, // syscalls on files and trees, atomic writes, tar; the one runner of external programs
        new[] { "Native" },
        new[] { "" },                // PSContainers.Runtime itself: ContainerException, Sizes
    };

    private const string Root = "PSContainers.Runtime";

    private static readonly Dictionary<string, int> Rank = Layers
        .SelectMany((names, rank) => names.Select(n => (Namespace: n.Length == 0 ? Root : $"{Root}.{n}", rank)))
        .ToDictionary(x => x.Namespace, x => x.rank);

    /// <summary>
    /// The namespace a type counts in. CRIU's protobuf messages (generated from
    /// Checkpoint/Proto/rpc.proto, without a package) belong to Checkpoint; the compiler's own
    /// types (regex generators, static data) to none.
    /// </summary>
    private static string? LayerOf(Type t)
    {
        if (t.Name.StartsWith('<') || t.Namespace == "System.Text.RegularExpressions.Generated") return null;
        return t.Namespace ?? $"{Root}.Checkpoint";
    }

    private static IEnumerable<(string From, string To, Type Source, Type Target)> NamespaceEdges()
    {
        var edges = TypeReferenceScan.Scan(typeof(ContainerException).Assembly);
        foreach (var (source, targets) in edges)
            foreach (var target in targets)
                if (LayerOf(source) is { } from && LayerOf(target) is { } to && from != to)
                    yield return (from, to, source, target);
    }

    [Fact]
    public void EveryNamespaceHasALayer()
    {
        var unplaced = typeof(ContainerException).Assembly.GetTypes()
            .Select(LayerOf).OfType<string>().Distinct().Where(ns => !Rank.ContainsKey(ns)).ToList();
        Assert.True(unplaced.Count == 0, $"Namespaces without a layer in {nameof(RuntimeLayerTests)}.{nameof(Layers)}: {string.Join(", ", unplaced)}");
    }

    [Fact]
    public void DependenciesPointDown()
    {
        var wrong = NamespaceEdges()
            .Where(e => Rank.TryGetValue(e.From, out var from) && Rank.TryGetValue(e.To, out var to) && from >= to)
            .Select(e => $"{Short(e.From)} -> {Short(e.To)}: {e.Source.Name} uses {e.Target.Name}")
            .Distinct().OrderBy(s => s).ToList();
        Assert.True(wrong.Count == 0, $"{wrong.Count} reference(s) go up or sideways:\n{string.Join("\n", wrong)}");
    }

    [Fact]
    public void NamespacesHaveNoCycle()
    {
        var graph = NamespaceEdges().GroupBy(e => e.From).ToDictionary(g => g.Key, g => g.Select(e => e.To).ToHashSet());
        var cycle = FindCycle(graph);
        Assert.True(cycle is null, $"The namespaces depend on each other in a cycle: {string.Join(" -> ", cycle?.Select(Short) ?? Array.Empty<string>())}");
    }

    /// <summary>Folders and namespaces agree, so a file's place says what it holds.</summary>
    [Fact]
    public void EachFileIsInTheNamespaceOfItsFolder()
    {
        var source = Path.Combine(TestPaths.RepoRoot, "src", "PSContainers.Runtime");
        var wrong = new List<string>();
        foreach (var file in Directory.EnumerateFiles(source, "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(source, file);
            if (relative.StartsWith("obj/", StringComparison.Ordinal) || relative.StartsWith("bin/", StringComparison.Ordinal)) continue;
            var folder = Path.GetDirectoryName(relative)!.Replace('/', '.');
            var expected = folder.Length == 0 ? Root : $"{Root}.{folder}";
            var declared = Regex.Match(File.ReadAllText(file), @"^namespace ([\w.]+);", RegexOptions.Multiline).Groups[1].Value;
            if (declared != expected) wrong.Add($"{relative}: namespace {declared}, expected {expected}");
        }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    /// <summary>The README's "How it works" tree names every folder of the runtime, in layer order.</summary>
    [Fact]
    public void ReadmeTreeShowsTheLayers()
    {
        var readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        var tree = readme[readme.IndexOf("## How it works", StringComparison.Ordinal)..];
        tree = tree[..tree.IndexOf("```", tree.IndexOf("```", StringComparison.Ordinal) + 3, StringComparison.Ordinal)];
        tree = tree[tree.IndexOf("PSContainers.Runtime/", StringComparison.Ordinal)..tree.IndexOf("native/", StringComparison.Ordinal)];
        var listed = Regex.Matches(tree, @"^ {4}(\w+)/", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        var folders = Directory.EnumerateDirectories(Path.Combine(TestPaths.RepoRoot, "src", "PSContainers.Runtime"))
            .Select(Path.GetFileName).Where(f => f is not ("bin" or "obj")).ToList();
        Assert.Equal(folders.Order(), listed.Order());
        var layered = Layers.SelectMany(l => l).Where(n => n.Length > 0).ToList();
        Assert.Equal(layered.Where(listed.Contains), listed.Where(layered.Contains));
    }

    /// <summary>The scan itself sees through lambdas and generic arguments (else the tests above could pass on nothing).</summary>
    [Fact]
    public void ScanSeesReferencesInLambdasAndSignatures()
    {
        var edges = TypeReferenceScan.Scan(typeof(ContainerException).Assembly);
        var manager = typeof(PSContainers.Runtime.Containers.ContainerManager);
        Assert.Contains(typeof(PSContainers.Runtime.State.ContainerStore), edges[manager]);
        // Only inside the lambda that runs the helper (ContainerStart's Run of the launch request).
        Assert.Contains(typeof(PSContainers.Runtime.Launcher.PscHelper), edges[typeof(PSContainers.Runtime.Containers.ContainerStart)]);
        Assert.Contains(typeof(ContainerException), edges[typeof(PSContainers.Runtime.Cgroups.CgroupManager)]);
        Assert.True(NamespaceEdges().Count() > 50);
    }

    private static List<string>? FindCycle(Dictionary<string, HashSet<string>> graph)
    {
        var state = new Dictionary<string, int>(); // 1 on the path, 2 done
        var path = new List<string>();
        List<string>? Visit(string node)
        {
            state[node] = 1;
            path.Add(node);
            foreach (var next in graph.GetValueOrDefault(node) ?? new HashSet<string>())
            {
                if (state.GetValueOrDefault(next) == 1) return path.Skip(path.IndexOf(next)).Append(next).ToList();
                if (state.GetValueOrDefault(next) == 0 && Visit(next) is { } found) return found;
            }
            path.RemoveAt(path.Count - 1);
            state[node] = 2;
            return null;
        }
        foreach (var node in graph.Keys)
            if (state.GetValueOrDefault(node) == 0 && Visit(node) is { } cycle) return cycle;
        return null;
    }

    private static string Short(string ns) => ns == Root ? "(root)" : ns[(Root.Length + 1)..];
}
