namespace PSContainers.Runtime.Storage;

/// <summary>What Export-Container -PassThru returns: the archive it wrote, and of what.</summary>
public sealed class ContainerArchiveInfo
{
    /// <summary>The container that was exported.</summary>
    public string Container { get; init; } = "";
    /// <summary>Full path of the archive (Import-Container takes it by this property).</summary>
    public string Path { get; init; } = "";
    /// <summary>Size of the archive file in bytes.</summary>
    public long Size { get; init; }
    /// <summary>none, gzip or zstd (from the file name).</summary>
    public string Compression { get; init; } = "";
    /// <summary>How long the export took (a running container exported with -Force was frozen that long).</summary>
    public TimeSpan Duration { get; init; }
    /// <summary>When the archive was finished.</summary>
    public DateTimeOffset Time { get; init; }
    /// <summary>The store the container is in.</summary>
    public string StorePath { get; init; } = "";

    public override string ToString() => Path;
}
