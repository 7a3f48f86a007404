using System.Xml.Linq;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Network;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>The network cmdlets as a user sees them: help, views, error records, -Container.</summary>
[Collection("Containers")]
public sealed class NetworkCmdletTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly NetLab _lab = new();

    public void Dispose()
    {
        _lab.Dispose();
        _store.Dispose();
    }

    private static readonly string[] NetworkCmdlets =
    {
        "New-NetNamespace", "Get-NetNamespace", "Remove-NetNamespace", "Invoke-NetNamespaceCommand",
        "New-VethPair", "New-NetworkBridge", "New-MacvlanLink", "New-VlanLink", "New-IpvlanLink",
        "Get-NetworkLink", "Set-NetworkLink", "Remove-NetworkLink",
        "Add-NetworkAddress", "Get-NetworkAddress", "Remove-NetworkAddress",
        "Add-NetworkRoute", "Get-NetworkRoute", "Remove-NetworkRoute", "Get-NetworkNeighbor",
    };

    [Fact]
    public void EveryNetworkCmdlet_IsExported_WithSynopsis_TwoExamples_AndEveryParameterDescribed()
    {
        using var s = _store.OpenSession();
        XNamespace command = "http://schemas.microsoft.com/maml/dev/command/2004/10", maml = "http://schemas.microsoft.com/maml/2004/10";
        var help = XDocument.Load(Path.Combine(TestPaths.ModuleFolder, "en-US", "PSContainers.dll-Help.xml"));
        var common = new HashSet<string>(System.Management.Automation.Cmdlet.CommonParameters.Concat(System.Management.Automation.Cmdlet.OptionalCommonParameters));
        foreach (var name in NetworkCmdlets)
        {
            var parameters = s.Run("(Get-Command -Module PSContainers -Name $args[0]).Parameters.Keys", name).Select(o => (string)o.BaseObject).Where(p => !common.Contains(p)).ToList();
            Assert.NotEmpty(parameters);
            var item = help.Descendants(command + "command").SingleOrDefault(c => c.Element(command + "details")?.Element(command + "name")?.Value == name);
            Assert.True(item is not null, $"{name} has no help");
            Assert.False(string.IsNullOrWhiteSpace(item!.Element(command + "details")!.Element(maml + "description")?.Value), $"{name}: no synopsis");
            Assert.True(item.Descendants(command + "example").Count() >= 2, $"{name}: fewer than 2 examples");
            var described = item.Element(command + "parameters")!.Elements(command + "parameter")
                .Where(p => !string.IsNullOrWhiteSpace(p.Element(maml + "description")?.Value)).Select(p => p.Element(maml + "name")!.Value).ToHashSet();
            foreach (var p in parameters) Assert.True(described.Contains(p), $"{name} -{p} is not described");
        }
    }

    [Fact]
    public void Errors_AreRecordsWithStableIds_AndTargets()
    {
        using var s = _store.OpenSession();
        var ns = _lab.NewNamespace("x");
        var tooLong = s.Invoke("New-NetworkBridge -Namespace $args[0] -Name abcdefghijklmnop", ns).SingleError;
        Assert.Equal("InvalidLinkName,PSContainers.Cmdlets.NewNetworkBridgeCommand", tooLong.FullyQualifiedErrorId);
        Assert.Equal(System.Management.Automation.ErrorCategory.InvalidArgument, tooLong.CategoryInfo.Category);
        var unknown = s.Invoke("Get-NetworkLink -Namespace $args[0]", _lab.Prefix + "zz").SingleError;
        Assert.Equal("NetNamespaceNotFound,PSContainers.Cmdlets.GetNetworkLinkCommand", unknown.FullyQualifiedErrorId);
        var dupNs = s.Invoke("New-NetNamespace $args[0]", ns).SingleError;
        Assert.Equal("NetNamespaceExists,PSContainers.Cmdlets.NewNetNamespaceCommand", dupNs.FullyQualifiedErrorId);
        s.Run("New-VethPair -Namespace $args[0] -Name a0 -PeerName b0", ns);
        var dup = s.Invoke("New-VethPair -Namespace $args[0] -Name a0 -PeerName c0", ns).SingleError;
        Assert.Equal("LinkExists,PSContainers.Cmdlets.NewVethPairCommand", dup.FullyQualifiedErrorId);
        Assert.Contains("link a0 already exists", dup.Exception.Message);
        var noPrefix = s.Invoke("Add-NetworkAddress -Namespace $args[0] -Name a0 -Address 10.0.0.1", ns).SingleError;
        Assert.Equal("AddressWithoutPrefix,PSContainers.Cmdlets.AddNetworkAddressCommand", noPrefix.FullyQualifiedErrorId);
        var noBridge = s.Invoke("Set-NetworkLink -Namespace $args[0] -Name a0 -Master br9", ns).SingleError;
        Assert.Equal("BridgeNotFound,PSContainers.Cmdlets.SetNetworkLinkCommand", noBridge.FullyQualifiedErrorId);
        var both = s.Invoke("Get-NetworkLink -Namespace $args[0] -Container nope", ns).SingleError;
        Assert.Equal("AmbiguousLocation,PSContainers.Cmdlets.GetNetworkLinkCommand", both.FullyQualifiedErrorId);
        var vlan = s.Invoke("New-VlanLink -Namespace $args[0] -Name a0.5 -Parent a0 -Id 5", ns).SingleError;
        Assert.Equal("LinkKindNotSupported,PSContainers.Cmdlets.NewVlanLinkCommand", vlan.FullyQualifiedErrorId);
        Assert.Contains("the kernel has no 8021q support", vlan.Exception.Message);
        // -WhatIf creates nothing.
        s.Run("New-NetworkBridge -Namespace $args[0] -Name brw -WhatIf", ns);
        Assert.Empty(s.Run("Get-NetworkLink -Namespace $args[0] -Name brw*", ns));
    }

    [Fact]
    public void VethPeer_IntoARunningContainer_MovedBack_AndPiping()
    {
        using var s = _store.OpenSession();
        var ns = _lab.NewNamespace("c");
        var name = TestStore.NewName("veth");
        s.Run("New-Container -Name $args[0] -Network @{type='empty'} | Start-Container", name);
        s.Run("New-VethPair -Namespace $args[0] -Name h0 -PeerName eth3 -PeerContainer $args[1] -MacAddress 00:16:3e:01:02:03", ns, name);
        var inside = (NetworkLink)s.Run("Get-NetworkLink -Container $args[0] -Name eth3", name).Single().BaseObject;
        Assert.Equal("container:" + name, inside.Namespace);
        s.Run("Add-NetworkAddress -Container $args[0] -Name eth3 -Address 10.44.0.2/24,fd44::2/64", name);
        var addrs = s.Run("Get-NetworkAddress -Container $args[0] -Name eth3 -Family IPv4", name).Select(o => ((NetworkAddress)o.BaseObject).Cidr);
        Assert.Equal(new[] { "10.44.0.2/24" }, addrs);
        Assert.Equal(new[] { "10.44.0.2" }, ((ContainerInfo)s.Run("Get-Container $args[0]", name).Single().BaseObject).IPv4);
        // Move it out of the container into the namespace under a new name, and delete through the pipeline.
        var moved = (NetworkLink)s.Run("Set-NetworkLink -Container $args[0] -Name eth3 -NewName back3 -DestinationNamespace $args[1] -PassThru", name, ns).Single().BaseObject;
        Assert.Equal("netns:" + ns, moved.Namespace);
        s.Run("Get-NetworkLink -Namespace $args[0] -Name back3 | Remove-NetworkLink -Namespace $args[0]", ns);
        Assert.Equal(new[] { "lo" }, s.Run("Get-NetworkLink -Namespace $args[0]", ns).Select(o => ((NetworkLink)o.BaseObject).Name));
        // Routes through the cmdlets.
        s.Run("New-VethPair -Namespace $args[0] -Name r0 -PeerName r1; Set-NetworkLink -Namespace $args[0] -Name r0 -Up; Add-NetworkAddress -Namespace $args[0] r0 10.45.0.1/24", ns);
        var route = (NetworkRoute)s.Run("Add-NetworkRoute -Namespace $args[0] -Destination 10.46.0.0/16 -Gateway 10.45.0.9 -PassThru", ns).Single().BaseObject;
        Assert.Equal("r0", route.Device);
        s.Run("Get-NetworkRoute -Namespace $args[0] | Where-Object { $_.Destination -eq '10.46.0.0/16' } | Remove-NetworkRoute -Namespace $args[0]", ns);
    }
}
