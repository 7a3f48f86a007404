using PSContainers.Runtime;
using PSContainers.Runtime.Manifests;

namespace PSContainers.Tests;

/// <summary>
/// The manifest parser: a container's body is config.yaml's (same rules, same errors), the manifest's
/// own keys are checked as strictly, every error names file:line:column, files compose, dependency
/// cycles are named.
/// </summary>
public sealed class ManifestParserTests
{
    private static Manifest Parse(params (string File, string Text)[] docs) => ManifestParser.Parse(docs);

    private static ContainerException Fails(string yaml, string id = ManifestParser.ErrorId)
    {
        var ex = Assert.Throws<ContainerException>(() => Parse(("/m/site.yaml", yaml)));
        Assert.Equal(id, ex.ErrorId);
        return ex;
    }

    private const string Site = """
        id: site
        namespaces:
          lab: {}
        bridges:
          br0:
            namespace: lab
            addresses: [10.9.0.1/24]
        containers:
          db:
            template: busybox
            limits: { memory: 64M, pids: 32 }
            readiness: { command: [test, -e, /ready], timeout: 5s, interval: 250ms }
          web:
            dependsOn: [db]
            init:
              command: [/bin/sh, -c, "sleep 100"]
            network:
              - { type: veth, link: br0, linkNamespace: lab }
            state: Stopped
        """;

    [Fact]
    public void ParsesResources_InDependencyOrder_WithImpliedDependencies()
    {
        var m = Parse(("/m/site.yaml", Site));
        Assert.Equal("site", m.Id);
        Assert.Equal(new[] { "namespace/lab", "bridge/br0", "container/db", "container/web" }, m.Resources.Select(r => r.Id));
        var web = (ManifestContainer)m.Find("container/web")!;
        // dependsOn names db; the NIC on br0 in namespace lab implies the bridge and the namespace.
        Assert.Equal(new[] { "container/db", "bridge/br0", "namespace/lab" }, web.DependsOn);
        Assert.Equal(ManifestState.Stopped, web.State);
        Assert.Equal(new[] { "init.command", "network" }, web.DeclaredKeys);
        var db = (ManifestContainer)m.Find("container/db")!;
        Assert.Equal(64L << 20, db.Config.Limits.Memory);
        Assert.Equal(TimeSpan.FromMilliseconds(250), db.Readiness!.Interval);
        Assert.Equal(new[] { "template", "limits.memory", "limits.pids" }, db.DeclaredKeys);
        Assert.Equal("namespace/lab", Assert.Single(m.Find("bridge/br0")!.DependsOn));
        Assert.Equal(new ManifestSource("/m/site.yaml", 9, 3), db.Source);
    }

    [Fact]
    public void ContainerBody_IsValidatedByConfigLoader_WithTheManifestsLineAndColumn()
    {
        var ex = Fails("""
            containers:
              db:
                template: busybox
                limits: { memory: 12Q }
            """);
        Assert.StartsWith("/m/site.yaml:4:23: ", ex.Message);
        Assert.Contains("limits.memory", ex.Message);
        Assert.Equal(ContainerErrorKind.ParserError, ex.Kind);
    }

    [Fact]
    public void UnknownKeys_AreRefused_AtEveryLevel()
    {
        Assert.StartsWith("/m/site.yaml:1:1: unknown key 'container'", Fails("container: {}").Message);
        var body = Fails("containers:\n  db:\n    templat: busybox\n");
        Assert.StartsWith("/m/site.yaml:3:5: unknown key 'templat'", body.Message);
        Assert.Contains("or a manifest key: state, dependsOn, readiness, archive, templateOptions", body.Message);
        Assert.StartsWith("/m/site.yaml:3:18: unknown key 'timeOut' under 'containers.db.readiness'", Fails("containers:\n  db:\n    readiness: { timeOut: 3s, command: [true] }\n").Message);
        Assert.StartsWith("/m/site.yaml:3:5: unknown key 'address'", Fails("bridges:\n  br0:\n    address: [10.0.0.1/24]\n").Message);
        Assert.StartsWith("/m/site.yaml:2:9: unknown key 'owner'", Fails("namespaces:\n  ns: { owner: me }\n").Message);
    }

    [Fact]
    public void BadValues_NameTheirPosition()
    {
        Assert.StartsWith("/m/site.yaml:3:12: invalid value 'Up' for containers.db.state", Fails("containers:\n  db:\n    state: Up\n").Message);
        Assert.StartsWith("/m/site.yaml:3:58: invalid duration '0s'", Fails("containers:\n  db:\n    readiness: { command: [true], interval: 1s, timeout: 0s }\n").Message);
        Assert.StartsWith("/m/site.yaml:2:3: invalid container name '../x'", Fails("containers:\n  ../x: {}\n").Message);
        Assert.StartsWith("/m/site.yaml:3:17: '10.0.0.300/24' is not an IPv4", Fails("bridges:\n  br0:\n    addresses: [10.0.0.300/24]\n").Message);
        Assert.StartsWith("/m/site.yaml:2:19: unknown template 'alpine'", Fails("containers:\n  db: { template: alpine }\n").Message);
        Assert.StartsWith("/m/site.yaml:3:17: container/db depends on 'cache', which this manifest does not declare", Fails("containers:\n  db:\n    dependsOn: [cache]\n").Message);
        Assert.StartsWith("/m/site.yaml:2:19: containers.db gives archive together with template",
            Fails("containers:\n  db: { template: busybox, archive: /x.tar }\n").Message);
        Assert.StartsWith("/m/site.yaml:2:1: YAML syntax error", Fails("- [unclosed\n").Message);
    }

