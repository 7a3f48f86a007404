/*
 * The container's console: a pty the supervisor allocates, whose output it copies to the console
 * log, capped and rotated, without ever blocking the container or losing output silently.
 */
#include "helper.h"

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

void pump_console(int master, int *logfd, const struct spec *s) {
    char buf[8192];
    for (;;) {
        ssize_t r = read(master, buf, sizeof buf);
        if (r <= 0) return;
        console_relay_output(buf, (size_t)r); /* Enter-Container -Console: an attached caller sees it too */
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

/* The console: a pty whose master the supervisor copies to the log. Returns the slave's fd. */
int open_console(const struct spec *s, int *master, int *logfd, char *console_path, size_t size) {
    *master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (*master < 0 || grantpt(*master) < 0 || unlockpt(*master) < 0) return fail("allocate console pty");
    if (ptsname_r(*master, console_path, size) != 0) return fail("ptsname");
    /* Hold the slave open ourselves, so the master never sees a hangup while init reopens it. */
    int slave = open(console_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) return fail("open console %s", console_path);
    /* In a user namespace the console belongs to the container's root (LXC's chown_mapped_root):
     * owned by the host's root, unmapped inside, an init system's getty could not open /dev/console
     * again (systemd's console-getty: "Failed to set up standard input: Permission denied"). A restore
     * gives its fresh pty the same owner: CRIU sets the checkpointed owner (the container's root) on it
     * from inside the user namespace, which only works on a pty whose owner is mapped there. */
    if (s->has_console_uid && fchown(slave, (uid_t)s->console_uid, s->has_console_gid ? (gid_t)s->console_gid : (gid_t)-1) < 0)
        return fail("give the console %s to the container's root", console_path);
    *logfd = open(s->console_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (*logfd < 0) return fail("open console log %s", s->console_log);
    return slave;
}

