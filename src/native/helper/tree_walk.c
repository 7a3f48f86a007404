/*
 * The one tree walk of psc-helper (copy, list, shift and remove of a container's tree: tree_copy.c,
 * tree_list.c, userns_tree.c). The trees are hostile (a container's files, an archive's), so the
 * rules of the walk live here, once, and each operation only says what it does per entry:
 *  - every entry is reached through its parent's fd (statx/openat with AT_SYMLINK_NOFOLLOW,
 *    O_NOFOLLOW), never by a path from the root: a link is never followed, and a tree changed
 *    meanwhile cannot send the walk out of it;
 *  - a directory is entered only if it is on the root's mount and filesystem (its mount id and
 *    st_dev): a mount inside the tree (a bind of a host directory too, which has the host's st_dev)
 *    is visited as its entry only, and an entry on another one says so (other_fs);
 *  - a directory entered is the one stat'ed (same device and inode once opened);
 *  - depth is bounded (WALK_MAX_DEPTH): a deep tree fails with an error naming it, not with an
 *    exhausted stack or fd table; the walk holds one fd per level.
 */
#include "helper.h"
#include <sys/resource.h>

struct walk_state {
    const struct walk *w;
    dev_t dev;
    uint64_t mnt_id;
    int has_mnt_id;
    char rel[PATH_MAX];
    char shown[PATH_MAX + 64];
};

/* The path errors name: relative to the root ("." for the root), or under w->shown_root. */
static const char *show(struct walk_state *ws) {
    if (!ws->w->shown_root) return ws->rel[0] ? ws->rel : ".";
    snprintf(ws->shown, sizeof ws->shown, "%s%s%s", ws->w->shown_root, ws->rel[0] ? "/" : "", ws->rel);
    return ws->shown;
}

/* One statx, for the mount id besides what stat gives; never follows the entry or automounts it. */
static int stat_entry(int dirfd, const char *name, int flags, struct stat *st, uint64_t *mnt_id, int *has_mnt_id) {
    struct statx sx;
    if (statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS | STATX_MNT_ID, &sx) < 0) return -1;
    memset(st, 0, sizeof *st);
    st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st->st_ino = sx.stx_ino;
    st->st_mode = sx.stx_mode;
    st->st_nlink = sx.stx_nlink;
    st->st_uid = sx.stx_uid;
    st->st_gid = sx.stx_gid;
    st->st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
    st->st_size = (off_t)sx.stx_size;
    st->st_blksize = sx.stx_blksize;
    st->st_blocks = (blkcnt_t)sx.stx_blocks;
    st->st_atim = (struct timespec){ sx.stx_atime.tv_sec, sx.stx_atime.tv_nsec };
    st->st_mtim = (struct timespec){ sx.stx_mtime.tv_sec, sx.stx_mtime.tv_nsec };
    st->st_ctim = (struct timespec){ sx.stx_ctime.tv_sec, sx.stx_ctime.tv_nsec };
    *mnt_id = sx.stx_mnt_id;
    *has_mnt_id = (sx.stx_mask & STATX_MNT_ID) != 0;
    return 0;
}

static int walk_entry(struct walk_state *ws, int dirfd, const char *name, size_t rlen, int depth);

/* The entries of d (ws->rel names it), at depth, in directory order. */
static int walk_children(struct walk_state *ws, DIR *d, size_t rlen, int depth) {
    struct dirent *de;
    int rc = 0;
    errno = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        rc = walk_entry(ws, dirfd(d), de->d_name, rlen, depth);
        errno = 0;
    }
    if (rc == 0 && errno) rc = fail("list %s", show(ws));
    return rc;
}

static int walk_entry(struct walk_state *ws, int dirfd, const char *name, size_t rlen, int depth) {
    size_t nlen = strlen(name);
    if (rlen + 1 + nlen >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return fail("%s %s/%s", ws->w->verb, ws->w->shown_root ? show(ws) : ws->rel, name);
    }
    size_t old = rlen;
    if (rlen) ws->rel[rlen++] = '/';
    memcpy(ws->rel + rlen, name, nlen + 1);
    rlen += nlen;
    int rc = 0;
    struct stat st;
    uint64_t mnt_id;
    int has_mnt_id;
    /* Gone meanwhile: nothing to visit. */
    if (stat_entry(dirfd, name, 0, &st, &mnt_id, &has_mnt_id) < 0) { rc = errno == ENOENT ? 0 : fail("stat %s", show(ws)); goto out; }
    struct walk_entry e = { .dirfd = dirfd, .name = name, .rel = ws->rel, .rel_len = rlen, .st = &st, .depth = depth, .fd = -1,
                            .other_fs = st.st_dev != ws->dev || (ws->has_mnt_id && has_mnt_id && mnt_id != ws->mnt_id) };
    if ((rc = ws->w->fn(&e, WALK_PRE, ws->w->ctx)) != 0 || !S_ISDIR(st.st_mode)) {
        if (rc == WALK_SKIP) rc = 0;
        goto out;
    }
    if (!e.other_fs) {
        if (depth >= WALK_MAX_DEPTH) {
            errno = 0;
            rc = fail("a tree deeper than %d directories is refused: %s", WALK_MAX_DEPTH, show(ws));
            goto out;
        }
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat now;
        if (fd >= 0 && (fstat(fd, &now) < 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino)) {
            /* Replaced between the stat and the open (or a mount put over it): not the entry visited. */
            close(fd);
            fd = -1;
            errno = ESTALE;
        }
        DIR *d = fd < 0 ? NULL : fdopendir(fd);
        if (!d) { if (fd >= 0) close(fd); rc = fail("open %s", show(ws)); goto out; }
        rc = walk_children(ws, d, rlen, depth + 1);
        e.fd = fd; /* still d's, closed with it */
        if (rc == 0) rc = ws->w->fn(&e, WALK_POST, ws->w->ctx);
        closedir(d);
    } else rc = ws->w->fn(&e, WALK_POST, ws->w->ctx);
out:
    ws->rel[old] = '\0';
    return rc;
}

int walk_tree(int rootfd, const struct stat *root_st, const struct walk *w) {
    static struct walk_state ws;
    ws.w = w;
    ws.dev = root_st->st_dev;
    ws.rel[0] = '\0';
    /* A directory per level stays open (a copy's too): WALK_MAX_DEPTH levels must not run out of
     * fds first where the soft limit is the usual 1024. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    struct stat again;
    if (stat_entry(rootfd, "", AT_EMPTY_PATH, &again, &ws.mnt_id, &ws.has_mnt_id) < 0) return fail("stat %s", show(&ws));
    struct walk_entry e = { .dirfd = rootfd, .name = ".", .rel = ws.rel, .rel_len = 0, .st = root_st, .depth = 0, .fd = -1 };
    int rc = w->with_root ? w->fn(&e, WALK_PRE, w->ctx) : 0;
    if (rc != 0) return rc;
    /* The root's fd stays the caller's: the listing reads a duplicate. */
    int fd = dup(rootfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) { if (fd >= 0) close(fd); return fail("list %s", show(&ws)); }
    /* The duplicate shares rootfd's offset: from the start even if rootfd was listed before. */
    rewinddir(d);
    rc = walk_children(&ws, d, 0, 1);
    closedir(d);
    e.fd = rootfd;
    if (rc == 0 && w->with_root) rc = w->fn(&e, WALK_POST, w->ctx);
    return rc;
}
