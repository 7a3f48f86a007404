/*
 * psc-helper's spec parser and reply lines on their own (src/native/helper/spec.c), fed valid and
 * hostile input: missing, unknown, misplaced and repeated keys, overlong values, bad numbers,
 * embedded NULs, unknown flag bits. Built with AddressSanitizer and UBSan by the test project and
 * run by SpecParserTests (xunit), so a read past a value or an overflow fails the suite too.
 *
 *   spec-parser-test               run every case; exit status 0 when all pass
 *   spec-parser-test --dump CMD    parse a framed spec of CMD from stdin, print what was parsed
 *                                  (key=value lines), so the C# side can check its bytes land as meant
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "spec.h"

extern char errbuf[1024];

const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }

static int failures, cases;

/* A spec from strings; "\x01" stands for an embedded NUL inside one string. */
struct buf { char *data; size_t len; };
static struct buf spec_of(int n, const char *const *items) {
    struct buf b = { NULL, 0 };
    for (int i = 0; i < n; i++) b.len += strlen(items[i]) + 1;
    b.data = malloc(b.len ? b.len : 1);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(items[i]);
        memcpy(b.data + off, items[i], l + 1);
        for (size_t j = 0; j < l; j++) if (b.data[off + j] == '\x01') b.data[off + j] = '\0';
        off += l + 1;
    }
    return b;
}
#define SPEC(...) spec_of(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *), (const char *[]){ __VA_ARGS__ })

