/*
 * psc-helper netns-exec: ip netns exec. A program in a named network namespace, with that
 * namespace's /sys and /etc/netns/NAME's files over /etc, in a private mount namespace.
 */
#include "helper.h"

/* Enters a network namespace, then a private mount namespace (needs a single-threaded process)
 * where /sys shows that namespace's devices and the files of /etc/netns/NAME cover those of /etc. */
int cmd_netns_exec(const char *file) {
    struct spec s;
    read_spec(&s, PSC_CMD_NETNS_EXEC, file);
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

