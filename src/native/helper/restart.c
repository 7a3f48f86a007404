/*
 * The restart policy (config.yaml restart: { policy, maxRetries, backoff }), carried out by the
 * container's supervisor, because nothing else runs once the pwsh that started it is gone.
 *
 * Design. A start is two halves: psc-helper makes init in new namespaces (here, alone), and the
 * runtime, while init waits paused, does what needs the host side: the id maps of a user namespace
 * (newuidmap for a non-root user) and the network hooks (veths moved into init's network namespace,
 * addresses, the pasta of a non-root user). A supervisor cannot redo the second half. So a restart
 * keeps what that half made: the supervisor holds the user and network namespaces of the first
 * init by descriptor (restart_hold, before init is released), so the maps, the veths, their
 * addresses and routes survive init's end; the cgroups are kept too (limits stay; the supervisor
 * removes them only at the very end). What a restart makes anew is what gives a fresh boot: the
 * pid, mount, UTS, IPC and cgroup namespaces and init itself, through the same container_init a
 * start runs (rootfs, console, hostname, security). It is made by an intermediate process that
 * joins the held user and network namespaces (the supervisor itself must stay on the host side)
 * and clones init with CLONE_PARENT, so that init is the supervisor's child like the first one;
 * the supervisor puts it in its cgroups and lets it go exactly as a start does.
 *
 * When: on-failure after a non-zero exit or a signal other than the power-off ones (SIGINT, SIGHUP:
 * reboot(2) inside, a clean end, see ContainerManager.Classify); always after any end; never after
 * a stop that was asked for (the stop marker, or SIGTERM to the supervisor while init is down),
 * and never beyond maxRetries (0: no limit). The delay doubles from backoff on each restart, to at
 * most 5 minutes. Each restart is recorded in the run record (count, and how the last init ended)
 * and in the journal (restarted).
 */
#include "helper.h"

int restart_count;
char restart_last_exit[32] = "-";

static int held_user = -1, held_net = -1;
static char held_console[64];
static int holding;

static int policy_wants(const struct spec *s, int status) {
    if (!s->restart_policy || !strcmp(s->restart_policy, "no")) return 0;
    if (!strcmp(s->restart_policy, "always")) return 1;
    if (WIFEXITED(status)) return WEXITSTATUS(status) != 0;
    return WTERMSIG(status) != SIGINT && WTERMSIG(status) != SIGHUP;
}

static int open_ns(pid_t pid, const char *name) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail("hold namespace %s of init %d for its restart policy", name, (int)pid);
    return fd;
}

int restart_hold(const struct spec *s, pid_t init, const char *console) {
    if (!s->restart_policy || !strcmp(s->restart_policy, "no")) return 0;
    if ((s->clone_flags & CLONE_NEWUSER) && (held_user = open_ns(init, "user")) < 0) return -1;
    if ((s->clone_flags & CLONE_NEWNET) && (held_net = open_ns(init, "net")) < 0) return -1;
    snprintf(held_console, sizeof held_console, "%s", console ? console : "");
    holding = 1;
    return 0;
}

void restart_release(void) {
    if (held_user >= 0) close(held_user);
    if (held_net >= 0) close(held_net);
    held_user = held_net = -1;
    holding = 0;
}

/* Waits `ms`, or until SIGTERM (a stop). Other signals (children reaped meanwhile) are drained. */
static int backoff_wait(int sfd, long long ms, int *terminated) {
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += ms / 1000;
    end.tv_nsec += (ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) { end.tv_sec++; end.tv_nsec -= 1000000000L; }
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long left = (end.tv_sec - now.tv_sec) * 1000LL + (end.tv_nsec - now.tv_nsec) / 1000000L;
        if (left <= 0) return 0;
        struct pollfd p = { sfd, POLLIN, 0 };
        if (poll(&p, 1, (int)(left > INT32_MAX ? INT32_MAX : left)) > 0) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si)
                if (si.ssi_signo == SIGTERM) *terminated = 1;
            while (waitpid(-1, NULL, WNOHANG) > 0) {}
            if (*terminated) return -1;
        }
    }
}

