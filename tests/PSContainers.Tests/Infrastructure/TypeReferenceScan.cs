using System.Reflection;
using System.Reflection.Emit;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// Which types of an assembly each of its types uses: signatures (base type, interfaces, fields,
/// parameters, returns, locals) and every type, method and field token in the IL of its method
/// bodies. Compiler-generated types (lambdas, iterators, async state machines) count as the type
/// they were written in, so a reference inside a lambda is the enclosing type's reference.
/// </summary>
public static class TypeReferenceScan
{
    private const BindingFlags Everything = BindingFlags.Public | BindingFlags.NonPublic |
        BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    /// <summary>Edges source → target between the assembly's written (outermost) types.</summary>
    public static IReadOnlyDictionary<Type, HashSet<Type>> Scan(Assembly assembly)
    {
        var edges = new Dictionary<Type, HashSet<Type>>();
        foreach (var type in assembly.GetTypes())
        {
            var owner = Outermost(type);
            if (!edges.TryGetValue(owner, out var targets))
                edges[owner] = targets = new HashSet<Type>();
            foreach (var used in UsedBy(type))
                foreach (var t in Flatten(used))
                    if (t.Assembly == assembly && Outermost(t) != owner)
                        targets.Add(Outermost(t));
        }
        return edges;
    }

    /// <summary>The type as written in a source file: nested and generated types map to their outermost declaring type.</summary>
    public static Type Outermost(Type t)
    {
        if (t.IsGenericType && !t.IsGenericTypeDefinition) t = t.GetGenericTypeDefinition();
        while (t.DeclaringType is { } d) t = d;
        return t;
    }

    private static IEnumerable<Type> UsedBy(Type type)
    {
        if (type.BaseType is { } b) yield return b;
        foreach (var i in type.GetInterfaces()) yield return i;
        foreach (var f in type.GetFields(Everything)) yield return f.FieldType;
        foreach (var p in type.GetProperties(Everything)) yield return p.PropertyType;
        var methods = type.GetMethods(Everything).Cast<MethodBase>().Concat(type.GetConstructors(Everything));
        foreach (var m in methods)
        {
            if (m is MethodInfo mi) yield return mi.ReturnType;
            foreach (var p in m.GetParameters()) yield return p.ParameterType;
            var body = m.GetMethodBody();
            if (body is null) continue;
            foreach (var l in body.LocalVariables) yield return l.LocalType;
            foreach (var t in IlTypes(m, body.GetILAsByteArray() ?? Array.Empty<byte>()))
                yield return t;
        }
    }

    private static IEnumerable<Type> IlTypes(MethodBase method, byte[] il)
    {
        var module = method.Module;
        var typeArgs = method.DeclaringType is { IsGenericType: true } dt ? dt.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        int i = 0;
        while (i < il.Length)
        {
            short value = il[i++];
            if (value == 0xFE) value = (short)(0xFE00 | il[i++]);
            var op = OpCodesByValue[value];
            switch (op.OperandType)
            {
                case OperandType.InlineMethod:
                case OperandType.InlineField:
                case OperandType.InlineType:
                case OperandType.InlineTok:
                    var token = BitConverter.ToInt32(il, i);
                    i += 4;
                    MemberInfo? member = null;
                    try { member = module.ResolveMember(token, typeArgs, methodArgs); }
                    catch (ArgumentException) { }
                    switch (member)
                    {
                        case Type t: yield return t; break;
                        case FieldInfo f:
                            if (f.DeclaringType is { } fd) yield return fd;
                            yield return f.FieldType;
                            break;
                        case MethodBase mb:
                            if (mb.DeclaringType is { } md) yield return md;
                            if (mb.IsGenericMethod)
                                foreach (var a in mb.GetGenericArguments()) yield return a;
                            break;
                    }
                    break;
                case OperandType.InlineSwitch:
                    var count = BitConverter.ToInt32(il, i);
                    i += 4 + 4 * count;
                    break;
                default:
                    i += OperandSize(op.OperandType);
                    break;
            }
        }
    }

    private static int OperandSize(OperandType t) => t switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        _ => 4,
    };

    /// <summary>A type and what it is built from: element types of arrays, by-refs and pointers, generic arguments.</summary>
    private static IEnumerable<Type> Flatten(Type t)
    {
        if (t.HasElementType) { foreach (var e in Flatten(t.GetElementType()!)) yield return e; yield break; }
        if (t.IsGenericParameter) yield break;
        yield return t;
        if (t.IsGenericType && !t.IsGenericTypeDefinition)
            foreach (var a in t.GetGenericArguments())
                foreach (var e in Flatten(a)) yield return e;
    }
}
