/*
 * userns-tree copy: a tree copied as root of the user namespace that maps its owners, which is how a
 * non-root user copies (Copy-Container, snapshots) a container whose files its subordinate ids own.
 */
#include "helper.h"

/* Like TreeCopier (the managed copy root uses): types, numeric owners, full modes, xattrs (file
 * capabilities, ACLs), hard links, timestamps; symlinks are copied, never followed; data is reflinked
 * or copied in the kernel where the filesystem can. The walk (tree_walk.c) reaches every entry
 * through its parent's fd and enters no mount: a subtree on another mount or filesystem is copied
 * as its directory only. Here: what is done with each entry, through the same fds. */

#ifndef FICLONE
#define FICLONE _IOW(0x94, 9, int)
#endif

struct link_seen { dev_t dev; ino_t ino; char *rel; };
static struct link_seen *links;
static size_t n_links, cap_links;

static int copy_xattrs(int sfd, int dfd, const char *rel) {
    char names[65536], value[65536];
    ssize_t n = flistxattr(sfd, names, sizeof names);
    if (n < 0) return errno == ENOTSUP ? 0 : fail("list xattrs of %s", rel);
    for (char *k = names; k < names + n; k += strlen(k) + 1) {
        /* The host's labels are not the copy's to carry (as TreeCopier). */
        if (!strncmp(k, "security.selinux", 16)) continue;
        ssize_t len = fgetxattr(sfd, k, value, sizeof value);
        if (len < 0) { if (errno == ENODATA) continue; return fail("read xattr %s of %s", k, rel); }
        if (fsetxattr(dfd, k, value, (size_t)len, 0) < 0) return fail("set xattr %s on %s", k, rel);
    }
    return 0;
}

static int copy_data(int sfd, int dfd, off_t size, const char *rel) {
    if (size == 0 || ioctl(dfd, FICLONE, sfd) == 0) return 0;
    off_t done = 0;
    while (done < size) {
        ssize_t n = copy_file_range(sfd, NULL, dfd, NULL, (size_t)(size - done), 0);
        if (n > 0) { done += n; continue; }
        if (n == 0) break; /* shrank meanwhile */
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return fail("copy %s", rel);
        /* No in-kernel copy between these filesystems: read and write. */
        char buf[1 << 16];
        ssize_t r;
        while ((r = read(sfd, buf, sizeof buf)) > 0)
            if (write_all(dfd, buf, (size_t)r) < 0) return fail("write %s", rel);
        if (r < 0) return fail("read %s", rel);
        break;
    }
    return 0;
}

/* Owner, then mode (chown clears setuid/setgid), then xattrs (chown clears file capabilities; set
 * again by this namespace's root they stay the container root's), then times (last: xattrs and the
 * directory's children change them). */
static int finish_fd(int sfd, int dfd, const struct stat *st, const char *rel) {
    if (fchown(dfd, st->st_uid, st->st_gid) < 0) return fail("chown %s", rel);
    if (fchmod(dfd, st->st_mode & 07777) < 0) return fail("chmod %s", rel);
    if (copy_xattrs(sfd, dfd, rel) < 0) return -1;
    struct timespec t[2] = { st->st_atim, st->st_mtim };
    if (futimens(dfd, t) < 0) return fail("set the times of %s", rel);
    return 0;
}

/* The copy's directory at each depth (the root's at 0): where the entries one deeper are made. */
static int copy_dirs[WALK_MAX_DEPTH + 1];

