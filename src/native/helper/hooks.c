/*
 * LXC's hook points that run where only psc-helper is (config.yaml hooks:, Runtime Hooks/LxcHooks):
 * mount (init, in the container's mount namespace after its mounts, before pivot_root), start
 * (init, inside the container just before the program is exec'd), and stop, net-down, post-stop
 * (the supervisor, once init has ended for good: also when no pwsh is running, and also for an
 * init CRIU restored, whose restore spec carries them). The runtime composes each
 * hook whole (its LXC_* environment, its arguments as LXC passes them); this file runs it with its
 * timeout, keeps the tail of its output for the error, and adds the namespace references of a
 * stop hook, which only the supervisor has.
 *
 * A spec "hook" value: TAB-separated type, timeout in ms, N, N environment entries, path, arguments.
 */
#include "helper.h"

#define HOOK_FIELDS (PSC_MAX_ITEMS * 2 + 8)
#define HOOK_TAIL 600

/* The last bytes of the hook's output on one line (newlines shown as " | "). */
static void tail_text(const char *ring, size_t len, char *out, size_t size) {
    size_t o = 0;
    const char *p = ring;
    size_t n = len;
    while (n > 0 && (*p == '\n' || *p == ' ')) { p++; n--; }
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == ' ')) n--;
    for (size_t i = 0; i < n && o + 4 < size; i++) {
        if (p[i] == '\n') { memcpy(out + o, " | ", 3); o += 3; }
        else out[o++] = (p[i] >= 0x20 && p[i] != 0x7f) || (unsigned char)p[i] >= 0x80 ? p[i] : '?';
    }
    out[o] = '\0';
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keeps the last sizeof ring bytes of what the hook wrote. */
static void keep(char *ring, size_t size, size_t *used, const char *buf, size_t r) {
    if (r >= size) { memcpy(ring, buf + r - size, size); *used = size; return; }
    if (*used + r > size) { size_t drop = *used + r - size; memmove(ring, ring + drop, *used - drop); *used -= drop; }
    memcpy(ring + *used, buf, r);
    *used += r;
}

/* How the last hook that failed ended, for the supervisor's event: "code=N", "signal=N" or "timeout=MS". */
static char last_end[40];

