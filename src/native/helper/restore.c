/*
 * psc-helper restore: the supervisor runs criu instead of cloning an init, and supervises the init
 * criu restores as its child (rst_sibling). Everything criu restored dies with a restore that is
 * given up.
 */
#include "helper.h"

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
        for (int i = 0; i < s->n_cgdirs; i++) {
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
 * RESTORE_PAUSED (supervisor, criu, pty). The caller asks for rst_sibling, so criu creates the restored
 * init with CLONE_PARENT: it becomes OUR child, and we supervise it exactly like a started one once
 * the caller answers GO_RESTORED with its pid (ABORT kills whatever was restored). */
/* A restored container's start plan (RESTART_SPEC): the restart policy and what relaunch() makes
 * init from, with the same supervisor's part (records, journal, cgroups, console) as the restore spec. */
static struct spec restart_plan;

int supervise_restore(const struct spec *s, int report_fd, int ctl_fd) {
    int master = -1, logfd = -1, slave = -1;
    /* Read first (the file is deleted as it is read): a plan that is not one fails the restore
     * before criu runs. From the restored init on, the plan is what the supervisor watches with. */
    const struct spec *watched = s;
    if (s->restart_spec) {
        read_spec(&restart_plan, PSC_CMD_START, s->restart_spec);
        watched = &restart_plan;
    }
    char console_path[64] = "";
    if (s->console_log && (slave = open_console(s, &master, &logfd, console_path, sizeof console_path)) < 0) return -1;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    /* What criu forks (its helpers, tasks it restores before rst_sibling applies) is reparented to
     * us, not to the host's init, when criu dies: a restore that is given up finds and kills it
     * among our children (kill_restore) instead of leaving it stopped somewhere on the host. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) return fail("become the subreaper of criu's processes");
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
    send_reply(report_fd, PSC_REPLY_RESTORE_PAUSED, getpid(), criu, console_path[0] ? console_path : "-");
    char answer[PSC_REPLY_MAX];
    int restored[4] = { 0 };
    if (read_answer(ctl_fd, answer, sizeof answer) < 0 || parse_reply(answer, PSC_R_GO_RESTORED, restored) < 0) restored[0] = 0;
    close(ctl_fd);
    pid_t init = restored[0];
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
        fail(init <= 0 ? "restore aborted by the caller" : criu_stuck ? "criu did not exit after restoring init %d" : "restored init %d is not a child of the supervisor", init);
        hooks_run_post_stop_after_failure(s);
        return -1;
    }
    /* The restart policy keeps the user and network namespaces CRIU made (with their maps, the
     * veths and addresses), as a start's keeps those the runtime set up: held from the restored init. */
    if (restart_hold(watched, init, console_path[0] ? console_path : NULL) < 0) {
        char why[sizeof errbuf];
        snprintf(why, sizeof why, "%s", errbuf);
        kill_restore(s, criu);
        remove_cgroups(s);
        remove_yards(s);
        errno = 0;
        fail("%s", why);
        hooks_run_post_stop_after_failure(s);
        return -1;
    }
    /* LXC's restore (criu.c, do_restore) ends like a start: lxc_end runs stop, net-down and
     * post-stop when the restored init has ended. The restore spec carries them (and so does the
     * restart plan, which is what is watched when there is one); stop gets the restored init's
     * namespaces, held from now on as a started init's are. */
    hooks_hold_namespaces(watched, init);
    write_run_record(s, init, "released");   /* best effort: the restored init already runs */
    send_reply(report_fd, PSC_REPLY_STARTED, getpid(), init);
    close(report_fd);
    watch_init(watched, init, master, logfd, &mask);
    return 0;
}

