namespace PSContainers.Runtime.Filesystem;

/// <summary>
/// A read-only view of the next <c>size</c> bytes of a stream (a member of an archive, a listed
/// file's content): it ends there, and an inner stream that ends sooner is the input's fault, reported
/// with the caller's error (a truncated archive or listing), never as a short file.
/// </summary>
public sealed class ExactLengthStream(Stream inner, long size, Func<Exception> truncated, bool ownsInner = false, Action<int>? consumed = null) : Stream
{
    long _left = size;
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => size;
    public override long Position { get => size - _left; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count)
    {
        if (_left <= 0) return 0;
        var n = inner.Read(buffer, offset, (int)Math.Min(count, _left));
        if (n <= 0) throw truncated();
        _left -= n;
        consumed?.Invoke(n);
        return n;
    }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    protected override void Dispose(bool disposing)
    {
        if (disposing && ownsInner) inner.Dispose();
        base.Dispose(disposing);
    }
}
