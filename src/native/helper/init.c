/*
 * The container's init until it becomes the container's program: pid 1 of the new namespaces,
 * cloned by the supervisor (supervisor.c). Kept apart from the supervisor because it runs on the
 * other side of the namespace boundary: every step here is one the container's program inherits.
 */
#include "helper.h"

/* Runs in the new namespaces as the container's pid 1, until execve. Any failure is written to
 * err_wr (close-on-exec: EOF there means the exec succeeded). */
int container_init(void *arg) {
    struct child_args *c = arg;
    const struct spec *s = c->s;
    char go;
    int root_fd;
    /* Wait until the supervisor has put us in our cgroups and written the id maps; with an
     * idmapped root, the mount comes with the go. */
    if (recv_fd(c->sync_rd, &go, &root_fd) < 0) { fail("sync with supervisor"); goto out; }
    if (s->idmap_root && root_fd < 0) { errno = 0; fail("the supervisor sent no idmapped rootfs"); goto out; }
    close(c->sync_rd);
    /* A cgroup namespace rooted at the container's own cgroup: unshared only now, after joining it. */
    if ((s->clone_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0) { fail("unshare cgroup namespace"); goto out; }
    if (setsid() < 0) { fail("setsid"); goto out; }
    if (c->console) {
        int tty = open(c->console, O_RDWR | O_NOCTTY);
        if (tty < 0) { fail("open console %s", c->console); goto out; }
        ioctl(tty, TIOCSCTTY, 0);
        dup2(tty, 0); dup2(tty, 1); dup2(tty, 2);
        if (tty > 2) close(tty);
    }
    if (s->clone_flags & CLONE_NEWNS) {
        if (enter_rootfs(s, c->console, root_fd) < 0) goto out;
    } else if ((s->clone_flags & CLONE_NEWUSER) && become_userns_root() < 0) goto out;
    if (s->loopback_up && link_up("lo") < 0) goto out;
    for (int i = 0; i < s->n_links_up; i++) if (link_up(s->links_up[i]) < 0) goto out;
    if ((s->clone_flags & CLONE_NEWUTS) && s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0) {
        fail("sethostname %s", s->hostname); goto out;
    }
    if (s->cwd && chdir(s->cwd) < 0) { fail("chdir %s", s->cwd); goto out; }
    /* Signals the supervisor blocked must not stay blocked in init. */
    sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
    /* LXC's lxc.hook.start: inside the container (its path is the container's), just before the
     * program, with the capabilities and seccomp filter not yet applied (LXC's order too). */
    if (run_hooks(s, "start", -1) < 0) goto out;
    if (apply_security(s) < 0) goto out;
    /* Last, like an exec's -User: init's own ids (init.user / init.group, an image's User). */
    if (switch_ids(s) < 0) goto out;
    exec_program(s);
    fail("exec %s", s->args[0]);
out:
    write_all(c->err_wr, errbuf, strlen(errbuf));
    return 1;
}
