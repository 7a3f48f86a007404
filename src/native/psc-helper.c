/*
 * psc-helper: the only native code in PSContainers.
 *
 * A .NET process is multi-threaded, and a multi-threaded process can neither unshare/setns a
 * user or mount namespace nor safely run code after fork(). So everything that must happen in a
 * single-threaded process lives here; everything else (what to mount, which cgroups, state) is
 * decided by the C# runtime and handed over as a spec on stdin.
 *
 *   psc-helper start   < spec    daemonize a supervisor, which clones the container init in new
 *                                namespaces; prints "<supervisor-pid> <init-pid>" once init exec'd.
 *                                With "pause", it first prints "paused <sup> <init>" and waits for
 *                                a "go" line on stdin (the caller sets up the network meanwhile).
 *   psc-helper exec    < spec    join a running container's namespaces (and cgroups) and run a
 *                                program there; exits with its status (128+signal if killed).
 *                                Staged so that the container never sees an unconstrained process,
 *                                and with "tty" on a pty of the container, relayed (see cmd_exec).
 *   psc-helper netns-exec < spec ip netns exec: a program in a network namespace ("netns" file)
 *                                with the files of /etc/netns/NAME ("etcdir") bound over /etc.
 *   psc-helper restore < spec    like start, but the supervisor runs `criu swrk` (the "arg"s) on
 *                                the caller's socket ("criufd") instead of cloning an init; see
 *                                supervise_restore().
 *   psc-helper userns-tree < spec  "arg" shift|remove, "arg" PATH: chown a rootfs into a user
 *                                namespace's ids, or delete a tree owned by them, from inside that
 *                                namespace (how a non-root user can own files as its subuids).
 *
 * Security (decided in C#, applied here as the last steps before execve, see apply_security; for
 * exec before the fork into the container's pid namespace, see attach_stage):
 * "capdrop" (mask), "nonewprivs", "seccomp" (hex BPF); exec re-executes from a sealed memfd first.
 *
 * Spec: "<length>\n" then NUL-terminated strings read as key/value pairs; "mount" takes 5 values
 * (source, target, fstype, flags, data), "rootmount" 4 (source, fstype, flags, data), "symlink"
 * 2 (target, linkpath). See Namespaces/LaunchSpec.cs.
 *
 * The supervisor (one per running container) is deliberately tiny: it reaps init, records the
 * exit status atomically, copies the console pty to the console log and removes the container's
 * cgroups when init is gone. Its resident memory is what a running container costs beyond itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <ftw.h>
#include <sys/xattr.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/sendfile.h>

#define MAX_ITEMS 256

struct mount_rec { const char *src, *dst, *type, *data; unsigned long flags; };
struct link_rec { const char *target, *path; };

/* Flags of our own, carried in the high bits of a mount record's flags (never kernel flags). */
#define PSC_SRC_IN_ROOT (1UL << 40) /* source is a path inside the rootfs, resolved safely */
#define PSC_CONSOLE     (1UL << 41) /* source is the console pty slave */
#define PSC_OPTIONAL    (1UL << 42) /* skip if the source does not exist */
#define PSC_FILE        (1UL << 43) /* target is a file (create it empty), not a directory */
#define PSC_MASK        (1UL << 44) /* hide the target if it exists (masked paths, see mask_path) */

struct spec {
    unsigned long clone_flags;
    const char *rootfs, *hostname, *cwd, *console_log, *exit_file, *init_pid;
    const char *args[MAX_ITEMS]; int nargs;
    const char *envs[MAX_ITEMS]; int nenvs;
    const char *cgroups[MAX_ITEMS]; int ncgroups;     /* cgroup.procs files to join */
    const char *cgdirs[MAX_ITEMS]; int ncgdirs;       /* cgroup dirs to remove when init is gone */
    const char *nsnames[16]; int nns;                 /* exec: namespaces to join */
    struct mount_rec mounts[MAX_ITEMS]; int nmounts;
    struct mount_rec rootmounts[8]; int nrootmounts;  /* mounted on the rootfs path itself (overlay) */
    int pause;                                        /* start: wait for "go" before init proceeds */
    struct link_rec links[MAX_ITEMS]; int nlinks;
    const char *uid_map, *gid_map;
    const char *cgroup_v2;                            /* cgroup2 directory to be born into (clone3) */
    int target_pid;                                   /* exec: the container's init */
    long log_max;                                     /* console log cap in bytes (0 = none) */
    const char *netns, *etcdir;                       /* netns-exec: namespace file, /etc/netns/<name> */
    int has_cap_drop; uint64_t cap_drop;              /* capabilities to drop (bit n = capability n) */
    int no_new_privs;                                 /* PR_SET_NO_NEW_PRIVS before exec */
    struct sock_filter *filter; unsigned short filter_len; /* seccomp program installed last */
    int criu_fd;                                      /* restore: inherited end of the criu RPC socket */
    const char *ups[MAX_ITEMS]; int nups;             /* start: links init brings up itself ("lo-up": lo) */
    const char *owners;                               /* userns-tree: file of "uid gid path" records */
    unsigned long caller_id;                          /* userns-tree: in-namespace id of the caller's uid/gid */
    const char *run_record;                           /* start/restore: the supervisor's own record (see write_run_record) */
    const char *images_dir;                           /* restore: CRIU's images directory (its cgroup yard is made there) */
    int terminal;                                     /* exec: a new pty in the container, relayed (interactive) */
};

static char errbuf[1024];

/* Record the first error: "what: strerror". Reported to the C# side verbatim. */
static int fail(const char *fmt, ...) {
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    if (saved && n > 0 && (size_t)n < sizeof errbuf)
        snprintf(errbuf + n, sizeof errbuf - n, ": %s", strerror(saved));
    errno = saved;
    return -1;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("psc-helper: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(125);
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; len -= (size_t)w;
    }
    return 0;
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return fail("open %s", path);
    int rc = write_all(fd, text, strlen(text));
    if (rc < 0) fail("write %s", path);
    close(fd);
    return rc;
}

/* ---- spec parsing ------------------------------------------------------------------------ */

/* The spec comes on stdin as "<length>\n<bytes>", so that stdin stays open afterwards (the start
 * handshake, or the input of an exec'd program); or from a file named on the command line
 * (deleted once read) when stdin must stay the caller's terminal (interactive attach). */