static void check(int ok, const char *name, const char *fmt, ...) {
    cases++;
    if (ok) { printf("ok %s\n", name); return; }
    failures++;
    printf("FAIL %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* The spec is refused, with a message containing `want` (and no control characters). */
static void refused(const char *name, enum psc_command cmd, struct buf b, const char *want) {
    struct spec *s = malloc(sizeof *s);
    errbuf[0] = '\0';
    int rc = psc_parse_spec(s, cmd, b.data, b.len);
    int clean = 1;
    for (const char *p = errbuf; *p; p++) if ((unsigned char)*p < 0x20) clean = 0;
    check(rc == -1 && strstr(errbuf, want) && clean, name, "rc %d, message '%s', wanted '%s'", rc, errbuf, want);
    free(s);
    free(b.data);
}

static struct spec *accepted(const char *name, enum psc_command cmd, struct buf b) {
    struct spec *s = malloc(sizeof *s);
    errbuf[0] = '\0';
    int rc = psc_parse_spec(s, cmd, b.data, b.len);
    check(rc == 0, name, "refused: %s", errbuf);
    return s; /* points into b.data: both kept for the checks */
}

static char *repeat(char c, size_t n) {
    char *p = malloc(n + 1);
    memset(p, c, n);
    p[n] = '\0';
    return p;
}

static void valid_specs(void) {
    struct spec *s = accepted("exec spec", PSC_CMD_EXEC, SPEC("pid", "42", "ns", "user", "ns", "mnt", "cwd", "/root", "tty", "1",
        "cgroup", "/sys/fs/cgroup/a/cgroup.procs", "capdrop", "18446744073709551615", "nonewprivs", "1",
        "seccomp", "0600000000000000", "env", "TERM=xterm", "arg", "ls", "arg", "", "arg", "-l"));
    check(s->target_pid == 42 && s->has_target_pid, "exec pid", "%d", s->target_pid);
    check(s->n_join_ns == 2 && !strcmp(s->join_ns[0], "user") && !strcmp(s->join_ns[1], "mnt"), "exec ns", "%d", s->n_join_ns);
    check(s->cwd && !strcmp(s->cwd, "/root") && s->terminal, "exec cwd and tty", "");
    check(s->n_cgroups == 1 && s->has_cap_drop && s->cap_drop == UINT64_MAX && s->no_new_privs, "exec cgroup capdrop nonewprivs", "");
    check(s->filter_len == 1 && s->filter[0].code == 6 && s->filter[0].k == 0, "exec seccomp", "%u", s->filter_len);
    check(s->n_args == 3 && !strcmp(s->args[1], "") && s->args[3] == NULL && s->n_envs == 1 && s->envs[1] == NULL,
          "exec argv and envp NULL-terminated", "%d", s->n_args);
    check(s->clone_flags == 0 && !s->rootfs && s->command == PSC_CMD_EXEC, "exec: no start keys", "");
    free(s);

    s = accepted("start spec", PSC_CMD_START, SPEC("flags", "1644298240", "rootfs", "/r", "hostname", "h",
        "console", "/c", "logmax", "0", "pause", "1", "rootmount", "overlay", "overlay", "0", "lowerdir=/l",
        "exitfile", "/e", "runrecord", "/rr", "uidmap", "0 100000 65536", "cgroupv2", "/sys/fs/cgroup/unified/x",
        "lo-up", "1", "link-up", "eth0", "cgdir", "/d1", "cgdir", "/d2",
        "mount", "proc", "/proc", "proc", "14", "", "mount", "/dev/null", "/dev/null", "", "8796093026304", "",
        "symlink", "/proc/self/fd", "/dev/fd", "arg", "/sbin/init"));
    check(s->clone_flags == 1644298240UL && s->rootfs && s->pause && s->has_log_max && s->log_max == 0, "start basics", "");
    check(s->n_root_mounts == 1 && !strcmp(s->root_mounts[0].dst, "") && !strcmp(s->root_mounts[0].data, "lowerdir=/l"), "start rootmount", "");
    check(s->n_mounts == 2 && s->mounts[0].flags == 14 && s->mounts[1].flags == (PSC_MNT_FILE | MS_BIND), "start mounts", "%llu", s->mounts[1].flags);
    check(s->n_links == 1 && !strcmp(s->links[0].path, "/dev/fd") && s->loopback_up && s->n_links_up == 1 && s->n_cgdirs == 2, "start links", "");
    free(s);

    s = accepted("restore spec", PSC_CMD_RESTORE, SPEC("console", "/c", "criufd", "7", "cgdir", "/d", "arg", "criu", "arg", "swrk", "arg", "3"));
    check(s->has_criu_fd && s->criu_fd == 7 && s->n_args == 3, "restore criufd", "%d", s->criu_fd);
    free(s);
    s = accepted("userns-tree spec", PSC_CMD_USERNS_TREE, SPEC("uidmap", "0 1 2", "callerid", "4294967295", "owners", "/o", "arg", "shift", "arg", "/t"));
    check(s->has_caller_id && s->caller_id == UINT32_MAX, "userns-tree callerid", "%u", s->caller_id);
    free(s);
    s = accepted("netns-exec spec", PSC_CMD_NETNS_EXEC, SPEC("netns", "/run/netns/a", "etcdir", "/etc/netns/a", "arg", "ip"));
    free(s);

    /* The longest values are taken. */
    char *path = repeat('p', PSC_PATH_MAX), *host = repeat('h', 64);
    free(accepted("value of exactly the longest length", PSC_CMD_START, SPEC("cwd", path, "hostname", host, "arg", "x")));
    free(path); free(host);
}

/* Exactly these bytes, in a buffer of exactly that size (so a read past them is caught). */
static struct buf raw(const char *bytes, size_t len) {
    struct buf b = { malloc(len ? len : 1), len };
    memcpy(b.data, bytes, len);
    return b;
}

static void hostile_specs(void) {
    refused("empty spec", PSC_CMD_EXEC, raw("", 0), "NUL-terminated");
    refused("not NUL-terminated", PSC_CMD_EXEC, raw("arg\0ls", 6), "NUL-terminated");
    refused("missing pid", PSC_CMD_EXEC, SPEC("arg", "ls"), "exec needs 'pid'");
    refused("missing program", PSC_CMD_EXEC, SPEC("pid", "1"), "exec needs 'arg'");
    refused("missing criufd", PSC_CMD_RESTORE, SPEC("arg", "criu"), "restore needs 'criufd'");
    refused("missing netns", PSC_CMD_NETNS_EXEC, SPEC("arg", "ip"), "netns-exec needs 'netns'");
    refused("missing callerid", PSC_CMD_USERNS_TREE, SPEC("arg", "shift", "arg", "/t"), "userns-tree needs 'callerid'");
    refused("unknown key", PSC_CMD_EXEC, SPEC("pid", "1", "bogus", "x", "arg", "ls"), "unknown key 'bogus'");
    refused("unknown key with control characters", PSC_CMD_EXEC, SPEC("pid", "1", "\x1b[2J\n", "x", "arg", "ls"), "unknown key '?[2J?'");
    char *longkey = repeat('k', 5000);
    refused("unknown key, overlong, shortened", PSC_CMD_EXEC, SPEC(longkey, "x"), "kkk...'");
    free(longkey);
    refused("key of another command", PSC_CMD_EXEC, SPEC("pid", "1", "rootfs", "/", "arg", "ls"), "'rootfs' is not part of the exec spec");
    refused("mounts only in start", PSC_CMD_RESTORE, SPEC("criufd", "3", "mount", "a", "b", "c", "0", "", "arg", "x"), "not part of the restore spec");
    refused("duplicate single key", PSC_CMD_EXEC, SPEC("pid", "1", "pid", "2", "arg", "ls"), "'pid' is given twice");
    refused("duplicate flag", PSC_CMD_EXEC, SPEC("pid", "1", "tty", "1", "tty", "1", "arg", "ls"), "'tty' is given twice");
    refused("duplicate namespace", PSC_CMD_EXEC, SPEC("pid", "1", "ns", "mnt", "ns", "mnt", "arg", "ls"), "names mnt twice");
    refused("too many root mounts", PSC_CMD_START, SPEC("rootmount", "a", "b", "0", "", "rootmount", "a", "b", "0", "", "rootmount", "a", "b", "0", "",
        "rootmount", "a", "b", "0", "", "rootmount", "a", "b", "0", "", "rootmount", "a", "b", "0", "", "rootmount", "a", "b", "0", "",
        "rootmount", "a", "b", "0", "", "rootmount", "a", "b", "0", "", "arg", "x"), "too many 'rootmount' (at most 8)");
    {
        const char *many[2 * (PSC_MAX_ITEMS + 1) + 2];
        many[0] = "pid"; many[1] = "1";
        for (int i = 0; i <= PSC_MAX_ITEMS; i++) { many[2 + 2 * i] = "arg"; many[3 + 2 * i] = "x"; }
        refused("too many arguments", PSC_CMD_EXEC, spec_of(2 * (PSC_MAX_ITEMS + 1) + 2, many), "too many 'arg' (at most 256)");
    }
    char *path = repeat('p', PSC_PATH_MAX + 1), *host = repeat('h', 65), *arg = repeat('a', PSC_ARG_MAX + 1);
    refused("overlong path", PSC_CMD_EXEC, SPEC("pid", "1", "cwd", path, "arg", "ls"), "a value of 'cwd' is too long (4096 bytes, at most 4095)");
    refused("overlong hostname", PSC_CMD_START, SPEC("hostname", host, "arg", "x"), "'hostname' is too long");
    refused("overlong argument", PSC_CMD_EXEC, SPEC("pid", "1", "arg", arg), "'arg' is too long");
    refused("overlong mount data", PSC_CMD_START, SPEC("mount", "a", "/b", "tmpfs", "0", path, "arg", "x"), "'mount' is too long");
    refused("overlong link name", PSC_CMD_START, SPEC("link-up", "sixteen-chars-xx", "arg", "x"), "'link-up' is too long");
    free(path); free(host); free(arg);
    refused("number with a letter", PSC_CMD_EXEC, SPEC("pid", "12a", "arg", "ls"), "'pid' must be a decimal number, not '12a'");
    refused("negative number", PSC_CMD_EXEC, SPEC("pid", "-1", "arg", "ls"), "must be a decimal number");
    refused("empty number", PSC_CMD_EXEC, SPEC("pid", "", "arg", "ls"), "must be a decimal number");
    refused("number with a blank", PSC_CMD_EXEC, SPEC("pid", " 12", "arg", "ls"), "must be a decimal number");
    refused("number with a plus", PSC_CMD_EXEC, SPEC("pid", "+5", "arg", "ls"), "must be a decimal number");
    refused("hex number", PSC_CMD_EXEC, SPEC("pid", "0x10", "arg", "ls"), "must be a decimal number");
    refused("pid out of range", PSC_CMD_EXEC, SPEC("pid", "2147483648", "arg", "ls"), "'pid' is out of range");
    refused("64-bit overflow", PSC_CMD_EXEC, SPEC("pid", "1", "capdrop", "18446744073709551616", "arg", "ls"), "'capdrop' is out of range");
    refused("21 digits", PSC_CMD_EXEC, SPEC("pid", "1", "capdrop", "000000000000000000001", "arg", "ls"), "'capdrop' is too long (21 bytes, at most 20)");
    refused("clone flags beyond namespaces", PSC_CMD_START, SPEC("flags", "256", "arg", "x"), "not namespaces (0x100)");
    refused("mount flags with unknown bits", PSC_CMD_START, SPEC("mount", "a", "/b", "", "35184372088832", "", "arg", "x"), "unknown bits (0x200000000000)");
    refused("mount flags not a number", PSC_CMD_START, SPEC("mount", "a", "/b", "", "ro", "", "arg", "x"), "'mount' must be a decimal number");
    refused("namespace name as a path", PSC_CMD_EXEC, SPEC("pid", "1", "ns", "../net", "arg", "ls"), "not '../net'");
    refused("flag other than 1", PSC_CMD_EXEC, SPEC("pid", "1", "tty", "2", "arg", "ls"), "'tty' takes 1");
    refused("flag 0", PSC_CMD_EXEC, SPEC("pid", "1", "nonewprivs", "0", "arg", "ls"), "'nonewprivs' takes 1");
    refused("seccomp not whole instructions", PSC_CMD_EXEC, SPEC("pid", "1", "seccomp", "060000", "arg", "ls"), "1..4096 instructions");
    refused("seccomp not hex", PSC_CMD_EXEC, SPEC("pid", "1", "seccomp", "06000000000000zz", "arg", "ls"), "'seccomp' is not hex");
    refused("seccomp with a sign", PSC_CMD_EXEC, SPEC("pid", "1", "seccomp", "+600000000000000", "arg", "ls"), "'seccomp' is not hex");
    refused("record cut short", PSC_CMD_START, SPEC("arg", "x", "mount", "a", "/b"), "'mount' needs 5 value(s)");
    refused("value cut short at the end", PSC_CMD_EXEC, SPEC("arg", "ls", "pid"), "'pid' needs 1 value(s)");
    /* An embedded NUL ends a value: what follows is read as a key, never as more of the value. */
    refused("embedded NUL in a value", PSC_CMD_EXEC, SPEC("pid", "1", "cwd", "/tmp\x01" "evil", "arg", "ls"), "unknown key 'evil'");
    refused("embedded NUL in a key", PSC_CMD_EXEC, SPEC("pid", "1", "ar\x01" "g", "ls"), "unknown key 'ar'");
    refused("no such command", (enum psc_command)PSC_CMD_COUNT, SPEC("arg", "x"), "no such command");
    check(psc_command_of("start") == PSC_CMD_START && psc_command_of("userns-tree") == PSC_CMD_USERNS_TREE && psc_command_of("Start") == -1
          && psc_command_of("") == -1, "command words", "");
}

static void replies(void) {
    char line[PSC_REPLY_MAX];
    snprintf(line, sizeof line, PSC_FORMAT(PSC_REPLY_START_PAUSED), 12, 34);
    check(!strcmp(line, "paused 12 34\n"), "start paused format", "'%s'", line);
    snprintf(line, sizeof line, PSC_FORMAT(PSC_REPLY_RESTORE_PAUSED), 1, 2, "/dev/pts/3");
    check(!strcmp(line, "paused 1 2 /dev/pts/3\n"), "restore paused format", "'%s'", line);
    snprintf(line, sizeof line, PSC_FORMAT(PSC_REPLY_STARTED), 5, 6);
    check(!strcmp(line, "ok 5 6\n"), "started format", "'%s'", line);
    int pids[4] = { 0 };
    check(parse_reply("go\n", PSC_R_GO, NULL) == 0 && parse_reply("go", PSC_R_GO, NULL) == 0, "go", "");
    check(parse_reply("go 5", PSC_R_GO, NULL) == -1, "go with a field is not go", "");
    check(parse_reply("gone", PSC_R_GO, NULL) == -1 && parse_reply("abort\n", PSC_R_GO, NULL) == -1 && parse_reply("", PSC_R_GO, NULL) == -1,
          "other words are not go", "");
    check(parse_reply("abort\n", PSC_R_ABORT, NULL) == 0, "abort", "");
    check(parse_reply("go 4242\n", PSC_R_GO_RESTORED, pids) == 0 && pids[0] == 4242, "go with the restored init", "%d", pids[0]);
    const char *bad[] = { "go", "go \n", "go 0", "go -1", "go 12x", "go 1 2", "go  5", "go 2147483648", "go 99999999999999999999", "go 5\n\n" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char name[64];
        snprintf(name, sizeof name, "go_restored refuses '%s'", bad[i]);
        for (char *p = name; *p; p++) if (*p == '\n') *p = '|';
        check(parse_reply(bad[i], PSC_R_GO_RESTORED, pids) == -1, name, "");
    }
    check(parse_reply("paused 1 2 -\n", PSC_R_RESTORE_PAUSED, pids) == 0 && pids[0] == 1 && pids[1] == 2, "restore paused parse", "");
    check(reply_has_word("paused 1 2", PSC_R_START_PAUSED) && !reply_has_word("pausedx 1", PSC_R_START_PAUSED)
          && reply_has_word("ok 1 2", PSC_R_STARTED) && !reply_has_word("okay", PSC_R_STARTED), "reply words", "");
}

/* key=value lines of what a spec holds, for the C# side's round trip (SpecParserTests). */
static int dump(const char *word) {
    int cmd = psc_command_of(word);
    if (cmd < 0) { fprintf(stderr, "no command %s\n", word); return 2; }
    struct spec *s = malloc(sizeof *s);
    read_spec(s, (enum psc_command)cmd, NULL);
#define D_STR(w, f) if (s->f) printf("%s=%s\n", w, s->f);
#define D_FLAG(w, f) if (s->f) printf("%s=1\n", w);
#define D_NUM(w, f) if (s->has_##f) printf("%s=%llu\n", w, (unsigned long long)s->f);
#define D_I32 D_NUM
#define D_U32 D_NUM
#define D_I64 D_NUM
#define D_U64 D_NUM
#define D_NSFLAGS(w, f) printf("%s=%lu\n", w, s->f);
#define D_NSNAMES(w, f) for (int i = 0; i < s->n_##f; i++) printf("%s=%s\n", w, s->f[i]);
#define D_BPF(w, f) if (s->f) { printf("%s=", w); for (size_t i = 0; i < s->f##_len * sizeof *s->f; i++) printf("%02X", ((unsigned char *)s->f)[i]); putchar('\n'); }
#define D_LIST(w, f) for (int i = 0; i < s->n_##f; i++) printf("%s=%s\n", w, s->f[i]);
#define D_MOUNT(w, f) for (int i = 0; i < s->n_##f; i++) printf("%s=%s|%s|%s|%llu|%s\n", w, s->f[i].src, s->f[i].dst, s->f[i].type, s->f[i].flags, s->f[i].data);
#define D_ROOTMOUNT D_MOUNT
#define D_SYMLINK(w, f) for (int i = 0; i < s->n_##f; i++) printf("%s=%s|%s\n", w, s->f[i].target, s->f[i].path);
#define PSC_X(id, wire, kind, field, cs, maxlen, most, in, req, doc) if ((in) & (1u << cmd)) { D_##kind(wire, field) }
    PSC_KEYS(PSC_X)
#undef PSC_X
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--dump")) return dump(argv[2]);
    valid_specs();
    hostile_specs();
    replies();
    printf("%d of %d cases passed\n", cases - failures, cases);
    return failures ? 1 : 0;
}
