namespace PSContainers.Runtime.Storage;

/// <summary>
/// The decompressed stream of an archive being imported. A failure to read it (a truncated or
/// damaged .tar.gz / .tar.zst: "Premature end of stream", "unexpected end of stream") becomes
/// ArchiveCorrupt naming the archive, instead of a bare I/O error without a path.
/// </summary>
internal sealed class ArchiveInput(Stream inner, string path) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        try { return inner.Read(buffer); }
        catch (Exception ex) when (ex is IOException or InvalidDataException or InvalidOperationException || ex.GetType().Namespace?.StartsWith("ZstdSharp", StringComparison.Ordinal) == true)
        {
            throw new ContainerException("ArchiveCorrupt", ContainerErrorKind.InvalidData,
                $"The archive '{path}' is truncated or damaged: {ex.Message}. Nothing was imported; copy or export it again.", path, ex);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }
}
