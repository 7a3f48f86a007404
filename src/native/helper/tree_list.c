/*
 * userns-tree list: a tree described entry by entry as root of the user namespace that maps its
 * owners, which is how a non-root user diffs (Get-ContainerDiff) a container whose files its
 * subordinate ids own (0600 files, 0700 directories it cannot read as itself).
 */
#include "helper.h"

/* One record per entry below the root, in directory order, each directory's entries right after its
 * own record. Every field is length-prefixed or fixed-size (little-endian, as the host), so a name
 * may hold any byte but NUL and '/':
 *   u32 path length, path (relative, '/'-separated)
 *   u32 mode, u32 uid, u32 gid (as this namespace sees them: the container's ids)
 *   u64 size, u64 rdev, i64 mtime seconds, i64 mtime nanoseconds
 *   u32 link target length, link target (symlinks only; 0 otherwise)
 *   u32 xattr count, then per xattr: u32 name length, name, u32 value length, value
 *   u64 inode, u32 link count (hard links: the same inode under several paths)
 * With contents (userns-tree export, for Export-Container): first a record of the root itself (path
 * length 0), and after a regular file's record exactly its recorded size of content (a file that
 * shrank meanwhile is padded with zeros, one that grew is cut), read through an O_NOFOLLOW fd of the
 * very inode that was stat'ed.
 * The walk (tree_walk.c) reaches entries through their parent's fd and never follows a link; a
 * directory on another mount or filesystem is listed as its entry only, as copy_tree copies it. */

static FILE *list_out;
static int list_contents;

static void put_u32(uint32_t v) { fwrite(&v, sizeof v, 1, list_out); }
static void put_u64(uint64_t v) { fwrite(&v, sizeof v, 1, list_out); }
static void put_bytes(const void *p, size_t n) { put_u32((uint32_t)n); if (n) fwrite(p, 1, n, list_out); }

static int put_xattrs(int dirfd, const char *name, const char *rel) {
    /* Through the parent's fd, without following a final symlink (a device node is never opened). */
    static char names[65536], value[65536];
    char path[64 + NAME_MAX];
    snprintf(path, sizeof path, "/proc/self/fd/%d/%s", dirfd, name);
    ssize_t n = llistxattr(path, names, sizeof names);
    if (n < 0 && errno != ENOTSUP && errno != EPERM) return fail("list xattrs of %s", rel);
    if (n < 0) n = 0;
    uint32_t count = 0;
    for (char *k = names; k < names + n; k += strlen(k) + 1) count++;
    /* A value that vanished meanwhile is written empty: the count is already out. */
    put_u32(count);
    for (char *k = names; k < names + n; k += strlen(k) + 1) {
        ssize_t len = lgetxattr(path, k, value, sizeof value);
        put_bytes(k, strlen(k));
        put_bytes(value, len < 0 ? 0 : (size_t)len);
    }
    return 0;
}

static int put_record(int dirfd, const char *name, const char *rel, size_t rlen, const struct stat *st) {
    put_bytes(rel, rlen);
    put_u32(st->st_mode); put_u32(st->st_uid); put_u32(st->st_gid);
    put_u64((uint64_t)st->st_size); put_u64((uint64_t)st->st_rdev);
    put_u64((uint64_t)st->st_mtim.tv_sec); put_u64((uint64_t)st->st_mtim.tv_nsec);
    if (S_ISLNK(st->st_mode)) {
        /* Static: a frame per directory level, and a hostile tree can be deep. */
        static char target[PATH_MAX];
        ssize_t n = readlinkat(dirfd, name, target, sizeof target);
        if (n < 0) return fail("read link %s", rel);
        put_bytes(target, (size_t)n);
    } else put_u32(0);
    if (put_xattrs(dirfd, name, rel) < 0) return -1;
    put_u64((uint64_t)st->st_ino);
    put_u32((uint32_t)st->st_nlink);
    return 0;
}

static int put_content(int dirfd, const char *name, const char *rel, const struct stat *st) {
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat now;
    if (fd < 0 || fstat(fd, &now) < 0 || now.st_ino != st->st_ino || now.st_dev != st->st_dev) {
        if (fd >= 0) close(fd);
        errno = fd < 0 ? errno : ESTALE;
        return fail("open %s", rel);
    }
    static char buf[1 << 16];
    off_t left = st->st_size;
    ssize_t n = 1;
    while (left > 0 && n > 0) {
        n = read(fd, buf, left < (off_t)sizeof buf ? (size_t)left : sizeof buf);
        if (n < 0) { close(fd); return fail("read %s", rel); }
        if (n > 0) { fwrite(buf, 1, (size_t)n, list_out); left -= n; }
    }
    close(fd);
    memset(buf, 0, sizeof buf);
    while (left > 0) { size_t k = left < (off_t)sizeof buf ? (size_t)left : sizeof buf; fwrite(buf, 1, k, list_out); left -= (off_t)k; }
    return ferror(list_out) ? fail("write %s", rel) : 0;
}

static int list_visit(const struct walk_entry *e, enum walk_visit when, void *ctx) {
    (void)ctx;
    if (when == WALK_POST) return 0;
    if (put_record(e->dirfd, e->name, e->rel, e->rel_len, e->st) < 0) return -1;
    return list_contents && S_ISREG(e->st->st_mode) ? put_content(e->dirfd, e->name, e->rel, e->st) : 0;
}

/* Lists the tree at root to outfd (opened by the caller's side before the namespace was made);
 * with contents, the root's own record first and every regular file's content after its record. */
int list_tree(const char *root, int outfd, int contents) {
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rootfd < 0) return fail("open %s", root);
    struct stat st;
    if (fstat(rootfd, &st) < 0) { close(rootfd); return fail("stat %s", root); }
    list_out = fdopen(outfd, "w");
    if (!list_out) { close(rootfd); return fail("open the listing"); }
    list_contents = contents;
    /* With contents, the root's record first, read through its own fd like any entry ("."). */
    struct walk w = { .fn = list_visit, .verb = "list", .with_root = contents };
    int rc = walk_tree(rootfd, &st, &w);
    close(rootfd);
    int bad = ferror(list_out);
    if ((fclose(list_out) != 0 || bad) && rc == 0) rc = fail("write the listing of %s", root);
    return rc;
}
