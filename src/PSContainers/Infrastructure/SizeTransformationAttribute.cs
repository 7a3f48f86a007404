using System.Management.Automation;
using PSContainers.Runtime.Config;

namespace PSContainers.Infrastructure;

/// <summary>
/// Lets size parameters take PowerShell's numeric literals (512MB is already 536870912) as well as
/// the LXC/cgroup spelling '512M' or '1.5G'.
/// </summary>
public sealed class SizeTransformationAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject pso ? pso.BaseObject : inputData;
        switch (value)
        {
            case null: return null;
            case long l: return l;
            case int i: return (long)i;
            case double d when d == Math.Floor(d): return (long)d;
            case decimal m when m == Math.Floor(m): return (long)m;
            case string s:
                try { return Sizes.Parse(s, "size"); }
                catch (PSContainers.Runtime.ContainerException ex) { throw new ArgumentTransformationMetadataException(ex.Message, ex); }
            default:
                throw new ArgumentTransformationMetadataException($"'{value}' is not a size: use bytes, a PowerShell literal like 512MB, or text like '512M'.");
        }
    }
}