static char *slurp_spec(const char *file, size_t *len) {
    if (file) {
        int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) die("open spec %s: %s", file, strerror(errno));
        unlink(file);
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > (1 << 24)) die("spec file %s: bad size", file);
        char *buf = malloc((size_t)st.st_size);
        if (!buf) die("out of memory");
        size_t n = 0;
        while (n < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
            if (r <= 0) { if (r < 0 && errno == EINTR) continue; die("read spec %s: %s", file, r ? strerror(errno) : "short"); }
            n += (size_t)r;
        }
        close(fd);
        *len = n;
        return buf;
    }
    /* Byte by byte up to the newline: nothing beyond the spec may be consumed from stdin. */
    size_t want = 0;
    for (int digits = 0;; digits++) {
        char c;
        ssize_t r = read(0, &c, 1);
        if (r < 0 && errno == EINTR) { digits--; continue; }
        if (r != 1) die("read spec length: %s", r ? strerror(errno) : "end of input");
        if (c == '\n' && digits > 0) break;
        if (c < '0' || c > '9' || digits > 8) die("spec must start with its length and a newline");
        want = want * 10 + (size_t)(c - '0');
    }
    char *buf = malloc(want ? want : 1);
    if (!buf) die("out of memory");
    size_t n = 0;
    while (n < want) {
        ssize_t r = read(0, buf + n, want - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("read spec: %s", r ? strerror(errno) : "end of input");
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

/* The seccomp program comes as hex of struct sock_filter[] in little-endian byte order (what the
 * C# compiler emits; x86_64 and aarch64 are both little-endian, so the bytes are the structs). */
static void parse_seccomp_hex(struct spec *s, const char *hex) {
    size_t n = strlen(hex);
    if (n == 0 || n % (2 * sizeof(struct sock_filter)) || n / (2 * sizeof(struct sock_filter)) > BPF_MAXINSNS)
        die("spec: seccomp program must be 1..%d instructions of %zu bytes", BPF_MAXINSNS, sizeof(struct sock_filter));
    unsigned char *bytes = malloc(n / 2);
    if (!bytes) die("out of memory");
    for (size_t i = 0; i < n / 2; i++) {
        unsigned int b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1) die("spec: seccomp program is not hex");
        bytes[i] = (unsigned char)b;
    }
    s->filter = (struct sock_filter *)bytes;
    s->filter_len = (unsigned short)(n / (2 * sizeof(struct sock_filter)));
}

static void parse_spec(struct spec *s, const char *file) {
    size_t len;
    char *buf = slurp_spec(file, &len);
    if (len == 0 || buf[len - 1] != '\0') die("spec must be NUL-terminated strings");
    const char *strs[MAX_ITEMS * 8];
    int n = 0;
    for (size_t off = 0; off < len && n < (int)(sizeof strs / sizeof *strs); off += strlen(buf + off) + 1)
        strs[n++] = buf + off;
    memset(s, 0, sizeof *s);
    s->target_pid = -1;
    s->criu_fd = -1;
#define NEED(k) do { if (i + (k) >= n) die("spec: '%s' needs %d value(s)", key, (k)); } while (0)
#define PUSH(arr, cnt, v) do { if ((cnt) >= MAX_ITEMS) die("spec: too many '%s'", key); (arr)[(cnt)++] = (v); } while (0)
    for (int i = 0; i < n; i++) {
        const char *key = strs[i];
        if (!strcmp(key, "mount")) {
            NEED(5);
            if (s->nmounts >= MAX_ITEMS) die("spec: too many mounts");
            struct mount_rec *m = &s->mounts[s->nmounts++];
            m->src = strs[i + 1]; m->dst = strs[i + 2]; m->type = strs[i + 3];
            m->flags = strtoul(strs[i + 4], NULL, 10); m->data = strs[i + 5];
            i += 5;
            continue;
        }
        if (!strcmp(key, "rootmount")) {
            NEED(4);
            if (s->nrootmounts >= 8) die("spec: too many rootmounts");
            struct mount_rec *m = &s->rootmounts[s->nrootmounts++];
            m->src = strs[i + 1]; m->type = strs[i + 2];
            m->flags = strtoul(strs[i + 3], NULL, 10); m->data = strs[i + 4]; m->dst = "";
            i += 4;
            continue;
        }
        if (!strcmp(key, "symlink")) {
            NEED(2);
            if (s->nlinks >= MAX_ITEMS) die("spec: too many symlinks");
            s->links[s->nlinks].target = strs[i + 1];
            s->links[s->nlinks++].path = strs[i + 2];
            i += 2;
            continue;
        }
        NEED(1);
        const char *v = strs[++i];
        if (!strcmp(key, "flags")) s->clone_flags = strtoul(v, NULL, 10);
        else if (!strcmp(key, "rootfs")) s->rootfs = v;
        else if (!strcmp(key, "hostname")) s->hostname = v;
        else if (!strcmp(key, "cwd")) s->cwd = v;
        else if (!strcmp(key, "console")) s->console_log = v;
        else if (!strcmp(key, "exitfile")) s->exit_file = v;
        else if (!strcmp(key, "runrecord")) s->run_record = v;
        else if (!strcmp(key, "imagesdir")) s->images_dir = v;
        else if (!strcmp(key, "logmax")) s->log_max = strtol(v, NULL, 10);
        else if (!strcmp(key, "pause")) s->pause = !strcmp(v, "1");
        else if (!strcmp(key, "arg")) PUSH(s->args, s->nargs, v);
        else if (!strcmp(key, "env")) PUSH(s->envs, s->nenvs, v);
        else if (!strcmp(key, "cgroup")) PUSH(s->cgroups, s->ncgroups, v);
        else if (!strcmp(key, "cgdir")) PUSH(s->cgdirs, s->ncgdirs, v);
        else if (!strcmp(key, "ns")) { if (s->nns >= 16) die("spec: too many ns"); s->nsnames[s->nns++] = v; }
        else if (!strcmp(key, "pid")) s->target_pid = atoi(v);
        else if (!strcmp(key, "uidmap")) s->uid_map = v;
        else if (!strcmp(key, "cgroupv2")) s->cgroup_v2 = v;
        else if (!strcmp(key, "gidmap")) s->gid_map = v;
        else if (!strcmp(key, "netns")) s->netns = v;
        else if (!strcmp(key, "etcdir")) s->etcdir = v;
        else if (!strcmp(key, "capdrop")) { s->cap_drop = strtoull(v, NULL, 10); s->has_cap_drop = 1; }
        else if (!strcmp(key, "nonewprivs")) s->no_new_privs = !strcmp(v, "1");
        else if (!strcmp(key, "seccomp")) parse_seccomp_hex(s, v);
        else if (!strcmp(key, "criufd")) s->criu_fd = atoi(v);
        else if (!strcmp(key, "lo-up")) { if (!strcmp(v, "1")) PUSH(s->ups, s->nups, "lo"); }
        else if (!strcmp(key, "link-up")) PUSH(s->ups, s->nups, v);
        else if (!strcmp(key, "owners")) s->owners = v;
        else if (!strcmp(key, "callerid")) s->caller_id = strtoul(v, NULL, 10);
        else if (!strcmp(key, "tty")) s->terminal = !strcmp(v, "1");
        else die("spec: unknown key '%s'", key);
    }
    if (s->nargs == 0) die("spec: no program to run");
    s->args[s->nargs] = NULL;
    s->envs[s->nenvs] = NULL;
}

/* ---- safe paths inside the rootfs -------------------------------------------------------- */

/* Open `path` as if `rootfd` were "/": symlinks and ".." can never leave the root. */
static int open_in_root(int rootfd, const char *path, int flags) {
    struct open_how how = { .flags = (uint64_t)flags | O_CLOEXEC,
                            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

/* mkdir -p of `path` inside the root, then open it (O_PATH). With PSC_FILE, the last component
 * is created as an empty file (a bind-mount target for a device node or the console). */
static int make_in_root(int rootfd, const char *path, int as_file) {
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
    strcpy(buf, path);
    for (char *p = buf + 1; ; p++) {
        int last = (*p == '\0');
        if (*p == '/' || last) {
            char saved = *p;
            *p = '\0';
            int fd = open_in_root(rootfd, buf, O_PATH);
            if (fd < 0 && errno == ENOENT) {
                /* Create the missing component inside its (safely opened) parent. */
                char *slash = strrchr(buf, '/');
                int parent = slash == buf || !slash ? dup(rootfd)
                           : (*slash = '\0', open_in_root(rootfd, buf, O_PATH | O_DIRECTORY));
                if (slash && slash != buf) *slash = '/';
                if (parent < 0) return -1;
                const char *leaf = slash ? slash + 1 : buf;
                int rc = (last && as_file)
                    ? (fd = openat(parent, leaf, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0 ? -1 : close(fd)
                    : mkdirat(parent, leaf, 0755);
                if (rc < 0 && errno == EEXIST) {
                    /* It exists but does not resolve: a symlink leading nowhere inside the root.
                     * We never create through it (its target may name a host path). */
                    char link[PATH_MAX];
                    ssize_t n = readlinkat(parent, leaf, link, sizeof link - 1);
                    close(parent);
                    if (n >= 0) {
                        link[n] = '\0';
                        errno = 0;
                        fail("%s is a symlink to %s, which does not exist inside the container", buf, link);
                        errno = ENOENT;
                        return -2;
                    }
                    errno = ENOENT;
                    return -1;
                }
                close(parent);
                if (rc < 0) return -1;
                fd = open_in_root(rootfd, buf, O_PATH);
            }
            *p = saved;
            if (fd < 0) return -1;
            if (last) return fd;
            close(fd);
        }
    }
}

static int mount_at_fd(const char *src, int fd, const char *type, unsigned long flags, const char *data) {
    char target[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    return mount(src, target, type, flags, data);
}

/* Masked paths (/proc/kcore, /sys/firmware, ...): a file is covered by /dev/null, a directory by an
 * empty read-only tmpfs. A path this kernel does not have needs no mask. */
static int mask_path(int rootfd, const char *path) {
    int fd = open_in_root(rootfd, path, O_PATH);
    if (fd < 0) return errno == ENOENT ? 0 : fail("mask %s", path);
    struct stat st;
    int rc = fstat(fd, &st);
    if (rc == 0)
        rc = S_ISDIR(st.st_mode)
            ? mount_at_fd("tmpfs", fd, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555")
            : mount_at_fd("/dev/null", fd, NULL, MS_BIND, NULL);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc < 0 ? fail("mask %s", path) : 0;
}

static int do_mounts(const struct spec *s, int rootfd, const char *console_path) {
    for (int i = 0; i < s->nmounts; i++) {
        const struct mount_rec *m = &s->mounts[i];
        if (m->flags & PSC_MASK) {
            if (mask_path(rootfd, m->dst) < 0) return -1;
            continue;
        }
        unsigned long kflags = m->flags & 0xFFFFFFFFUL;
        const char *src = m->src;
        char srcbuf[64];
        int srcfd = -1;
        if (m->flags & PSC_CONSOLE) {
            if (!console_path) continue; /* no console was asked for: /dev/console stays absent */
            src = console_path;
        } else if (m->flags & PSC_SRC_IN_ROOT) {
            srcfd = open_in_root(rootfd, m->src, O_PATH);
            if (srcfd < 0) {
                if (errno == ENOENT && (m->flags & PSC_OPTIONAL)) continue;
                return fail("mount %s: open source in rootfs", m->dst);
            }
            snprintf(srcbuf, sizeof srcbuf, "/proc/self/fd/%d", srcfd);
            src = srcbuf;
        } else if ((m->flags & PSC_OPTIONAL) && src[0] == '/' && access(src, F_OK) != 0) {
            continue;
        }
        int tfd = make_in_root(rootfd, m->dst, (m->flags & (PSC_FILE | PSC_CONSOLE)) != 0);
        if (tfd < 0) {
            if (srcfd >= 0) close(srcfd);
            if (tfd == -2) { char why[sizeof errbuf]; snprintf(why, sizeof why, "%s", errbuf); errno = 0; return fail("mount target %s: %s", m->dst, why); }
            return fail("mount target %s", m->dst);
        }
        unsigned long first = (kflags & MS_BIND) ? (kflags & ~(unsigned long)MS_RDONLY) : kflags;
        int rc = mount_at_fd(src, tfd, m->type[0] ? m->type : NULL, first, m->data[0] ? m->data : NULL);
        if (rc == 0 && (kflags & MS_BIND) && (kflags & MS_RDONLY)) {
            /* A bind mount ignores MS_RDONLY: remount it read-only (on the new mount, via a fresh fd). */
            close(tfd);
            tfd = open_in_root(rootfd, m->dst, O_PATH);
            rc = tfd < 0 ? -1 : mount_at_fd(NULL, tfd, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | (kflags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)), NULL);
            if (rc == 0 && (kflags & MS_REC)) {
                /* MS_REMOUNT ignores MS_REC: the mounts below the bind (a host submount) would stay
                 * writable. mount_setattr(AT_RECURSIVE) makes the whole tree read-only. No fallback:
                 * a kernel without it (before 5.12) fails the start rather than leave a writable
                 * submount behind a read-only mount. */
                struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
                if (kflags & MS_NOSUID) attr.attr_set |= MOUNT_ATTR_NOSUID;
                if (kflags & MS_NODEV) attr.attr_set |= MOUNT_ATTR_NODEV;
                if (kflags & MS_NOEXEC) attr.attr_set |= MOUNT_ATTR_NOEXEC;
                rc = (int)syscall(SYS_mount_setattr, tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
                if (rc < 0 && errno == ENOSYS) { errno = 0; return fail("mount %s on %s: a recursive read-only bind needs mount_setattr (Linux 5.12 or later)", m->src, m->dst); }
            }
        }
        int saved = errno;
        if (tfd >= 0) close(tfd);
        if (srcfd >= 0) close(srcfd);
        errno = saved;
        if (rc < 0) return fail("mount %s on %s (%s)", m->src, m->dst, m->type[0] ? m->type : "bind");
    }
    for (int i = 0; i < s->nlinks; i++) {
        const char *path = s->links[i].path;
        const char *slash = strrchr(path, '/');
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 0, path);
        int dfd = dir[0] ? open_in_root(rootfd, dir, O_PATH | O_DIRECTORY) : dup(rootfd);
        if (dfd < 0) return fail("symlink %s: open parent", path);
        unlinkat(dfd, slash ? slash + 1 : path, 0);
        int rc = symlinkat(s->links[i].target, dfd, slash ? slash + 1 : path);
        close(dfd);
        if (rc < 0 && errno != EEXIST) return fail("symlink %s -> %s", path, s->links[i].target);
    }
    return 0;
}

/* ---- security: applied last, right before execve (init and exec alike) -------------------- */

/* No descriptor of ours may reach the container (the runc CVE-2024-21626 class): everything above
 * stdio becomes close-on-exec. Not closed outright: init still reports errors on its pipe. */
static int cloexec_inherited_fds(void) {
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return 0;
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < (max > 0 ? max : 1024); fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

/* Removes the capabilities in `mask` from the bounding set (so no later execve, setuid binary or
 * file capability can regain them), the ambient and inheritable sets, and the permitted and
 * effective sets. keep_admin: CAP_SYS_ADMIN stays effective until the seccomp filter is in
 * (installing one needs it without no_new_privs); execve drops it anyway, because it is gone
 * from the bounding and inheritable sets. */
static int drop_capabilities(uint64_t mask, int keep_admin) {
    for (int cap = 0; cap < 64; cap++) {
        int in_bounding = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (in_bounding < 0) break; /* EINVAL: past this kernel's last capability */
        if ((mask >> cap & 1) && in_bounding && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return fail("drop capability %d from the bounding set", cap);
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return fail("clear ambient capabilities");
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0) return fail("capget");
    uint64_t admin = keep_admin ? 1ULL << CAP_SYS_ADMIN : 0;
    for (int i = 0; i < 2; i++) {
        uint32_t drop = (uint32_t)(mask >> (32 * i)), keep = (uint32_t)(admin >> (32 * i));
        data[i].inheritable &= ~drop;
        data[i].permitted &= ~drop | keep;
        data[i].effective &= ~drop | keep;
    }
    if (syscall(SYS_capset, &hdr, data) < 0) return fail("capset");
    return 0;
}

static int install_seccomp(const struct spec *s) {
    struct sock_fprog prog = { s->filter_len, s->filter };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) return fail("install seccomp filter (%u instructions)", s->filter_len);
    return 0;
}

/* Order matters: descriptors, no_new_privs, capabilities, then the filter as the very last step
 * (the filter applies to everything after it, and the helper's own calls are not the policy's business). */
static int apply_security(const struct spec *s) {
    cloexec_inherited_fds();
    if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return fail("set no_new_privs");
    int keep_admin = s->filter_len > 0 && !s->no_new_privs && (s->cap_drop >> CAP_SYS_ADMIN & 1);
    if (s->has_cap_drop && drop_capabilities(s->cap_drop, keep_admin) < 0) return -1;
    if (s->filter_len && install_seccomp(s) < 0) return -1;
    /* Best effort: a profile may deny capset; execve clears CAP_SYS_ADMIN regardless (see above). */
    if (keep_admin) drop_capabilities(s->cap_drop, 0);
    return 0;
}

/* ---- exec: never run from a file the container could rewrite (CVE-2019-5736) -------------- */

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#define PSC_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* Is /proc/self/exe a sealed memory file (we already re-executed)? */
static int running_from_sealed_copy(void) {
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int seals = fcntl(fd, F_GET_SEALS);
    close(fd);
    return seals >= 0 && (seals & PSC_SEALS) == PSC_SEALS;
}

/* exec joins a running container: its processes could see us in /proc and open /proc/PID/exe,
 * and a container whose program is a link to /proc/self/exe even makes us run inside it. So
 * before joining anything we re-execute from a sealed, anonymous copy of ourselves: whatever
 * /proc/PID/exe reaches is that copy, which no one can write, never the helper file on the host. */
static void reexec_from_sealed_copy(char **argv) {
    extern char **environ;
    if (running_from_sealed_copy()) return;
    int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (self < 0) die("open /proc/self/exe: %s", strerror(errno));
    int copy = memfd_create("psc-helper", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (copy < 0 && errno == EINVAL) copy = memfd_create("psc-helper", MFD_CLOEXEC | MFD_ALLOW_SEALING); /* before 6.3 */
    if (copy < 0) die("memfd_create: %s (is vm.memfd_noexec 2?)", strerror(errno));
    struct stat st;
    if (fstat(self, &st) < 0) die("stat /proc/self/exe: %s", strerror(errno));
    for (off_t done = 0; done < st.st_size;) {
        ssize_t n = sendfile(copy, self, NULL, (size_t)(st.st_size - done));
        if (n <= 0) die("copy the helper into memory: %s", n ? strerror(errno) : "short read");
        done += n;
    }
    close(self);
    if (fcntl(copy, F_ADD_SEALS, PSC_SEALS) < 0) die("seal the helper copy: %s", strerror(errno));
    fexecve(copy, argv, environ);
    die("re-execute the sealed helper copy: %s", strerror(errno));
}

/* ---- exec with PATH search in the current root -------------------------------------------- */

static void exec_program(const struct spec *s) {
    const char *prog = s->args[0];
    char *const *argv = (char *const *)s->args;
    char *const *envp = (char *const *)s->envs;
    if (strchr(prog, '/')) { execve(prog, argv, envp); return; }
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (int i = 0; i < s->nenvs; i++)
        if (!strncmp(s->envs[i], "PATH=", 5)) path = s->envs[i] + 5;
    int saved = ENOENT;
    while (*path) {
        const char *end = strchrnul(path, ':');
        char full[PATH_MAX];
        snprintf(full, sizeof full, "%.*s/%s", (int)(end - path), path, prog);
        execve(full, argv, envp);
        if (errno != ENOENT && errno != ENOTDIR) saved = errno;
        path = *end ? end + 1 : end;
    }
    errno = saved;
}

/* ---- processes born in their cgroup ----------------------------------------------------------- */

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

struct clone_args_v2 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* Set in parent and child alike: did fork_into() place the child in the cgroup? */
static int born_in_cgroup;

/* fork() with namespace flags, the child born directly in the cgroup2 directory cgfd when given:
 * clone3(CLONE_INTO_CGROUP) needs no migration, so it never waits for the kernel's global cgroup
 * lock the way a cgroup.procs write does. Falls back to a plain clone on older kernels. */
static pid_t fork_into(int cgfd, unsigned long flags) {
    if (cgfd >= 0) {
        struct clone_args_v2 a;
        memset(&a, 0, sizeof a);
        a.flags = flags | CLONE_INTO_CGROUP;
        a.exit_signal = SIGCHLD;
        a.cgroup = (uint64_t)cgfd;
        born_in_cgroup = 1;
        pid_t pid = (pid_t)syscall(SYS_clone3, &a, sizeof a);
        if (pid >= 0) return pid;
        born_in_cgroup = 0;
        if (errno != ENOSYS && errno != E2BIG && errno != EINVAL) return -1;
    }
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

/* Is `file` the cgroup.procs of the cgroup2 directory we were born into? Then it needs no write. */
static int is_v2_procs(const char *cgroup_v2, const char *file) {
    size_t n = cgroup_v2 ? strlen(cgroup_v2) : 0;
    return born_in_cgroup && n && !strncmp(file, cgroup_v2, n) && !strcmp(file + n, "/cgroup.procs");
}

/* ---- user namespaces ------------------------------------------------------------------------ */

/* Root writes a child's id maps itself. No "deny" to setgroups: that is only required of a writer
 * without CAP_SETGID, and a container whose root cannot setgroups(2) breaks su, login and apt. A
 * non-root caller has newuidmap/newgidmap (setuid, checked against /etc/subuid) write them instead
 * while the child waits (the runtime does that during the pause handshake). */
static int write_id_maps(pid_t pid, const char *uid_map, const char *gid_map) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/uid_map", pid);
    if (write_file(p, uid_map) < 0) return -1;
    snprintf(p, sizeof p, "/proc/%d/gid_map", pid);
    return write_file(p, gid_map ? gid_map : uid_map);
}

/* Become uid/gid 0 of the user namespace we are in (or just joined). Until then our ids are the
 * caller's, unmapped; the capabilities we hold in the namespace survive the switch because the old
 * ids were not its root (see capabilities(7), "Effect of user ID changes on capabilities"). */
static int become_userns_root(void) {
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) return fail("become root in the user namespace");
    if (setgroups(0, NULL) < 0 && errno != EPERM) return fail("drop supplementary groups");
    return 0;
}

/* ioctl(SIOCSIFFLAGS) on lo (and a non-root user's veths, see psc-usernic.c): done by init itself
 * when the runtime cannot reach into the container's network namespace (a non-root caller has no
 * rights there; its user namespace's root has). */
static int link_up(const char *name) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail("socket to bring %s up", name);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (strlen(name) >= sizeof ifr.ifr_name) { close(fd); errno = EINVAL; return fail("interface name %s", name); }
    strcpy(ifr.ifr_name, name);
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) { ifr.ifr_flags |= IFF_UP; rc = ioctl(fd, SIOCSIFFLAGS, &ifr); }
    if (rc < 0) fail("bring %s up", name);
    close(fd);
    return rc;
}

/* ---- start: the container init ------------------------------------------------------------ */

struct child_args { const struct spec *s; int sync_rd; int err_wr; const char *console; };

/* Runs in the new namespaces as the container's pid 1, until execve. Any failure is written to
 * err_wr (close-on-exec: EOF there means the exec succeeded). */
static int container_init(void *arg) {
    struct child_args *c = arg;
    const struct spec *s = c->s;
    char go;
    /* Wait until the supervisor has put us in our cgroups and written the id maps. */
    if (read(c->sync_rd, &go, 1) != 1) { fail("sync with supervisor"); goto out; }
    close(c->sync_rd);
    /* A cgroup namespace rooted at the container's own cgroup: unshared only now, after joining it. */
    if ((s->clone_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0) { fail("unshare cgroup namespace"); goto out; }
    if (setsid() < 0) { fail("setsid"); goto out; }
    if (c->console) {
        int tty = open(c->console, O_RDWR | O_NOCTTY);
        if (tty < 0) { fail("open console %s", c->console); goto out; }
        ioctl(tty, TIOCSCTTY, 0);
        dup2(tty, 0); dup2(tty, 1); dup2(tty, 2);
        if (tty > 2) close(tty);
    }
    if (s->clone_flags & CLONE_NEWNS) {
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) { fail("make mounts private"); goto out; }
        /* Root mounts (an overlay rootfs) live only in this mount namespace: the host never sees them. */
        for (int i = 0; i < s->nrootmounts; i++) {
            const struct mount_rec *m = &s->rootmounts[i];
            if (mount(m->src, s->rootfs, m->type, m->flags, m->data[0] ? m->data : NULL) < 0) {
                fail("mount %s (%s) on %s", m->src, m->type, s->rootfs); goto out;
            }
        }
        if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) { fail("bind rootfs %s", s->rootfs); goto out; }
        int rootfd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0) { fail("open rootfs %s", s->rootfs); goto out; }
        /* In a user namespace, switch ids only now: the host paths above (the store, maybe under a
         * 0700 home) were reached as the caller; what follows is created inside the rootfs and must
         * belong to the container's root, not to an unmapped id. */
        if ((s->clone_flags & CLONE_NEWUSER) && become_userns_root() < 0) goto out;
        if (do_mounts(s, rootfd, c->console) < 0) goto out;
        /* pivot_root(".", "."): the old root ends up stacked on the new one; detach it. Never chroot. */
        if (fchdir(rootfd) < 0) { fail("chdir rootfs"); goto out; }
        close(rootfd);
        if (syscall(SYS_pivot_root, ".", ".") < 0) { fail("pivot_root"); goto out; }
        if (umount2(".", MNT_DETACH) < 0) { fail("detach old root"); goto out; }
        if (chdir("/") < 0) { fail("chdir /"); goto out; }
    } else if ((s->clone_flags & CLONE_NEWUSER) && become_userns_root() < 0) goto out;
    for (int i = 0; i < s->nups; i++) if (link_up(s->ups[i]) < 0) goto out;
    if ((s->clone_flags & CLONE_NEWUTS) && s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0) {
        fail("sethostname %s", s->hostname); goto out;
    }
    if (s->cwd && chdir(s->cwd) < 0) { fail("chdir %s", s->cwd); goto out; }
    /* Signals the supervisor blocked must not stay blocked in init. */
    sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
    if (apply_security(s) < 0) goto out;
    exec_program(s);
    fail("exec %s", s->args[0]);
out:
    write_all(c->err_wr, errbuf, strlen(errbuf));
    return 1;
}

static void write_exit_file(const char *path, int status) {
    char tmp[PATH_MAX], text[128];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
    if (WIFEXITED(status)) snprintf(text, sizeof text, "exited %d %lld\n", WEXITSTATUS(status), (long long)ts.tv_sec);
    else snprintf(text, sizeof text, "signaled %d %lld\n", WTERMSIG(status), (long long)ts.tv_sec);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    /* Atomic (rename) but not fsync'ed: after a power loss the container is stopped anyway. */
    write_all(fd, text, strlen(text));
    close(fd);
    rename(tmp, path);
}

/* Copy what the container wrote to its console into the log, capped: when the log reaches the
 * cap it is restarted (the previous one kept as .1), like logrotate's copytruncate. A full disk
 * (or any failed write) never blocks the container and never loses output silently: the old .1
 * is given up to make room and the log restarted; what still cannot be written is counted, and a
 * marker line saying how many bytes were dropped and why is written as soon as writing works again. */
static unsigned long long console_dropped;
static int console_drop_errno;

static int reopen_console_log(int *logfd, const struct spec *s, int rotate) {
    if (*logfd >= 0) close(*logfd);
    if (rotate) {
        char old[PATH_MAX];
        snprintf(old, sizeof old, "%s.1", s->console_log);
        if (rotate > 1) unlink(old);          /* full disk: the previous log goes first */
        rename(s->console_log, old);
    }
    *logfd = open(s->console_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    return *logfd;
}

static int console_write(int *logfd, const struct spec *s, const char *buf, size_t len) {
    if (*logfd < 0 && reopen_console_log(logfd, s, 0) < 0) return -1;
    if (console_dropped) {
        char marker[160];
        int n = snprintf(marker, sizeof marker, "\r\n[psc-supervise: %llu bytes of console output were dropped: %s]\r\n",
                         console_dropped, strerror(console_drop_errno));
        if (write_all(*logfd, marker, (size_t)n) < 0) return -1;
        console_dropped = 0;
    }
    return write_all(*logfd, buf, len);
}

static void pump_console(int master, int *logfd, const struct spec *s) {
    char buf[8192];
    for (;;) {
        ssize_t r = read(master, buf, sizeof buf);
        if (r <= 0) return;
        if (s->log_max > 0 && *logfd >= 0) {
            struct stat st;
            if (fstat(*logfd, &st) == 0 && st.st_size + r > s->log_max) reopen_console_log(logfd, s, 1);
        }
        if (console_write(logfd, s, buf, (size_t)r) == 0) continue;
        /* ENOSPC, EDQUOT, EFBIG, EIO...: make room (drop .1, restart the log) and try once more. */
        int err = errno;
        if (reopen_console_log(logfd, s, 2) >= 0 && console_write(logfd, s, buf, (size_t)r) == 0) continue;
        /* A partial write may have landed: the marker says at most this much is missing. */
        console_dropped += (unsigned long long)r;
        console_drop_errno = errno ? errno : err;
        if (*logfd >= 0) { close(*logfd); *logfd = -1; }
    }
}

static void remove_cgroups(const struct spec *s) {
    /* rmdir is EBUSY until the kernel has released every task of the cgroup: retry briefly. */
    for (int i = s->ncgdirs - 1; i >= 0; i--)
        for (int attempt = 0; attempt < 200; attempt++) {
            if (rmdir(s->cgdirs[i]) == 0 || errno == ENOENT) break;
            usleep(5000);
        }
}

/* Field 22 of /proc/PID/stat: the start time in clock ticks since boot (with the pid, it names one
 * process for good: a recycled pid has another start time). 0 if unreadable. */
static unsigned long long proc_start_time(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');   /* the command name may hold spaces and parentheses */
    if (!p) return 0;
    unsigned long long start = 0;
    /* after ")": " state(3) ppid(4) ...": stop on the space before starttime(22) */
    for (int field = 3; field <= 22 && p; field++) p = strchr(p + 1, ' ');
    if (p) start = strtoull(p + 1, NULL, 10);
    return start;
}

/* The supervisor's own record, "<supervisor> <start> <init> <start> <phase> <unix-time>", written
 * atomically into the container's directory before init is released ("paused": set-up still
 * going on; "released": init was let go). With it the runtime always finds what it started, even
 * when the pwsh that started it was killed before it recorded anything (Runtime: RunRecord).
 * Not fsync'ed, like the exit record: after a power loss nothing it names runs anyway. A full disk
 * fails the start here, before init runs, rather than leaving a container nobody recorded. */
static int write_run_record(const struct spec *s, pid_t init, const char *phase) {
    if (!s->run_record) return 0;
    char tmp[PATH_MAX], text[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->run_record);
    snprintf(text, sizeof text, "%d %llu %d %llu %s %lld\n", (int)getpid(), proc_start_time(getpid()),
             (int)init, proc_start_time(init), phase, (long long)time(NULL));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return fail("write run record %s", tmp);
    if (write_all(fd, text, strlen(text)) < 0) { int e = errno; close(fd); unlink(tmp); errno = e; return fail("write run record %s", tmp); }
    if (close(fd) < 0 || rename(tmp, s->run_record) < 0) { int e = errno; unlink(tmp); errno = e; return fail("write run record %s", s->run_record); }
    return 0;
}

/* The supervisor: parent of init. Reports to the launcher through report_fd, then lives as long
 * as init does. */
/* The console: a pty whose master the supervisor copies to the log. Returns the slave's fd. */
static int open_console(const struct spec *s, int *master, int *logfd, char *console_path, size_t size) {
    *master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (*master < 0 || grantpt(*master) < 0 || unlockpt(*master) < 0) return fail("allocate console pty");
    if (ptsname_r(*master, console_path, size) != 0) return fail("ptsname");
    /* Hold the slave open ourselves, so the master never sees a hangup while init reopens it. */
    int slave = open(console_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) return fail("open console %s", console_path);
    *logfd = open(s->console_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (*logfd < 0) return fail("open console log %s", s->console_log);
    return slave;
}

/* Lives as long as init does: pumps the console, then removes the cgroups and records the exit. */
static void watch_init(const struct spec *s, pid_t child, int master, int logfd, sigset_t *mask) {
    int sfd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
    struct pollfd pfds[2] = { { sfd, POLLIN, 0 }, { master, POLLIN, 0 } };
    int status = 0;
    for (;;) {
        int rc = poll(pfds, master >= 0 ? 2 : 1, -1);
        if (rc < 0 && errno != EINTR) break;
        if (master >= 0 && (pfds[1].revents & POLLIN)) pump_console(master, &logfd, s);
        if (pfds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {}
            pid_t w = waitpid(child, &status, WNOHANG);
            if (w == child) break;
        }
    }
    if (master >= 0) pump_console(master, &logfd, s);
    remove_cgroups(s);
    if (s->exit_file) write_exit_file(s->exit_file, status);
}

static int supervise(const struct spec *s, int report_fd, int ctl_fd) {
    int master = -1, logfd = -1;
    char console_path[64] = "";
    if (s->console_log && open_console(s, &master, &logfd, console_path, sizeof console_path) < 0) return -1;
    int sync_pipe[2], err_pipe[2];
    if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) return fail("pipe");

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    struct child_args ca = { s, sync_pipe[0], err_pipe[1], s->console_log ? console_path : NULL };
    int cgfd = s->cgroup_v2 ? open(s->cgroup_v2, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    if (s->cgroup_v2 && cgfd < 0) return fail("open cgroup %s", s->cgroup_v2);
    pid_t child = fork_into(cgfd, s->clone_flags & ~(unsigned long)CLONE_NEWCGROUP);
    if (child == 0) _exit(container_init(&ca));
    if (child < 0) return fail("clone (namespaces 0x%lx)", s->clone_flags);
    if (cgfd >= 0) close(cgfd);
    close(sync_pipe[0]);
    close(err_pipe[1]);

    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "%d\n", child);
    for (int i = 0; i < s->ncgroups; i++)
        if (!is_v2_procs(s->cgroup_v2, s->cgroups[i]) && write_file(s->cgroups[i], pidtext) < 0) goto kill_child;
    if (s->uid_map && write_id_maps(child, s->uid_map, s->gid_map) < 0) goto kill_child;
    /* Recorded before anything else can happen to init: a caller killed from here on leaves a
     * record the next command finds (and undoes, or completes once init was released). */
    if (write_run_record(s, child, "paused") < 0) goto kill_child;
    if (s->pause) {
        /* The caller configures what needs the new namespaces (network) before init goes on. */
        char msg[64], answer[16] = "";
        snprintf(msg, sizeof msg, "paused %d %d\n", getpid(), child);
        write_all(report_fd, msg, strlen(msg));
        ssize_t n = 0, got = 0;
        while (got < (ssize_t)sizeof answer - 1 && (n = read(ctl_fd, answer + got, 1)) == 1 && answer[got] != '\n') got++;
        answer[got] = '\0';
        if (strcmp(answer, "go")) { errno = 0; fail("start aborted by the caller"); goto kill_child; }
    }
    close(ctl_fd);
    if (write_run_record(s, child, "released") < 0) goto kill_child;
    if (write(sync_pipe[1], "g", 1) != 1) { fail("release init"); goto kill_child; }
    close(sync_pipe[1]);

    /* EOF on the error pipe: init exec'd (or died without a word). */
    char cerr[sizeof errbuf];
    ssize_t n, got = 0;
    while ((n = read(err_pipe[0], cerr + got, sizeof cerr - 1 - (size_t)got)) > 0) got += n;
    close(err_pipe[0]);
    if (got > 0) {
        cerr[got] = '\0';
        snprintf(errbuf, sizeof errbuf, "%s", cerr);
        waitpid(child, NULL, 0);
        goto undo;
    }

    char ok[64];
    snprintf(ok, sizeof ok, "ok %d %d\n", getpid(), child);
    write_all(report_fd, ok, strlen(ok));
    close(report_fd);
    watch_init(s, child, master, logfd, &mask);
    return 0;

kill_child:
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
undo:
    /* Nothing of this start survives it: not the cgroups (the caller may be gone), not our record. */
    remove_cgroups(s);
    if (s->run_record) unlink(s->run_record);
    return -1;
}

/* ---- restore: the supervisor runs criu, which restores init as the supervisor's child --------- */

/* waitpid with a deadline: 0 when pid was reaped, 1 when it still runs after ms milliseconds. */
static int wait_bounded(pid_t pid, int ms) {
    for (int waited = 0;; waited += 10) {
        pid_t w = waitpid(pid, NULL, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD)) return 0;
        if (waited >= ms) return 1;
        usleep(10000);
    }
}

/* SIGKILL to every pid listed in a file of pids (cgroup.procs, /proc/.../children); how many. */
static int kill_listed(const char *path) {
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    int n = 0;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1)
        if (pid > 0 && pid != getpid() && kill((pid_t)pid, SIGKILL) == 0) n++;
    fclose(f);
    return n;
}

/* The empty directories of CRIU's cgroup yards (.criu.cgyard.*) a killed criu left in the images
 * directory: its mounts on them died with its mount namespace (see supervise_restore). */
static void remove_yards(const struct spec *s) {
    if (!s->images_dir) return;
    DIR *d = opendir(s->images_dir);
    if (!d) return;
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, ".criu.cgyard.", 13)) unlinkat(dfd, e->d_name, AT_REMOVEDIR);
    closedir(d);
}

