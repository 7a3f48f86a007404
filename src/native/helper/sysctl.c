/*
 * LXC's lxc.sysctl.*: namespaced kernel settings written by init into its own network and IPC
 * namespaces before the container's program runs. The runtime accepts only namespaced names
 * (ConfigRules.Sysctl); here each name is turned into its /proc/sys path once more, refusing
 * anything that could leave /proc/sys.
 */
#include "helper.h"

int apply_sysctls(const struct spec *s) {
    for (int i = 0; i < s->n_sysctls; i++) {
        const char *item = s->sysctls[i];
        const char *eq = strchr(item, '=');
        if (!eq || eq == item) { errno = EINVAL; return fail("sysctl '%s': expected name=value", item); }
        char path[PATH_MAX];
        int n = snprintf(path, sizeof path, "/proc/sys/%.*s", (int)(eq - item), item);
        if (n < 0 || (size_t)n >= sizeof path) { errno = ENAMETOOLONG; return fail("sysctl '%s'", item); }
        /* net.ipv4.ip_forward -> net/ipv4/ip_forward; a name never holds a slash or "..". */
        for (char *p = path + strlen("/proc/sys/"); *p; p++) {
            if (*p == '/' || (p[0] == '.' && p[1] == '.')) { errno = EINVAL; return fail("sysctl '%s': not a sysctl name", item); }
            if (*p == '.') *p = '/';
        }
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) return fail("sysctl %.*s: open %s", (int)(eq - item), item, path);
        int rc = write_all(fd, eq + 1, strlen(eq + 1));
        int saved = errno;
        close(fd);
        errno = saved;
        if (rc < 0) return fail("sysctl %.*s: write '%s'", (int)(eq - item), item, eq + 1);
    }
    return 0;
}
