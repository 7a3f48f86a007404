using PSContainers.Runtime;
using PSContainers.Runtime.Network;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// vlan and ipvlan cannot be created on this kernel (no CONFIG_VLAN_8021Q, no CONFIG_IPVLAN): their
/// requests are checked byte for byte against what iproute2 sends, captured once with
/// `strace -e trace=sendmsg -e write=3 ip link add link v0 name v0.5 type vlan id 5` (iproute2 6.1,
/// parent ifindex 3) — the sequence number (bytes 8-11) and the parent ifindex (bytes 36-39) are
/// normalized — and the error this kernel gives is checked for its precise message.
/// </summary>
[Collection("Containers")]
public sealed class NetlinkRequestBytesTests : IDisposable
{
    private readonly NetLab _lab = new();
    public void Dispose() => _lab.Dispose();

    private const string IpLinkAddVlan =
        "4c000000100005060000000000000000" + "00000000000000000000000000000000" +
        "08000500030000000900030076302e35" + "00000000180012000800010076" + "6c616e" +
        "0c000200060001000500000" + "0";

    private const string IpLinkAddIpvlanL3 =
        "54000000100005060000000000000000" + "00000000000000000000000000000000" +
        "08000500030000000800030069763000" + "240012000a000100697076" + "6c616e0000" +
        "1400020006000100010000000600020000000000";

    private const string IpLinkAddMacvlanBridge =
        "4c000000100005060000000000000000" + "00000000000000000000000000000000" +
        "0800050003000000080003006d763000" + "1c0012000b0001006d6163766c616e00" +
        "0c0002000800010004000000";

    private static string Hex(NetlinkMessage m) => Convert.ToHexString(m.ToBytes(0)).ToLowerInvariant();

    [Fact]
    public void VlanRequest_IsWhatIproute2Sends() =>
        Assert.Equal(IpLinkAddVlan, Hex(NetworkClient.VlanRequest(3, "v0.5", 5)));

    [Fact]
    public void IpvlanRequest_IsWhatIproute2Sends() =>
        Assert.Equal(IpLinkAddIpvlanL3, Hex(NetworkClient.IpvlanRequest(3, "iv0", IpvlanMode.L3)));

    [Fact]
    public void MacvlanRequest_IsWhatIproute2Sends() =>
        Assert.Equal(IpLinkAddMacvlanBridge, Hex(NetworkClient.MacvlanRequest(3, "mv0", MacvlanMode.Bridge)));

    [Fact]
    public void ThisKernel_Has_No8021q_NorIpvlan_AndSaysSo()
    {
        var ns = _lab.NewNamespace("v");
        using var c = new NetworkClient(NetworkLocation.ForNamespace(ns));
        c.CreateVeth("v0", "v1");
        var vlan = Assert.Throws<ContainerException>(() => c.CreateVlan("v0.5", "v0", 5));
        Assert.Equal("LinkKindNotSupported", vlan.ErrorId);
        Assert.Equal(ContainerErrorKind.NotInstalled, vlan.Kind);
        Assert.StartsWith("Cannot create vlan link v0.5 on v0: the kernel has no 8021q support (kernel: Unknown device type)", vlan.Message);
        var ipvlan = Assert.Throws<ContainerException>(() => c.CreateIpvlan("iv0", "v0", IpvlanMode.L2));
        Assert.Equal("LinkKindNotSupported", ipvlan.ErrorId);
        Assert.StartsWith("Cannot create ipvlan link iv0 on v0: the kernel has no ipvlan support (kernel: Unknown device type)", ipvlan.Message);
        Assert.False(c.LinkExists("v0.5"));
        Assert.Equal("InvalidVlanId", Assert.Throws<ContainerException>(() => c.CreateVlan("v0.9", "v0", 5000)).ErrorId);
    }
}