/* A restore that is given up (the caller's timeout, an abort, criu failing): criu and the whole
 * tree it restored must go, also tasks still looping in CRIU's restorer. They are our children
 * (rst_sibling) and members of the container's cgroups: kill both until none is left, reaping as
 * we go, for at most ~5 s (a task stuck in the kernel is left to the caller's cgroup kill). */
static void kill_restore(const struct spec *s, pid_t criu) {
    if (criu > 0) kill(criu, SIGKILL);
    char children[64], procs[PATH_MAX];
    snprintf(children, sizeof children, "/proc/self/task/%d/children", (int)getpid());
    for (int round = 0; round < 250; round++) {
        int found = kill_listed(children);
        for (int i = 0; i < s->ncgdirs; i++) {
            snprintf(procs, sizeof procs, "%s/cgroup.procs", s->cgdirs[i]);
            found += kill_listed(procs);
        }
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
        if (!found) break;
        usleep(20000);
    }
}

/* Restore (Runtime/Checkpoint): the caller speaks CRIU's RPC on its end of a socketpair; the other
 * end came to us as criu_fd. We run `criu swrk 3` with that socket as fd 3 and a fresh console
 * pty slave as fd 4 (the caller maps the checkpoint's console onto it with inherit_fd), and report
 * "paused <supervisor> <criu> <pty>". The caller asks for rst_sibling, so criu creates the restored
 * init with CLONE_PARENT: it becomes OUR child, and we supervise it exactly like a started one once
 * the caller answers "go <init-pid>" ("abort" kills whatever was restored). */
