/*
 * The container's root filesystem, as init sets it up in its new mount namespace: paths resolved
 * inside the rootfs only (openat2 RESOLVE_IN_ROOT: a hostile rootfs's symlinks and ".." never reach
 * the host), the mounts of the spec, masked paths, symlinks, and the pivot_root into it.
 */
#include "helper.h"

/* Open `path` as if `rootfd` were "/": symlinks and ".." can never leave the root. */
int open_in_root(int rootfd, const char *path, int flags) {
    struct open_how how = { .flags = (uint64_t)flags | O_CLOEXEC,
                            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

/* mkdir -p of `path` inside the root, then open it (O_PATH). With PSC_MNT_FILE, the last component
 * is created as an empty file (a bind-mount target for a device node or the console). */
static int make_in_root(int rootfd, const char *path, int as_file) {
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
    strcpy(buf, path);
    for (char *p = buf + 1; ; p++) {
        int last = (*p == '\0');
        if (*p == '/' || last) {
            char saved = *p;
            *p = '\0';
            int fd = open_in_root(rootfd, buf, O_PATH);
            if (fd < 0 && errno == ENOENT) {
                /* Create the missing component inside its (safely opened) parent. */
                char *slash = strrchr(buf, '/');
                int parent = slash == buf || !slash ? dup(rootfd)
                           : (*slash = '\0', open_in_root(rootfd, buf, O_PATH | O_DIRECTORY));
                if (slash && slash != buf) *slash = '/';
                if (parent < 0) return -1;
                const char *leaf = slash ? slash + 1 : buf;
                int rc = (last && as_file)
                    ? (fd = openat(parent, leaf, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0 ? -1 : close(fd)
                    : mkdirat(parent, leaf, 0755);
                if (rc < 0 && errno == EEXIST) {
                    /* It exists but does not resolve: a symlink leading nowhere inside the root.
                     * We never create through it (its target may name a host path). */
                    char link[PATH_MAX];
                    ssize_t n = readlinkat(parent, leaf, link, sizeof link - 1);
                    close(parent);
                    if (n >= 0) {
                        link[n] = '\0';
                        errno = 0;
                        fail("%s is a symlink to %s, which does not exist inside the container", buf, link);
                        errno = ENOENT;
                        return -2;
                    }
                    errno = ENOENT;
                    return -1;
                }
                close(parent);
                if (rc < 0) return -1;
                fd = open_in_root(rootfd, buf, O_PATH);
            }
            *p = saved;
            if (fd < 0) return -1;
            if (last) return fd;
            close(fd);
        }
    }
}

static int mount_at_fd(const char *src, int fd, const char *type, unsigned long flags, const char *data) {
    char target[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    return mount(src, target, type, flags, data);
}

/* Masked paths (/proc/kcore, /sys/firmware, ...): a file is covered by /dev/null, a directory by an
 * empty read-only tmpfs. A path this kernel does not have needs no mask. */
static int mask_path(int rootfd, const char *path) {
    int fd = open_in_root(rootfd, path, O_PATH);
    if (fd < 0) return errno == ENOENT ? 0 : fail("mask %s", path);
    struct stat st;
    int rc = fstat(fd, &st);
    if (rc == 0)
        rc = S_ISDIR(st.st_mode)
            ? mount_at_fd("tmpfs", fd, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555")
            : mount_at_fd("/dev/null", fd, NULL, MS_BIND, NULL);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc < 0 ? fail("mask %s", path) : 0;
}

static int do_mounts(const struct spec *s, int rootfd, const char *console_path) {
    for (int i = 0; i < s->n_mounts; i++) {
        const struct mount_rec *m = &s->mounts[i];
        if (m->flags & PSC_MNT_MASK) {
            if (mask_path(rootfd, m->dst) < 0) return -1;
            continue;
        }
        unsigned long kflags = (unsigned long)(m->flags & 0xFFFFFFFFULL);
        const char *src = m->src;
        char srcbuf[64];
        int srcfd = -1;
        if (m->flags & PSC_MNT_CONSOLE) {
            if (!console_path) continue; /* no console was asked for: /dev/console stays absent */
            src = console_path;
        } else if (m->flags & PSC_MNT_SRC_IN_ROOT) {
            srcfd = open_in_root(rootfd, m->src, O_PATH);
            if (srcfd < 0) {
                if (errno == ENOENT && (m->flags & PSC_MNT_OPTIONAL)) continue;
                return fail("mount %s: open source in rootfs", m->dst);
            }
            snprintf(srcbuf, sizeof srcbuf, "/proc/self/fd/%d", srcfd);
            src = srcbuf;
        } else if ((m->flags & PSC_MNT_OPTIONAL) && src[0] == '/' && access(src, F_OK) != 0) {
            continue;
        }
        int tfd = make_in_root(rootfd, m->dst, (m->flags & (PSC_MNT_FILE | PSC_MNT_CONSOLE)) != 0);
        if (tfd < 0) {
            if (srcfd >= 0) close(srcfd);
            if (tfd == -2) { char why[sizeof errbuf]; snprintf(why, sizeof why, "%s", errbuf); errno = 0; return fail("mount target %s: %s", m->dst, why); }
            return fail("mount target %s", m->dst);
        }
        unsigned long first = (kflags & MS_BIND) ? (kflags & ~(unsigned long)MS_RDONLY) : kflags;
        int rc = mount_at_fd(src, tfd, m->type[0] ? m->type : NULL, first, m->data[0] ? m->data : NULL);
        if (rc == 0 && (kflags & MS_BIND) && (kflags & MS_RDONLY)) {
            /* A bind mount ignores MS_RDONLY: remount it read-only (on the new mount, via a fresh fd). */
            close(tfd);
            tfd = open_in_root(rootfd, m->dst, O_PATH);
            rc = tfd < 0 ? -1 : mount_at_fd(NULL, tfd, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | (kflags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)), NULL);
            if (rc == 0 && (kflags & MS_REC)) {
                /* MS_REMOUNT ignores MS_REC: the mounts below the bind (a host submount) would stay
                 * writable. mount_setattr(AT_RECURSIVE) makes the whole tree read-only. No fallback:
                 * a kernel without it (before 5.12) fails the start rather than leave a writable
                 * submount behind a read-only mount. */
                struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
                if (kflags & MS_NOSUID) attr.attr_set |= MOUNT_ATTR_NOSUID;
                if (kflags & MS_NODEV) attr.attr_set |= MOUNT_ATTR_NODEV;
                if (kflags & MS_NOEXEC) attr.attr_set |= MOUNT_ATTR_NOEXEC;
                rc = (int)syscall(SYS_mount_setattr, tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
                if (rc < 0 && errno == ENOSYS) { errno = 0; return fail("mount %s on %s: a recursive read-only bind needs mount_setattr (Linux 5.12 or later)", m->src, m->dst); }
            }
        }
        int saved = errno;
        if (tfd >= 0) close(tfd);
        if (srcfd >= 0) close(srcfd);
        errno = saved;
        if (rc < 0) return fail("mount %s on %s (%s)", m->src, m->dst, m->type[0] ? m->type : "bind");
    }
    for (int i = 0; i < s->n_links; i++) {
        const char *path = s->links[i].path;
        const char *slash = strrchr(path, '/');
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 0, path);
        int dfd = dir[0] ? open_in_root(rootfd, dir, O_PATH | O_DIRECTORY) : dup(rootfd);
        if (dfd < 0) return fail("symlink %s: open parent", path);
        unlinkat(dfd, slash ? slash + 1 : path, 0);
        int rc = symlinkat(s->links[i].target, dfd, slash ? slash + 1 : path);
        close(dfd);
        if (rc < 0 && errno != EEXIST) return fail("symlink %s -> %s", path, s->links[i].target);
    }
    return 0;
}

/* In init's new mount namespace: the root mounts, the rootfs bound on itself, the container's
 * mounts inside it (through descriptors, never through paths the container could redirect), then
 * pivot_root into it. Becomes the user namespace's root on the way (see below). */
int enter_rootfs(const struct spec *s, const char *console, int idmapped_root_fd) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return fail("make mounts private");
    if (idmapped_root_fd >= 0) {
        /* The supervisor's detached, idmapped mount (idmap.c) becomes the rootfs here, in this
         * mount namespace only; it replaces the root mounts and the bind below. */
        if (syscall(SYS_move_mount, idmapped_root_fd, "", AT_FDCWD, s->rootfs, MOVE_MOUNT_F_EMPTY_PATH) < 0)
            return fail("attach the idmapped rootfs on %s", s->rootfs);
        close(idmapped_root_fd);
    } else {
        /* Root mounts (an overlay rootfs) live only in this mount namespace: the host never sees them. */
        for (int i = 0; i < s->n_root_mounts; i++) {
            const struct mount_rec *m = &s->root_mounts[i];
            if (mount(m->src, s->rootfs, m->type, (unsigned long)(m->flags & 0xFFFFFFFFULL), m->data[0] ? m->data : NULL) < 0)
                return fail("mount %s (%s) on %s", m->src, m->type, s->rootfs);
        }
        if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) return fail("bind rootfs %s", s->rootfs);
    }
    int rootfd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) return fail("open rootfs %s", s->rootfs);
    /* In a user namespace, switch ids only now: the host paths above (the store, maybe under a
     * 0700 home) were reached as the caller; what follows is created inside the rootfs and must
     * belong to the container's root, not to an unmapped id. */
    if ((s->clone_flags & CLONE_NEWUSER) && become_userns_root() < 0) return -1;
    /* Before the mounts: the container's /proc/sys is read-only (proc:mixed). The host's /proc is
     * still visible here, and a net.* or ipc sysctl file resolves to the namespaces of whoever opens
     * it (init, already in the container's), so writes land in the container, never on the host. */
    if (apply_sysctls(s) < 0) return -1;
    if (do_mounts(s, rootfd, console) < 0) return -1;
    /* LXC's lxc.hook.mount: in the container's mount namespace, its mounts made, before pivot_root
     * (host paths still reachable; the rootfs at LXC_ROOTFS_MOUNT). */
    if (run_hooks(s, "mount", rootfd) < 0) return -1;
    /* pivot_root(".", "."): the old root ends up stacked on the new one; detach it. Never chroot. */
    if (fchdir(rootfd) < 0) return fail("chdir rootfs");
    close(rootfd);
    if (syscall(SYS_pivot_root, ".", ".") < 0) return fail("pivot_root");
    if (umount2(".", MNT_DETACH) < 0) return fail("detach old root");
    if (chdir("/") < 0) return fail("chdir /");
    return 0;
}
