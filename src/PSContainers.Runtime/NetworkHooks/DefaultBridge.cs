using System.Net;
using System.Text.Json;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;
using PSContainers.Runtime.Filesystem;

using PSContainers.Runtime.Network;

using PSContainers.Runtime.Config;

namespace PSContainers.Runtime.NetworkHooks;

/// <summary>The store's managed bridge, as &lt;store&gt;/network.json describes it (all keys optional).</summary>
public sealed class BridgeSettings
{
    public string Name { get; set; } = "pscbr0";
    /// <summary>The bridge's subnet; the bridge takes the first host address, containers the next free ones.</summary>
    public string Subnet { get; set; } = "10.0.3.0/24";
    /// <summary>Masquerade traffic from the subnet leaving through other interfaces (nftables table "psc_&lt;bridge&gt;").</summary>
    public bool Nat { get; set; } = true;
    /// <summary>Turn on net.ipv4.ip_forward when the bridge is made (needed for NAT to reach beyond the host), as lxc-net does.</summary>
    public bool EnableForwarding { get; set; } = true;
}

/// <summary>One address handed to a container NIC; kept in &lt;store&gt;/network-leases.json across restarts.</summary>
public sealed class Lease
{
    public string Container { get; set; } = "";
    public int Nic { get; set; }
    public string Address { get; set; } = "";
}

/// <summary>
/// The default bridge (like lxcbr0): created on demand with its address and a NAT table of our own,
/// addresses leased from its subnet and recorded in the store (no DHCP daemon), and names resolved
/// between its containers through a managed block of each one's /etc/hosts.
/// </summary>
public sealed class DefaultBridge
{
    /// <summary>The value of a NIC's <c>link</c> that means "the store's managed bridge".</summary>
    public const string ConfigName = NetworkPlan.DefaultBridgeLink;

    public ContainerStore Store { get; }
    public BridgeSettings Settings { get; }
    private readonly IPAddress _network;
    private readonly int _prefix;