/* Makes init again (see the design above); its pid, or -1 with the reason in errbuf. */
static pid_t relaunch(const struct spec *s) {
    int sync_pipe[2], err_pipe[2], pid_pipe[2];
    /* A socket, as at the first start: an idmapped root goes to init with the go byte. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync_pipe) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0 || pipe2(pid_pipe, O_CLOEXEC) < 0) return fail("pipe");
    struct child_args ca = { s, sync_pipe[0], err_pipe[1], held_console[0] ? held_console : NULL };
    pid_t mid = fork();
    if (mid < 0) return fail("fork");
    if (mid == 0) {
        close(sync_pipe[1]); close(err_pipe[0]); close(pid_pipe[0]);
        sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
        if (held_user >= 0 && setns(held_user, CLONE_NEWUSER) < 0) _exit(120);
        if (held_net >= 0 && setns(held_net, CLONE_NEWNET) < 0) _exit(121);
        unsigned long flags = s->clone_flags & ~(unsigned long)(CLONE_NEWCGROUP | CLONE_NEWUSER | CLONE_NEWNET);
        pid_t init = (pid_t)syscall(SYS_clone, flags | CLONE_PARENT, NULL, NULL, NULL, NULL);
        if (init == 0) _exit(container_init(&ca));
        if (init < 0) _exit(122);
        write_all(pid_pipe[1], &init, sizeof init);
        _exit(0);
    }
    close(sync_pipe[0]); close(err_pipe[1]); close(pid_pipe[1]);
    pid_t init = -1;
    ssize_t n = read(pid_pipe[0], &init, sizeof init);
    close(pid_pipe[0]);
    int st = 0;
    waitpid(mid, &st, 0);
    if (n != sizeof init || init <= 0) {
        close(sync_pipe[1]); close(err_pipe[0]);
        errno = 0;
        return fail("restart: could not make init in the held namespaces (step %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "%d\n", init);
    born_in_cgroup = 0;
    for (int i = 0; i < s->n_cgroups; i++)
        if (write_file(s->cgroups[i], pidtext) < 0) goto kill_init;
    /* The new init is in the held user namespace: the same idmapping as the first start's. */
    int root_fd = -1;
    if (s->idmap_root && (root_fd = idmapped_root(s, s->rootfs, init)) < 0) goto kill_init;
    if (write_run_record(s, init, "released") < 0) { if (root_fd >= 0) close(root_fd); goto kill_init; }
    int sent = send_fd(sync_pipe[1], 'g', root_fd);
    if (root_fd >= 0) close(root_fd);
    if (sent < 0) { fail("release init"); goto kill_init; }
    close(sync_pipe[1]);
    char cerr[sizeof errbuf];
    ssize_t got = 0, r;
    while ((r = read(err_pipe[0], cerr + got, sizeof cerr - 1 - (size_t)got)) > 0) got += r;
    close(err_pipe[0]);
    if (got > 0) {
        cerr[got] = '\0';
        snprintf(errbuf, sizeof errbuf, "%s", cerr);
        waitpid(init, NULL, 0);
        return -1;
    }
    return init;
kill_init:
    close(sync_pipe[1]); close(err_pipe[0]);
    kill(init, SIGKILL);
    waitpid(init, NULL, 0);
    return -1;
}

int restart_wanted(const struct spec *s, int status) {
    if (!holding || !policy_wants(s, status)) return 0;
    return !(s->has_restart_max && s->restart_max > 0 && restart_count >= s->restart_max);
}

pid_t restart_init(const struct spec *s, int status, int oom_killed, int sfd, int *terminated) {
    if (!restart_wanted(s, status)) return -1;
    long long delay = s->has_restart_backoff_ms ? s->restart_backoff_ms : 1000;
    for (int i = 0; i < restart_count && delay < 300000; i++) delay *= 2;
    if (delay > 300000) delay = 300000;
    if (oom_killed) snprintf(restart_last_exit, sizeof restart_last_exit, "oom:%d", WTERMSIG(status));
    else if (WIFEXITED(status)) snprintf(restart_last_exit, sizeof restart_last_exit, "exited:%d", WEXITSTATUS(status));
    else snprintf(restart_last_exit, sizeof restart_last_exit, "signaled:%d", WTERMSIG(status));
    if (backoff_wait(sfd, delay, terminated) < 0) return -1;
    /* A stop asked for during the wait (its marker comes before its signal). */
    if (s->stop_mark && access(s->stop_mark, F_OK) == 0) return -1;
    restart_count++;
    pid_t init = relaunch(s);
    char details[PSC_EVENT_RECORD_MAX / 2];
    if (init < 0) {
        /* Recorded as what it is; the supervisor then finishes as if init had ended for good. */
        restart_count--;
        snprintf(details, sizeof details, "attempt=%d failed=1", restart_count + 1);
        emit_event(s, PSC_EVENT_RESTARTED_BY_POLICY, details);
        return -1;
    }
    snprintf(details, sizeof details, "attempt=%d delay=%lldms init=%d", restart_count, delay, (int)init);
    emit_event(s, PSC_EVENT_RESTARTED_BY_POLICY, details);
    return init;
}
