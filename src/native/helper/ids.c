/*
 * User namespaces and ids: the id maps root writes for a child, becoming root of a user namespace,
 * and the one network step done from inside (links up), for callers who cannot reach in.
 */
#include "helper.h"

/* Root writes a child's id maps itself. No "deny" to setgroups: that is only required of a writer
 * without CAP_SETGID, and a container whose root cannot setgroups(2) breaks su, login and apt. A
 * non-root caller has newuidmap/newgidmap (setuid, checked against /etc/subuid) write them instead
 * while the child waits (the runtime does that during the pause handshake). */
int write_id_maps(pid_t pid, const char *uid_map, const char *gid_map) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/uid_map", pid);
    if (write_file(p, uid_map) < 0) return -1;
    snprintf(p, sizeof p, "/proc/%d/gid_map", pid);
    return write_file(p, gid_map ? gid_map : uid_map);
}

/* Become uid/gid 0 of the user namespace we are in (or just joined). Until then our ids are the
 * caller's, unmapped; the capabilities we hold in the namespace survive the switch because the old
 * ids were not its root (see capabilities(7), "Effect of user ID changes on capabilities"). */
int become_userns_root(void) {
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) return fail("become root in the user namespace");
    if (setgroups(0, NULL) < 0 && errno != EPERM) return fail("drop supplementary groups");
    return 0;
}

/* ioctl(SIOCSIFFLAGS) on lo (and a non-root user's veths, see psc-usernic.c): done by init itself
 * when the runtime cannot reach into the container's network namespace (a non-root caller has no
 * rights there; its user namespace's root has), and by nic-up (nic_up.c) for a hot-plugged veth. */
int link_up(const char *name) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail("socket to bring %s up", name);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (strlen(name) >= sizeof ifr.ifr_name) { close(fd); errno = EINVAL; return fail("interface name %s", name); }
    strcpy(ifr.ifr_name, name);
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) { ifr.ifr_flags |= IFF_UP; rc = ioctl(fd, SIOCSIFFLAGS, &ifr); }
    if (rc < 0) fail("bring %s up", name);
    close(fd);
    return rc;
}