/* Runs one hook; 0 when it exited 0 in time, else -1 with the reason in errbuf. */
static int run_one(const char *record, const char *const *ns_refs, int n_ns, int rootfd) {
    char *copy = strdup(record);
    if (!copy) return fail("hook: out of memory");
    char *field[HOOK_FIELDS];
    int n = 0;
    for (char *p = copy, *tab; n < HOOK_FIELDS - 1; p = tab + 1) {
        field[n++] = p;
        if (!(tab = strchr(p, '\t'))) break;
        *tab = '\0';
    }
    char *end;
    const char *type = field[0];
    long long timeout_ms = n > 1 ? strtoll(field[1], &end, 10) : -1;
    long n_env = n > 2 ? strtol(field[2], &end, 10) : -1;
    if (n < 4 || timeout_ms <= 0 || n_env < 0 || 3 + n_env >= n) { free(copy); errno = 0; return fail("spec: a hook record of the wrong shape"); }
    const char *env[HOOK_FIELDS + 16], *argv[HOOK_FIELDS + 16];
    int ne = 0, na = 0;
    for (long i = 0; i < n_env; i++) env[ne++] = field[3 + i];
    for (int i = 3 + (int)n_env; i < n; i++) argv[na++] = field[i];
    const char *path = argv[0];
    /* A stop hook gets the container's namespaces as LXC gives them: arguments "net:/proc/PID/fd/N"
     * after its own, and LXC_NET_NS=/proc/PID/fd/N (the names upper-cased). */
    char nsenv[16][96];
    for (int i = 0; i < n_ns && i < 16; i++) {
        argv[na++] = ns_refs[i];
        const char *colon = strchr(ns_refs[i], ':');
        char upper[16];
        size_t len = (size_t)(colon - ns_refs[i]);
        for (size_t k = 0; k < len && k < sizeof upper - 1; k++) upper[k] = (char)(ns_refs[i][k] >= 'a' && ns_refs[i][k] <= 'z' ? ns_refs[i][k] - 32 : ns_refs[i][k]);
        upper[len < sizeof upper - 1 ? len : sizeof upper - 1] = '\0';
        snprintf(nsenv[i], sizeof nsenv[i], "LXC_%s_NS=%s", upper, colon + 1);
        env[ne++] = nsenv[i];
    }
    /* The mount hook gets the rootfs as a descriptor it inherits: in a user namespace the
     * container's root cannot walk the store's (0700) path to it, and LXC too gives the hook a
     * mount point it can reach rather than the rootfs's own path. */
    char rootenv[64];
    if (rootfd >= 0) {
        snprintf(rootenv, sizeof rootenv, "LXC_ROOTFS_MOUNT=/proc/self/fd/%d", rootfd);
        for (int i = 0; i < ne; i++) if (!strncmp(env[i], "LXC_ROOTFS_MOUNT=", 17)) env[i] = rootenv;
    }
    argv[na] = NULL;
    env[ne] = NULL;

    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0) { int e = errno; free(copy); errno = e; return fail("hook %s %s: pipe", type, path); }
    pid_t pid = fork();
    if (pid < 0) { int e = errno; close(out[0]); close(out[1]); free(copy); errno = e; return fail("hook %s %s: fork", type, path); }
    if (pid == 0) {
        /* Its own process group, so that a timeout kills what it started too. */
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
        if (rootfd >= 0) fcntl(rootfd, F_SETFD, 0);
        execve(path, (char *const *)argv, (char *const *)env);
        dprintf(2, "cannot run %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(out[1]);
    char ring[HOOK_TAIL];
    size_t used = 0;
    int64_t deadline = now_ms() + timeout_ms;
    int status = 0, exited = 0, timed_out = 0, open_out = 1;
    while (!exited) {
        int64_t left = deadline - now_ms();
        if (left <= 0) { timed_out = 1; break; }
        struct pollfd pfd = { out[0], POLLIN, 0 };
        if (open_out && poll(&pfd, 1, left < 50 ? (int)left : 50) > 0) {
            char buf[512];
            ssize_t r = read(out[0], buf, sizeof buf);
            if (r > 0) {
                /* Passed on (init's stderr is the console), and the last bytes kept for the error. */
                write_all(2, buf, (size_t)r);
                keep(ring, sizeof ring, &used, buf, (size_t)r);
            } else if (r == 0) open_out = 0;
        } else if (!open_out) usleep(20000);
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) exited = 1;
    }
    if (timed_out) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    } else {
        /* What it wrote up to its end (a child it left behind may hold the pipe: not waited for). */
        fcntl(out[0], F_SETFL, O_NONBLOCK);
        char buf[512];
        ssize_t r;
        while ((r = read(out[0], buf, sizeof buf)) > 0) {
            write_all(2, buf, (size_t)r);
            keep(ring, sizeof ring, &used, buf, (size_t)r);
        }
    }
    close(out[0]);
    char tail[HOOK_TAIL + 200];
    tail_text(ring, used, tail, sizeof tail);
    errno = 0;
    int rc = 0;
    /* The words "hook TYPE PATH" start every failure: the runtime reads them (Hooks/HookFailure). */
    if (timed_out) snprintf(last_end, sizeof last_end, "timeout=%lld", timeout_ms);
    else if (WIFSIGNALED(status)) snprintf(last_end, sizeof last_end, "signal=%d", WTERMSIG(status));
    else snprintf(last_end, sizeof last_end, "code=%d", WEXITSTATUS(status));
    if (timed_out) rc = fail("hook %s %s timed out after %lld ms; output: %s", type, path, timeout_ms, tail);
    else if (WIFSIGNALED(status)) rc = fail("hook %s %s was killed by signal %d; output: %s", type, path, WTERMSIG(status), tail);
    else if (WEXITSTATUS(status) != 0) rc = fail("hook %s %s failed with exit code %d; output: %s", type, path, WEXITSTATUS(status), tail);
    free(copy);
    return rc;
}

static int is_type(const char *record, const char *type) {
    size_t len = strlen(type);
    return !strncmp(record, type, len) && record[len] == '\t';
}

int run_hooks(const struct spec *s, const char *type, int rootfd) {
    for (int i = 0; i < s->n_hooks; i++)
        if (is_type(s->hooks[i], type) && run_one(s->hooks[i], NULL, 0, rootfd) < 0) return -1;
    return 0;
}

int has_hooks(const struct spec *s, const char *type) {
    for (int i = 0; i < s->n_hooks; i++) if (is_type(s->hooks[i], type)) return 1;
    return 0;
}

