using PSContainers.Runtime;
using PSContainers.Runtime.Devices;
using Xunit;

namespace PSContainers.Tests;

/// <summary>What Add-/Remove-ContainerDevice accept and refuse before touching a container (the live part is tests/Pester/Devices.Tests.ps1).</summary>
public class ContainerDeviceTests
{
    [Fact]
    public void Inspect_ReadsTheNodesTypeAndNumbers()
    {
        var (type, major, minor) = new ContainerDevices(null!).Inspect("/dev/null");
        Assert.Equal(('c', 1, 3), (type, major, minor));
    }

    [Theory]
    [InlineData("/etc/hostname", "NotADeviceNode")]
    [InlineData("/dev/psc-test-no-such-node", "DeviceNotFound")]
    [InlineData("/dev/../dev/null", "InvalidDevicePath")]
    [InlineData("dev/null", "InvalidDevicePath")]
    public void Inspect_Refuses(string path, string errorId) =>
        Assert.Equal(errorId, Assert.Throws<ContainerException>(() => new ContainerDevices(null!).Inspect(path)).ErrorId);

    [Theory]
    [InlineData("/dev/ttyUSB0", null, "/dev/ttyUSB0")]
    [InlineData("/dev/loop7", "/dev//data", "/dev/data")]
    [InlineData("/dev/net/tun", null, "/dev/net/tun")]
    public void DestinationFor_IsBelowDev(string path, string? destination, string expected) =>
        Assert.Equal(expected, ContainerDevices.DestinationFor(path, destination));

    [Theory]
    [InlineData("/srv/disk", null, "DeviceDestinationOutsideDev")]
    [InlineData("/dev/null", "/dev", "DeviceDestinationOutsideDev")]
    [InlineData("/dev/null", "/dev/pts/9", "DeviceDestinationOutsideDev")]
    [InlineData("/dev/null", "/dev/shm/x", "DeviceDestinationOutsideDev")]
    [InlineData("/dev/null", "/dev/./x", "InvalidDevicePath")]
    [InlineData("/dev/null", "/dev/../etc/passwd", "InvalidDevicePath")]
    public void DestinationFor_Refuses(string path, string? destination, string errorId) =>
        Assert.Equal(errorId, Assert.Throws<ContainerException>(() => ContainerDevices.DestinationFor(path, destination)).ErrorId);
}