static int supervise_restore(const struct spec *s, int report_fd, int ctl_fd) {
    int master = -1, logfd = -1, slave = -1;
    char console_path[64] = "";
    if (s->console_log && (slave = open_console(s, &master, &logfd, console_path, sizeof console_path)) < 0) return -1;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    pid_t criu = fork();
    if (criu < 0) return fail("fork criu");
    if (criu == 0) {
        /* dup2 clears close-on-exec: exactly fds 0-2 (/dev/null), 3 and 4 reach criu. */
        if (dup2(s->criu_fd, 3) < 0 || (slave >= 0 && dup2(slave, 4) < 0)) _exit(126);
        /* criu mounts its cgroup yard (.criu.cgyard.*, every hierarchy) in the images directory and
         * unmounts it only when it ends normally. In a mount namespace of its own (the host's mounts
         * still reach it, its own never leave it) those mounts die with criu however it ends, and
         * nothing is left to delete into. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) _exit(126);
        sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
        exec_program(s);
        _exit(127);
    }
    close(s->criu_fd);
    char msg[128];
    snprintf(msg, sizeof msg, "paused %d %d %s\n", getpid(), criu, console_path[0] ? console_path : "-");
    write_all(report_fd, msg, strlen(msg));
    char answer[32] = "";
    ssize_t n = 0, got = 0;
    while (got < (ssize_t)sizeof answer - 1 && (n = read(ctl_fd, answer + got, 1)) == 1 && answer[got] != '\n') got++;
    answer[got] = '\0';
    close(ctl_fd);
    pid_t init = strncmp(answer, "go ", 3) ? 0 : (pid_t)atoi(answer + 3);
    /* After "go" the caller has closed its end of the socket and criu exits by itself (it may
     * still be unlocking the network: 30 s at most); after anything else (an abort, the caller
     * gone) neither criu nor anything it restored may outlive the restore. */
    int criu_stuck = init > 0 ? wait_bounded(criu, 30000) : 1;
    /* waitpid(WNOHANG) == 0: init is alive and our child (rst_sibling worked). */
    if (init <= 0 || criu_stuck || waitpid(init, NULL, WNOHANG) != 0) {
        kill_restore(s, criu);
        remove_cgroups(s);
        remove_yards(s);
        errno = 0;
        return fail(init <= 0 ? "restore aborted by the caller" : criu_stuck ? "criu did not exit after restoring init %d" : "restored init %d is not a child of the supervisor", init);
    }
    write_run_record(s, init, "released");   /* best effort: the restored init already runs */
    char ok[64];
    snprintf(ok, sizeof ok, "ok %d %d\n", getpid(), init);
    write_all(report_fd, ok, strlen(ok));
    close(report_fd);
    watch_init(s, init, master, logfd, &mask);
    return 0;
}

static int cmd_start(const char *file, int restore) {
    struct spec s;
    parse_spec(&s, file);
    if (restore && s.criu_fd < 3) die("spec: criufd missing");
    if (!restore && !s.rootfs && (s.clone_flags & CLONE_NEWNS)) die("spec: rootfs missing");
    int report[2], ctl[2];
    if (pipe2(report, O_CLOEXEC) < 0 || pipe2(ctl, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        /* Detach from the caller (the container outlives the pwsh that started it). */
        close(report[0]);
        close(ctl[1]);
        if (setsid() < 0) _exit(1);
        pid_t again = fork();
        if (again < 0) _exit(1);
        if (again > 0) _exit(0);
        prctl(PR_SET_NAME, "psc-supervise");
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0); dup2(devnull, 1); dup2(devnull, 2);
        if (devnull > 2) close(devnull);
        /* Close everything the caller may have leaked to us, except our two pipes. */
        for (int fd = 3; fd < 1024; fd++) if (fd != report[1] && fd != ctl[0] && fd != s.criu_fd) close(fd);
        if (chdir("/") < 0) _exit(1);
        if ((restore ? supervise_restore : supervise)(&s, report[1], ctl[0]) < 0) {
            char msg[sizeof errbuf + 8];
            snprintf(msg, sizeof msg, "err %s\n", errbuf);
            write_all(report[1], msg, strlen(msg));
            _exit(1);
        }
        _exit(0);
    }
    close(report[1]);
    close(ctl[0]);
    if (restore) close(s.criu_fd);
    waitpid(pid, NULL, 0);
    /* Relay the supervisor's report line by line: "paused ..." (answered from our stdin), then
     * "ok <supervisor> <init>" or "err <message>". */
    char line[sizeof errbuf + 64];
    size_t got = 0;
    for (;;) {
        char c;
        ssize_t r = read(report[0], &c, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r != 1) break;
        if (c != '\n' && got < sizeof line - 1) { line[got++] = c; continue; }
        line[got] = '\0';
        got = 0;
        if (!strncmp(line, "paused ", 7)) {
            printf("%s\n", line);
            fflush(stdout);
            char answer[32];
            if (!fgets(answer, sizeof answer, stdin)) strcpy(answer, "abort\n");
            write_all(ctl[1], answer, strlen(answer));
            continue;
        }
        if (!strncmp(line, "ok ", 3)) { printf("%s\n", line + 3); return 0; }
        if (!strncmp(line, "err ", 4)) { fprintf(stderr, "%s\n", line + 4); return 1; }
    }
    fputs("supervisor died before the container started\n", stderr);
    return 1;
}

/* ---- exec: join a running container ------------------------------------------------------ */
/*
 * Three processes, staged so that nothing the container can see or reach holds more than the
 * container's own privileges (runc's nsexec and lxc-attach order it the same way; the runc
 * CVE-2016-9962 and lxc-attach CVE-2016-8649 class):
 *
 *   relay    (the process the caller started; never joins a namespace) forks the stager born in
 *            the container's cgroup2 directory, then relays: the stager's status, and for an
 *            interactive attach the caller's terminal to and from a pty master (raw mode, window
 *            size, terminal state restored on every way out).
 *   stager   joins the cgroups (before the cgroup namespace: see attach_join_cgroups) and the
 *            namespaces, switches ids, opens the pty in the container's devpts and hands the master
 *            to the relay, then bounds and drops capabilities, sets no_new_privs, closes every
 *            descriptor but stdio, installs seccomp, and only then forks into the pid namespace.
 *            It is not in the container's pid namespace, so nothing inside can name it.
 *   command  the first process visible in the container: already constrained and non-dumpable
 *            (its mm belongs to the host's user namespace, so no one in a user-namespaced
 *            container may ptrace it; execve of a readable program makes it dumpable again). It
 *            only calls setsid (its own session: kill(0) and the terminal's signals reach nothing
 *            outside), TIOCSCTTY on the pty slave, and execve.
 */

struct attach_plan {
    struct spec s;
    int nsfds[16];
    int interactive;   /* spec "tty": a new pty in the container, relayed to the caller's terminal */
    int joined_user;
};

/* Messages from stager to relay on a SOCK_SEQPACKET pair: "pty" (with the master as SCM_RIGHTS),
 * then "ok" once everything is in place, or "err <text>" instead. */
static int attach_send(int sock, const char *msg, int fd) {
    struct iovec iov = { (void *)msg, strlen(msg) };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        memset(&u, 0, sizeof u);
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof u.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    while (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0) if (errno != EINTR) return -1;
    return 0;
}

/* One message; *fd receives a passed descriptor (or -1). Returns its length, 0 at EOF, -1 on error. */
static ssize_t attach_recv(int sock, char *buf, size_t size, int *fd) {
    struct iovec iov = { buf, size - 1 };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    *fd = -1;
    ssize_t n;
    while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0) if (errno != EINTR) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int)))
            memcpy(fd, CMSG_DATA(c), sizeof(int));
    buf[n] = '\0';
    return n;
}

