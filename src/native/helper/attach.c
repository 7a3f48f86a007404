/*
 * psc-helper exec: joining a running container, staged so that the container never sees a process
 * with more than its own privileges (the relay, the stager, the command; see below).
 */
#include "helper.h"

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
    int nsfds[sizeof ((struct spec *)0)->join_ns / sizeof (const char *)];
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
    for (int i = 0; i < a->s.n_join_ns; i++) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/ns/%s", a->s.target_pid, a->s.join_ns[i]);
        a->nsfds[i] = open(p, O_RDONLY | O_CLOEXEC);
        if (a->nsfds[i] < 0) die("open %s: %s", p, strerror(errno));
        a->joined_user |= !strcmp(a->s.join_ns[i], "user");
    }
}

/* The cgroups, before any namespace: cgroup.procs is written while we are still in the host's
 * cgroup namespace. With nsdelegate (systemd mounts cgroup2 so), the kernel refuses a migration by
 * a writer whose cgroup namespace root is not an ancestor of both cgroups (ENOENT), which it would
 * be once we joined the container's. The cgroup2 directory the stager was born into needs no write. */
static int attach_join_cgroups(const struct spec *s) {
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "%d\n", getpid());
    for (int i = 0; i < s->n_cgroups; i++)
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
        for (int i = 0; i < a->s.n_join_ns; i++) {
            int is_user = !strcmp(a->s.join_ns[i], "user");
            if ((pass == 0) != is_user) continue;
            if (setns(a->nsfds[i], 0) < 0) return fail("join %s namespace of pid %d", a->s.join_ns[i], a->s.target_pid);
            close(a->nsfds[i]);
            a->nsfds[i] = -1;
            /* Never stay in a host directory (CVE-2024-21626): the command's cwd is resolved from here. */
            if (!strcmp(a->s.join_ns[i], "mnt") && chdir("/") < 0) return fail("chdir / in the container");
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
    install_kill_request();
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
        /* Last, under the container's filter and capabilities like everything after the staging:
         * the ids (-User, -Group) of the command alone; the stager stays the container's root. */
        if (switch_ids(s) < 0) { fprintf(stderr, "psc-helper: %s\n", errbuf); _exit(125); }
        exec_program(s);
        fprintf(stderr, "psc-helper: exec %s: %s\n", s->args[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    forward_to = child;
    kill_if_requested();
    _exit(wait_status(child));
}

int cmd_exec(const char *file) {
    struct attach_plan a;
    memset(&a, 0, sizeof a);
    read_spec(&a.s, PSC_CMD_EXEC, file);
    if (a.s.target_pid <= 0) die("spec: 'pid' must be a process id, not %d", a.s.target_pid);
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
    for (int i = 0; i < a.s.n_join_ns; i++) close(a.nsfds[i]);
    if (!a.interactive) {
        /* Nothing to hand over: wait for the end first (no extra wake-up on the way), then read how
         * the stager fared. Without its "ok" the command never started. */
        int status = relay_status(stager, a.s.has_timeout_ms ? a.s.timeout_ms : 0);
        char msg[sizeof errbuf + 8];
        int fd;
        for (;;) {
            ssize_t n = attach_recv(sv[0], msg, sizeof msg, &fd);
            if (fd >= 0) close(fd);
            if (n > 0 && !strcmp(msg, "ok")) {
                if (relay_timed_out) fprintf(stderr, "psc-helper: timed out after %lld ms: the command was killed\n", (long long)a.s.timeout_ms);
                return status;
            }
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
    int status = relay_terminal(master, stager, a.s.has_timeout_ms ? a.s.timeout_ms : 0);
    if (relay_timed_out) fprintf(stderr, "psc-helper: timed out after %lld ms: the command was killed\n", (long long)a.s.timeout_ms);
    return status;
}