    [Fact]
    public void DuplicateResourceAcrossFiles_NamesBothFiles()
    {
        var ex = Assert.Throws<ContainerException>(() => Parse(
            ("/m/a.yaml", "containers:\n  db: { template: busybox }\n"),
            ("/m/b.yaml", "bridges:\n  br0: {}\ncontainers:\n  db: {}\n")));
        Assert.Equal(ManifestParser.ErrorId, ex.ErrorId);
        Assert.Equal("/m/b.yaml:4:3: container/db is declared twice: here and at /m/a.yaml:2:3. A resource is declared in one place; rename or remove one of them.", ex.Message);
        // Files compose: dependencies cross files, the id defaults to their folder.
        var m = Parse(("/m/a.yaml", "containers:\n  db: {}\n"), ("/m/b.yaml", "containers:\n  web: { dependsOn: [db] }\n"));
        Assert.Equal("/m", m.Id);
        Assert.Equal(new[] { "container/db", "container/web" }, m.Resources.Select(r => r.Id));
        var ids = Assert.Throws<ContainerException>(() => Parse(("/m/a.yaml", "id: one\n"), ("/m/b.yaml", "id: two\n")));
        Assert.StartsWith("/m/b.yaml:1:5: the manifest id 'two' differs from 'one' declared in /m/a.yaml:1", ids.Message);
    }

    [Fact]
    public void Cycles_AreNamed()
    {
        var ex = Fails("""
            containers:
              a: { dependsOn: [b] }
              b: { dependsOn: [c] }
              c: { dependsOn: [a] }
              d: {}
            """, ManifestParser.CycleErrorId);
        Assert.Equal("/m/site.yaml:2:3: dependency cycle: container/a -> container/b -> container/c -> container/a. Remove one of these dependsOn entries (or the NIC that implies it).", ex.Message);
        var self = Fails("containers:\n  a: { dependsOn: [a] }\n", ManifestParser.CycleErrorId);
        Assert.Equal("/m/site.yaml:2:20: dependency cycle: container/a -> container/a", self.Message);
        // A cycle through an implied dependency (the NIC on br0) is named too.
        var implied = Fails("bridges:\n  br0: { dependsOn: [web] }\ncontainers:\n  web: { network: [{ type: veth, link: br0 }] }\n", ManifestParser.CycleErrorId);
        Assert.Contains("bridge/br0 -> container/web -> bridge/br0", implied.Message);
    }

    [Fact]
    public void Durations()
    {
        Assert.True(ManifestParser.TryParseDuration("500ms", out var a)); Assert.Equal(TimeSpan.FromMilliseconds(500), a);
        Assert.True(ManifestParser.TryParseDuration("2m", out var b)); Assert.Equal(TimeSpan.FromMinutes(2), b);
        Assert.True(ManifestParser.TryParseDuration("1.5", out var c)); Assert.Equal(TimeSpan.FromSeconds(1.5), c);
        Assert.False(ManifestParser.TryParseDuration("-1s", out _));
        Assert.False(ManifestParser.TryParseDuration("2d", out _));
        Assert.False(ManifestParser.TryParseDuration("25h", out _));
    }

    [Fact]
    public void ReadsFoldersAndFiles_AndRefusesWhatIsMissing()
    {
        var dir = Path.Combine(Path.GetTempPath(), "psc-test-manifest-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "10-db.yaml"), "containers:\n  db: {}\n");
            File.WriteAllText(Path.Combine(dir, "20-web.yml"), "containers:\n  web: { dependsOn: [db] }\n");
            File.WriteAllText(Path.Combine(dir, "notes.txt"), "not a manifest: {");
            var m = ManifestParser.Load(new[] { dir });
            Assert.Equal(dir, m.Id);
            Assert.Equal(2, m.Files.Count);
            Assert.Equal("ManifestNotFound", Assert.Throws<ContainerException>(() => ManifestParser.Load(new[] { Path.Combine(dir, "none.yaml") })).ErrorId);
            Directory.CreateDirectory(Path.Combine(dir, "empty"));
            Assert.Equal("ManifestNotFound", Assert.Throws<ContainerException>(() => ManifestParser.Load(new[] { Path.Combine(dir, "empty") })).ErrorId);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
