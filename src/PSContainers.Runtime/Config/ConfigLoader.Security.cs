using System.Globalization;
using PSContainers.Runtime.Security;
using YamlDotNet.Core.Events;

namespace PSContainers.Runtime.Config;

/// <summary>The <c>security:</c> section of config.yaml, and seccomp profile files.</summary>
public static partial class ConfigLoader
{
    private static void SerializeSecurity(YamlDotNet.Core.IEmitter e, SecurityConfig s)
    {
        if (s.IsDefault) return;
        void List(string key, IEnumerable<string> values)
        {
            Key(e, key);
            e.Emit(new SequenceStart(null, null, true, SequenceStyle.Flow));
            foreach (var v in values) Str(e, v);
            e.Emit(new SequenceEnd());
        }
        Key(e, "security");
        e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
        if (s.CapabilitiesDrop is not null || s.CapabilitiesKeep is not null)
        {
            Key(e, "capabilities");
            e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
            if (s.CapabilitiesDrop is not null) List("drop", s.CapabilitiesDrop);
            if (s.CapabilitiesKeep is not null) List("keep", s.CapabilitiesKeep);
            e.Emit(new MappingEnd());
        }
        if (s.SeccompProfile != "default" || s.SeccompDeny.Count > 0 || s.SeccompAllow.Count > 0 || s.SeccompErrno is not null)
        {
            Key(e, "seccomp");
            e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
            Pair(e, "profile", s.SeccompProfile);
            if (s.SeccompErrno is not null) Pair(e, "errno", s.SeccompErrno);
            if (s.SeccompDeny.Count > 0) List("deny", s.SeccompDeny);
            if (s.SeccompAllow.Count > 0) List("allow", s.SeccompAllow);
            e.Emit(new MappingEnd());
        }
        if (s.Proc != "mixed") Pair(e, "proc", s.Proc);
        if (s.Sys != "ro") Pair(e, "sys", s.Sys);
        if (s.MaskedPaths is not null) List("maskedPaths", s.MaskedPaths);
        if (s.Devices != "default") Pair(e, "devices", s.Devices);
        if (s.NoNewPrivileges) { Key(e, "noNewPrivileges"); Plain(e, "true"); }
        e.Emit(new MappingEnd());
    }