/* Stager failure: report to the relay and end. */
__attribute__((noreturn)) static void attach_fail(int sock) {
    char msg[sizeof errbuf + 8];
    snprintf(msg, sizeof msg, "err %s", errbuf);
    attach_send(sock, msg, -1);
    _exit(125);
}

/* Opens the container's namespaces by the init's pid, from the host's /proc. */
static void attach_open_namespaces(struct attach_plan *a) {
    for (int i = 0; i < a->s.nns; i++) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/ns/%s", a->s.target_pid, a->s.nsnames[i]);
        a->nsfds[i] = open(p, O_RDONLY | O_CLOEXEC);
        if (a->nsfds[i] < 0) die("open %s: %s", p, strerror(errno));
        a->joined_user |= !strcmp(a->s.nsnames[i], "user");
    }
}

/* The cgroups, before any namespace: cgroup.procs is written while we are still in the host's
 * cgroup namespace. With nsdelegate (systemd mounts cgroup2 so), the kernel refuses a migration by
 * a writer whose cgroup namespace root is not an ancestor of both cgroups (ENOENT), which it would
 * be once we joined the container's. The cgroup2 directory the stager was born into needs no write. */
static int attach_join_cgroups(const struct spec *s) {
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "%d\n", getpid());
    for (int i = 0; i < s->ncgroups; i++)
        if (!is_v2_procs(s->cgroup_v2, s->cgroups[i]) && write_file(s->cgroups[i], pidtext) < 0) return -1;
    if (s->cgroup_v2 && !born_in_cgroup) {
        char procs[PATH_MAX];
        snprintf(procs, sizeof procs, "%s/cgroup.procs", s->cgroup_v2);
        if (write_file(procs, pidtext) < 0) return -1;
    }
    return 0;
}

