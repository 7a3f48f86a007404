using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace PSContainers.Runtime.Config;

/// <summary>
/// <c>hooks:</c> (LXC's lxc.hook.*, lxc.net.[i].script.up/down). Each point takes a list; an entry
/// is a path, a list (path, then arguments), or a mapping with its own timeout:
/// <code>
/// hooks:
///   timeout: 30s                         # each hook's default (1ms..1h)
///   preStart: [ /usr/local/bin/prepare ]
///   mount: [ [ /usr/local/bin/seed, --into, rootfs ] ]
///   stop: [ { path: /usr/local/bin/snapshot-net, args: [ -v ], timeout: 5s } ]
/// </code>
/// Programs are run directly, never through a shell (LXC runs its hook lines with /bin/sh -c).
/// </summary>
public static partial class ConfigLoader
{
    private static void SerializeHooks(IEmitter e, HooksConfig hooks)
    {
        if (hooks.IsEmpty) return;
        Key(e, "hooks");
        e.Emit(new MappingStart(null, null, true, MappingStyle.Block));
        if (hooks.Timeout != HooksConfig.DefaultTimeout) Pair(e, "timeout", ConfigRules.FormatDuration(hooks.Timeout));
        foreach (var (key, _, list) in hooks.Points())
        {
            if (list.Count == 0) continue;
            Key(e, key);
            e.Emit(new SequenceStart(null, null, true, SequenceStyle.Block));
            foreach (var hook in list)
            {
                if (hook.Args.Count == 0 && hook.Timeout is null) { Str(e, hook.Path); continue; }
                e.Emit(new MappingStart(null, null, true, MappingStyle.Flow));
                Pair(e, "path", hook.Path);
                if (hook.Args.Count > 0)
                {
                    Key(e, "args");
                    e.Emit(new SequenceStart(null, null, true, SequenceStyle.Flow));
                    foreach (var a in hook.Args) Str(e, a);
                    e.Emit(new SequenceEnd());
                }
                if (hook.Timeout is { } t) Pair(e, "timeout", ConfigRules.FormatDuration(t));
                e.Emit(new MappingEnd());
            }
            e.Emit(new SequenceEnd());
        }
        e.Emit(new MappingEnd());
    }

    private static string? HooksProblem(HooksConfig hooks)
    {
        if (ConfigRules.HookTimeout(hooks.Timeout, "hooks.timeout") is { } badTimeout) return badTimeout;
        foreach (var (key, _, list) in hooks.Points())
        {
            if (list.Count > ConfigRules.MaxHooksPerPoint) return ConfigRules.TooManyHooks($"hooks.{key}", list.Count);
            for (int i = 0; i < list.Count; i++)
            {
                var hook = list[i];
                var path = $"hooks.{key}[{i}]";
                if (ConfigRules.HookPath(hook.Path ?? "", path) is { } bad) return bad;
                var args = hook.Args ?? new List<string>();
                for (int j = 0; j < args.Count; j++)
                    if (ConfigRules.HookArgument(args[j] ?? "", $"{path}.args[{j}]") is { } badArg) return badArg;
                if (hook.Timeout is { } t && ConfigRules.HookTimeout(t, path + ".timeout") is { } badT) return badT;
            }
        }
        return null;
    }

    private sealed partial class Binder
    {
        private void Hooks(Node node, HooksConfig hooks)
        {
            var handlers = new OrderedHandlers
            {
                ["timeout"] = v => hooks.Timeout = DurationOf(v, "hooks.timeout") ?? HooksConfig.DefaultTimeout,
            };
            foreach (var (key, _, _) in hooks.Points())
            {
                var point = key;
                handlers[point] = v => SetPoint(hooks, point, HookList(v, $"hooks.{point}"));
            }
            Section(node, "hooks", handlers);
        }

        private static void SetPoint(HooksConfig hooks, string key, List<HookConfig> list)
        {
            switch (key)
            {
                case "preStart": hooks.PreStart = list; break;
                case "mount": hooks.Mount = list; break;
                case "start": hooks.Start = list; break;
                case "stop": hooks.Stop = list; break;
                case "postStop": hooks.PostStop = list; break;
                case "netUp": hooks.NetUp = list; break;
                default: hooks.NetDown = list; break;
            }
        }

