namespace PSContainers.Runtime.HostCheck;

public enum HostCheckStatus
{
    Pass,
    Warn,
    Fail,
}

/// <summary>One result of Test-ContainerHost: what was checked, how it went, what was found and what to do about it.</summary>
public sealed record HostCheckFinding(string Name, string Category, HostCheckStatus Status, string Detail, string? Remedy)
{
    /// <summary>The user the check was made for (subordinate ids, delegation, unprivileged user namespaces).</summary>
    public string? User { get; init; }
}