/* The user namespace first (it grants the rights the others need), then the rest, pid included
 * (which applies to our children only). */
static int attach_join_namespaces(struct attach_plan *a) {
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < a->s.nns; i++) {
            int is_user = !strcmp(a->s.nsnames[i], "user");
            if ((pass == 0) != is_user) continue;
            if (setns(a->nsfds[i], 0) < 0) return fail("join %s namespace of pid %d", a->s.nsnames[i], a->s.target_pid);
            close(a->nsfds[i]);
            a->nsfds[i] = -1;
            /* Never stay in a host directory (CVE-2024-21626): the command's cwd is resolved from here. */
            if (!strcmp(a->s.nsnames[i], "mnt") && chdir("/") < 0) return fail("chdir / in the container");
        }
    return 0;
}

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#define DEVPTS_MAJOR 5
#define PTMX_MINOR 2

/* Is fd a pty master (a ptmx clone)? */
static int is_pty_master(int fd) {
    struct stat st;
    unsigned int n;
    return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == DEVPTS_MAJOR
        && minor(st.st_rdev) == PTMX_MINOR && ioctl(fd, TIOCGPTN, &n) == 0;
}

/* A new pty in the devpts of the mount namespace we are in (the container's own instance, so
 * `tty` names the slave there): /dev/pts/ptmx without following links the container may have
 * planted. The slave is opened through the master (TIOCGPTPEER), never by a path. */
static int attach_open_pty(int *master, int *slave) {
    struct open_how how = { .flags = O_RDWR | O_NOCTTY | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
    *master = (int)syscall(SYS_openat2, AT_FDCWD, "/dev/pts/ptmx", &how, sizeof how);
    if (*master < 0) return fail("open /dev/pts/ptmx in the container");
    if (!is_pty_master(*master)) { errno = ENOTTY; return fail("/dev/pts/ptmx in the container is not a pty multiplexer"); }
    int unlock = 0;
    if (ioctl(*master, TIOCSPTLCK, &unlock) < 0) return fail("unlock the pty");
    *slave = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*slave < 0) return fail("open the pty slave");
    return 0;
}

/* Everything but stdio and `keep` is closed: no host descriptor reaches the container. */
static void close_all_but(int keep) {
    if (keep > 3) syscall(SYS_close_range, 3, keep - 1, 0);
    if (syscall(SYS_close_range, keep >= 3 ? keep + 1 : 3, ~0U, 0) == 0) return;
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < (max > 0 ? max : 1024); fd++) if (fd != keep) close(fd);
}

