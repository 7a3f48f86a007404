using System.Management.Automation;
using PSContainers.Runtime.Config;
using PSContainers.Runtime;

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
            // A number past what a long holds (1e30) must not saturate to long.MaxValue, which is
            // also the runtime's "no limit": it is an error here as it is in config.yaml.
            case double d when double.IsFinite(d) && d == Math.Floor(d) && d >= long.MinValue && d < 9.2233720368547758E18: return (long)d;
            case float f when float.IsFinite(f) && f == MathF.Floor(f) && f >= long.MinValue && f < 9.2233720368547758E18f: return (long)f;
            case decimal m when m == Math.Floor(m) && m >= long.MinValue && m < long.MaxValue: return (long)m;
            case double or float or decimal:
                throw new ArgumentTransformationMetadataException(
                    $"'{value}' is not a size in bytes: give a whole number from 0 to {Sizes.Format(1L << 60)} (1 EiB), a PowerShell literal like 512MB, or text like '512M'.");
            case string s:
                try { return Sizes.Parse(s, "size"); }
                catch (PSContainers.Runtime.ContainerException ex) { throw new ArgumentTransformationMetadataException(ex.Message, ex); }
            default:
                throw new ArgumentTransformationMetadataException($"'{value}' is not a size: use bytes, a PowerShell literal like 512MB, or text like '512M'.");
        }
    }
}
