using System.Diagnostics;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using PSContainers.Runtime.Network;

// Creates and deletes N veth pairs inside a scratch network namespace, five ways, and prints the
// time of each. Nothing outside that namespace is touched.
var pairs = args.Length > 0 ? int.Parse(args[0]) : 100;
var ns = "pscbench" + Guid.NewGuid().ToString("N")[..4];
NetNamespaces.Create(ns);
try
{
    var location = NetworkLocation.ForNamespace(ns);
    var results = new List<(string Name, TimeSpan Time)>();

    void Measure(string name, Action run)
    {
        run(); // warm-up round (JIT, caches), then the best of three measured rounds (the machine may be busy)
        var best = TimeSpan.MaxValue;
        for (var round = 0; round < 3; round++)
        {
            var sw = Stopwatch.StartNew();
            run();
            sw.Stop();
            if (sw.Elapsed < best) best = sw.Elapsed;
            using var check = new NetworkClient(location);
            if (check.GetLinks().Count != 1) throw new InvalidOperationException($"{name} left links behind");
        }
        results.Add((name, best));
        Console.WriteLine($"{name,-48} {best.TotalMilliseconds,9:0.0} ms");
    }

    Measure($"runtime: {pairs} creates + {pairs} deletes", () =>
    {
        using var c = new NetworkClient(location);
        for (var i = 0; i < pairs; i++) c.CreateVeth($"v{i}", $"p{i}");
        for (var i = 0; i < pairs; i++) c.DeleteLink($"v{i}");
    });

    Measure($"runtime: {pairs} creates + one batched delete", () =>
    {
        using var c = new NetworkClient(location);
        for (var i = 0; i < pairs; i++) c.CreateVeth($"v{i}", $"p{i}");
        c.DeleteLinks(Enumerable.Range(0, pairs).Select(i => $"v{i}"));
    });

    var module = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../../out/PSContainers"));
    if (File.Exists(Path.Combine(module, "PSContainers.psd1")))
    {
        using var runspace = RunspaceFactory.CreateRunspace(InitialSessionState.CreateDefault2());
        runspace.Open();
        void Ps(string script, params object[] a)
        {
            using var ps = PowerShell.Create();
            ps.Runspace = runspace;
            ps.AddScript(script);
            foreach (var x in a) ps.AddArgument(x);
            ps.Invoke();
            if (ps.HadErrors) throw new InvalidOperationException(string.Join("\n", ps.Streams.Error));
        }
        Ps("Import-Module $args[0]", module);
        Measure($"cmdlets: New-VethPair x{pairs} + Remove-NetworkLink", () =>
            Ps("param($ns, $n) foreach ($i in 0..($n - 1)) { $null = New-VethPair -Namespace $ns -Name \"v$i\" -PeerName \"p$i\" }; Remove-NetworkLink -Namespace $ns -Name (0..($n - 1) | ForEach-Object { \"v$_\" })", ns, pairs));
    }
    else Console.WriteLine($"(cmdlets skipped: build the module first, {module} not found)");

    Measure($"ip: {pairs * 2} processes (ip -n NS link add/del)", () =>
    {
        for (var i = 0; i < pairs; i++) Run("ip", $"-n {ns} link add v{i} type veth peer name p{i}");
        for (var i = 0; i < pairs; i++) Run("ip", $"-n {ns} link del v{i}");
    });

    Measure($"ip -batch: one process, {pairs * 2} commands", () =>
    {
        var script = string.Concat(Enumerable.Range(0, pairs).Select(i => $"link add v{i} type veth peer name p{i}\n"))
                   + string.Concat(Enumerable.Range(0, pairs).Select(i => $"link del v{i}\n"));
        Run("ip", $"-n {ns} -batch -", script);
    });

    var ipLoop = results.First(r => r.Name.StartsWith("ip:")).Time;
    Console.WriteLine();
    foreach (var (name, time) in results)
        Console.WriteLine($"{name,-48} {ipLoop / time,6:0.0}x vs. the ip process loop");
}
finally { NetNamespaces.Remove(ns); }

static void Run(string file, string arguments, string? input = null)
{
    using var p = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardInput = input is not null, UseShellExecute = false })!;
    if (input is not null) { p.StandardInput.Write(input); p.StandardInput.Close(); }
    p.WaitForExit();
    if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {arguments} failed ({p.ExitCode})");
}