    private DefaultBridge(ContainerStore store, BridgeSettings settings)
    {
        Store = store;
        Settings = settings;
        NetworkClient.ValidateLinkName(settings.Name, "bridge");
        (var address, _prefix) = NetworkClient.ParseCidr(settings.Subnet);
        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || _prefix > 30)
            throw new ContainerException("InvalidBridgeSettings", ContainerErrorKind.InvalidArgument,
                $"The subnet '{settings.Subnet}' in {SettingsPath(store)} must be an IPv4 network of /30 or larger, e.g. 10.0.3.0/24.", settings.Subnet);
        _network = NetworkClient.Network(address, _prefix);
    }

    public static string SettingsPath(ContainerStore store) => Path.Combine(store.Root, "network.json");
    private string LeasesPath => Path.Combine(Store.Root, "network-leases.json");
    public string TableName => "psc_" + Settings.Name.Replace('-', '_').Replace('.', '_');

    public static DefaultBridge For(ContainerStore store)
    {
        var path = SettingsPath(store);
        BridgeSettings settings;
        try { settings = File.Exists(path) ? JsonSerializer.Deserialize<BridgeSettings>(File.ReadAllText(path), JsonOptions) ?? new() : new(); }
        catch (JsonException ex)
        {
            throw new ContainerException("InvalidBridgeSettings", ContainerErrorKind.InvalidData, $"{path} is not valid: {ex.Message}", path, ex);
        }
        return new DefaultBridge(store, settings);
    }

    public static void Save(ContainerStore store, BridgeSettings settings)
    {
        store.EnsureRoot();
        File.WriteAllText(SettingsPath(store), JsonSerializer.Serialize(settings, JsonOptions));
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, WriteIndented = true };

    private IPAddress Host(uint n)
    {
        var b = _network.GetAddressBytes();
        var v = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b) + n;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(b, v);
        return new IPAddress(b);
    }

    private uint HostCount => (1u << (32 - _prefix)) - 2;

    public string GatewayAddress => Host(1).ToString();

    /// <summary>Creates the bridge (address, up, forwarding, NAT table) unless it exists.</summary>
    public void Ensure()
    {
        using var _ = Lock();
        using var host = NetworkClient.Host();
        if (host.LinkExists(Settings.Name)) return;
        host.CreateBridge(Settings.Name);
        try
        {
            host.AddAddress(Settings.Name, $"{GatewayAddress}/{_prefix}");
            host.SetLink(Settings.Name, new LinkChanges { Up = true });
            File.WriteAllText($"/proc/sys/net/ipv4/conf/{Settings.Name}/forwarding", "1");
            if (Settings.EnableForwarding) File.WriteAllText("/proc/sys/net/ipv4/ip_forward", "1");
            if (Settings.Nat) Nft($"add table ip {TableName}\ndelete table ip {TableName}\n" +
                $"table ip {TableName} {{\n chain postrouting {{\n  type nat hook postrouting priority srcnat; policy accept;\n" +
                $"  ip saddr {_network}/{_prefix} ip daddr != {_network}/{_prefix} masquerade\n }}\n}}\n");
        }
        catch
        {
            try { host.DeleteLinks(new[] { Settings.Name }); } catch (ContainerException) { }
            throw;
        }
    }

    /// <summary>Deletes the bridge and its NAT table.</summary>
    public void Remove()
    {
        using var _ = Lock();
        using (var host = NetworkClient.Host()) host.DeleteLinks(new[] { Settings.Name });
        RemoveNatTable();
    }

    /// <summary>Drops the bridge's NAT table (idempotent): it goes with the bridge, however that is deleted.</summary>
    public void RemoveNatTable()
    {
        if (Settings.Nat) Nft($"add table ip {TableName}\ndelete table ip {TableName}\n");
    }

    public bool NatTableExists() => RunNft("list table ip " + TableName, null).ExitCode == 0;

    private static void Nft(string script) =>
        RunNft("-f -", script).ThrowIfFailed("NftFailed", ContainerErrorKind.InvalidOperation, "The default bridge's NAT rules could not be applied",
            "Check that the kernel has nf_tables (modprobe nf_tables) and that no other ruleset conflicts, or set \"nat\": false in network.json.");

    private static Processes.ProgramResult RunNft(string arguments, string? input) =>
        Processes.ProcessRunner.Run(new Processes.ProgramStart
        {
            Program = "nft",
            Arguments = arguments.Split(' '),
            Input = input,
            Timeout = TimeSpan.FromSeconds(30),
            NotFoundErrorId = "NftNotInstalled",
            NotFoundAdvice = "The default bridge's NAT needs nft (Debian package nftables): apt-get install nftables, or set \"nat\": false in network.json.",
        });

    /// <summary>
    /// How long a command waits for the store's network lock. It is held only for the bridge's
    /// creation and for reading or writing the lease file (never while NICs are made or /etc/hosts
    /// files written), so it is short; the wait is generous for many starts at once on a loaded host.
    /// </summary>
    public static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The store's network lock (an flock: the kernel releases it if its holder dies).</summary>
    private FileStream Lock()
    {
        Store.EnsureRoot();
        var path = Path.Combine(Store.Root, ".network.lock");
        var deadline = DateTime.UtcNow + LockTimeout;
        var delay = 1;
        while (true)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(delay);
                delay = Math.Min(delay * 2, 50);
            }
            catch (IOException ex)
            {
                throw new ContainerException("NetworkLockTimeout", ContainerErrorKind.ResourceBusy,
                    $"The default bridge's lock ({path}) stayed taken for {LockTimeout.TotalSeconds:0} s: another command of this store holds it and does not finish. " +
                    $"Find it with 'fuser -v {path}', end it if it hangs, and try again.", path, ex);
            }
        }
    }

    public List<Lease> Leases()
    {
        try { return JsonSerializer.Deserialize<List<Lease>>(File.ReadAllText(LeasesPath), JsonOptions) ?? new(); }
        catch (FileNotFoundException) { return new(); }
    }

    /// <summary>The container NIC's address: its recorded lease, else the lowest free one (leases of removed containers are reclaimed).</summary>
    public string Lease(string container, int nic, ContainerStore store)
    {
        using var _ = Lock();
        var leases = Leases().Where(l => store.Exists(l.Container)).ToList();
        var mine = leases.FirstOrDefault(l => l.Container == container && l.Nic == nic);
        if (mine is null)
        {
            var used = leases.Select(l => l.Address).ToHashSet();
            used.Add(GatewayAddress);
            uint n = 2;
            while (n <= HostCount && used.Contains(Host(n).ToString())) n++;
            if (n > HostCount)
                throw new ContainerException("SubnetExhausted", ContainerErrorKind.ResourceBusy,
                    $"Every address of {Settings.Subnet} on bridge {Settings.Name} is leased. Remove containers, or widen the subnet in {SettingsPath(Store)}.", container);
            mine = new Lease { Container = container, Nic = nic, Address = Host(n).ToString() };
            leases.Add(mine);
        }
        AtomicFile.WriteAllText(LeasesPath, JsonSerializer.Serialize(leases, JsonOptions));
        return $"{mine.Address}/{_prefix}";
    }

    /// <summary>Drops every lease of a removed container (Remove-Container), so its address is free at once.</summary>
    public void Release(string container)
    {
        if (!File.Exists(LeasesPath)) return;
        using var _ = Lock();
        var leases = Leases();
        if (leases.RemoveAll(l => l.Container == container) > 0)
            AtomicFile.WriteAllText(LeasesPath, JsonSerializer.Serialize(leases, JsonOptions));
    }

    /// <summary>
    /// Drops the lease of NIC <paramref name="nic"/> of <paramref name="container"/> (it was unplugged
    /// from the running container), unless its address is in <paramref name="inUse"/> (another NIC of
    /// the container still has it). Returns whether a lease was dropped.
    /// </summary>
    public bool Release(string container, int nic, IReadOnlySet<string> inUse)
    {
        if (!File.Exists(LeasesPath)) return false;
        using var _ = Lock();
        var leases = Leases();
        if (leases.RemoveAll(l => l.Container == container && l.Nic == nic && !inUse.Contains(l.Address)) == 0) return false;
        AtomicFile.WriteAllText(LeasesPath, JsonSerializer.Serialize(leases, JsonOptions));
        return true;
    }

    /// <summary>Rename-Container: the leases of <paramref name="oldName"/> become <paramref name="newName"/>'s (same addresses). Returns whether it had any.</summary>
    public bool RenameLeases(string oldName, string newName)
    {
        if (!File.Exists(LeasesPath)) return false;
        using var _ = Lock();
        var leases = Leases();
        var mine = leases.Where(l => l.Container == oldName).ToList();
        if (mine.Count == 0) return false;
        foreach (var l in mine) l.Container = newName;
        AtomicFile.WriteAllText(LeasesPath, JsonSerializer.Serialize(leases, JsonOptions));
        return true;
    }

    private const string HostsBegin = "# BEGIN pscontainers bridge hosts (managed; edits here are replaced)";
    private const string HostsEnd = "# END pscontainers bridge hosts";

    /// <summary>
    /// Writes the name of every container with a lease (and the bridge's own, as "gateway") into a
    /// managed block of each such container's /etc/hosts: resolution without a daemon, for any libc.
    /// Reads only the store: it runs inside a start (under that container's lock), so it never
    /// observes or changes another container.
    /// </summary>
    public void UpdateHosts(ContainerStore store)
    {
        // The files are written outside the lock (many starts at once would otherwise queue behind
        // each other's writes of every container's file). A writer whose snapshot of the leases went
        // stale meanwhile writes again, so the last word in every file is the current leases.
        var leases = LeaseSnapshot(store);
        while (true)
        {
            WriteHosts(store, leases);
            var now = LeaseSnapshot(store);
            if (now.SequenceEqual(leases)) return;
            leases = now;
        }
    }

    private List<(string Container, int Nic, string Address)> LeaseSnapshot(ContainerStore store)
    {
        using var _ = Lock();
        return Leases().Where(l => store.Exists(l.Container)).Select(l => (l.Container, l.Nic, l.Address)).OrderBy(l => l.Container, StringComparer.Ordinal).ThenBy(l => l.Nic).ToList();
    }

    private void WriteHosts(ContainerStore store, List<(string Container, int Nic, string Address)> leases)
    {
        var lines = new List<string> { HostsBegin, $"{GatewayAddress}\t{Settings.Name} gateway" };
        lines.AddRange(leases.GroupBy(l => l.Container).Select(g => $"{g.OrderBy(l => l.Nic).First().Address}\t{g.Key}"));
        lines.Add(HostsEnd);
        foreach (var container in leases.Select(l => l.Container).Distinct())
        {
            string rootfs;
            try { rootfs = ConfigCache.Load(store.ConfigPath(container)).Rootfs ?? store.RootfsPath(container); }
            catch (Exception ex) when (ex is ContainerException or IOException) { continue; } // removed meanwhile, or a broken config
            var etc = Path.Combine(rootfs, "etc");
            var hosts = Path.Combine(etc, "hosts");
            // Never follow a symlink planted in the container's rootfs out to the host.
            if (new FileInfo(hosts).LinkTarget is not null || new DirectoryInfo(etc).LinkTarget is not null || !Directory.Exists(etc)) continue;
            var existing = File.Exists(hosts) ? File.ReadAllLines(hosts).ToList() : new List<string> { "127.0.0.1\tlocalhost" };
            var begin = existing.IndexOf(HostsBegin);
            var end = existing.IndexOf(HostsEnd);
            if (begin >= 0 && end > begin) existing.RemoveRange(begin, end - begin + 1);
            existing.AddRange(lines);
            // Not fsync'ed: every start writes it again.
            AtomicFile.WriteAllText(hosts, string.Join("\n", existing) + "\n", durable: false);
        }
    }
}
