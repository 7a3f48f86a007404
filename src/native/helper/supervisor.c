/*
 * psc-helper start (and the frame of restore): the launcher double-forks a supervisor, which
 * clones init into its namespaces and cgroups, reports to the caller through the launcher (the
 * replies of psc-protocol.h), and then lives as long as init: it reaps it, records its exit and
 * removes its cgroups. Its resident memory is what a running container costs beyond itself.
 */
#include "helper.h"

static void write_exit_file(const char *path, int status, int oom) {
    char tmp[PATH_MAX], text[128];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
    if (WIFEXITED(status)) snprintf(text, sizeof text, "exited %d %lld\n", WEXITSTATUS(status), (long long)ts.tv_sec);
    else snprintf(text, sizeof text, "signaled %d %lld%s\n", WTERMSIG(status), (long long)ts.tv_sec, oom ? " oom" : "");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    /* Atomic (rename) but not fsync'ed: after a power loss the container is stopped anyway. */
    write_all(fd, text, strlen(text));
    close(fd);
    rename(tmp, path);
}

void remove_cgroups(const struct spec *s) {
    /* rmdir is EBUSY until the kernel has released every task of the cgroup: retry briefly. */
    for (int i = s->n_cgdirs - 1; i >= 0; i--)
        for (int attempt = 0; attempt < 200; attempt++) {
            if (rmdir(s->cgdirs[i]) == 0 || errno == ENOENT) break;
            usleep(5000);
        }
}

/* Field 22 of /proc/PID/stat: the start time in clock ticks since boot (with the pid, it names one
 * process for good: a recycled pid has another start time). 0 if unreadable. */
unsigned long long proc_start_time(pid_t pid) {
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

/* The supervisor's own record, "<supervisor> <start> <init> <start> <phase> <unix-time> <restarts>
 * <last exit>" (the last two: restarts by policy in this run, and how the init before the current
 * one ended, "-" or exited:N, signaled:N, oom:9; see restart.c), written
 * atomically into the container's directory before init is released ("paused": set-up still
 * going on; "released": init was let go). With it the runtime always finds what it started, even
 * when the pwsh that started it was killed before it recorded anything (Runtime: RunRecord).
 * Not fsync'ed, like the exit record: after a power loss nothing it names runs anyway. A full disk
 * fails the start here, before init runs, rather than leaving a container nobody recorded. */
int write_run_record(const struct spec *s, pid_t init, const char *phase) {
    if (!s->run_record) return 0;
    char tmp[PATH_MAX], text[200];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->run_record);
    snprintf(text, sizeof text, "%d %llu %d %llu %s %lld %d %s\n", (int)getpid(), proc_start_time(getpid()),
             (int)init, proc_start_time(init), phase, (long long)time(NULL), restart_count, restart_last_exit);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return fail("write run record %s", tmp);
    if (write_all(fd, text, strlen(text)) < 0) { int e = errno; close(fd); unlink(tmp); errno = e; return fail("write run record %s", tmp); }
    if (close(fd) < 0 || rename(tmp, s->run_record) < 0) { int e = errno; unlink(tmp); errno = e; return fail("write run record %s", s->run_record); }
    return 0;
}

/* Lives as long as init does: pumps the console, reports OOM kills and init's end as events,
 * starts init again when its restart policy says so (restart.c), then removes the cgroups and
 * records the exit. SIGTERM (Stop-Container while init is down between restarts) ends restarting. */
