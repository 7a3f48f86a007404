using PSContainers.Runtime.Containers;

namespace PSContainers.Tests.Infrastructure;

/// <summary>
/// A busybox container whose pid 1 counts every 0.1 s, into /tmp/count and as "tick N" on the
/// console: whether it was restored (the count goes on) or restarted (it starts over) is visible.
/// </summary>
public static class CounterContainer
{
    public const string Script = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo tick $i; sleep 0.1; done";

    /// <summary>
    /// pid 1 counts (console and /tmp/count, until /tmp/quit exists, then exits 7) beside an awk
    /// holding 64 MiB, so that CRIU's dump and restore take long enough to be interrupted.
    /// </summary>
    public const string Heavy =
        "awk 'BEGIN { s = \"x\"; for (i = 0; i < 26; i++) s = s s; while (1) system(\"sleep 1\") }' & " +
        "i=0; while [ ! -e /tmp/quit ]; do i=$((i+1)); echo $i > /tmp/count; echo tick $i; sleep 0.1; done; exit 7";

    /// <summary>
    /// The count in /tmp/count as it is now, or 0 where the file holds no number (a counter frozen,
    /// by CRIU or for good, between truncating and writing it).
    /// </summary>
    public static int CountNow(TestStore store, string name)
    {
        try { return int.TryParse(File.ReadAllText(Path.Combine(store.Manager.Get(name).RootfsPath, "tmp", "count")).Trim(), out var n) ? n : 0; }
        catch (IOException) { return 0; }
    }

    /// <summary>Creates and starts one in <paramref name="store"/>, and waits until it has counted to 10.</summary>
    public static string Start(TestStore store, string hint)
    {
        var c = store.Manager.Create(TestStore.NewName(hint), new CreateOptions { Template = "busybox", Command = new[] { "/bin/sh", "-c", Script } });
        store.Manager.Start(c.Name);
        WaitCount(store, c.Name, 10);
        return c.Name;
    }

    public static int Count(TestStore store, string name)
    {
        var file = Path.Combine(store.Manager.Get(name).RootfsPath, "tmp", "count");
        for (var i = 0; i < 100; i++)
        {
            try { if (int.TryParse(File.ReadAllText(file).Trim(), out var n)) return n; }
            catch (IOException) { }
            Thread.Sleep(20);
        }
        throw new InvalidOperationException($"{file} holds no number");
    }

    public static void WaitCount(TestStore store, string name, int atLeast)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (Count(store, name) < atLeast)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{name} did not count to {atLeast} (at {Count(store, name)})");
            Thread.Sleep(50);
        }
    }

    /// <summary>The "tick N" numbers of the console log, in order.</summary>
    public static int[] Ticks(TestStore store, string name) => store.Manager.ReadConsoleLog(name)
        .Where(l => l.StartsWith("tick ", StringComparison.Ordinal))
        .Select(l => int.TryParse(l[5..].Trim(), out var n) ? n : -1).Where(n => n > 0).ToArray();
}
