namespace PSContainers.Runtime.Config;

public static partial class ConfigLoader
{
    /// <summary>
    /// Validates a config assembled in code (cmdlet parameters) by the rules a file is read with
    /// (<see cref="ConfigRules"/>), so a bad -Hostname or -Command is refused before anything is
    /// created. The error is InvalidArgument and names the setting (init.command[0], limits.memory).
    /// </summary>
    public static void Validate(ContainerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (Problem(config) is { } problem)
            throw new ContainerException("InvalidArgument", ContainerErrorKind.InvalidArgument, problem);
    }

    private static string? Problem(ContainerConfig c)
    {
        if (c.Privileged == true && c.IdMap is not null) return ConfigRules.PrivilegedWithIdMap(c.IdMap.ToString());
        if (c.Hostname is { } host && ConfigRules.Hostname(host) is { } badHost) return badHost;
        if (c.Rootfs is { } rootfs && ConfigRules.AbsolutePath(rootfs, "rootfs", allowDotDot: false) is { } badRootfs) return badRootfs;
        return InitProblem(c.Init ?? new InitConfig()) ?? MountsProblem(c.Mounts ?? new List<MountConfig>())
            ?? StopProblem(c.Stop ?? new StopConfig())
            ?? ConfigRules.Limits(c.Limits ?? new LimitsConfig())
            ?? (c.Console is { } console ? ConfigRules.ConsoleLogMaxBytes(console.LogMaxBytes, ConfigRules.Text(console.LogMaxBytes)) : null)
            ?? NetworkProblem(c.Network ?? new List<NicConfig>())
            ?? StorageProblem(c.Storage ?? new StorageConfig())
            ?? ConfigRules.Security(c.Security ?? new SecurityConfig())
            ?? ConfigRules.Autostart(c.Autostart ?? new AutostartConfig())
            ?? KernelProblem(c)
            ?? HooksProblem(c.Hooks ?? new HooksConfig());
        // c.IdMap needs no check: an IdMap refuses entries the kernel would refuse when it is made.
    }

    private static string? InitProblem(InitConfig init)
    {
        var budget = new ConfigRules.ExecBudget();
        var command = init.Command ?? new List<string>();
        for (int i = 0; i < command.Count; i++)
        {
            if ((ConfigRules.CommandArgument(command[i], i) ?? budget.Charge($"init.command[{i}]", command[i])) is { } bad)
                return bad;
        }
        foreach (var (name, value) in init.Environment ?? new Dictionary<string, string>())
        {
            string text = value ?? "";
            if ((ConfigRules.EnvironmentName(name) ?? ConfigRules.EnvironmentValue(name, text)
                ?? budget.Charge($"init.environment.{name}", name + "=" + text)) is { } bad)
                return bad;
        }
        return ConfigRules.AbsolutePath(init.WorkingDirectory ?? "", "init.workingDirectory", allowDotDot: true)
            ?? ConfigRules.InitId(init.User, "init.user") ?? ConfigRules.InitId(init.Group, "init.group");
    }

    private static string? MountsProblem(List<MountConfig> mounts)
    {
        for (int i = 0; i < mounts.Count; i++)
        {
            string path = $"mounts[{i}]";
            var m = mounts[i];
            if (m.IsBind && string.IsNullOrEmpty(m.Source)) return ConfigRules.MountSourceMissing(path);
            if (string.IsNullOrEmpty(m.Target)) return ConfigRules.MountTargetMissing(path);
            if (((m.IsBind ? ConfigRules.AbsolutePath(m.Source, path + ".source", allowDotDot: true) : null)
                ?? ConfigRules.AbsolutePath(m.Target, path + ".target", allowDotDot: false)
                ?? ConfigRules.MountType(m.Type, path)
                ?? ConfigRules.MountOptions(m.Options, m.IsBind, path, out _, out _)) is { } bad)
                return bad;
        }
        return null;
    }

    private static string? StopProblem(StopConfig stop) =>
        (stop.Signal is { } signal ? ConfigRules.Signal(signal) : null)
        ?? ConfigRules.StopTimeout(stop.Timeout, ConfigRules.Text(stop.Timeout));

    private static string? NetworkProblem(List<NicConfig> network)
    {
        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        // The NICs so far as the binder stores them: the type in its canonical spelling (OneOf takes any case).
        var seen = new List<NicConfig>();
        for (int i = 0; i < network.Count; i++)
        {
            var nic = network[i];
            string path = $"network[{i}]";
            if (ConfigRules.NicValues(nic, path) is { } badValue) return badValue;
            string type = ConfigRules.Match(nic.Type, ConfigRules.NicTypes)!;
            foreach (var key in ConfigRules.NicKeysSet(nic))
                if (ConfigRules.NicKey(type, key, path) is { } badKey) return badKey;
            var canonical = new NicConfig { Type = type, Name = nic.Name, Link = nic.Link, VlanId = nic.VlanId };
            if (ConfigRules.NicInList(canonical, path, i, network.Count, seen, names) is { } bad) return bad;
            seen.Add(canonical);
        }
        return null;
    }

    private static string? StorageProblem(StorageConfig s) =>
        (s.Backend is { } backend ? ConfigRules.Backend(backend) : null)
        ?? (s.Lower is { } lower ? ConfigRules.AbsolutePath(lower, "storage.lower", allowDotDot: false) : null)
        ?? (s.Layers ?? new List<string>()).Select((l, i) => ConfigRules.AbsolutePath(l, $"storage.layers[{i}]", allowDotDot: false)).FirstOrDefault(p => p is not null)
        ?? (s.Layers is { Count: > 0 } && s.Lower is not null ? "storage.layers and storage.lower are two ways to give an overlay's lower layers; give one of them" : null);
}
