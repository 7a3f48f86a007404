// psc-helpbuilder: builds the module's MAML help (PSContainers.dll-Help.xml) so that it cannot drift
// from the cmdlets.
//
//   en-US/help/*.xml   written by people: per cmdlet the synopsis, description, the description of
//                      every parameter (command:parameters), examples, notes, links; never a syntax.
//   the built module   the truth about syntax: it is imported into a PowerShell engine and its
//                      CommandInfo metadata (what Get-Command shows) gives the parameter sets,
//                      parameters, types, positions, mandatory flags, pipeline input, aliases,
//                      wildcards (SupportsWildcards), value sets (ValidateSet, enums) and defaults
//                      (the property values of a new cmdlet object).
//
// The generated file has command:syntax and command:parameters made from the metadata, with the
// prose descriptions attached. The build fails (exit 1) when a cmdlet has no help, help names a
// cmdlet that does not exist, a parameter has no description, a description names a parameter the
// cmdlet no longer has, or a written default contradicts the cmdlet's own default.
//
//   psc-helpbuilder --module out/PSContainers --prose en-US/help --output out/PSContainers/en-US/PSContainers.dll-Help.xml

using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using System.Reflection;
using System.Xml.Linq;

internal static class Program
{
    private static readonly XNamespace Maml = "http://schemas.microsoft.com/maml/2004/10";
    private static readonly XNamespace Command = "http://schemas.microsoft.com/maml/dev/command/2004/10";
    private static readonly XNamespace Dev = "http://schemas.microsoft.com/maml/dev/2004/10";
    private static readonly XNamespace Msh = "http://msh";

    /// <summary>Added by PowerShell to every cmdlet; Get-Help shows them as [&lt;CommonParameters&gt;].</summary>
    private static readonly HashSet<string> Common = new(StringComparer.OrdinalIgnoreCase)
    {
        "Verbose", "Debug", "ErrorAction", "WarningAction", "InformationAction", "ProgressAction", "ErrorVariable",
        "WarningVariable", "InformationVariable", "OutVariable", "OutBuffer", "PipelineVariable",
    };

    private static readonly Dictionary<string, string> StandardDescriptions = new(StringComparer.OrdinalIgnoreCase)
    {
        ["WhatIf"] = "Shows what would happen if the cmdlet runs. The cmdlet is not run.",
        ["Confirm"] = "Prompts you for confirmation before running the cmdlet.",
    };

    private static readonly List<string> Errors = new();