void watch_init(const struct spec *s, pid_t child, int master, int logfd, sigset_t *mask) {
    sigaddset(mask, SIGTERM);
    sigprocmask(SIG_BLOCK, mask, NULL);
    int sfd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
    struct oom_watch oom;
    int oomfd = oom_watch_open(s->oom_watch, &oom);
    int status = 0, oom_killed = 0, terminated = 0;
    /* The died event of init's final end waits for the exit record (see the end of this function). */
    int died_pending = 0;
    char died_details[96] = "";
    /* The console socket (console_relay.c): made after init's clone, so init inherits nothing;
     * it stays across restarts by policy and goes when the watch ends. */
    int console_listen = master >= 0 ? console_relay_listen(s) : -1;
    for (;;) {
        struct pollfd pfds[5] = { { sfd, POLLIN, 0 }, { oomfd, POLLIN, 0 }, { master, POLLIN, 0 },
                                  { console_listen, POLLIN, 0 }, { console_relay_client(), POLLIN, 0 } };
        int rc = poll(pfds, master >= 0 ? 5 : 2, -1);
        if (rc < 0 && errno != EINTR) break;
        if (master >= 0 && (pfds[2].revents & POLLIN)) pump_console(master, &logfd, s);
        if (oomfd >= 0 && (pfds[1].revents & POLLIN) && oom_watch_check(s, &oom)) oom_killed = 1;
        if (master >= 0 && (pfds[3].revents & POLLIN)) console_relay_accept();
        if (master >= 0 && pfds[4].fd >= 0 && pfds[4].revents) console_relay_input(master);
        if (pfds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            int done = 0;
            while (read(sfd, &si, sizeof si) == sizeof si)
                if (si.ssi_signo == SIGTERM) terminated = 1;
            /* Every child is reaped (a restore's supervisor adopts what a killed criu left, see
             * supervise_restore; a restart's intermediate process); init's end ends this run. */
            pid_t w;
            int st;
            while ((w = waitpid(-1, &st, WNOHANG)) > 0)
                if (w == child) { status = st; done = 1; }
            if (!done) continue;
            if (master >= 0) pump_console(master, &logfd, s);
            /* The kill is counted before init's end is signalled: a last look finds it. */
            if (oom_watch_check(s, &oom)) oom_killed = 1;
            int requested = s->stop_mark && access(s->stop_mark, F_OK) == 0;
            oom_killed = oom_killed && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
            exit_details(status, died_details, sizeof died_details);
            if (oom_killed) strncat(died_details, " oom=1", sizeof died_details - strlen(died_details) - 1);
            /* A stop that was asked for is the runtime's event (stopped, with its reason). A final
             * end's died event comes after the exit record, so that whoever sees it finds the
             * container stopped with its exit; one a restart follows comes now (the run goes on). */
            if (requested || terminated || !restart_wanted(s, status)) {
                died_pending = !requested;
                break;
            }
            emit_event(s, PSC_EVENT_DIED, died_details);
            pid_t next = restart_init(s, status, oom_killed, sfd, &terminated);
            if (next <= 0) break;
            child = next;
            hooks_hold_namespaces(s, child);
            oom_killed = 0;
        }
    }
    /* LXC's order: stop (with the namespaces) and net-down while they are held, post-stop once the
     * cgroups are gone; the exit record after them, since the runtime takes it for the end of the
     * run (and waits for us), then the died event. Only init's final end gets here: between restarts
     * by policy no end-of-run hook runs (LXC's reboot does not run them either). */
    hooks_run_stop(s);
    restart_release();
    oom_watch_close(&oom);
    if (master >= 0) pump_console(master, &logfd, s);
    console_relay_close();
    remove_cgroups(s);
    hooks_run_post_stop(s);
    if (s->exit_file) write_exit_file(s->exit_file, status, oom_killed);
    if (died_pending) emit_event(s, PSC_EVENT_DIED, died_details);
}

/* One line from the caller (through the launcher), without its newline; -1 at its end. */
int read_answer(int fd, char *answer, size_t size) {
    size_t got = 0;
    for (;;) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n != 1) { answer[got] = '\0'; return got ? 0 : -1; }
        if (c == '\n') break;
        if (got < size - 1) answer[got++] = c;
    }
    answer[got] = '\0';
    return 0;
}

/* The supervisor: parent of init. Reports to the launcher through report_fd, then lives as long
 * as init does. */