    /// <summary>Reads a seccomp profile file (see README, "Security"); errors name its line and column.</summary>
    public static SeccompProfile LoadSeccompProfile(string path)
    {
        string text;
        try { text = ReadBounded(path); }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ContainerException("SeccompProfileNotFound", ContainerErrorKind.ObjectNotFound,
                $"The seccomp profile '{path}' (security.seccomp.profile) does not exist. Create it, or use 'default' or 'unconfined'.", path, ex);
        }
        return new Binder(path).SeccompProfileFile(new Reader(path).ReadDocument(text));
    }

    private sealed partial class Binder
    {
        private static readonly string[] SeccompActions = { "allow", "errno", "kill", "log" };

        private void Security(Node node, SecurityConfig s)
        {
            Node? dropNode = null, keepNode = null;
            Section(node, "security", new()
            {
                ["capabilities"] = v => Section(v, "security.capabilities", new()
                {
                    ["drop"] = c => { dropNode = c; s.CapabilitiesDrop = CapabilityList(c, "security.capabilities.drop", allowDefault: true); },
                    ["keep"] = c => { keepNode = c; s.CapabilitiesKeep = CapabilityList(c, "security.capabilities.keep", allowDefault: false); },
                }),
                ["seccomp"] = v => Section(v, "security.seccomp", new()
                {
                    ["profile"] = c => s.SeccompProfile = SeccompProfileName(c),
                    ["errno"] = c => s.SeccompErrno = Errno(c, "security.seccomp.errno"),
                    ["deny"] = c => s.SeccompDeny = SyscallList(c, "security.seccomp.deny"),
                    ["allow"] = c => s.SeccompAllow = SyscallList(c, "security.seccomp.allow"),
                }),
                ["proc"] = v => s.Proc = OneOf(v, "security.proc", ConfigRules.ProcModes) ?? "mixed",
                ["sys"] = v => s.Sys = OneOf(v, "security.sys", ConfigRules.SysModes) ?? "ro",
                ["maskedPaths"] = v => s.MaskedPaths = PathList(v, "security.maskedPaths"),
                ["devices"] = v => s.Devices = OneOf(v, "security.devices", ConfigRules.DeviceModes) ?? "default",
                ["noNewPrivileges"] = v => s.NoNewPrivileges = Boolean(v, "security.noNewPrivileges") ?? false,
            });
            if (dropNode is not null && keepNode is not null && s.CapabilitiesDrop is not null && s.CapabilitiesKeep is not null)
                throw Fail(keepNode, ConfigRules.DropAndKeep);
        }

        /// <summary>A list of names; null for a missing/empty value, an empty list for [].</summary>
        private List<(string Name, Node At)>? NameList(Node node, string path)
        {
            if (node is ScalarNode { IsNull: true }) return null;
            if (node is not SequenceNode seq)
                throw Fail(node, $"expected a list for {path} (e.g. [a, b]), got {node.Kind}");
            return seq.Items.Select((item, i) => (String(item, $"{path}[{i}]") ?? throw Fail(item, ConfigRules.NameMissing($"{path}[{i}]")), item)).ToList();
        }

        private List<string>? CapabilityList(Node node, string path, bool allowDefault)
        {
            var items = NameList(node, path);
            if (items is null) return null;
            var result = new List<string>();
            foreach (var (name, at) in items)
            {
                Check(at, ConfigRules.Capability(name, path, allowDefault, out var n));
                if (!result.Contains(n)) result.Add(n);
            }
            return result;
        }

        private List<string> SyscallList(Node node, string path)
        {
            var result = new List<string>();
            foreach (var (name, at) in NameList(node, path) ?? new())
            {
                Check(at, ConfigRules.Syscall(name, path));
                if (!result.Contains(name)) result.Add(name);
            }
            return result;
        }

        private List<string>? PathList(Node node, string path)
        {
            var items = NameList(node, path);
            if (items is null) return null;
            return items.Select((x, i) => AbsolutePath(x.At, $"{path}[{i}]", allowDotDot: false)!).Distinct().ToList();
        }

        private string SeccompProfileName(Node node)
        {
            var text = String(node, "security.seccomp.profile");
            if (text is null) return "default";
            Check(node, ConfigRules.SeccompProfile(text));
            return text;
        }

        private string? Errno(Node node, string path)
        {
            var text = String(node, path);
            if (text is null) return null;
            Check(node, ConfigRules.Errno(text, path));
            return text.ToUpperInvariant();
        }

        private int ErrnoNumber(Node node, string path, int fallback)
        {
            var text = Errno(node, path);
            return text is not null && SyscallTable.TryParseErrno(text, out var n) ? n : fallback;
        }

        // ---- profile files ------------------------------------------------------------------------

        public SeccompProfile SeccompProfileFile(Node? root)
        {
            if (root is not MappingNode)
                throw Fail(root ?? new ScalarNode(), "a seccomp profile is a mapping with defaultAction, defaultErrno and syscalls");
            var action = SeccompAction.Allow;
            var errno = 1;
            Node? rulesNode = null;
            Section(root, "", new()
            {
                ["defaultAction"] = v => action = Action(v, "defaultAction"),
                ["defaultErrno"] = v => errno = ErrnoNumber(v, "defaultErrno", 1),
                ["syscalls"] = v => rulesNode = v,
            });
            var rules = new List<SeccompRule>();
            if (rulesNode is not null and not ScalarNode { IsNull: true })
            {
                if (rulesNode is not SequenceNode seq)
                    throw Fail(rulesNode, $"expected a list of rules for syscalls (- {{ names: [...], action: errno }}), got {rulesNode.Kind}");
                for (var i = 0; i < seq.Items.Count; i++)
                    rules.Add(SeccompRuleNode(seq.Items[i], $"syscalls[{i}]", errno));
            }
            return new SeccompProfile { DefaultAction = action, DefaultErrno = errno, Rules = rules };
        }

        private SeccompRule SeccompRuleNode(Node node, string path, int defaultErrno)
        {
            if (node is not MappingNode) throw Fail(node, $"expected a mapping with names and action for {path}, got {node.Kind}");
            List<string>? names = null;
            SeccompAction? action = null;
            var errno = defaultErrno;
            var args = new List<SeccompArg>();
            Section(node, path, new()
            {
                ["names"] = v => names = SyscallList(v, path + ".names"),
                ["action"] = v => action = Action(v, path + ".action"),
                ["errno"] = v => errno = ErrnoNumber(v, path + ".errno", defaultErrno),
                ["args"] = v =>
                {
                    if (v is ScalarNode { IsNull: true }) return;
                    if (v is not SequenceNode seq) throw Fail(v, $"expected a list for {path}.args, got {v.Kind}");
                    for (var i = 0; i < seq.Items.Count; i++) args.Add(SeccompArgNode(seq.Items[i], $"{path}.args[{i}]"));
                },
            });
            if (names is not { Count: > 0 }) throw Fail(node, $"{path} needs names (a list of system calls)");
            if (action is null) throw Fail(node, $"{path} needs an action ({string.Join(", ", SeccompActions)})");
            return new SeccompRule(names, action.Value, errno, args);
        }

        private SeccompArg SeccompArgNode(Node node, string path)
        {
            if (node is not MappingNode) throw Fail(node, $"expected a mapping with index, op and value for {path}, got {node.Kind}");
            int? index = null;
            var op = SeccompOp.Eq;
            ulong? value = null, mask = null;
            Section(node, path, new()
            {
                ["index"] = v => index = Integer(v, path + ".index", 0, 5, "an argument index from 0 to 5"),
                ["op"] = v => op = OneOf(v, path + ".op", new[] { "eq", "ne", "maskedEq" }) switch { "ne" => SeccompOp.Ne, "maskedEq" => SeccompOp.MaskedEq, _ => SeccompOp.Eq },
                ["value"] = v => value = Unsigned(v, path + ".value"),
                ["mask"] = v => mask = Unsigned(v, path + ".mask"),
            });
            if (index is null) throw Fail(node, $"{path} needs index (0-5)");
            if (value is null) throw Fail(node, $"{path} needs value");
            if (mask is not null && op != SeccompOp.MaskedEq) throw Fail(node, $"{path}: mask applies to op maskedEq only");
            if (op == SeccompOp.MaskedEq && mask is null) throw Fail(node, $"{path}: op maskedEq needs mask");
            return new SeccompArg(index.Value, op, value.Value, mask ?? ulong.MaxValue);
        }

        private SeccompAction Action(Node node, string path) =>
            OneOf(node, path, SeccompActions) switch
            {
                "errno" => SeccompAction.Errno,
                "kill" => SeccompAction.Kill,
                "log" => SeccompAction.Log,
                "allow" => SeccompAction.Allow,
                _ => throw Fail(node, $"{path} needs a value ({string.Join(", ", SeccompActions)})"),
            };

        private ulong? Unsigned(Node node, string path)
        {
            var text = String(node, path);
            if (text is null) return null;
            var ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? ulong.TryParse(text[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var v)
                : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out v);
            if (!ok) throw Fail(node, $"invalid value '{text}' for {path} (expected a non-negative integer, decimal or 0x hex)");
            return v;
        }
    }
}
