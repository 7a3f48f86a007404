using PSContainers.Tests.Infrastructure;
using System.Diagnostics;
using PSContainers.Runtime;
using PSContainers.Runtime.Templates;
using Xunit;

namespace PSContainers.Tests;

public sealed class BusyboxTemplateTests : IDisposable
{
    readonly string _root = Directory.CreateTempSubdirectory("psc-test-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    static string Run(string file, params string[] args) => HostCommand.Run(file, args);

    sealed class ListProgress : IProgress<TemplateProgress>
    {
        public readonly List<TemplateProgress> Reports = new();
        public void Report(TemplateProgress value) { lock (Reports) Reports.Add(value); }
    }

    [Fact]
    public void BuildsARunnableRootfs()
    {
        var template = TemplateRegistry.Get("BusyBox");
        Assert.Equal("busybox", template.Name);
        Assert.Equal(new[] { "/sbin/init" }, template.DefaultInitCommand);
        Assert.Equal("SIGUSR2", template.DefaultStopSignal);
        var options = new TemplateOptions { ContainerName = "bb1", CacheDirectory = Path.Combine(_root, "cache") };
        template.CheckPrerequisites(options);

        var rootfs = Path.Combine(_root, "rootfs");
        var progress = new ListProgress();
        template.Build(rootfs, options, progress, CancellationToken.None);

        // Every applet is a hard link to bin/busybox (same inode), as `busybox --install` makes them.
        var busyboxInode = HostCommand.Run("stat", "-c", "%i", Path.Combine(rootfs, "bin", "busybox"));
        foreach (var applet in new[] { "bin/sh", "sbin/init", "usr/bin/awk" })
        {
            Assert.Null(new FileInfo(Path.Combine(rootfs, applet)).LinkTarget);
            Assert.Equal(busyboxInode, HostCommand.Run("stat", "-c", "%i", Path.Combine(rootfs, applet)));
        }
        Assert.Null(new FileInfo(Path.Combine(rootfs, "bin", "busybox")).LinkTarget);
        Assert.Equal("755", Run("stat", "-c", "%a", Path.Combine(rootfs, "bin", "busybox")));
        Assert.Equal("1777 700 600 755", Run("stat", "-c", "%a", Path.Combine(rootfs, "tmp"), Path.Combine(rootfs, "root"),
            Path.Combine(rootfs, "etc", "shadow"), Path.Combine(rootfs, "etc", "init.d", "rcS")).Replace('\n', ' '));
        Assert.StartsWith("root:x:0:0:root:/root:/bin/sh\n", File.ReadAllText(Path.Combine(rootfs, "etc", "passwd")));
        Assert.Equal("bb1\n", File.ReadAllText(Path.Combine(rootfs, "etc", "hostname")));
        Assert.Contains("127.0.1.1\tbb1", File.ReadAllText(Path.Combine(rootfs, "etc", "hosts")));
        var inittab = File.ReadAllText(Path.Combine(rootfs, "etc", "inittab"));
        Assert.Contains("::sysinit:/etc/init.d/rcS", inittab);
        Assert.DoesNotContain("respawn", inittab);
        Assert.DoesNotContain("umount", inittab); // a stop must not wait for a pointless remount
        Assert.DoesNotContain("askfirst", inittab);
        foreach (var dir in new[] { "dev", "proc", "sys", "var/log", "run", "lib", "mnt", "home", "usr/sbin" })
            Assert.True(Directory.Exists(Path.Combine(rootfs, dir)), dir);

        Run(Path.Combine(rootfs, "bin", "busybox"), "true");
        // The applet links work through the rootfs' own busybox.
        Assert.Equal("hi", Run(Path.Combine(rootfs, "bin", "sh"), "-c", "echo hi"));
        Assert.Equal(100, progress.Reports[^1].PercentComplete);
    }

    [Fact]
    public void RejectsDynamicAndMissingBusybox()
    {
        var saved = Environment.GetEnvironmentVariable(BusyboxTemplate.BusyboxEnvironmentVariable);
        try
        {
            // /bin/ls is dynamically linked on Debian.
            Environment.SetEnvironmentVariable(BusyboxTemplate.BusyboxEnvironmentVariable, "/bin/ls");
            var ex = Assert.Throws<ContainerException>(() => new BusyboxTemplate().CheckPrerequisites(new TemplateOptions()));
            Assert.Equal(ContainerErrorKind.NotInstalled, ex.Kind);
            Assert.Equal("BusyboxNotStatic", ex.ErrorId);
            Assert.Contains("install busybox-static", ex.Message);

            Environment.SetEnvironmentVariable(BusyboxTemplate.BusyboxEnvironmentVariable, Path.Combine(_root, "nope"));
            ex = Assert.Throws<ContainerException>(() => new BusyboxTemplate().CheckPrerequisites(new TemplateOptions()));
            Assert.Equal(ContainerErrorKind.NotInstalled, ex.Kind);
            Assert.Contains("busybox not found", ex.Message);
            Assert.Contains("apt-get install busybox-static", ex.Message);

            var notElf = Path.Combine(_root, "script");
            File.WriteAllText(notElf, "#!/bin/sh\n");
            Assert.False(BusyboxTemplate.IsStaticElf(notElf, out _));
        }
        finally
        {
            Environment.SetEnvironmentVariable(BusyboxTemplate.BusyboxEnvironmentVariable, saved);
        }
    }

    [Fact]
    public void RegistryListsTemplatesAndRejectsUnknownNames()
    {
        // oci lives above Templates/ and joins when the runtime assembly loads (Composition).
        Assert.Equal(new[] { "busybox", "debootstrap", "oci" }, TemplateRegistry.Names);
        Assert.IsType<DebootstrapTemplate>(TemplateRegistry.Get("DEBOOTSTRAP"));
        var ex = Assert.Throws<ContainerException>(() => TemplateRegistry.Get("alpine"));
        Assert.Equal(ContainerErrorKind.InvalidArgument, ex.Kind);
        Assert.Equal("unknown template 'alpine'; available: busybox, debootstrap, oci", ex.Message);
    }
}