static int supervise(const struct spec *s, int report_fd, int ctl_fd) {
    int master = -1, logfd = -1;
    char console_path[64] = "";
    if (s->console_log && open_console(s, &master, &logfd, console_path, sizeof console_path) < 0) return -1;
    /* The sync channel is a socket: with an idmapped root it carries the mount to init too. */
    int sync_pipe[2], err_pipe[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync_pipe) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) return fail("pipe");

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
    for (int i = 0; i < s->n_cgroups; i++)
        if (!is_v2_procs(s->cgroup_v2, s->cgroups[i]) && write_file(s->cgroups[i], pidtext) < 0) goto kill_child;
    if (s->uid_map && write_id_maps(child, s->uid_map, s->gid_map) < 0) goto kill_child;
    /* Made now (the maps are written, init waits), attached by init in its own mount namespace. */
    int root_fd = -1;
    if (s->idmap_root && (root_fd = idmapped_root(s, s->rootfs, child)) < 0) goto kill_child;
    /* Recorded before anything else can happen to init: a caller killed from here on leaves a
     * record the next command finds (and undoes, or completes once init was released). */
    if (write_run_record(s, child, "paused") < 0) goto kill_child;
    if (s->pause) {
        /* The caller configures what needs the new namespaces (network) before init goes on. */
        char answer[PSC_REPLY_MAX];
        send_reply(report_fd, PSC_REPLY_START_PAUSED, getpid(), child);
        if (read_answer(ctl_fd, answer, sizeof answer) < 0 || parse_reply(answer, PSC_R_GO, NULL) < 0) {
            errno = 0; fail("start aborted by the caller"); goto kill_child;
        }
    }
    close(ctl_fd);
    /* The namespaces a restart keeps (the network the caller just set up): held from here on. */
    if (restart_hold(s, child, s->console_log ? console_path : NULL) < 0) goto kill_child;
    hooks_hold_namespaces(s, child);
    if (write_run_record(s, child, "released") < 0) goto kill_child;
    /* Recorded here, before init goes on, so that its own end can never come first in the journal. */
    char started[64];
    snprintf(started, sizeof started, "init=%d", (int)child);
    emit_event(s, PSC_EVENT_STARTED, started);
    if (send_fd(sync_pipe[1], 'g', root_fd) < 0) { fail("release init"); goto kill_child; }
    close(sync_pipe[1]);
    if (root_fd >= 0) close(root_fd);

    /* EOF on the error pipe: init exec'd (or died without a word). */
    char cerr[sizeof errbuf];
    ssize_t n, got = 0;
    while ((n = read(err_pipe[0], cerr + got, sizeof cerr - 1 - (size_t)got)) > 0) got += n;
    close(err_pipe[0]);
    if (got > 0) {
        cerr[got] = '\0';
        snprintf(errbuf, sizeof errbuf, "%s", cerr);
        int st = 0;
        waitpid(child, &st, 0);
        char details[96];
        exit_details(st, details, sizeof details);
        strncat(details, " start-failed=1", sizeof details - strlen(details) - 1);
        emit_event(s, PSC_EVENT_DIED, details);
        goto undo;
    }

    send_reply(report_fd, PSC_REPLY_STARTED, getpid(), child);
    close(report_fd);
    watch_init(s, child, master, logfd, &mask);
    return 0;

kill_child:
    restart_release();
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
undo:
    /* Nothing of this start survives it: not the cgroups (the caller may be gone), not our record,
     * not the console (closed before the error is reported, so no one sees it held after). */
    if (logfd >= 0) close(logfd);
    if (master >= 0) close(master);
    remove_cgroups(s);
    if (s->run_record) unlink(s->run_record);
    hooks_run_post_stop_after_failure(s);
    return -1;
}

int cmd_start(const char *file, int restore) {
    struct spec s;
    read_spec(&s, restore ? PSC_CMD_RESTORE : PSC_CMD_START, file);
    if (restore && s.criu_fd < 3) die("spec: criufd must be an inherited descriptor above stdio, not %d", s.criu_fd);
    if (!restore && !s.rootfs && (s.clone_flags & CLONE_NEWNS)) die("spec: start with a mount namespace needs 'rootfs'");
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
        for (int fd = 3; fd < 1024; fd++) if (fd != report[1] && fd != ctl[0] && !(s.has_criu_fd && fd == s.criu_fd)) close(fd);
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
    /* Relay the supervisor's report line by line: a paused reply (answered from our stdin), then
     * the started reply, or "err <message>" (ours: the caller sees it on stderr). */
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
        if (reply_has_word(line, PSC_R_START_PAUSED)) {
            printf("%s\n", line);
            fflush(stdout);
            /* Passed on as it is: the supervisor reads it as the answer its reply expects. */
            char answer[PSC_REPLY_MAX];
            if (!fgets(answer, sizeof answer, stdin)) snprintf(answer, sizeof answer, "%s", PSC_FORMAT(PSC_REPLY_ABORT));
            write_all(ctl[1], answer, strlen(answer));
            continue;
        }
        if (reply_has_word(line, PSC_R_STARTED)) { printf("%s\n", line); return 0; }
        if (!strncmp(line, "err ", 4)) { fprintf(stderr, "%s\n", line + 4); return 1; }
    }
    fputs("supervisor died before the container started\n", stderr);
    return 1;
}

