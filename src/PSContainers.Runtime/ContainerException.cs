namespace PSContainers.Runtime;

/// <summary>What kind of failure this is; the cmdlet layer maps it 1:1 onto PowerShell's ErrorCategory.</summary>
public enum ContainerErrorKind
{
    InvalidArgument,
    InvalidData,
    ObjectNotFound,
    ResourceExists,
    InvalidOperation,
    PermissionDenied,
    NotInstalled,
    ResourceBusy,
    OperationTimeout,
    ParserError,
    NotImplemented,
    DeviceError,
    LimitsExceeded,
}

/// <summary>
/// Every failure the runtime reports: a stable <see cref="ErrorId"/> (scripts match on it), a kind,
/// the target (usually the container name) and a message that says what to do about it.
/// </summary>
public class ContainerException : Exception
{
    public string ErrorId { get; }
    public ContainerErrorKind Kind { get; }
    public object? Target { get; }

    public ContainerException(string errorId, ContainerErrorKind kind, string message, object? target = null, Exception? inner = null)
        : base(message, inner)
    {
        ErrorId = errorId;
        Kind = kind;
        Target = target;
    }
}