static volatile pid_t forward_to;

/* Termination signals the stager (or the non-interactive relay) receives go to its child. */
static void forward_signal(int sig) {
    int saved = errno;
    if (forward_to > 0) kill(forward_to, sig);
    errno = saved;
}

static const int forwarded_signals[] = { SIGTERM, SIGHUP, SIGINT, SIGQUIT };

static void install_forwarding(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++) sigaction(forwarded_signals[i], &sa, NULL);
}

/* Waits for pid; its exit code, or 128+signal. */
static int wait_status(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) if (errno != EINTR) return 125;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The stager (see above). Never returns. */
static void attach_stage(struct attach_plan *a, int sock) {
    const struct spec *s = &a->s;
    /* Out of the caller's process group: the terminal's signals reach the caller and the relay only. */
    setpgid(0, 0);
    if (attach_join_cgroups(s) < 0) attach_fail(sock);
    if (attach_join_namespaces(a) < 0) attach_fail(sock);
    /* In a container's user namespace our ids are unmapped: act as its root, as init does. */
    if (a->joined_user && become_userns_root() < 0) attach_fail(sock);
    /* An id change resets dumpability to fs.suid_dumpable: say it again. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) { fail("set non-dumpable"); attach_fail(sock); }
    if (s->cwd && chdir(s->cwd) < 0 && chdir("/") < 0) { fail("chdir %s", s->cwd); attach_fail(sock); }
    if (a->interactive) {
        int master = -1, slave = -1;
        if (attach_open_pty(&master, &slave) < 0) attach_fail(sock);
        if (attach_send(sock, "pty", master) < 0) { fail("hand the pty to the relay"); attach_fail(sock); }
        close(master);
        /* The caller's terminal is replaced, never passed on. */
        if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0) { fail("dup2 the pty slave"); attach_fail(sock); }
        close(slave);
    }
    /* Dies with the relay (set after the id switch, which clears it); forwards what it is sent. */
    install_forwarding();
    prctl(PR_SET_PDEATHSIG, SIGHUP, 0, 0, 0);
    sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
    close_all_but(sock);
    if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) { fail("set no_new_privs"); attach_fail(sock); }
    int keep_admin = s->filter_len > 0 && !s->no_new_privs && (s->cap_drop >> CAP_SYS_ADMIN & 1);
    if (s->has_cap_drop && drop_capabilities(s->cap_drop, keep_admin) < 0) attach_fail(sock);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) { fail("set non-dumpable"); attach_fail(sock); }
    if (s->filter_len && install_seccomp(s) < 0) attach_fail(sock);
    if (keep_admin) drop_capabilities(s->cap_drop, 0);
    /* From here on, under the container's filter: write, close, clone, wait4, kill, exit. */
    if (attach_send(sock, "ok", -1) < 0) _exit(125);
    close(sock);
    pid_t child = fork_into(-1, 0);
    if (child < 0) { fprintf(stderr, "psc-helper: fork into the container: %s\n", strerror(errno)); _exit(125); }
    if (child == 0) {
        setsid();
        if (a->interactive && ioctl(0, TIOCSCTTY, 0) < 0) { fprintf(stderr, "psc-helper: make the pty the controlling terminal: %s\n", strerror(errno)); _exit(125); }
        exec_program(s);
        fprintf(stderr, "psc-helper: exec %s: %s\n", s->args[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    forward_to = child;
    _exit(wait_status(child));
}

/* ---- the relay: the caller's terminal <-> the pty master ------------------------------------ */

struct terminal_state { int active; struct termios saved; pid_t foreground; };

static struct terminal_state caller_terminal;

/* Raw mode on the caller's terminal while attached; what it was is restored by terminal_restore. */
static void terminal_enter_raw(struct terminal_state *t) {
    if (!isatty(0) || tcgetattr(0, &t->saved) < 0) return;
    t->foreground = tcgetpgrp(0);
    struct termios raw = t->saved;
    cfmakeraw(&raw);
    if (tcsetattr(0, TCSADRAIN, &raw) == 0) t->active = 1;
}

/* The caller's terminal as it was: its modes and its foreground process group. */
static void terminal_restore(struct terminal_state *t) {
    if (!t->active) return;
    t->active = 0;
    struct sigaction ign = { .sa_handler = SIG_IGN }, old;
    sigaction(SIGTTOU, &ign, &old); /* a background caller may still put things back */
    tcsetattr(0, TCSADRAIN, &t->saved);
    if (t->foreground > 0 && tcgetpgrp(0) != t->foreground) tcsetpgrp(0, t->foreground);
    sigaction(SIGTTOU, &old, NULL);
}

static void pass_window_size(int master) {
    struct winsize ws;
    if (isatty(0) && ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) ioctl(master, TIOCSWINSZ, &ws);
}

/* Copies what is readable on `from` to `to`: 1 data moved, 0 end (EOF, or EIO of a pty whose slave
 * is closed), -1 nothing now. */
static int pump(int from, int to) {
    char buf[8192];
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return -1;
    if (n <= 0) return 0;
    return write_all(to, buf, (size_t)n) < 0 ? 0 : 1;
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Relays until the stager (and so the command) ends; returns its status. Every way out restores the
 * caller's terminal: the command's end, a signal to the relay (SIGTERM, SIGHUP, SIGINT, SIGQUIT),
 * the end of the caller (its pidfd). */
static int relay_terminal(int master, pid_t stager) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD); sigaddset(&mask, SIGWINCH);
    for (size_t i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++) sigaddset(&mask, forwarded_signals[i]);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK); /* the signals are blocked since before the fork */
    if (sfd < 0) die("signalfd: %s", strerror(errno));
    int caller = (int)syscall(SYS_pidfd_open, getppid(), 0);
    int in_open = 1, master_open = 1, status = -1;
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    terminal_enter_raw(&caller_terminal);
    pass_window_size(master);
    while (status < 0) {
        struct pollfd p[4] = { { master_open ? master : -1, POLLIN, 0 }, { sfd, POLLIN, 0 }, { in_open ? 0 : -1, POLLIN, 0 }, { caller, POLLIN, 0 } };
        if (poll(p, 4, -1) < 0) { if (errno == EINTR) continue; break; }
        if (p[0].revents) {
            int r;
            while ((r = pump(master, 1)) > 0) {}
            if (r == 0) master_open = 0; /* every slave closed: wait for the stager's status */
        }
        if (p[2].revents && pump(0, master) == 0) {
            in_open = 0; /* the caller's input ended (not a terminal): end of file for the program */
            char eof = caller_terminal.active ? caller_terminal.saved.c_cc[VEOF] : 4;
            write_all(master, &eof, 1);
        }
        if (p[3].revents) { kill(stager, SIGHUP); status = 128 + SIGHUP; break; }
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            if (si.ssi_signo == SIGWINCH) pass_window_size(master);
            else if (si.ssi_signo == SIGCHLD) {
                int st;
                if (waitpid(stager, &st, WNOHANG) == stager) {
                    while (pump(master, 1) > 0) {} /* the command's last words */
                    status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                }
            } else { kill(stager, SIGHUP); status = 128 + (int)si.ssi_signo; }
        }
    }
    terminal_restore(&caller_terminal);
    close(master);
    return status < 0 ? 125 : status;
}

/* Non-interactive: the command keeps the caller's stdio (pipes, a file); termination signals to the
 * relay go on to it, through the stager. */
static int relay_status(pid_t stager) {
    forward_to = stager;
    install_forwarding();
    sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
    return wait_status(stager);
}

