using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.Launcher;
using PSContainers.Runtime.Namespaces;
using PSContainers.Runtime.State;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

/// <summary>
/// The console relay's boundary (Enter-Container -Console, src/native/helper/console_relay.c): the
/// caller's terminal is a pty this test owns; psc-helper console runs on it as it would on a real
/// one. Nothing of it reaches the container: TIOCSTI on /dev/console inside pushes into the
/// console's own pty (its shell runs it), never into the caller's terminal, also after the detach;
/// the supervisor (which holds the console's master and the socket) is out of the container's
/// sight; the socket is 0600, the store owner's, outside the rootfs. The caller's window size reaches
/// the console at the attach and at every resize; what the supervisor reads from its socket is
/// checked frame by frame. The real-terminal story (type, detach, resize, the pwsh prompt) is in
/// tests/Pester/Attach.Tests.ps1.
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
    [DllImport("libc", SetLastError = true)] private static extern int ioctl(int fd, ulong request, in WindowSize value);
    private const ulong FIONREAD = 0x541B;
    private const ulong TIOCSWINSZ = 0x5414;

    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct WindowSize(ushort Rows, ushort Columns, ushort XPixels = 0, ushort YPixels = 0);

    /// <summary>Resizes the caller's terminal, as a terminal emulator does: the kernel signals SIGWINCH to its foreground group.</summary>
    private static void Resize(SafeFileHandle master, ushort rows, ushort columns) =>
        Assert.True(ioctl((int)master.DangerousGetHandle(), TIOCSWINSZ, new WindowSize(rows, columns)) == 0, $"TIOCSWINSZ: errno {Marshal.GetLastPInvokeError()}");

    /// <summary>What arrives on the caller's terminal (its master), collected by a reader thread.</summary>
    private sealed class Screen
    {
        private readonly StringBuilder _text = new();
        public Screen(SafeFileHandle master)
        {
            new Thread(() =>
            {
                var buf = new byte[4096];
                try
                {
                    // On the handle itself: its reference count keeps the fd from being closed (and its
                    // number reused) under a read in progress.
                    using var s = new FileStream(master, FileAccess.Read, 1);
                    int n;
                    while ((n = s.Read(buf, 0, buf.Length)) > 0) lock (_text) _text.Append(Encoding.UTF8.GetString(buf, 0, n));
                }
                catch (IOException) { } // EIO: every slave closed
                catch (ObjectDisposedException) { }
            }) { IsBackground = true }.Start();
        }
        public void WaitFor(string text) =>
            Assert.True(SpinWait.SpinUntil(() => { lock (_text) return _text.ToString().Contains(text); }, 30_000), $"'{text}' not on the screen:\n{this}");
        public override string ToString() { lock (_text) return _text.ToString(); }
    }

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
        var screen = new Screen(master);
        var input = new FileStream(new SafeFileHandle(master.DangerousGetHandle(), ownsHandle: false), FileAccess.Write, 1);
        void Type(string text) { input.Write(Encoding.ASCII.GetBytes(text)); input.Flush(); }
        void WaitFor(string text) => screen.WaitFor(text);

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

    [Fact]
    public void ConsoleAttach_GivesTheConsoleTheCallersWindowSize_AtTheAttachAndAtEveryResize()
    {
        var name = TestStore.NewName("conwin");
        _ps.Run("New-Container -Name $args[0] -Template busybox -Command /bin/sh", name);
        _ps.Run("Start-Container $args[0]", name);
        var socket = _store.Manager.Store.ConsoleSocketPath(name);

        var (master, slave) = CallerTerminal();
        using var _ = master;
        Resize(master, 37, 101);
        var screen = new Screen(master);
        var input = new FileStream(new SafeFileHandle(master.DangerousGetHandle(), ownsHandle: false), FileAccess.Write, 1);
        void Type(string text) { input.Write(Encoding.ASCII.GetBytes(text)); input.Flush(); }

        var spec = Path.Combine(_store.Root, "console-win.spec");
        File.WriteAllBytes(spec, new ConsoleSpec { ConsoleSocket = socket }.Serialize());
        // The relay in its own session with the caller's terminal as its controlling terminal, as in
        // a terminal emulator: a resize of the terminal signals it SIGWINCH (from the kernel, not us).
        using var helper = Process.Start(new ProcessStartInfo("/bin/sh")
        {
            ArgumentList = { "-c", "exec setsid -w -c \"$0\" console \"$1\" <\"$2\" >\"$2\" 2>&1", PscHelper.Path, spec, slave },
            UseShellExecute = false,
        })!;
        try
        {
            screen.WaitFor("Connected to the console");
            // At the attach: the console has the caller's size (stty asks the shell's stdin, the console).
            Type("echo \"S1=$(stty size)=S1\"\r");
            screen.WaitFor("S1=37 101=S1");
            // The caller's terminal is resized: the relay passes it on, the console follows.
            Resize(master, 29, 83);
            Type("echo \"S2=$(stty size)=S2\"\r");
            screen.WaitFor("S2=29 83=S2");
            Resize(master, 50, 160);
            Type("echo \"S3=$(stty size)=S3\"\r");
            screen.WaitFor("S3=50 160=S3");
            Type("\u0001q");
            Assert.True(helper.WaitForExit(20_000), "the relay did not end at Ctrl+a q");
            Assert.Equal(0, helper.ExitCode);
        }
        finally
        {
            if (!helper.HasExited) helper.Kill();
        }
        // The detach leaves the console's size as it is (as LXC does): asked through a bare relay
        // connection, which sends no size of its own.
        using var sock = Connect(socket);
        SendFrame(sock, ConsoleSocketProtocol.InputFrame, "echo \"S4=$(stty size)=S4\"\r");
        Assert.Contains("S4=50 160=S4", ReadUntil(sock, "S4=50 160=S4"));
        _ps.Run("Stop-Container $args[0] -Kill", name);
    }

    private static Socket Connect(string path) => ConsoleSocketClient.Connect(path);

    private static void SendFrame(Socket sock, byte type, string payload) => ConsoleSocketClient.SendFrame(sock, type, payload);

    private static string ReadUntil(Socket sock, string text) => ConsoleSocketClient.ReadUntil(sock, text);

    /// <summary>The supervisor's end of a relay connection: the next receive sees the socket closed (0 bytes).</summary>
    private static bool ClosedBySupervisor(Socket sock)
    {
        var buf = new byte[65536];
        try
        {
            // Console output that was on its way before the close may come first.
            for (var i = 0; i < 1000; i++) if (sock.Receive(buf) == 0) return true;
            return false;
        }
        catch (SocketException) { return false; } // the receive timeout: still attached
    }

    [Fact]
    public void ConsoleRelay_OnTheStreamSocketOfAnOlderSupervisor_SaysSoAndSendsNothing()
    {
        // A supervisor of the version before framed messages listened on a SOCK_STREAM socket: the
        // relay cannot connect to it (EPROTOTYPE), and says so with its own status (6), which
        // ContainerConsole turns into "restart the container".
        var path = Path.Combine(_store.Root, "old-console.sock");
        using var old = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        old.Bind(new UnixDomainSocketEndPoint(path));
        old.Listen(1);
        var spec = Path.Combine(_store.Root, "console-old.spec");
        File.WriteAllBytes(spec, new ConsoleSpec { ConsoleSocket = path }.Serialize());
        using var helper = Process.Start(new ProcessStartInfo(PscHelper.Path) { ArgumentList = { "console", spec }, RedirectStandardError = true, RedirectStandardInput = true })!;
        var error = helper.StandardError.ReadToEnd();
        Assert.True(helper.WaitForExit(20_000));
        Assert.Equal(6, helper.ExitCode);
        Assert.Contains("Protocol wrong type", error);
        old.Blocking = false;
        Assert.Throws<SocketException>(() => old.Accept());
    }

    [Fact]
    public void ConsoleSocket_DetachesOnAMalformedFrame_AppliesNothingOfIt_AndTheSupervisorCarriesOn()
    {
        var name = TestStore.NewName("conbad");
        _ps.Run("New-Container -Name $args[0] -Template busybox -Command /bin/sh", name);
        var started = (ContainerInfo)_ps.Run("Start-Container $args[0] -PassThru", name).Single().BaseObject;
        var socket = _store.Manager.Store.ConsoleSocketPath(name);
        var supervisorPid = RunRecord.Read(_store.Manager.Store.RunRecordPath(name))!.SupervisorPid;

        static byte[] Frame(byte type, string payload, int pad = 0)
        {
            var text = Encoding.ASCII.GetBytes(payload);
            var f = new byte[1 + text.Length + pad];
            f[0] = type;
            text.CopyTo(f, 1);
            f.AsSpan(1 + text.Length).Fill((byte)' ');
            return f;
        }
        const byte W = ConsoleSocketProtocol.WindowSizeFrame, D = ConsoleSocketProtocol.InputFrame;
        var malformed = new (string What, byte[] Frame)[]
        {
            ("an empty message", []),
            ("an unknown type", Frame((byte)'x', "echo bad-$((1+1))\r")),
            ("a data frame without data", [D]),
            ("a data frame over the maximum", Frame(D, "echo big-$((2+2))\r", ConsoleSocketProtocol.DataMax)),
            ("a window size too short", [W, 20, 0, 40]),
            ("a window size too long", [W, 20, 0, 40, 0, 0]),
            ("a window size of 0 rows", [W, 0, 0, 40, 0]),
            ("a window size of 0 columns", [W, 20, 0, 0, 0]),
        };
        foreach (var (what, frame) in malformed)
        {
            using var sock = Connect(socket);
            Assert.Equal(frame.Length, sock.Send(frame));
            Assert.True(ClosedBySupervisor(sock), $"the supervisor should detach a caller that sends {what}");
        }

        // The supervisor carries on: the console is free again (not busy), takes a right window size
        // and input, and the log records it; nothing of the refused frames was applied.
        using (var sock = Connect(socket))
        {
            Assert.Equal(5, sock.Send(new byte[] { W, 11, 0, 22, 0 }));
            SendFrame(sock, D, "echo \"R=$(stty size)=R\"\r");
            Assert.Contains("R=11 22=R", ReadUntil(sock, "R=11 22=R"));
        }
        Assert.True(SpinWait.SpinUntil(() => File.ReadAllText(started.ConsoleLogPath).Contains("R=11 22=R"), 30_000),
            $"the console log should keep recording; it has:\n{File.ReadAllText(started.ConsoleLogPath)}");
        var log = File.ReadAllText(started.ConsoleLogPath);
        Assert.DoesNotContain("bad-2", log);
        Assert.DoesNotContain("big-4", log);
        Assert.DoesNotContain("echo bad", log);
        Assert.DoesNotContain("echo big", log);
        Assert.True(Directory.Exists($"/proc/{supervisorPid}"), "the supervisor is alive");
        Assert.Equal("Running", _ps.Run("(Get-Container $args[0]).State", name).Single().ToString());
        _ps.Run("Stop-Container $args[0] -Kill", name);
        Assert.False(File.Exists(socket), "the supervisor removes its socket when init ends");
    }
}
