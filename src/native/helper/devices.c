/*
 * psc-helper device: a host device node into a running container, or out of it again (lxc-device
 * add/del). A user-namespaced container's root cannot mknod, and its /dev is a tmpfs of its own
 * mount namespace: so the host's node is bind-mounted. The mount is cloned here, still in the host's
 * mount namespace (open_tree), then this process enters the container's mount namespace (setns
 * makes its root and cwd the container's root, so every path below resolves inside the container)
 * and attaches the clone there (move_mount). Without a source, the target is unmounted and removed.
 */
#include "helper.h"
#include <sys/fsuid.h>

/* Files are made as the owner of the directory they are made in: in a user-namespaced container's
 * /dev (a tmpfs of its user namespace) the host's root is not mapped, and the kernel refuses to make
 * an inode owned by an id the filesystem cannot represent (EOVERFLOW). */
static void as_owner_of(int dir) {
    struct stat st;
    if (fstat(dir, &st) < 0) die("stat a directory of the container: %s", strerror(errno));
    setfsgid(st.st_gid);
    setfsuid(st.st_uid);
}

static void as_root(void) {
    int saved = errno;
    setfsuid(0);
    setfsgid(0);
    errno = saved;
}

/* Opens (creating what is missing, mode 0755) the directory holding the last component of
 * `path`, never following a symbolic link: the container's own files decide nothing here. */
static int open_parent(const char *path, char *base, size_t size) {
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    char *last = strrchr(copy, '/');
    if (!last || !last[1]) die("device target '%s' must be an absolute path to a file", path);
    snprintf(base, size, "%s", last + 1);
    *last = 0;
    int dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) die("open the container's root: %s", strerror(errno));
    for (char *save = NULL, *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (!strcmp(part, ".") || !strcmp(part, "..")) die("device target '%s' must not contain . or ..", path);
        as_owner_of(dir);
        int made = mkdirat(dir, part, 0755);
        as_root();
        if (made < 0 && errno != EEXIST) die("create %s in %s: %s", part, path, strerror(errno));
        struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH };
        int next = (int)syscall(SYS_openat2, dir, part, &how, sizeof how);
        if (next < 0) die("open %s in %s (it must be a directory, not a link): %s", part, path, strerror(errno));
        close(dir);
        dir = next;
    }
    return dir;
}

static void enter_mount_ns(pid_t pid) {
    char ns[64];
    snprintf(ns, sizeof ns, "/proc/%d/ns/mnt", (int)pid);
    int fd = open(ns, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open %s: %s", ns, strerror(errno));
    if (setns(fd, CLONE_NEWNS) < 0) die("enter the mount namespace of %d: %s", (int)pid, strerror(errno));
    close(fd);
}

int cmd_device(const char *file) {
    struct spec s;
    read_spec(&s, PSC_CMD_DEVICE, file);
    int tree = -1;
    if (s.dev_source) {
        struct stat st;
        if (lstat(s.dev_source, &st) < 0) die("%s: %s", s.dev_source, strerror(errno));
        if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) die("%s is not a device node", s.dev_source);
        tree = (int)syscall(SYS_open_tree, AT_FDCWD, s.dev_source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
        if (tree < 0) die("open_tree %s: %s", s.dev_source, strerror(errno));
    }
    enter_mount_ns(s.target_pid);
    char base[NAME_MAX + 1];
    int dir = open_parent(s.dev_target, base, sizeof base);
    if (tree >= 0) {
        as_owner_of(dir);
        int fd = openat(dir, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        as_root();
        if (fd < 0 && errno != EEXIST) die("create %s: %s", s.dev_target, strerror(errno));
        if (fd >= 0) close(fd);
        /* An existing file is mounted over (as LXC does); a link or a directory is refused. */
        fd = openat(dir, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) die("open %s: %s", s.dev_target, strerror(errno));
        if (S_ISLNK(st.st_mode) || S_ISDIR(st.st_mode)) die("%s exists in the container and is a %s", s.dev_target, S_ISDIR(st.st_mode) ? "directory" : "symbolic link");
        if (syscall(SYS_move_mount, tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            die("mount %s on %s: %s", s.dev_source, s.dev_target, strerror(errno));
        return 0;
    }
    /* Every mount stacked on the target (an add repeated), then the mount point itself. The
     * directories on the way were opened without following links just above. */
    while (umount2(s.dev_target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0) { }
    if (errno != EINVAL && errno != ENOENT) die("unmount %s: %s", s.dev_target, strerror(errno));
    if (unlinkat(dir, base, 0) < 0 && errno != ENOENT) die("remove %s: %s", s.dev_target, strerror(errno));
    return 0;
}