        private List<HookConfig> HookList(Node node, string path)
        {
            var result = new List<HookConfig>();
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not SequenceNode seq)
                throw Fail(node, $"expected a list of hooks for {path} (e.g. [ /usr/local/bin/prepare ] or [ {{ path: /usr/local/bin/prepare, args: [ -v ], timeout: 10s }} ]), got {node.Kind}");
            if (seq.Items.Count > ConfigRules.MaxHooksPerPoint) throw Fail(node, ConfigRules.TooManyHooks(path, seq.Items.Count));
            for (int i = 0; i < seq.Items.Count; i++) result.Add(Hook(seq.Items[i], $"{path}[{i}]"));
            return result;
        }

        private HookConfig Hook(Node node, string path)
        {
            var hook = new HookConfig();
            switch (node)
            {
                case ScalarNode scalar:
                    hook.Path = String(scalar, path) ?? "";
                    Check(node, ConfigRules.HookPath(hook.Path, path));
                    break;
                case SequenceNode seq:
                    if (seq.Items.Count == 0) throw Fail(node, ConfigRules.HookPath("", path));
                    hook.Path = String(seq.Items[0], path + "[0]") ?? "";
                    Check(seq.Items[0], ConfigRules.HookPath(hook.Path, path));
                    for (int j = 1; j < seq.Items.Count; j++)
                    {
                        var arg = String(seq.Items[j], $"{path}[{j}]") ?? "";
                        Check(seq.Items[j], ConfigRules.HookArgument(arg, $"{path}[{j}]"));
                        hook.Args.Add(arg);
                    }
                    break;
                case MappingNode:
                    Node? pathNode = null;
                    Section(node, path, new()
                    {
                        ["path"] = v => { hook.Path = String(v, path + ".path") ?? ""; pathNode = v; },
                        ["args"] = v => hook.Args = HookArgs(v, path + ".args"),
                        ["timeout"] = v => hook.Timeout = DurationOf(v, path + ".timeout"),
                    });
                    Check(pathNode ?? node, ConfigRules.HookPath(hook.Path, path + ".path"));
                    break;
            }
            return hook;
        }

        private List<string> HookArgs(Node node, string path)
        {
            var result = new List<string>();
            if (node is ScalarNode { IsNull: true }) return result;
            if (node is not SequenceNode seq) throw Fail(node, $"expected a list of arguments for {path}, got {node.Kind}");
            for (int j = 0; j < seq.Items.Count; j++)
            {
                var arg = String(seq.Items[j], $"{path}[{j}]") ?? "";
                Check(seq.Items[j], ConfigRules.HookArgument(arg, $"{path}[{j}]"));
                result.Add(arg);
            }
            return result;
        }
    }
}

internal static partial class ConfigRules
{
    /// <summary>psc-helper takes at most 256 hook records in all; 32 per point is far beyond any real use.</summary>
    public const int MaxHooksPerPoint = 32;

    public static string TooManyHooks(string path, int count) =>
        $"too many hooks for {path}: {count} (at most {MaxHooksPerPoint})";

    /// <summary>An absolute path without '..', NUL, tab or newline (psc-helper's hook records are tab-separated lines).</summary>
    public static string? HookPath(string value, string path)
    {
        if (value.Length == 0) return $"{path} needs the hook program's path (absolute, e.g. /usr/local/bin/prepare)";
        return AbsolutePath(value, path, allowDotDot: false) ?? HookArgument(value, path);
    }

    public static string? HookArgument(string value, string path) =>
        value.IndexOfAny(['\0', '\t', '\n', '\r']) >= 0 ? $"invalid value for {path}: it must not contain a NUL, tab or newline character" : null;

    public static string? HookTimeout(TimeSpan value, string path) =>
        value < TimeSpan.FromMilliseconds(1) || value > TimeSpan.FromHours(1) ? InvalidValue(path, FormatDuration(value), DurationExpected) : null;
}
