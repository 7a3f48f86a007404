/*
 * Starting and waiting for processes: exec with a PATH search in the current root, fork into a
 * cgroup2 directory (clone3 CLONE_INTO_CGROUP), descriptors closed before a process enters a
 * container, termination signals forwarded to a child, exit statuses as a shell reports them.
 */
#include "helper.h"

void exec_program(const struct spec *s) {
    const char *prog = s->args[0];
    char *const *argv = (char *const *)s->args;
    char *const *envp = (char *const *)s->envs;
    if (strchr(prog, '/')) { execve(prog, argv, envp); return; }
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (int i = 0; i < s->n_envs; i++)
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

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

struct clone_args_v2 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* Set in parent and child alike: did fork_into() place the child in the cgroup? */
int born_in_cgroup;

/* fork() with namespace flags, the child born directly in the cgroup2 directory cgfd when given:
 * clone3(CLONE_INTO_CGROUP) needs no migration, so it never waits for the kernel's global cgroup
 * lock the way a cgroup.procs write does. Falls back to a plain clone on older kernels. */
pid_t fork_into(int cgfd, unsigned long flags) {
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
int is_v2_procs(const char *cgroup_v2, const char *file) {
    size_t n = cgroup_v2 ? strlen(cgroup_v2) : 0;
    return born_in_cgroup && n && !strncmp(file, cgroup_v2, n) && !strcmp(file + n, "/cgroup.procs");
}
/* Everything but stdio and `keep` is closed: no host descriptor reaches the container. */
void close_all_but(int keep) {
    if (keep > 3) syscall(SYS_close_range, 3, keep - 1, 0);
    if (syscall(SYS_close_range, keep >= 3 ? keep + 1 : 3, ~0U, 0) == 0) return;
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < (max > 0 ? max : 1024); fd++) if (fd != keep) close(fd);
}

volatile pid_t forward_to;

/* Termination signals the stager (or the non-interactive relay) receives go to its child. */
static void forward_signal(int sig) {
    int saved = errno;
    if (forward_to > 0) kill(forward_to, sig);
    errno = saved;
}

const int forwarded_signals[4] = { SIGTERM, SIGHUP, SIGINT, SIGQUIT };

void install_forwarding(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++) sigaction(forwarded_signals[i], &sa, NULL);
}

/* Waits for pid; its exit code, or 128+signal. */
int wait_status(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) if (errno != EINTR) return 125;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}


/* The relay's timeout reaches the stager as SIGUSR1: the command's whole process group (it leads its
 * own session) is killed. A request that arrives before the command is forked is kept for then. */
static volatile sig_atomic_t kill_requested;

static void kill_command(int sig) {
    (void)sig;
    int saved = errno;
    kill_requested = 1;
    if (forward_to > 0) { kill(-forward_to, SIGKILL); kill(forward_to, SIGKILL); }
    errno = saved;
}

void install_kill_request(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = kill_command;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
}

void kill_if_requested(void) {
    if (kill_requested && forward_to > 0) { kill(-forward_to, SIGKILL); kill(forward_to, SIGKILL); }
}

/* The command's ids inside the container: supplementary groups, then gid, then uid (each step
 * needs the privilege the next one gives up). setresuid to a non-root uid clears the capabilities,
 * as for any non-root process. Returns -1 with errbuf set. */
int switch_ids(const struct spec *s) {
    if (!s->has_uid && !s->has_gid && !s->n_groups) return 0;
    gid_t list[PSC_MAX_ITEMS] = { 0 };
    int n = 0;
    for (int i = 0; i < s->n_groups; i++) {
        char *end;
        errno = 0;
        unsigned long g = strtoul(s->groups[i], &end, 10);
        if (errno || *end || end == s->groups[i] || g > UINT32_MAX - 1) { errno = EINVAL; return fail("supplementary group '%s'", s->groups[i]); }
        list[n++] = (gid_t)g;
    }
    /* A user namespace whose gid map was written without setgroups allowed refuses setgroups;
     * dropping to no supplementary groups is then what we have (become_userns_root left none). */
    if (setgroups((size_t)n, list) < 0 && !(n == 0 && errno == EPERM)) return fail("setgroups");
    if (s->has_gid && setresgid(s->gid, s->gid, s->gid) < 0) return fail("setgid %u", s->gid);
    if (s->has_uid && setresuid(s->uid, s->uid, s->uid) < 0) return fail("setuid %u", s->uid);
    /* The id change made us dumpable again until the exec. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    return 0;
}
