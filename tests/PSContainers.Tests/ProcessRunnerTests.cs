using System.Diagnostics;
using PSContainers.Runtime;
using PSContainers.Runtime.Processes;

namespace PSContainers.Tests;

/// <summary>The one runner of external programs, with real programs (sh, cat, sleep).</summary>
public sealed class ProcessRunnerTests
{
    private static ProgramStart Sh(string script) => new() { Program = "/bin/sh", Arguments = new[] { "-c", script } };

    [Fact]
    public void Run_CapturesOutputErrorAndExitCode_AndAFailureNamesProgramCodeAndStderrTail()
    {
        var result = ProcessRunner.Run(Sh("echo out; echo first >&2; echo 'the real reason' >&2; exit 3") with { DisplayName = "psc-test-tool" });
        Assert.Equal(3, result.ExitCode);
        Assert.Equal("out\n", result.Output);
        Assert.Equal("first\nthe real reason\n", result.Error);
        Assert.False(result.OutputTruncated);

        var ex = Assert.Throws<ContainerException>(() => result.ThrowIfFailed("NftFailed", ContainerErrorKind.InvalidOperation, "Doing the thing", "Do this instead."));
        Assert.Equal("NftFailed", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.InvalidOperation, ex.Kind);
        Assert.Equal("Doing the thing: psc-test-tool failed with exit code 3: first the real reason. Do this instead.", ex.Message);
        var ok = ProcessRunner.Run(Sh("exit 0"));
        Assert.Same(ok, ok.ThrowIfFailed("NftFailed", ContainerErrorKind.InvalidOperation, "Doing the thing", "Do this instead."));
    }

    [Fact]
    public void Run_WritesInput_AndPassesArgumentsWithoutAShell()
    {
        var result = ProcessRunner.Run(new ProgramStart { Program = "cat", Input = "line one\n$HOME `id` 'x'\n" });
        Assert.Equal("line one\n$HOME `id` 'x'\n", result.Output);
        var args = ProcessRunner.Run(new ProgramStart { Program = "/bin/echo", Arguments = new[] { "a b", "$HOME", ";", "*" } });
        Assert.Equal("a b $HOME ; *\n", args.Output);
    }

    [Fact]
    public void Run_Environment_IsSetRemovedOrCleared()
    {
        var env = new Dictionary<string, string?> { ["PSC_TEST_A"] = "1", ["HOME"] = null };
        var set = ProcessRunner.Run(Sh("echo \"a=$PSC_TEST_A home=${HOME-unset}\"") with { Environment = env });
        Assert.Equal("a=1 home=unset\n", set.Output);
        var cleared = ProcessRunner.Run(new ProgramStart { Program = "/usr/bin/env", ClearEnvironment = true, Environment = new Dictionary<string, string?> { ["ONLY"] = "this" } });
        Assert.Equal("ONLY=this\n", cleared.Output);
    }

