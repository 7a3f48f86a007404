/*
 * psc-helper userns-tree: a tree operation (shift ownership, remove, copy) run as root of a user namespace
 * that maps a container's ids, which is how a non-root user owns files as its subordinate ids.
 */
#include "helper.h"

/* A non-root user cannot chown files to its subordinate ids, nor delete files they own. Root of a
 * user namespace that maps them can: this command runs one tree operation there. The namespace maps
 * the container's ids and, at "callerid", the caller's own uid and gid, so that the files the caller
 * made (a template, an extracted archive) are visible and can be handed to the container's root. */

static unsigned long tree_caller_id, tree_caller_count;

/* chown that keeps what chown(2) clears: setuid/setgid bits and file capabilities (which, set again
 * by the namespace's root, become namespaced v3 capabilities of the container's root). */
static int chown_keep(int dirfd, const char *leaf, const char *path, uid_t uid, gid_t gid) {
    struct stat st;
    if (fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0) return fail("stat %s", path);
    if (st.st_uid == uid && st.st_gid == gid) return 0;
    if (!S_ISREG(st.st_mode)) {
        if (fchownat(dirfd, leaf, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) return fail("chown %s", path);
        return 0;
    }
    int fd = openat(dirfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return fail("open %s", path);
    char caps[64];
    ssize_t ncaps = fgetxattr(fd, "security.capability", caps, sizeof caps);
    int rc = fchown(fd, uid, gid);
    if (rc < 0) fail("chown %s", path);
    else if ((st.st_mode & (S_ISUID | S_ISGID)) && fchmod(fd, st.st_mode & 07777) < 0) rc = fail("chmod %s", path);
    else if (ncaps > 0 && fsetxattr(fd, "security.capability", caps, (size_t)ncaps, 0) < 0) rc = fail("restore file capabilities of %s", path);
    close(fd);
    return rc;
}

/* Errors name entries by their absolute path, as the ones of a walk from the root's path did. */
static const char *entry_path(const char *root, const struct walk_entry *e, char *buf, size_t size) {
    snprintf(buf, size, "%s%s%s", root, e->rel_len ? "/" : "", e->rel);
    return buf;
}

/* Every entry the caller owns (seen here as tree_caller_id) goes to the namespace's root. Root maps
 * host ids 0..callercount-1 there (a template run as root made files of several owners, root:shadow
 * among them, meaning the container's ids): host id X becomes container id X. An entry on another
 * mount or filesystem is not the tree's: left as it is (nor is a directory there entered). */
static int shift_visit(const struct walk_entry *e, enum walk_visit when, void *ctx) {
    const char *root = ctx;
    const struct stat *st = e->st;
    if (when == WALK_POST || e->other_fs) return 0;
    uid_t uid = st->st_uid >= tree_caller_id && st->st_uid - tree_caller_id < tree_caller_count ? (uid_t)(st->st_uid - tree_caller_id) : st->st_uid;
    gid_t gid = st->st_gid >= tree_caller_id && st->st_gid - tree_caller_id < tree_caller_count ? (gid_t)(st->st_gid - tree_caller_id) : st->st_gid;
    if (uid == st->st_uid && gid == st->st_gid) return 0;
    char path[PATH_MAX + 64];
    return chown_keep(e->dirfd, e->name, entry_path(root, e, path, sizeof path), uid, gid);
}

struct remove { const char *root; int rootfd; unsigned long moved; };

/* Contents first, each directory after its entries; what is on another mount or filesystem is left
 * (and its parent, then not empty, fails to go). A directory as deep as the walk goes is moved up to
 * the root, for the next pass: no depth a container made keeps its owner from deleting it. */
static int remove_visit(const struct walk_entry *e, enum walk_visit when, void *ctx) {
    struct remove *r = ctx;
    char path[PATH_MAX + 64];
    if (e->other_fs || (when == WALK_PRE && S_ISDIR(e->st->st_mode) && e->depth < WALK_MAX_DEPTH)) return 0;
    if (S_ISDIR(e->st->st_mode) && when == WALK_PRE) {
        char up[64];
        int rc;
        do snprintf(up, sizeof up, ".psc-deep-%d-%lu", (int)getpid(), r->moved++);
        while ((rc = renameat2(e->dirfd, e->name, r->rootfd, up, RENAME_NOREPLACE)) < 0 && errno == EEXIST);
        return rc < 0 ? fail("move %s up to remove it", entry_path(r->root, e, path, sizeof path)) : WALK_SKIP;
    }
    if (unlinkat(e->dirfd, e->name, S_ISDIR(e->st->st_mode) ? AT_REMOVEDIR : 0) < 0 && errno != ENOENT)
        return fail("remove %s", entry_path(r->root, e, path, sizeof path));
    return 0;
}

/* Shift or remove the tree at root, walked from its own fd (tree_walk.c). */
static int walk_owned_tree(const char *root, int shift) {
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rootfd < 0) return fail("open %s", root);
    struct stat st;
    int rc = fstat(rootfd, &st) < 0 ? fail("stat %s", root) : 0;
    struct remove r = { root, rootfd, 0 };
    struct walk w = { .fn = shift ? shift_visit : remove_visit, .ctx = shift ? (void *)root : &r, .verb = "walk", .shown_root = root, .with_root = shift };
    unsigned long moved;
    /* Again while a pass moved a deep directory up (the first pass may or may not have seen it). */
    do moved = r.moved;
    while (rc == 0 && (rc = walk_tree(rootfd, &st, &w)) == 0 && r.moved != moved);
    close(rootfd);
    if (rc == 0 && !shift && rmdir(root) < 0 && errno != ENOENT) rc = fail("remove %s", root);
    return rc;
}

/* Explicit owners ("uid gid relative-path" records, NUL-terminated): the ids an archive gave its
 * entries. Each path is resolved inside the tree, never through a symlink out of it. */
static int apply_owners(const char *root, const char *list) {
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) return fail("open %s", root);
    int fd = open(list, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) { close(rootfd); return fail("open %s", list); }
    struct stat lst;
    if (fstat(fd, &lst) < 0) { close(fd); close(rootfd); return fail("stat %s", list); }
    char *buf = malloc((size_t)lst.st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t)lst.st_size) : -1;
    close(fd);
    if (n < 0 || n != lst.st_size) { free(buf); close(rootfd); errno = EIO; return fail("read %s", list); }
    buf[n] = '\0';
    int rc = 0;
    for (char *rec = buf; rec < buf + n && rc == 0; rec += strlen(rec) + 1) {
        unsigned long uid, gid;
        int off = 0;
        if (sscanf(rec, "%lu %lu %n", &uid, &gid, &off) != 2 || off == 0) { errno = EINVAL; rc = fail("owners record '%s'", rec); break; }
        char *rel = rec + off, *slash = strrchr(rel, '/');
        int dirfd = slash ? (*slash = '\0', open_in_root(rootfd, rel, O_PATH | O_DIRECTORY)) : dup(rootfd);
        if (slash) *slash = '/';
        if (dirfd < 0) { rc = fail("open parent of %s", rel); break; }
        rc = chown_keep(dirfd, slash ? slash + 1 : rel, rel, (uid_t)uid, (gid_t)gid);
        close(dirfd);
    }
    free(buf);
    close(rootfd);
    return rc;
}

