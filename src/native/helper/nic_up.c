/*
 * psc-helper nic-up: brings up links a non-root user hot-plugged into its running container
 * (Add-ContainerNetworkInterface). psc-usernic (setuid, kept minimal) moves the veth's peer in and
 * leaves it down; at a start the container's init brings such links up itself (spec "link-up"),
 * but a running init is not ours to ask. The caller owns the container's user namespace, so this
 * unprivileged process joins it and the container's network namespace, by the init's pid, and
 * does what init would have done (link_up, ids.c), with the rights of the container's own root.
 *
 * Guarded against a hostile container: the pid must still be the init the caller recorded (its
 * start time, checked before and after the namespaces are opened, so a pid reused meanwhile is
 * refused); the namespaces must not be this process's own (never the host's network); the names
 * are checked as the kernel would before anything is opened. Nothing else is joined (no mount or
 * pid namespace: the container can neither see nor reach this process, which is non-dumpable and
 * runs no program).
 */
#include "helper.h"

/* A name the kernel takes for an interface (dev_valid_name), stricter: no spaces or controls. */
static int valid_link_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n >= IFNAMSIZ || !strcmp(name, ".") || !strcmp(name, "..")) return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p == '/' || *p == ':' || *p <= ' ' || *p == 0x7f) return 0;
    return 1;
}

/* The inode of one of our own namespaces. */
static ino_t own_namespace(const char *kind) {
    char p[64];
    struct stat st;
    snprintf(p, sizeof p, "/proc/self/ns/%s", kind);
    if (stat(p, &st) < 0) die("stat %s: %s", p, strerror(errno));
    return st.st_ino;
}

/* Opens a namespace of the init, refusing one of ours; *same says so (the caller decides). */
static int open_namespace(pid_t pid, const char *kind, int *same) {
    char p[64];
    struct stat st;
    snprintf(p, sizeof p, "/proc/%d/ns/%s", (int)pid, kind);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open %s (the container's init is gone, or not the caller's): %s", p, strerror(errno));
    if (fstat(fd, &st) < 0) die("stat %s: %s", p, strerror(errno));
    *same = st.st_ino == own_namespace(kind);
    return fd;
}

static void check_start_time(const struct spec *s) {
    unsigned long long now = proc_start_time(s->target_pid);
    if (now != s->target_start)
        die("pid %d is not the container's init any more (it %s): the container stopped", s->target_pid,
            now ? "is another process" : "is gone");
}

int cmd_nic_up(const char *file) {
    struct spec s;
    read_spec(&s, PSC_CMD_NIC_UP, file);
    if (s.target_pid <= 0) die("spec: 'pid' must be a process id, not %d", s.target_pid);
    for (int i = 0; i < s.n_links_up; i++)
        if (!valid_link_name(s.links_up[i]))
            die("'%s' is not a valid interface name: the kernel allows 1-%d bytes without '/', ':', spaces or control characters",
                s.links_up[i], IFNAMSIZ - 1);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("set non-dumpable: %s", strerror(errno));
    check_start_time(&s);
    int same_user, same_net;
    int userfd = open_namespace(s.target_pid, "user", &same_user);
    int netfd = open_namespace(s.target_pid, "net", &same_net);
    /* After the opens: the descriptors are that init's, not those of a process that took its pid. */
    check_start_time(&s);
    if (same_net) die("pid %d is in this process's own network namespace (the host's): nothing is changed there", s.target_pid);
    /* Its user namespace first: it grants the rights in the network namespace it owns. A root
     * caller's container without one is reached with the caller's own rights. */
    if (!same_user && setns(userfd, CLONE_NEWUSER) < 0) die("join the user namespace of pid %d: %s", s.target_pid, strerror(errno));
    if (setns(netfd, CLONE_NEWNET) < 0) die("join the network namespace of pid %d: %s", s.target_pid, strerror(errno));
    close(userfd);
    close(netfd);
    for (int i = 0; i < s.n_links_up; i++)
        if (link_up(s.links_up[i]) < 0) die("%s in the container", errbuf);
    return 0;
}