    private static int Main(string[] args)
    {
        string? module = null, prose = null, output = null;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--module": module = args[i + 1]; break;
                case "--prose": prose = args[i + 1]; break;
                case "--output": output = args[i + 1]; break;
            }
        }
        if (module is null || prose is null || output is null)
        {
            Console.Error.WriteLine("usage: psc-helpbuilder --module <module folder> --prose <en-US/help> --output <PSContainers.dll-Help.xml>");
            return 2;
        }

        var written = ReadProse(prose);
        var cmdlets = ReadCmdlets(module);

        var root = new XElement(Msh + "helpItems", new XAttribute("schema", "maml"),
            new XAttribute(XNamespace.Xmlns + "maml", Maml), new XAttribute(XNamespace.Xmlns + "command", Command),
            new XAttribute(XNamespace.Xmlns + "dev", Dev));
        foreach (var cmdlet in cmdlets.OrderBy(c => c.Name, StringComparer.Ordinal))
        {
            if (!written.TryGetValue(cmdlet.Name, out var help))
            {
                Errors.Add($"{cmdlet.Name}: no help in {prose}/*.xml (add a command:command with its synopsis, description, parameters and examples)");
                continue;
            }
            root.Add(Build(cmdlet, help));
        }
        foreach (var name in written.Keys.Where(n => !cmdlets.Any(c => c.Name.Equals(n, StringComparison.OrdinalIgnoreCase))))
            Errors.Add($"{written[name].File}: help for {name}, which the module does not export");

        if (Errors.Count > 0)
        {
            foreach (var e in Errors) Console.Error.WriteLine($"error PSCHELP: {e}");
            Console.Error.WriteLine($"psc-helpbuilder: {Errors.Count} help error(s); the help in {prose} must describe every parameter of every cmdlet, and nothing else.");
            return 1;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        var temp = output + ".tmp-" + Environment.ProcessId;
        new XDocument(new XDeclaration("1.0", "utf-8", null), root).Save(temp);
        File.Move(temp, output, overwrite: true);
        Console.WriteLine($"psc-helpbuilder: {cmdlets.Count} cmdlets -> {output}");
        return 0;
    }

    // ---- the prose -----------------------------------------------------------------------------

    private sealed record Prose(string File, XElement Command, Dictionary<string, XElement> Parameters);

    private static Dictionary<string, Prose> ReadProse(string dir)
    {
        var result = new Dictionary<string, Prose>(StringComparer.OrdinalIgnoreCase);
        foreach (var file in Directory.EnumerateFiles(dir, "*.xml").Order(StringComparer.Ordinal))
        {
            var doc = XDocument.Load(file);
            foreach (var command in doc.Descendants(Command + "command"))
            {
                var name = command.Element(Command + "details")?.Element(Command + "name")?.Value.Trim();
                if (string.IsNullOrEmpty(name)) { Errors.Add($"{file}: a command:command without command:details/command:name"); continue; }
                if (result.ContainsKey(name)) { Errors.Add($"{file}: a second help entry for {name}"); continue; }
                // Syntax comes from the cmdlets only: a written one would be a second source, read by nobody.
                if (command.Element(Command + "syntax") is not null)
                    Errors.Add($"{file}: {name} has a written command:syntax; syntax is generated from the cmdlet's metadata, so remove it (parameter prose goes in command:parameters)");
                var parameters = new Dictionary<string, XElement>(StringComparer.OrdinalIgnoreCase);
                foreach (var p in command.Element(Command + "parameters")?.Elements(Command + "parameter") ?? Enumerable.Empty<XElement>())
                {
                    var pname = p.Element(Maml + "name")?.Value.Trim();
                    if (string.IsNullOrEmpty(pname)) continue;
                    if (!parameters.TryGetValue(pname, out var existing) || !HasText(existing.Element(Maml + "description")))
                        parameters[pname] = p;
                }
                result[name] = new Prose(Path.GetFileName(file), command, parameters);
            }
        }
        return result;
    }

    private static bool HasText(XElement? e) => e is not null && !string.IsNullOrWhiteSpace(e.Value);

    // ---- the metadata --------------------------------------------------------------------------

    private static List<CmdletInfo> ReadCmdlets(string module)
    {
        var manifest = Directory.Exists(module) ? Path.Combine(module, "PSContainers.psd1") : module;
        var iss = InitialSessionState.CreateDefault2();
        using var ps = PowerShell.Create(iss);
        ps.AddCommand("Import-Module").AddParameter("Name", Path.GetFullPath(manifest)).AddParameter("ErrorAction", "Stop").Invoke();
        ps.Commands.Clear();
        var found = ps.AddCommand("Get-Command").AddParameter("Module", "PSContainers").Invoke()
            .Select(o => o.BaseObject).OfType<CmdletInfo>().ToList();
        if (found.Count == 0) throw new InvalidOperationException($"{manifest} exports no cmdlets");
        return found;
    }

    private static XElement Build(CmdletInfo cmdlet, Prose prose)
    {
        var command = new XElement(prose.Command);
        command.Element(Command + "parameters")?.Remove();

        var own = cmdlet.Parameters.Values.Where(p => !Common.Contains(p.Name)).ToList();
        var ownNames = new HashSet<string>(own.Select(p => p.Name), StringComparer.OrdinalIgnoreCase);
        foreach (var name in prose.Parameters.Keys.Where(n => !ownNames.Contains(n) && !Common.Contains(n)))
            Errors.Add($"{prose.File}: {cmdlet.Name} describes -{name}, which the cmdlet does not have (remove it, or rename it to the current parameter)");

        var defaults = ReadDefaults(cmdlet.ImplementingType);
        var descriptions = new Dictionary<string, XElement>(StringComparer.OrdinalIgnoreCase);
        foreach (var p in own)
        {
            if (prose.Parameters.TryGetValue(p.Name, out var e) && HasText(e.Element(Maml + "description")))
                descriptions[p.Name] = new XElement(e.Element(Maml + "description")!);
            else if (StandardDescriptions.TryGetValue(p.Name, out var standard))
                descriptions[p.Name] = new XElement(Maml + "description", new XElement(Maml + "para", standard));
            else
                Errors.Add($"{prose.File}: {cmdlet.Name} -{p.Name} has no description (add a command:parameter with maml:name {p.Name} and a maml:description under command:parameters)");
        }

        // SYNTAX: one item per parameter set, the default set first, as Get-Command -Syntax lists them.
        var syntax = new XElement(Command + "syntax");
        foreach (var set in cmdlet.ParameterSets.OrderByDescending(s => s.IsDefault))
        {
            var item = new XElement(Command + "syntaxItem", new XElement(Maml + "name", cmdlet.Name));
            var ordered = set.Parameters.Where(p => !Common.Contains(p.Name))
                .OrderBy(p => p.Position < 0 ? int.MaxValue : p.Position)
                .ThenBy(p => p.IsMandatory ? 0 : 1);
            foreach (var p in ordered)
            {
                var type = Unwrap(p.ParameterType);
                var e = new XElement(Command + "parameter",
                    new XAttribute("required", p.IsMandatory ? "true" : "false"),
                    new XAttribute("variableLength", type.IsArray ? "true" : "false"),
                    new XAttribute("globbing", Globbing(cmdlet, p.Name) ? "true" : "false"),
                    new XAttribute("pipelineInput", Pipeline(p.ValueFromPipeline, p.ValueFromPipelineByPropertyName)),
                    new XAttribute("position", p.Position < 0 ? "named" : p.Position.ToString(CultureInfo.InvariantCulture)),
                    new XAttribute("aliases", p.Aliases.Count == 0 ? "none" : string.Join(", ", p.Aliases)),
                    new XElement(Maml + "name", p.Name));
                var values = ValueSet(p.Attributes, type);
                if (values.Count > 0)
                    e.Add(new XElement(Command + "parameterValueGroup", values.Select(v =>
                        new XElement(Command + "parameterValue", new XAttribute("required", "false"), new XAttribute("variableLength", "false"), v))));
                else if (type != typeof(SwitchParameter))
                    e.Add(new XElement(Command + "parameterValue", new XAttribute("required", "true"), new XAttribute("variableLength", type.IsArray ? "true" : "false"), TypeName(type)));
                item.Add(e);
            }
            syntax.Add(item);
        }

        // PARAMETERS: every parameter once, with what holds across its parameter sets.
        var parameters = new XElement(Command + "parameters");
        foreach (var p in own)
        {
            var inSets = cmdlet.ParameterSets.SelectMany(s => s.Parameters.Where(x => x.Name == p.Name).Select(x => (Set: s.Name, Info: x))).ToList();
            var type = Unwrap(p.ParameterType);
            var required = Across(inSets, x => x.IsMandatory ? "true" : "false");
            var position = Across(inSets, x => x.Position < 0 ? "named" : x.Position.ToString(CultureInfo.InvariantCulture));
            var pipeline = Across(inSets, x => Pipeline(x.ValueFromPipeline, x.ValueFromPipelineByPropertyName));
            var e = new XElement(Command + "parameter",
                new XAttribute("required", required),
                new XAttribute("variableLength", type.IsArray ? "true" : "false"),
                new XAttribute("globbing", Globbing(cmdlet, p.Name) ? "true" : "false"),
                new XAttribute("pipelineInput", pipeline),
                new XAttribute("position", position),
                new XAttribute("aliases", p.Aliases.Count == 0 ? "none" : string.Join(", ", p.Aliases)),
                new XElement(Maml + "name", p.Name));
            if (descriptions.TryGetValue(p.Name, out var d)) e.Add(d);
            var values = ValueSet(p.Attributes, type);
            if (values.Count > 0)
                e.Add(new XElement(Command + "parameterValueGroup", values.Select(v =>
                    new XElement(Command + "parameterValue", new XAttribute("required", "false"), new XAttribute("variableLength", "false"), v))));
            e.Add(new XElement(Command + "parameterValue", new XAttribute("required", type == typeof(SwitchParameter) ? "false" : "true"),
                new XAttribute("variableLength", type.IsArray ? "true" : "false"), TypeName(type)));
            e.Add(new XElement(Dev + "type", new XElement(Maml + "name", type.FullName), new XElement(Maml + "uri")));
            e.Add(new XElement(Dev + "defaultValue", DefaultValue(cmdlet, p.Name, type, defaults, prose)));
            parameters.Add(e);
        }

        // MAML order: details, description, syntax, parameters, then the rest as written.
        var anchor = command.Element(Maml + "description") ?? command.Element(Command + "details");
        if (anchor is null) { Errors.Add($"{prose.File}: {cmdlet.Name} has no command:details"); return command; }
        anchor.AddAfterSelf(syntax, parameters);
        return command;
    }

    private static string Across<T>(List<(string Set, T Info)> inSets, Func<T, string> value)
    {
        var distinct = inSets.Select(x => value(x.Info)).Distinct().ToList();
        if (distinct.Count <= 1) return distinct.FirstOrDefault() ?? "false";
        return string.Join("; ", inSets.GroupBy(x => value(x.Info)).Select(g => $"{g.Key} ({string.Join(", ", g.Select(x => x.Set))})"));
    }

    private static string Pipeline(bool byValue, bool byName) =>
        byValue && byName ? "True (ByValue, ByPropertyName)" : byValue ? "True (ByValue)" : byName ? "True (ByPropertyName)" : "False";

    private static Type Unwrap(Type t) => Nullable.GetUnderlyingType(t) ?? t;

    private static string TypeName(Type t) => t.IsArray ? TypeName(t.GetElementType()!) + "[]" : t.Name;

    private static bool Globbing(CmdletInfo cmdlet, string parameter) =>
        cmdlet.ImplementingType.GetProperty(parameter, BindingFlags.Public | BindingFlags.Instance)?.GetCustomAttribute<SupportsWildcardsAttribute>(true) is not null;

    private static List<string> ValueSet(IEnumerable<Attribute> attributes, Type type)
    {
        if (attributes.OfType<ValidateSetAttribute>().FirstOrDefault() is { } set) return set.ValidValues.ToList();
        var element = type.IsArray ? type.GetElementType()! : type;
        return element.IsEnum ? Enum.GetNames(element).ToList() : new List<string>();
    }

    /// <summary>The initial property values of a new cmdlet object: the defaults that hold when a parameter is not given.</summary>
    private static Dictionary<string, object?> ReadDefaults(Type type)
    {
        var values = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
        object? instance;
        try { instance = Activator.CreateInstance(type); }
        catch (Exception) { return values; }
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetCustomAttributes<ParameterAttribute>(true).Any() && property.GetIndexParameters().Length == 0)
            {
                try { values[property.Name] = property.GetValue(instance); }
                catch (Exception) { }
            }
        }
        return values;
    }

    private static string? Meaningful(object? value) => value switch
    {
        null => null,
        SwitchParameter s => s.IsPresent ? "True" : null,
        bool b => b ? "True" : null,
        string s => s.Length == 0 ? null : s,
        Array a => a.Length == 0 ? null : string.Join(", ", a.Cast<object?>().Select(x => Convert.ToString(x, CultureInfo.InvariantCulture))),
        IDictionary d => d.Count == 0 ? null : null,
        IConvertible c when value.GetType().IsPrimitive => Convert.ToDecimal(c, CultureInfo.InvariantCulture) == 0 ? null : Convert.ToString(c, CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture),
    };

    private static string DefaultValue(CmdletInfo cmdlet, string name, Type type, Dictionary<string, object?> defaults, Prose prose)
    {
        var actual = defaults.TryGetValue(name, out var v) ? Meaningful(v) : null;
        var written = prose.Parameters.TryGetValue(name, out var e) ? e.Element(Dev + "defaultValue")?.Value.Trim() : null;
        var writtenSays = !string.IsNullOrEmpty(written) && !written.Equals("None", StringComparison.OrdinalIgnoreCase) && !written.Equals("False", StringComparison.OrdinalIgnoreCase);
        if (actual is not null)
        {
            if (writtenSays && !written!.Contains(actual, StringComparison.OrdinalIgnoreCase))
                Errors.Add($"{prose.File}: {cmdlet.Name} -{name}: the written default '{written}' does not mention the cmdlet's default '{actual}'");
            return writtenSays ? written! : actual;
        }
        if (writtenSays) return written!;
        return type == typeof(SwitchParameter) ? "False" : "None";
    }
}