int cmd_userns_tree(const char *file) {
    struct spec s;
    read_spec(&s, PSC_CMD_USERNS_TREE, file);
    /* copy: args copy SOURCE DESTINATION [OLD-NAME NEW-NAME] (tree_copy.c: with names, the copy's
     * etc/hostname holding OLD-NAME gets NEW-NAME); rename: args rename FROM TO, a directory the
     * container's ids own moved to another parent (which needs write access to it: a snapshot's
     * restore swaps rootfs trees). The others take one path. */
    int copy = (s.n_args == 3 || s.n_args == 5) && !strcmp(s.args[0], "copy");
    int move = s.n_args == 3 && !strcmp(s.args[0], "rename");
    /* list: args list TREE LISTING, the tree described (tree_list.c) into LISTING, a file or FIFO the
     * caller made: opened here, before the namespace, as the caller, so only the caller's file is
     * written. export: the same with the files' contents, streamed (a FIFO) into Export-Container. */
    int list = s.n_args == 3 && (!strcmp(s.args[0], "list") || !strcmp(s.args[0], "export"));
    if ((s.n_args != 2 && !copy && !move && !list) || s.args[1][0] != '/' || ((copy || move || list) && s.args[2][0] != '/'))
        die("userns-tree: needs arg shift|remove and an absolute path, or copy|rename|list and two absolute paths");
    int shift = !strcmp(s.args[0], "shift");
    /* idmap-probe: can a mount of this path be idmapped onto the namespace (root only: see idmap.c)?
     * Nothing is walked or changed; exit 3 with the kernel's reason when it cannot. */
    int probe = !strcmp(s.args[0], "idmap-probe");
    /* idmap-mount: the tree (or the overlay of ovl-lower and ovl-dir) idmapped onto the namespace
     * and mounted over the path in the caller's mount namespace, for criu, which rebuilds a
     * checkpointed container's mounts from its --root (a bind of an idmapped mount stays idmapped).
     * The caller unmounts it. */
    int idmount = !strcmp(s.args[0], "idmap-mount");
    if ((probe || idmount) && !s.uid_map) die("userns-tree %s: only root idmaps mounts (give uidmap)", s.args[0]);
    if (!shift && !probe && !idmount && !copy && !move && !list && strcmp(s.args[0], "remove")) die("userns-tree: unknown operation '%s'", s.args[0]);
    int list_fd = -1;
    if (list && (list_fd = open(s.args[2], O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC)) < 0) die("open %s: %s", s.args[2], strerror(errno));
    int sync_pipe[2], err_pipe[2];
    if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
    pid_t child = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
    if (child < 0) die("clone a user namespace: %s", strerror(errno));
    if (child == 0) {
        close(sync_pipe[1]);
        close(err_pipe[0]);
        char go;
        int rc = read(sync_pipe[0], &go, 1) == 1 ? 0 : fail("wait for the id maps");
        if (rc == 0) rc = become_userns_root();
        tree_caller_id = s.caller_id;
        tree_caller_count = s.caller_count ? s.caller_count : 1;
        if (probe || idmount) _exit(rc == 0 ? 0 : 1);
        if (rc == 0 && copy) {
            rc = copy_tree(s.args[1], s.args[2]);
            if (rc == 0 && s.n_args == 5) rc = rewrite_hostname(s.args[2], s.args[3], s.args[4]);
        } else if (rc == 0 && list) rc = list_tree(s.args[1], list_fd, !strcmp(s.args[0], "export"));
        else if (rc == 0 && move) rc = renameat2(AT_FDCWD, s.args[1], AT_FDCWD, s.args[2], RENAME_NOREPLACE) < 0 ? fail("rename %s to %s", s.args[1], s.args[2]) : 0;
        else if (rc == 0) rc = walk_owned_tree(s.args[1], shift);
        if (rc == 0 && shift && s.owners) rc = apply_owners(s.args[1], s.owners);
        if (rc != 0) write_all(err_pipe[1], errbuf, strlen(errbuf));
        _exit(rc == 0 ? 0 : 1);
    }
    close(sync_pipe[0]);
    close(err_pipe[1]);
    if (list_fd >= 0) close(list_fd);
    /* Root writes the maps itself; otherwise the caller runs newuidmap/newgidmap meanwhile. */
    if (s.uid_map) {
        if (write_id_maps(child, s.uid_map, s.gid_map) < 0) { kill(child, SIGKILL); die("%s", errbuf); }
    } else {
        fflush(stdout);
        send_reply(1, PSC_REPLY_TREE_PAUSED, getpid(), child);
        char answer[PSC_REPLY_MAX];
        if (!fgets(answer, sizeof answer, stdin) || parse_reply(answer, PSC_R_GO, NULL) < 0) { kill(child, SIGKILL); waitpid(child, NULL, 0); die("aborted by the caller"); }
    }
    char probe_error[sizeof errbuf] = "";
    if (probe) {
        char ns[64];
        snprintf(ns, sizeof ns, "/proc/%d/ns/user", (int)child);
        int userns = open(ns, O_RDONLY | O_CLOEXEC);
        int fd = userns < 0 ? fail("open %s", ns) : idmapped_clone(s.args[1], userns);
        if (fd >= 0) close(fd);
        else snprintf(probe_error, sizeof probe_error, "%s", errbuf);
        if (userns >= 0) close(userns);
    }
    if (idmount) {
        int fd = idmapped_root(&s, s.args[1], child);
        if (fd < 0 || syscall(SYS_move_mount, fd, "", AT_FDCWD, s.args[1], MOVE_MOUNT_F_EMPTY_PATH) < 0) {
            if (fd >= 0) fail("mount the idmapped tree on %s", s.args[1]);
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
            die("%s", errbuf);
        }
        close(fd);
    }
    if (write(sync_pipe[1], "g", 1) != 1) die("release child: %s", strerror(errno));
    char cerr[sizeof errbuf];
    ssize_t n, got = 0;
    while ((n = read(err_pipe[0], cerr + got, sizeof cerr - 1 - (size_t)got)) > 0) got += n;
    int status;
    while (waitpid(child, &status, 0) < 0) if (errno != EINTR) die("waitpid: %s", strerror(errno));
    if (got > 0) { cerr[got] = '\0'; die("%s", cerr); }
    if (probe_error[0]) { fprintf(stderr, "psc-helper: %s\n", probe_error); exit(3); }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("userns-tree %s %s failed", s.args[0], s.args[1]);
    return 0;
}