/* ---- the supervisor's part: namespace references for stop hooks, and the end-of-run hooks ---- */

static const char *const ns_names[] = { "cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts" };
#define N_NS (int)(sizeof ns_names / sizeof ns_names[0])
static int ns_fd[N_NS] = { -1, -1, -1, -1, -1, -1, -1, -1 };

/* Holds init's namespaces (those it does not share with the supervisor) for the stop hooks, which
 * run once init is gone. Called again for each init a restart makes. */
void hooks_hold_namespaces(const struct spec *s, pid_t init) {
    if (!has_hooks(s, "stop") && !has_hooks(s, "net-down")) return;
    for (int i = 0; i < N_NS; i++) {
        if (ns_fd[i] >= 0) { close(ns_fd[i]); ns_fd[i] = -1; }
        char mine[64], theirs[64];
        struct stat a, b;
        snprintf(mine, sizeof mine, "/proc/self/ns/%s", ns_names[i]);
        snprintf(theirs, sizeof theirs, "/proc/%d/ns/%s", (int)init, ns_names[i]);
        if (stat(theirs, &b) < 0 || (stat(mine, &a) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)) continue;
        ns_fd[i] = open(theirs, O_RDONLY | O_CLOEXEC);
    }
}

static void report_failure(const struct spec *s, const char *type) {
    /* Also in the journal: what happened while no pwsh ran stays on record after the report is read. */
    char details[96];
    snprintf(details, sizeof details, "hook=%s %s", type, last_end);
    emit_event(s, PSC_EVENT_HOOK_FAILED, details);
    if (!s->hook_report) return;
    int fd = open(s->hook_report, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return;
    char line[sizeof errbuf + 2];
    snprintf(line, sizeof line, "%s\n", errbuf);
    write_all(fd, line, strlen(line));
    close(fd);
}

/* Once init has ended for good: stop (with the namespace references) and net-down while the
 * namespaces are still held, then the caller removes the cgroups and runs post-stop. Failures are
 * appended to the hook report; one failing does not skip the others (LXC runs them all too). */
void hooks_run_stop(const struct spec *s) {
    if (has_hooks(s, "stop")) {
        char refs[N_NS][64];
        const char *ref[N_NS];
        int n = 0;
        for (int i = 0; i < N_NS; i++)
            if (ns_fd[i] >= 0) { snprintf(refs[n], sizeof refs[n], "%s:/proc/%d/fd/%d", ns_names[i], (int)getpid(), ns_fd[i]); ref[n] = refs[n]; n++; }
        for (int i = 0; i < s->n_hooks; i++)
            if (is_type(s->hooks[i], "stop") && run_one(s->hooks[i], ref, n, -1) < 0) report_failure(s, "stop");
    }
    for (int i = 0; i < s->n_hooks; i++)
        if (is_type(s->hooks[i], "net-down") && run_one(s->hooks[i], NULL, 0, -1) < 0) report_failure(s, "net-down");
    for (int i = 0; i < N_NS; i++) if (ns_fd[i] >= 0) { close(ns_fd[i]); ns_fd[i] = -1; }
}

void hooks_run_post_stop(const struct spec *s) {
    for (int i = 0; i < s->n_hooks; i++)
        if (is_type(s->hooks[i], "post-stop") && run_one(s->hooks[i], NULL, 0, -1) < 0) report_failure(s, "post-stop");
}

/* After a failed start or restore, as LXC does: post-stop undoes what pre-start made. Its failure
 * is added to the start's error (in errbuf), which is what the caller reports. */
void hooks_run_post_stop_after_failure(const struct spec *s) {
    if (!has_hooks(s, "post-stop")) return;
    char first[sizeof errbuf], later[sizeof errbuf] = "";
    snprintf(first, sizeof first, "%s", errbuf);
    for (int i = 0; i < s->n_hooks; i++)
        if (is_type(s->hooks[i], "post-stop") && run_one(s->hooks[i], NULL, 0, -1) < 0 && !later[0])
            snprintf(later, sizeof later, "%s", errbuf);
    if (later[0]) {
        char both[2 * sizeof errbuf + 16];
        snprintf(both, sizeof both, "%s; after that: %s", first, later);
        memcpy(errbuf, both, sizeof errbuf - 1);
        errbuf[sizeof errbuf - 1] = '\0';
    } else memcpy(errbuf, first, sizeof errbuf);
}