static int cmd_exec(const char *file) {
    struct attach_plan a;
    memset(&a, 0, sizeof a);
    parse_spec(&a.s, file);
    if (a.s.target_pid <= 0) die("spec: pid missing");
    a.interactive = a.s.terminal;
    /* Nothing of ours is ever dumpable (inherited by the stager and the command until execve). */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("set non-dumpable: %s", strerror(errno));
    attach_open_namespaces(&a);
    int cgfd = a.s.cgroup_v2 ? open(a.s.cgroup_v2, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    if (a.s.cgroup_v2 && cgfd < 0) die("open cgroup %s: %s", a.s.cgroup_v2, strerror(errno));
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair: %s", strerror(errno));
    /* Blocked until each side has its handlers: a signal in between is not lost. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    /* Born in the container's cgroup2 directory by the relay, which is in the host's cgroup namespace. */
    pid_t stager = fork_into(cgfd, 0);
    if (stager < 0) die("fork: %s", strerror(errno));
    if (stager == 0) {
        close(sv[0]);
        if (cgfd >= 0) close(cgfd);
        attach_stage(&a, sv[1]);
    }
    close(sv[1]);
    if (cgfd >= 0) close(cgfd);
    for (int i = 0; i < a.s.nns; i++) close(a.nsfds[i]);
    if (!a.interactive) {
        /* Nothing to hand over: wait for the end first (no extra wake-up on the way), then read how
         * the stager fared. Without its "ok" the command never started. */
        int status = relay_status(stager);
        char msg[sizeof errbuf + 8];
        int fd;
        for (;;) {
            ssize_t n = attach_recv(sv[0], msg, sizeof msg, &fd);
            if (fd >= 0) close(fd);
            if (n > 0 && !strcmp(msg, "ok")) return status;
            if (n > 4 && !strncmp(msg, "err ", 4)) die("%s", msg + 4);
            if (n <= 0) die("attach failed: the staging process ended (status %d) before the command started", status);
        }
    }
    int master = -1;
    for (;;) {
        char msg[sizeof errbuf + 8];
        int fd;
        ssize_t n = attach_recv(sv[0], msg, sizeof msg, &fd);
        if (n > 0 && !strcmp(msg, "pty") && fd >= 0 && master < 0 && is_pty_master(fd)) {
            master = fd;
            pass_window_size(master); /* before the command starts: it reads its size once */
            continue;
        }
        if (fd >= 0) close(fd);
        if (n > 0 && !strcmp(msg, "ok")) break;
        int status = wait_status(stager);
        if (n > 4 && !strncmp(msg, "err ", 4)) die("%s", msg + 4);
        die("attach failed: the staging process ended (status %d) before the command started", status);
    }
    close(sv[0]);
    if (master < 0) die("attach failed: no pty from the container");
    return relay_terminal(master, stager);
}

/* ---- netns-exec: ip netns exec ---------------------------------------------------------- */

/* Enters a network namespace, then a private mount namespace (needs a single-threaded process)
 * where /sys shows that namespace's devices and the files of /etc/netns/NAME cover those of /etc. */
static int cmd_netns_exec(const char *file) {
    struct spec s;
    parse_spec(&s, file);
    if (!s.netns) die("spec: netns missing");
    int fd = open(s.netns, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open %s: %s", s.netns, strerror(errno));
    if (setns(fd, CLONE_NEWNET) < 0) die("enter network namespace %s: %s", s.netns, strerror(errno));
    close(fd);
    if (unshare(CLONE_NEWNS) < 0) die("unshare mount namespace: %s", strerror(errno));
    if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0) die("make mounts slave: %s", strerror(errno));
    umount2("/sys", MNT_DETACH);
    if (mount("sysfs", "/sys", "sysfs", 0, NULL) < 0) die("mount /sys: %s", strerror(errno));
    if (s.etcdir) {
        DIR *d = opendir(s.etcdir);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char src[PATH_MAX], dst[PATH_MAX];
            snprintf(src, sizeof src, "%s/%s", s.etcdir, e->d_name);
            snprintf(dst, sizeof dst, "/etc/%s", e->d_name);
            if (mount(src, dst, "none", MS_BIND, NULL) < 0)
                fprintf(stderr, "warning: bind %s -> %s: %s\n", src, dst, strerror(errno));
        }
        if (d) closedir(d);
    }
    exec_program(&s);
    fprintf(stderr, "psc-helper: exec %s: %s\n", s.args[0], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

/* ---- userns-tree: a rootfs as seen from a user namespace ------------------------------------- */

/* A non-root user cannot chown files to its subordinate ids, nor delete files they own. Root of a
 * user namespace that maps them can: this command runs one tree operation there. The namespace maps
 * the container's ids and, at "callerid", the caller's own uid and gid, so that the files the caller
 * made (a template, an extracted archive) are visible and can be handed to the container's root. */

static unsigned long tree_caller_id;
static const char *tree_error_path;

/* chown that keeps what chown(2) clears: setuid/setgid bits and file capabilities (which, set again
 * by the namespace's root, become namespaced v3 capabilities of the container's root). */
static int chown_keep(int dirfd, const char *leaf, const char *path, uid_t uid, gid_t gid) {
    struct stat st;
    if (fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0) return fail("stat %s", path);
    if (st.st_uid == uid && st.st_gid == gid) return 0;
    if (!S_ISREG(st.st_mode)) {
        if (fchownat(dirfd, leaf, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) return fail("chown %s", path);
        return 0;
    }
    int fd = openat(dirfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return fail("open %s", path);
    char caps[64];
    ssize_t ncaps = fgetxattr(fd, "security.capability", caps, sizeof caps);
    int rc = fchown(fd, uid, gid);
    if (rc < 0) fail("chown %s", path);
    else if ((st.st_mode & (S_ISUID | S_ISGID)) && fchmod(fd, st.st_mode & 07777) < 0) rc = fail("chmod %s", path);
    else if (ncaps > 0 && fsetxattr(fd, "security.capability", caps, (size_t)ncaps, 0) < 0) rc = fail("restore file capabilities of %s", path);
    close(fd);
    return rc;
}

/* Every entry the caller owns (seen here as tree_caller_id) goes to the namespace's root. */
static int shift_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)type; (void)ftw;
    uid_t uid = st->st_uid == tree_caller_id ? 0 : st->st_uid;
    gid_t gid = st->st_gid == tree_caller_id ? 0 : st->st_gid;
    if (uid == st->st_uid && gid == st->st_gid) return 0;
    if (chown_keep(AT_FDCWD, path, path, uid, gid) < 0) { tree_error_path = path; return -1; }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st; (void)ftw;
    if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT) { fail("remove %s", path); tree_error_path = path; return -1; }
    return 0;
}

/* Explicit owners ("uid gid relative-path" records, NUL-terminated): the ids an archive gave its
 * entries. Each path is resolved inside the tree, never through a symlink out of it. */
static int apply_owners(const char *root, const char *list) {
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) return fail("open %s", root);
    int fd = open(list, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) { close(rootfd); return fail("open %s", list); }
    struct stat lst;
    if (fstat(fd, &lst) < 0) { close(fd); close(rootfd); return fail("stat %s", list); }
    char *buf = malloc((size_t)lst.st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t)lst.st_size) : -1;
    close(fd);
    if (n != lst.st_size) { free(buf); close(rootfd); errno = EIO; return fail("read %s", list); }
    buf[n] = '\0';
    int rc = 0;
    for (char *rec = buf; rec < buf + n && rc == 0; rec += strlen(rec) + 1) {
        unsigned long uid, gid;
        int off = 0;
        if (sscanf(rec, "%lu %lu %n", &uid, &gid, &off) != 2 || off == 0) { errno = EINVAL; rc = fail("owners record '%s'", rec); break; }
        char *rel = rec + off, *slash = strrchr(rel, '/');
        int dirfd = slash ? (*slash = '\0', open_in_root(rootfd, rel, O_PATH | O_DIRECTORY)) : dup(rootfd);
        if (slash) *slash = '/';
        if (dirfd < 0) { rc = fail("open parent of %s", rel); break; }
        rc = chown_keep(dirfd, slash ? slash + 1 : rel, rel, (uid_t)uid, (gid_t)gid);
        close(dirfd);
    }
    free(buf);
    close(rootfd);
    return rc;
}

static int cmd_userns_tree(const char *file) {
    struct spec s;
    parse_spec(&s, file);
    if (s.nargs != 2 || s.args[1][0] != '/') die("userns-tree: needs arg shift|remove and an absolute path");
    int shift = !strcmp(s.args[0], "shift");
    if (!shift && strcmp(s.args[0], "remove")) die("userns-tree: unknown operation '%s'", s.args[0]);
    int sync_pipe[2], err_pipe[2];
    if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
    pid_t child = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
    if (child < 0) die("clone a user namespace: %s", strerror(errno));
    if (child == 0) {
        close(sync_pipe[1]);
        close(err_pipe[0]);
        char go;
        int rc = read(sync_pipe[0], &go, 1) == 1 ? 0 : fail("wait for the id maps");
        if (rc == 0) rc = become_userns_root();
        tree_caller_id = s.caller_id;
        if (rc == 0) rc = nftw(s.args[1], shift ? shift_entry : remove_entry, 64, FTW_PHYS | FTW_MOUNT | (shift ? 0 : FTW_DEPTH));
        if (rc != 0 && !tree_error_path && errno) fail("walk %s", s.args[1]);
        if (rc == 0 && shift && s.owners) rc = apply_owners(s.args[1], s.owners);
        if (rc != 0) write_all(err_pipe[1], errbuf, strlen(errbuf));
        _exit(rc == 0 ? 0 : 1);
    }
    close(sync_pipe[0]);
    close(err_pipe[1]);
    /* Root writes the maps itself; otherwise the caller runs newuidmap/newgidmap meanwhile. */
    if (s.uid_map) {
        if (write_id_maps(child, s.uid_map, s.gid_map) < 0) { kill(child, SIGKILL); die("%s", errbuf); }
    } else {
        printf("paused %d %d\n", getpid(), child);
        fflush(stdout);
        char answer[16];
        if (!fgets(answer, sizeof answer, stdin) || strcmp(answer, "go\n")) { kill(child, SIGKILL); waitpid(child, NULL, 0); die("aborted by the caller"); }
    }
    if (write(sync_pipe[1], "g", 1) != 1) die("release child: %s", strerror(errno));
    char cerr[sizeof errbuf];
    ssize_t n, got = 0;
    while ((n = read(err_pipe[0], cerr + got, sizeof cerr - 1 - (size_t)got)) > 0) got += n;
    int status;
    while (waitpid(child, &status, 0) < 0) if (errno != EINTR) die("waitpid: %s", strerror(errno));
    if (got > 0) { cerr[got] = '\0'; die("%s", cerr); }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("userns-tree %s %s failed", s.args[0], s.args[1]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage: psc-helper start|exec [spec-file] (spec on stdin without a file)");
    if (!strcmp(argv[1], "start")) return cmd_start(argc > 2 ? argv[2] : NULL, 0);
    if (!strcmp(argv[1], "restore")) return cmd_start(argc > 2 ? argv[2] : NULL, 1);
    if (!strcmp(argv[1], "exec")) { reexec_from_sealed_copy(argv); return cmd_exec(argc > 2 ? argv[2] : NULL); }
    if (!strcmp(argv[1], "netns-exec")) return cmd_netns_exec(argc > 2 ? argv[2] : NULL);
    if (!strcmp(argv[1], "userns-tree")) return cmd_userns_tree(argc > 2 ? argv[2] : NULL);
    if (!strcmp(argv[1], "--version")) { puts("psc-helper 1"); return 0; }
    die("unknown command '%s'", argv[1]);
    return 125;
}
