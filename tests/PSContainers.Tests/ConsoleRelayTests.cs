using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Namespaces;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// The console relay's boundary (Enter-Container -Console, src/native/helper/console_relay.c): the
/// caller's terminal is a pty this test owns; psc-helper console runs on it as it would on a real
/// one. Nothing of it reaches the container: TIOCSTI on /dev/console inside pushes into the
/// console's own pty (its shell runs it), never into the caller's terminal, also after the detach;
/// the supervisor (which holds the console's master and the socket) is out of the container's
/// sight; the socket is 0600, the store owner's, outside the rootfs. The real-terminal story (type,
/// detach, the pwsh prompt) is in tests/Pester/Attach.Tests.ps1.
/// </summary>
[Collection("Containers")]
public sealed class ConsoleRelayTests : IDisposable
{
    private readonly TestStore _store = new();
    private readonly ModuleSession _ps;

    public ConsoleRelayTests()
    {
        try { _ps = _store.OpenSession(); }
        catch { _store.Dispose(); throw; }
    }

    public void Dispose()
    {
        _ps.Dispose();
        _store.Dispose();
    }

    [DllImport("libc", SetLastError = true)] private static extern int posix_openpt(int flags);
    [DllImport("libc", SetLastError = true)] private static extern int grantpt(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int unlockpt(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int ptsname_r(int fd, byte[] buf, nint len);
    [DllImport("libc", SetLastError = true)] private static extern int ioctl(int fd, ulong request, out int value);
    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags);
    private const ulong FIONREAD = 0x541B;

    /// <summary>A pty standing for the caller's terminal: its master (what the terminal emulator holds) and its slave's path.</summary>
    private static (SafeFileHandle Master, string Slave) CallerTerminal()
    {
        var fd = posix_openpt(0x2 | 0x100 | 0x80000); // O_RDWR | O_NOCTTY | O_CLOEXEC
        Assert.True(fd >= 0 && grantpt(fd) == 0 && unlockpt(fd) == 0, $"openpt: errno {Marshal.GetLastPInvokeError()}");
        var name = new byte[64];
        Assert.Equal(0, ptsname_r(fd, name, name.Length));
        return (new SafeFileHandle(fd, ownsHandle: true), Encoding.ASCII.GetString(name).TrimEnd('\0'));
    }

    [Fact]
    public void ConsoleAttach_HandsTheContainerNothingOfTheCallersTerminal()
    {
        var name = TestStore.NewName("con");
        var info = (ContainerInfo)_ps.Run("New-Container -Name $args[0] -Template busybox -Command /bin/sh", name).Single().BaseObject;
        EscapeProbe.InstallInto(info.RootfsPath);
        var started = (ContainerInfo)_ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
        var socket = _store.Manager.Store.ConsoleSocketPath(name);

        // The socket: born 0600, the store owner's, in the container's directory (outside its rootfs).
        Assert.True(File.Exists(socket), socket);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
        Assert.False(socket.StartsWith(info.RootfsPath + "/", StringComparison.Ordinal));

        var (master, slave) = CallerTerminal();
        using var _ = master;
        // Held open here too, to look into its input queue at the end.
        var slaveFd = open(slave, 0x2 | 0x100 | 0x80000);
        Assert.True(slaveFd >= 0, $"open {slave}: errno {Marshal.GetLastPInvokeError()}");
        using var slaveHandle = new SafeFileHandle(slaveFd, ownsHandle: true);
        var screen = new StringBuilder();
        var reader = new Thread(() =>
        {
            var buf = new byte[4096];
            try
            {
                using var s = new FileStream(master, FileAccess.Read, 1);
                int n;
                while ((n = s.Read(buf, 0, buf.Length)) > 0) lock (screen) screen.Append(Encoding.UTF8.GetString(buf, 0, n));
            }
            catch (IOException) { } // EIO: every slave closed
            catch (ObjectDisposedException) { }
        }) { IsBackground = true };
        reader.Start();
        var input = new FileStream(new SafeFileHandle(master.DangerousGetHandle(), ownsHandle: false), FileAccess.Write, 1);
        void Type(string text) { input.Write(Encoding.ASCII.GetBytes(text)); input.Flush(); }
        void WaitFor(string text) =>
            Assert.True(SpinWait.SpinUntil(() => { lock (screen) return screen.ToString().Contains(text); }, 30_000), $"'{text}' not on the screen:\n{screen}");

        var spec = Path.Combine(_store.Root, "console.spec");
        File.WriteAllBytes(spec, new ConsoleSpec { ConsoleSocket = socket }.Serialize());
        // psc-helper console on the caller's terminal, as Enter-Container -Console runs it.
        using var helper = Process.Start(new ProcessStartInfo("/bin/sh")
        {
            ArgumentList = { "-c", "exec \"$0\" console \"$1\" <\"$2\" >\"$2\" 2>&1", PscHelper.Path, spec, slave },
            UseShellExecute = false,
        })!;
        try
        {
            WaitFor("Connected to the console");
            Type("echo \"C=$((6*7))=C\"\r");
            WaitFor("C=42=C");
            // TIOCSTI on the container's console reaches its own pty: its shell runs the line.
            Type("escape-probe tiocsti 0 'echo sti-$((3*3))~'\r");
            WaitFor("sti-9");
            // Inside, the supervisor (console master, socket) is out of sight: no psc-supervise among
            // the container's processes, no descriptor of anyone's there names the socket or a host pty.
            Type("echo \"P=$(cat /proc/[0-9]*/comm | grep -c psc-supervise)=P\"; echo \"F=$(ls -l /proc/[0-9]*/fd/ 2>/dev/null | grep -c 'console.sock')=F\"\r");
            WaitFor("P=0=P");
            WaitFor("F=0=F");
            // A late push, after the detach: when the caller's terminal is read by the caller again.
            // (On the console itself, held as fd 3: a shell without job control gives a background job
            // /dev/null as stdin; and a user-namespaced container's root may not open /dev/console by
            // name, whose pty belongs to the host's root, so the shell's own console fd is duplicated.)
            Type("exec 3<&0; escape-probe tiocsti 3 '||echo late-$((4*4))~' &\r");
            Type("\u0001q");
            Assert.True(helper.WaitForExit(20_000), "the relay did not end at Ctrl+a q");
            Assert.Equal(0, helper.ExitCode);
            Thread.Sleep(3500);
            // Nothing arrived in the caller's terminal's input queue...
            Assert.Equal(0, ioctl(slaveFd, FIONREAD, out var pending));
            Assert.Equal(0, pending);
            // ...the line went to the container's console instead (its log shows it ran there).
            Assert.True(SpinWait.SpinUntil(() => File.ReadAllText(started.ConsoleLogPath).Contains("late-16"), 30_000),
                $"the late TIOCSTI line should have run in the container's shell; its console log:\n{File.ReadAllText(started.ConsoleLogPath)}");
        }
        finally
        {
            if (!helper.HasExited) helper.Kill();
        }
        // The container runs on, its console free for the next attach.
        Assert.Equal("Running", _ps.Run("(Get-Container $args[0]).State", name).Single().ToString());
        _ps.Run("Stop-Container $args[0] -Kill", name);
        Assert.False(File.Exists(socket), "the supervisor removes its socket when init ends");
    }
}
