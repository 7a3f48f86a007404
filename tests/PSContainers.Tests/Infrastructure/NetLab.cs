using PSContainers.Runtime.Network;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// Network namespaces a test creates, named with a short unique prefix ("pst" + 4 hex); Dispose
/// removes them (and with them every link inside), even when the test failed. Links on the host
/// are tracked separately and deleted too.
/// </summary>
public sealed class NetLab : IDisposable
{
    public string Prefix { get; } = "pst" + Guid.NewGuid().ToString("N")[..4];
    private readonly List<string> _namespaces = new();
    private readonly List<string> _hostLinks = new();

    public string Ns(string suffix)
    {
        var name = Prefix + suffix;
        _namespaces.Add(name);
        return name;
    }

    public string NewNamespace(string suffix)
    {
        var name = Ns(suffix);
        NetNamespaces.Create(name);
        return name;
    }

    /// <summary>A host link name (removed on dispose if it exists).</summary>
    public string HostLink(string suffix)
    {
        var name = Prefix + suffix;
        _hostLinks.Add(name);
        return name;
    }

    public void Dispose()
    {
        if (_hostLinks.Count > 0)
        {
            try { using var c = NetworkClient.Host(); c.DeleteLinks(_hostLinks); } catch (Exception) { }
        }
        foreach (var ns in _namespaces)
            try { if (NetNamespaces.Exists(ns)) NetNamespaces.Remove(ns); } catch (Exception) { }
    }
}
