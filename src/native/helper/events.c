/*
 * The supervisor's part of the event journal (psc-protocol.h, PSC_EVENT_*; the runtime's part is
 * Events/EventJournal.cs): init's own end, OOM kills and restarts by policy are seen only here.
 *
 * What a hostile container can influence: nothing of a record but the numbers it ends with (an
 * exit code, a signal, a count), which are formatted here as numbers. The container's name comes
 * from the spec (the runtime), the journal lives in the store, outside the container's reach, and
 * the supervisor runs on the host side as the store's owner. So a container cannot write a record
 * in another container's name, nor break the line structure that readers split on.
 */
#include "helper.h"
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>

static const char *const event_words[] = {
#define PSC_X(id, word, cs, doc) word,
    PSC_EVENT_KINDS(PSC_X)
#undef PSC_X
};

/* Appends one record (see psc-protocol.h). Best effort: a journal that cannot be written (a full
 * disk) must not take the container down with it. */
void emit_event(const struct spec *s, enum psc_event kind, const char *details) {
    if (!s->events_dir || !s->name) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char record[PSC_EVENT_RECORD_MAX];
    int n = snprintf(record, sizeof record, "%lld.%09ld\t%s\t%s\t%s\n", (long long)ts.tv_sec, ts.tv_nsec,
                     event_words[kind], s->name, details ? details : "");
    if (n < 0 || (size_t)n >= sizeof record) return;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", s->events_dir, PSC_EVENT_LOCK);
    int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock < 0) return;
    while (flock(lock, LOCK_EX) < 0 && errno == EINTR) {}
    char journal[PATH_MAX + 32];
    snprintf(journal, sizeof journal, "%s/%s", s->events_dir, PSC_EVENT_JOURNAL);
    struct stat st;
    /* Rotation under the lock: no writer can still append to the file once it was renamed. */
    if (s->has_events_max && s->events_max > 0 && stat(journal, &st) == 0 && st.st_size + n > s->events_max / 2) {
        char rotated[PATH_MAX + 32];
        snprintf(rotated, sizeof rotated, "%s/%s", s->events_dir, PSC_EVENT_ROTATED);
        rename(journal, rotated);
    }
    int fd = open(journal, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        write_all(fd, record, (size_t)n);
        close(fd);
    }
    close(lock);
}

/* The details of init's end: "code=N" or "signal=N name=SIG...". */
void exit_details(int status, char *out, size_t size) {
    if (WIFEXITED(status)) snprintf(out, size, "code=%d", WEXITSTATUS(status));
    else {
        const char *abbrev = sigabbrev_np(WTERMSIG(status));
        snprintf(out, size, "signal=%d name=SIG%s", WTERMSIG(status), abbrev ? abbrev : "UNKNOWN");
    }
}

/*
 * OOM kills of the container's memory cgroup. cgroup v2: the oom_kill counter of memory.events
 * (hierarchical: the container's inner cgroup counts too), watched with inotify (the kernel
 * notifies a modification of that file on each event). cgroup v1: an eventfd registered on
 * memory.oom_control through cgroup.event_control, which fires when the group hits OOM; its
 * "oom_kill" line counts the kills.
 */
static unsigned long long oom_count(const struct oom_watch *w) {
    char path[PATH_MAX + 32], buf[1024];
    snprintf(path, sizeof path, "%s/%s", w->dir, w->v1 ? "memory.oom_control" : "memory.events");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return w->count;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return w->count;
    buf[n] = '\0';
    for (char *line = buf; line && *line; ) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (!strncmp(line, "oom_kill ", 9)) return strtoull(line + 9, NULL, 10);
        line = next;
    }
    return w->count;
}

int oom_watch_open(const char *dir, struct oom_watch *w) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->control = -1;
    if (!dir) return -1;
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/memory.events", dir);
    if (access(path, R_OK) == 0) {
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd >= 0 && inotify_add_watch(w->fd, path, IN_MODIFY) < 0) { close(w->fd); w->fd = -1; }
    } else {
        snprintf(path, sizeof path, "%s/memory.oom_control", dir);
        w->control = open(path, O_RDONLY | O_CLOEXEC);
        if (w->control < 0) return -1;
        w->v1 = 1;
        w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        char text[64], ec[PATH_MAX + 32];
        snprintf(text, sizeof text, "%d %d", w->fd, w->control);
        snprintf(ec, sizeof ec, "%s/cgroup.event_control", dir);
        if (w->fd < 0 || write_file(ec, text) < 0) {
            if (w->fd >= 0) close(w->fd);
            close(w->control);
            w->fd = w->control = -1;
        }
    }
    if (w->fd >= 0) w->count = oom_count(w);
    return w->fd;
}

/* After the watch fired (or once more when init ended): reports new kills, returns how many. */
unsigned long long oom_watch_check(const struct spec *s, struct oom_watch *w) {
    if (w->fd < 0) return 0;
    char drain[4096];
    while (read(w->fd, drain, sizeof drain) > 0) {}
    unsigned long long now = oom_count(w);
    if (now <= w->count) return 0;
    unsigned long long added = now - w->count;
    w->count = now;
    char details[96];
    snprintf(details, sizeof details, "kills=%llu total=%llu", added, now);
    emit_event(s, PSC_EVENT_OOM_KILLED, details);
    return added;
}

void oom_watch_close(struct oom_watch *w) {
    if (w->fd >= 0) close(w->fd);
    if (w->control >= 0) close(w->control);
    w->fd = w->control = -1;
}
