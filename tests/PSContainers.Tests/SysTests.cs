using System.Diagnostics;
using PSContainers.Runtime.Native;
using PSContainers.Tests.Infrastructure;

namespace PSContainers.Tests;

[Collection("Containers")]
public sealed class SysTests
{
    /// <summary>Field 22 of /proc/pid/stat, parsed independently (greedy match up to the last ')').</summary>
    private static ulong ReferenceStartTime(int pid)
    {
        var m = System.Text.RegularExpressions.Regex.Match(File.ReadAllText($"/proc/{pid}/stat"), @"^\d+ \(.*\) (.*)$", System.Text.RegularExpressions.RegexOptions.Singleline);
        return ulong.Parse(m.Groups[1].Value.Split(' ')[19]);
    }

    private static int DeadPid()
    {
        using var p = Process.Start(new ProcessStartInfo("/bin/true") { UseShellExecute = false })!;
        var pid = p.Id;
        p.WaitForExit();
        return pid;
    }

    [Fact]
    public void ProcessStartTime_OfSelf_IsStableAndMatchesProc()
    {
        var pid = Environment.ProcessId;
        var first = Sys.ProcessStartTime(pid);
        Assert.NotNull(first);
        Assert.True(first > 0);
        Thread.Sleep(20);
        Assert.Equal(first, Sys.ProcessStartTime(pid));
        Assert.Equal(ReferenceStartTime(pid), first);
    }

    [Fact]
    public void ProcessStartTime_OfAChild_IsNotBeforeOurs()
    {
        using var child = new Sleeper();
        var mine = Sys.ProcessStartTime(Environment.ProcessId)!.Value;
        var theirs = Sys.ProcessStartTime(child.Pid);
        Assert.NotNull(theirs);
        Assert.True(theirs >= mine);
        Assert.Equal(ReferenceStartTime(child.Pid), theirs);
    }

    [Fact]
    public void ProcessStartTime_OfADeadPid_IsNull()
    {
        Assert.Null(Sys.ProcessStartTime(DeadPid()));
        Assert.Null(Sys.ProcessStartTime(int.MaxValue));
    }

    [Fact]
    public void ProcessStartTime_OfAZombie_IsNull()
    {
        // bash forks a short sleep, then becomes a long sleep that never reaps it: the short one
        // stays a zombie. (It outlives the exec by a second: a child that ended before the exec
        // would be reaped by bash itself, which happened on a loaded machine with /bin/true.)
        var psi = new ProcessStartInfo("/bin/bash") { RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("/bin/sleep 1 & echo $!; exec /bin/sleep 30");
        using var parent = Process.Start(psi)!;
        try
        {
            var zombie = int.Parse(parent.StandardOutput.ReadLine()!);
            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (Sleeper.State(zombie) != "Z" && DateTime.UtcNow < deadline) Thread.Sleep(5);
            Assert.Equal("Z", Sleeper.State(zombie));
            Assert.Null(Sys.ProcessStartTime(zombie));
        }
        finally { parent.Kill(); parent.WaitForExit(); }
    }

    [Fact]
    public void ProcessStartTime_HandlesParenthesesAndSpacesInTheCommandName()
    {
        using var dir = new TempDir();
        var odd = dir.Combine("a) (b c) 9");
        File.Copy("/bin/sleep", odd);
        File.SetUnixFileMode(odd, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        using var child = new Sleeper("30", odd);
        Assert.Contains("(a) (b c) 9)", File.ReadAllText($"/proc/{child.Pid}/stat"));
        Assert.Equal(ReferenceStartTime(child.Pid), Sys.ProcessStartTime(child.Pid));
        Assert.True(Sys.IsAlive(child.Pid, ReferenceStartTime(child.Pid)));
    }

    [Fact]
    public void IsAlive_NeedsTheSamePidAndStartTime()
    {
        using var child = new Sleeper();
        var start = Sys.ProcessStartTime(child.Pid)!.Value;
        Assert.True(Sys.IsAlive(child.Pid, start));
        Assert.False(Sys.IsAlive(child.Pid, start + 1));
        Assert.False(Sys.IsAlive(child.Pid, start - 1));
        Assert.False(Sys.IsAlive(child.Pid, null));
        Assert.False(Sys.IsAlive(null, start));
        Assert.False(Sys.IsAlive(0, start));
        Assert.False(Sys.IsAlive(-1, start));
        child.Process.Kill();
        child.Process.WaitForExit();
        Assert.False(Sys.IsAlive(child.Pid, start));
    }

    [Fact]
    public void WaitForExit_ReturnsTrueSoonAfterTheChildExits()
    {
        using var child = new Sleeper("0.3");
        var start = Sys.ProcessStartTime(child.Pid)!.Value;
        var sw = Stopwatch.StartNew();
        Assert.True(Sys.WaitForExit(child.Pid, start, TimeSpan.FromSeconds(20)));
        Assert.InRange(sw.ElapsedMilliseconds, 100, 5000);
    }

    [Fact]
    public void WaitForExit_WakesOnAKill()
    {
        using var child = new Sleeper();
        var start = Sys.ProcessStartTime(child.Pid)!.Value;
        var killer = Task.Run(async () => { await Task.Delay(200); Sys.Kill(child.Pid, 9); });
        var sw = Stopwatch.StartNew();
        Assert.True(Sys.WaitForExit(child.Pid, start, TimeSpan.FromSeconds(20)));
        Assert.InRange(sw.ElapsedMilliseconds, 100, 5000);
        killer.Wait();
    }

    [Fact]
    public void WaitForExit_TimesOutForALiveChild()
    {
        using var child = new Sleeper();
        var start = Sys.ProcessStartTime(child.Pid)!.Value;
        var sw = Stopwatch.StartNew();
        Assert.False(Sys.WaitForExit(child.Pid, start, TimeSpan.FromMilliseconds(300)));
        Assert.InRange(sw.ElapsedMilliseconds, 280, 5000);
        Assert.False(child.Process.HasExited);
    }

    [Fact]
    public void WaitForExit_OfAGoneOrRecycledPid_ReturnsAtOnce()
    {
        var sw = Stopwatch.StartNew();
        Assert.True(Sys.WaitForExit(DeadPid(), 12345, TimeSpan.FromSeconds(10)));
        using var child = new Sleeper();
        // Same pid, different start time: not the process we were waiting for.
        Assert.True(Sys.WaitForExit(child.Pid, Sys.ProcessStartTime(child.Pid)!.Value + 1, TimeSpan.FromSeconds(10)));
        Assert.True(sw.ElapsedMilliseconds < 2000);
        Assert.False(child.Process.HasExited);
    }

    [Fact]
    public void Kill_OfADeadPid_IsFalse()
    {
        Assert.False(Sys.Kill(DeadPid(), 0));
        using var child = new Sleeper();
        Assert.True(Sys.Kill(child.Pid, 0));
    }
}
