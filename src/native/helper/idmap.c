/*
 * Idmapped mounts: a container's rootfs is kept on disk with the ids the container sees (0..65535)
 * and shown to it through a mount that maps them onto its user namespace, instead of being chowned
 * into the host's subordinate range (a walk of the whole tree; see userns_tree.c for that fallback).
 * See the kernel's Documentation/filesystems/idmappings.rst and mount_setattr(2).
 *
 * Only a process with CAP_SYS_ADMIN in the user namespace that owns the filesystem (for a host
 * filesystem: the initial one, i.e. root) may idmap a mount, and only a detached one (open_tree
 * with OPEN_TREE_CLONE). So the supervisor, root on the host, makes the mount once init's user
 * namespace has its maps, and passes it to init, which attaches it inside its own mount namespace
 * before pivot_root: the mount is never reachable from the host's tree, nor from the container
 * before it is idmapped.
 */
#include "helper.h"
#include <sys/fsuid.h>

/* A detached clone of the mount at `path`, idmapped onto `userns_fd`. -1 with errno (EINVAL or
 * EOPNOTSUPP: a filesystem that cannot be idmapped) and the reason in errbuf. */
int idmapped_clone(const char *path, int userns_fd) {
    int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0) return fail("open_tree %s", path);
    struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd };
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return fail("idmap a mount of %s", path);
    }
    return fd;
}

/* Raises the effective capabilities to the permitted ones (setfsuid away from 0 cleared the
 * file-related ones; see capabilities(7)). */
static int raise_effective(void) {
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0) return -1;
    data[0].effective = data[0].permitted;
    data[1].effective = data[1].permitted;
    return (int)syscall(SYS_capset, &hdr, data);
}

/* An overlay on idmapped layers (supported since Linux 5.19; layers given by descriptor, which
 * needs 6.13: the layers are detached mounts that no path names). The overlay itself is not
 * idmapped: its files are what its layers show, the container's ids. overlayfs does its work on
 * the layers with its creator's credentials, so it is created with the fs ids of the container's
 * root (host ids `root_uid`/`root_gid`), which the layers map (host root is not mapped there: its
 * work/ directory would fail with EOVERFLOW and the overlay come up read-only), and with root's
 * capabilities, like an overlay root mounts for a privileged container. */
static int idmapped_overlay(const struct spec *s, int userns_fd, uid_t root_uid, gid_t root_gid) {
    int fsfd = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    if (fsfd < 0) return fail("fsopen overlay");
    int rc = 0, dirfd = -1, upper = -1, work = -1, lowers = 0, lower[64];
    /* upperdir and workdir first: with "lowerdir+" given before them overlayfs has no upper yet. */
    dirfd = idmapped_clone(s->ovl_dir, userns_fd);
    if (dirfd < 0) { rc = -1; goto out; }
    upper = openat(dirfd, "upper", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    work = openat(dirfd, "work", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (upper < 0 || work < 0) { rc = fail("open %s/upper and work", s->ovl_dir); goto out; }
    if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FD, "upperdir", NULL, upper) < 0 ||
        syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FD, "workdir", NULL, work) < 0) { rc = fail("overlay upper and work layers (fsconfig by descriptor needs Linux 6.13)"); goto out; }
    /* Every layer's descriptor stays open until the overlay is created: overlayfs clones the layer
     * mounts then, and a detached mount whose last descriptor is closed is gone. */
    for (; lowers < s->n_ovl_lowers; lowers++) {
        if ((lower[lowers] = idmapped_clone(s->ovl_lowers[lowers], userns_fd)) < 0) { rc = -1; goto out; }
        if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FD, "lowerdir+", NULL, lower[lowers]) < 0) { lowers++; rc = fail("overlay lower layer %s", s->ovl_lowers[lowers - 1]); goto out; }
    }
    setfsgid(root_gid);
    setfsuid(root_uid);
    if (raise_effective() < 0) { rc = fail("raise capabilities"); }
    else if (syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) rc = fail("create the overlay");
    setfsuid(0);
    setfsgid(0);
    if (rc == 0) {
        rc = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, 0);
        if (rc < 0) fail("fsmount overlay");
    }
out:
    for (int i = 0; i < lowers; i++) if (lower[i] >= 0) close(lower[i]);
    if (upper >= 0) close(upper);
    if (work >= 0) close(work);
    if (dirfd >= 0) close(dirfd);
    close(fsfd);
    return rc;
}

/* The first host id of a map's line for container id 0 ("0 HOST COUNT"). */
unsigned long host_root_of(const char *map) {
    for (const char *line = map; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        unsigned long inside, outside, count;
        if (sscanf(line, "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0) return outside;
    }
    return (unsigned long)-1;
}

/* The supervisor's part: the container's root as a detached, idmapped mount (a bind of the rootfs,
 * or an overlay of idmapped layers) onto the user namespace of `init`, whose maps are written. */
int idmapped_root(const struct spec *s, const char *rootfs, pid_t init) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)init);
    int userns = open(path, O_RDONLY | O_CLOEXEC);
    if (userns < 0) return fail("open %s", path);
    int fd;
    if (s->n_ovl_lowers > 0) {
        unsigned long uid = s->uid_map ? host_root_of(s->uid_map) : (unsigned long)-1;
        unsigned long gid = s->gid_map ? host_root_of(s->gid_map) : uid;
        if (uid == (unsigned long)-1 || gid == (unsigned long)-1 || !s->ovl_dir) { close(userns); errno = EINVAL; return fail("an idmapped overlay needs uidmap, gidmap and ovl-dir"); }
        fd = idmapped_overlay(s, userns, (uid_t)uid, (gid_t)gid);
    } else {
        fd = idmapped_clone(rootfs, userns);
    }
    close(userns);
    return fd;
}

/* Sends `fd` (with one byte) over a unix socket; -1 without one. */
int send_fd(int sock, char byte, int fd) {
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof control);
    struct iovec iov = { &byte, 1 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n;
    while ((n = sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
    return n == 1 ? 0 : -1;
}

/* Receives one byte and, if one came with it, a descriptor (-1 otherwise) into *fd. */
int recv_fd(int sock, char *byte, int *fd) {
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { byte, 1 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control };
    *fd = -1;
    ssize_t n;
    while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
    if (n != 1) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(fd, CMSG_DATA(c), sizeof(int));
    return 0;
}
