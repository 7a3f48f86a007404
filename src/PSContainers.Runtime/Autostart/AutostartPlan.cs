using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;

namespace PSContainers.Runtime.Autostart;

/// <summary>One container as the autostart sees it: its name and its <c>autostart:</c> settings.</summary>
public sealed record AutostartEntry(string Name, bool Enabled, int Order, int Delay, IReadOnlyList<string> Groups)
{
    public static AutostartEntry From(string name, AutostartConfig a) => new(name, a.Enabled, a.Order, a.Delay, a.Groups.ToArray());

    /// <summary>In the NULL group: no group at all (lxc-autostart's term).</summary>
    public bool InNullGroup => Groups.Count == 0;
}

/// <summary>
/// Which containers lxc-autostart's equivalent acts on, and in what order. Start order: higher
/// <see cref="AutostartConfig.Order"/> first, ties by name (ordinal), as lxc-autostart sorts by
/// lxc.start.order; with groups, group by group in the order given (each container once, in the
/// first of its groups named), as lxc-autostart -g does. The stop order is the exact reverse.
/// </summary>
public static class AutostartPlan
{
    /// <summary>The NULL group in a -Group list: containers in no group (lxc-autostart -g '').</summary>
    public const string NullGroup = "";

    /// <param name="groups">Null: every container, whatever its groups; else these groups in this order ("" = the NULL group).</param>
    /// <param name="all">Also the containers not marked autostart (lxc-autostart -a).</param>
    public static IReadOnlyList<AutostartEntry> StartOrder(IEnumerable<AutostartEntry> containers, IReadOnlyList<string>? groups, bool all)
    {
        var selected = containers.Where(c => all || c.Enabled).OrderBy(c => c, Comparer).ToList();
        if (groups is null) return selected;
        var result = new List<AutostartEntry>();
        var taken = new HashSet<string>(StringComparer.Ordinal);
        foreach (var group in groups.Distinct(StringComparer.Ordinal))
            foreach (var c in selected)
                if ((group == NullGroup ? c.InNullGroup : c.Groups.Contains(group, StringComparer.Ordinal)) && taken.Add(c.Name))
                    result.Add(c);
        return result;
    }

    public static IReadOnlyList<AutostartEntry> StopOrder(IEnumerable<AutostartEntry> containers, IReadOnlyList<string>? groups, bool all)
    {
        var order = StartOrder(containers, groups, all).ToList();
        order.Reverse();
        return order;
    }

    /// <summary>Order descending, then name (ordinal, so the order is the same under any culture).</summary>
    public static readonly IComparer<AutostartEntry> Comparer = Comparer<AutostartEntry>.Create((a, b) =>
    {
        int byOrder = b.Order.CompareTo(a.Order);
        return byOrder != 0 ? byOrder : string.CompareOrdinal(a.Name, b.Name);
    });

    /// <summary>
    /// Every container of the store with its settings. One whose config cannot be read is reported to
    /// <paramref name="unreadable"/> and left out: whether it should start is unknown.
    /// </summary>
    public static List<AutostartEntry> Read(IContainerLifecycle lifecycle, Action<string, ContainerException> unreadable)
    {
        var result = new List<AutostartEntry>();
        foreach (var name in lifecycle.Store.ListNames())
        {
            try { result.Add(AutostartEntry.From(name, ConfigLoader.Load(lifecycle.Store.ConfigPath(name)).Autostart)); }
            catch (ContainerException) when (!lifecycle.Store.Exists(name)) { } // removed meanwhile
            catch (ContainerException ex) { unreadable(name, ex); }
        }
        return result;
    }
}