static int copy_visit(const struct walk_entry *e, enum walk_visit when, void *ctx) {
    (void)ctx;
    const struct stat *st = e->st;
    const char *name = e->name, *rel = e->rel;
    int sdir = e->dirfd, ddir = copy_dirs[e->depth - 1];
    if (when == WALK_POST) {
        /* A directory's owner, mode, xattrs and times once its contents are in (they change its
         * times). One on another filesystem (a mount) was not entered: copied as its directory only. */
        int sfd = e->fd >= 0 ? e->fd : openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int rc = sfd < 0 ? fail("open %s", rel) : finish_fd(sfd, copy_dirs[e->depth], st, rel);
        if (sfd >= 0 && sfd != e->fd) close(sfd);
        close(copy_dirs[e->depth]);
        copy_dirs[e->depth] = -1;
        return rc;
    }
    if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
        for (size_t i = 0; i < n_links; i++)
            if (links[i].dev == st->st_dev && links[i].ino == st->st_ino)
                /* AT_FDCWD is the copy's root (see copy_tree). */
                return linkat(AT_FDCWD, links[i].rel, ddir, name, 0) < 0 ? fail("link %s", rel) : 0;
        if (n_links == cap_links) {
            cap_links = cap_links ? cap_links * 2 : 256;
            links = realloc(links, cap_links * sizeof *links);
            if (!links) return fail("remember hard links");
        }
        links[n_links++] = (struct link_seen){ st->st_dev, st->st_ino, strdup(rel) };
    }
    int rc = 0, sfd = -1, dfd = -1;
    if (S_ISDIR(st->st_mode)) {
        if (mkdirat(ddir, name, 0700) < 0) return fail("make %s", rel);
        if ((copy_dirs[e->depth] = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) return fail("open the copy of %s", rel);
    } else if (S_ISREG(st->st_mode)) {
        if ((sfd = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) rc = fail("open %s", rel);
        else if ((dfd = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) rc = fail("create the copy of %s", rel);
        else if ((rc = copy_data(sfd, dfd, st->st_size, rel)) == 0) rc = finish_fd(sfd, dfd, st, rel);
    } else if (S_ISLNK(st->st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(sdir, name, target, sizeof target - 1);
        if (n < 0) return fail("read link %s", rel);
        target[n] = '\0';
        struct timespec t[2] = { st->st_atim, st->st_mtim };
        if (symlinkat(target, ddir, name) < 0) rc = fail("make link %s", rel);
        else if (fchownat(ddir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0) rc = fail("chown %s", rel);
        else if (utimensat(ddir, name, t, AT_SYMLINK_NOFOLLOW) < 0) rc = fail("set the times of %s", rel);
    } else {
        /* fifo, socket, device node. A user namespace cannot make device nodes: the kernel refuses
         * (EPERM), and the error names the node; a non-root user's container cannot hold one either. */
        struct timespec t[2] = { st->st_atim, st->st_mtim };
        if (mknodat(ddir, name, st->st_mode, st->st_rdev) < 0) rc = fail("make the node %s", rel);
        else if (fchownat(ddir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0) rc = fail("chown %s", rel);
        else if (fchmodat(ddir, name, st->st_mode & 07777, 0) < 0) rc = fail("chmod %s", rel);
        else if (utimensat(ddir, name, t, AT_SYMLINK_NOFOLLOW) < 0) rc = fail("set the times of %s", rel);
    }
    if (sfd >= 0) close(sfd);
    if (dfd >= 0) close(dfd);
    return rc;
}

/* Copies the tree at src into dst, which must not exist or be empty (its parent must exist). Runs in the namespace. */
int copy_tree(const char *src, const char *dst) {
    int sfd = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sfd < 0) return fail("open %s", src);
    struct stat st;
    if (fstat(sfd, &st) < 0) { close(sfd); return fail("stat %s", src); }
    if (mkdir(dst, 0700) < 0 && errno != EEXIST) { close(sfd); return fail("make %s", dst); }
    int dfd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* Relative paths of first links resolve from here. */
    if (dfd < 0 || fchdir(dfd) < 0) { if (dfd >= 0) close(dfd); close(sfd); return fail("open %s", dst); }
    for (int i = 0; i <= WALK_MAX_DEPTH; i++) copy_dirs[i] = -1;
    copy_dirs[0] = dfd;
    struct walk w = { .fn = copy_visit, .verb = "copy" };
    int rc = walk_tree(sfd, &st, &w);
    if (rc == 0) rc = finish_fd(sfd, dfd, &st, dst);
    /* A failed walk leaves the copy's directories it was in open. */
    for (int i = 0; i <= WALK_MAX_DEPTH; i++)
        if (copy_dirs[i] >= 0) close(copy_dirs[i]);
    close(sfd);
    return rc;
}

/* The copy of a container under a new name: its etc/hostname, if it holds old_name, gets new_name
 * (as HostnameFile does for root's copies). Resolved inside the copy, never through a symlink. */
int rewrite_hostname(const char *root, const char *old_name, const char *new_name) {
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) return fail("open %s", root);
    struct open_how how = { .flags = O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    int fd = (int)syscall(SYS_openat2, rootfd, "etc/hostname", &how, sizeof how);
    close(rootfd);
    if (fd < 0) return 0; /* none, or not a file to write: nothing to rename */
    struct stat st;
    char text[4097];
    ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= 4096 ? pread(fd, text, sizeof text - 1, 0) : -1;
    int rc = 0;
    if (n >= 0) {
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '\t' || text[n - 1] == '\r')) n--;
        text[n] = '\0';
        if (!strcmp(text, old_name)) {
            size_t len = strlen(new_name);
            if (ftruncate(fd, 0) < 0 || pwrite(fd, new_name, len, 0) != (ssize_t)len || pwrite(fd, "\n", 1, (off_t)len) != 1)
                rc = fail("write %s/etc/hostname", root);
        }
    }
    close(fd);
    return rc;
}