    [Fact]
    public void Timeout_KillsTheProgramAndWhatItStarted_AndTheErrorSaysSoWithItsStderr()
    {
        var dir = Directory.CreateTempSubdirectory("psc-test-runner-");
        try
        {
            var pidFile = Path.Combine(dir.FullName, "child");
            var clock = Stopwatch.StartNew();
            var ex = Assert.Throws<ContainerException>(() => ProcessRunner.Run(
                Sh($"sleep 300 & echo $! > {pidFile}; echo 'waiting for the lock' >&2; wait") with
                {
                    DisplayName = "psc-test-slow",
                    Timeout = TimeSpan.FromMilliseconds(700),
                    TimeoutAdvice = "Free the lock.",
                }));
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
            Assert.Equal("ProgramTimedOut", ex.ErrorId);
            Assert.Equal(ContainerErrorKind.OperationTimeout, ex.Kind);
            Assert.Contains("psc-test-slow did not finish within 0.7 s and was killed", ex.Message);
            Assert.Contains("waiting for the lock", ex.Message);
            Assert.EndsWith("Free the lock.", ex.Message);
            var child = int.Parse(File.ReadAllText(pidFile).Trim());
            // The background sleep was in its tree: killed too (a zombie at most until reaped by init).
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (Alive(child) && DateTime.UtcNow < deadline) Thread.Sleep(50);
            Assert.False(Alive(child), $"the program's child {child} survived the timeout");
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public void Cancellation_KillsTheProgram_AndThrowsOperationCanceled()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        var clock = Stopwatch.StartNew();
        Assert.ThrowsAny<OperationCanceledException>(() => ProcessRunner.Run(new ProgramStart { Program = "sleep", Arguments = new[] { "300" } }, cts.Token));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
    }

    [Fact]
    public void OutputLimits_KeepStdoutsHeadAndStderrsTail_AndDrainTheRest()
    {
        // 2 MB through a 1000-character limit: the program is never blocked on a full pipe.
        var big = ProcessRunner.Run(Sh("yes abcdefghi | head -c 2000000; echo done >&2") with { OutputLimit = 1000, Timeout = TimeSpan.FromSeconds(60) });
        Assert.Equal(0, big.ExitCode);
        Assert.Equal(1000, big.Output.Length);
        Assert.StartsWith("abcdefghi\nabcdefghi\n", big.Output);
        Assert.True(big.OutputTruncated);

        var noisy = ProcessRunner.Run(Sh("i=0; while [ $i -lt 3000 ]; do echo error-line-$i >&2; i=$((i+1)); done; exit 1") with { ErrorLimit = 100 });
        Assert.True(noisy.Error.Length <= 100, $"{noisy.Error.Length} characters kept");
        Assert.EndsWith("error-line-2999\n", noisy.Error);
        Assert.DoesNotContain("error-line-0\n", noisy.Error);
        Assert.EndsWith("error-line-2999", noisy.ErrorTail(40));
    }

    [Fact]
    public void MissingProgram_IsANotInstalledError_NamingItAndWhatToInstall()
    {
        var ex = Assert.Throws<ContainerException>(() => ProcessRunner.Run(new ProgramStart { Program = "/nonexistent/psc-test-nope", Arguments = new[] { "x" } }));
        Assert.Equal("ProgramNotFound", ex.ErrorId);
        Assert.Equal(ContainerErrorKind.NotInstalled, ex.Kind);
        Assert.StartsWith("psc-test-nope could not be run (", ex.Message);
        Assert.Contains("/nonexistent/psc-test-nope", ex.Message);

        var named = Assert.Throws<ContainerException>(() => ProcessRunner.Run(new ProgramStart
        {
            Program = "psc-test-not-in-path",
            NotFoundErrorId = "NftNotInstalled",
            NotFoundAdvice = "apt-get install nftables.",
            Target = "c1",
        }));
        Assert.Equal("NftNotInstalled", named.ErrorId);
        Assert.Equal("c1", named.Target);
        Assert.EndsWith("apt-get install nftables.", named.Message);
    }

    [Fact]
    public void Streaming_WritesStdinAndReadsStdoutAsItComes_WithStderrCaptured()
    {
        using var cat = ProcessRunner.Start(Sh("echo ready >&2; cat") with { InputMode = ProgramInput.Pipe, PipeOutput = true });
        var hello = "hello\n"u8.ToArray();
        cat.StandardInput.Write(hello);
        cat.StandardInput.Flush();
        // Answered before stdin is closed: a conversation, as with psc-helper's "paused"/"go".
        Assert.Equal("hello", cat.StandardOutput.ReadLine());
        Assert.True(cat.WriteInputAndClose("bye\n"));
        Assert.Equal("bye", cat.StandardOutput.ReadLine());
        Assert.Null(cat.StandardOutput.ReadLine());
        var result = cat.Wait();
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("ready\n", result.Error);
    }

    [Fact]
    public void LineCallbacks_SeeEveryLineOfBothStreams()
    {
        var seen = new List<string>();
        ProcessRunner.Run(Sh("echo a; echo b >&2; printf 'no newline'") with
        {
            OnOutputLine = l => { lock (seen) seen.Add("out:" + l); },
            OnErrorLine = l => { lock (seen) seen.Add("err:" + l); },
        });
        Assert.Equal(new[] { "err:b", "out:a", "out:no newline" }, seen.OrderBy(s => s, StringComparer.Ordinal));
    }

    private static bool Alive(int pid)
    {
        try { return !File.ReadAllText($"/proc/{pid}/stat").Split(' ')[2].Equals("Z", StringComparison.Ordinal); }
        catch (IOException) { return false; }
    }
}
