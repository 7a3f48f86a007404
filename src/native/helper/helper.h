/*
 * What the files of psc-helper share: the system headers, and the functions one file offers the
 * others (by file). psc-helper is one single-threaded static program; see main.c for why it exists.
 */
#ifndef PSC_HELPER_H
#define PSC_HELPER_H

#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <sys/xattr.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/sendfile.h>

#include "spec.h"

/* util.c */
extern char errbuf[1024];
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int write_all(int fd, const void *buf, size_t len);
int write_file(const char *path, const char *text);

/* rootfs.c */
int open_in_root(int rootfd, const char *path, int flags);
int enter_rootfs(const struct spec *s, const char *console, int idmapped_root_fd);

/* security.c */
int drop_capabilities(uint64_t mask, int keep_admin);
int install_seccomp(const struct spec *s);
int apply_security(const struct spec *s);
void reexec_from_sealed_copy(char **argv);

/* process.c */
extern int born_in_cgroup;
extern volatile pid_t forward_to;
extern const int forwarded_signals[4];
void exec_program(const struct spec *s);
pid_t fork_into(int cgfd, unsigned long flags);
int is_v2_procs(const char *cgroup_v2, const char *file);
void close_all_but(int keep);
void install_forwarding(void);
void install_kill_request(void);
void kill_if_requested(void);
int switch_ids(const struct spec *s);
int wait_status(pid_t pid);

/* ids.c */
int write_id_maps(pid_t pid, const char *uid_map, const char *gid_map);
unsigned long host_root_of(const char *map);
int become_userns_root(void);
int link_up(const char *name);

/* sysctl.c */
int apply_sysctls(const struct spec *s);

/* hooks.c */
int run_hooks(const struct spec *s, const char *type, int rootfd);
int has_hooks(const struct spec *s, const char *type);
void hooks_hold_namespaces(const struct spec *s, pid_t init);
void hooks_run_stop(const struct spec *s);
void hooks_run_post_stop(const struct spec *s);
void hooks_run_post_stop_after_failure(const struct spec *s);

/* init.c */
struct child_args { const struct spec *s; int sync_rd; int err_wr; const char *console; };
int container_init(void *arg);

/* console.c */
int open_console(const struct spec *s, int *master, int *logfd, char *console_path, size_t size);
void pump_console(int master, int *logfd, const struct spec *s);

/* events.c */
struct oom_watch { int fd, control, v1; unsigned long long count; char dir[PATH_MAX]; };
void emit_event(const struct spec *s, enum psc_event kind, const char *details);
void exit_details(int status, char *out, size_t size);
int oom_watch_open(const char *dir, struct oom_watch *w);
unsigned long long oom_watch_check(const struct spec *s, struct oom_watch *w);
void oom_watch_close(struct oom_watch *w);

/* restart.c */
extern int restart_count;
extern char restart_last_exit[32];
int restart_hold(const struct spec *s, pid_t init, const char *console);
void restart_release(void);
/* Whether init's end (status) is followed by a restart, as far as the policy and its count say. */
int restart_wanted(const struct spec *s, int status);
pid_t restart_init(const struct spec *s, int status, int oom_killed, int sfd, int *terminated);
/* console_relay.c */
int console_relay_listen(const struct spec *s);
int console_relay_client(void);
void console_relay_accept(void);
void console_relay_input(int master);
void console_relay_output(const char *buf, size_t len);
void console_relay_close(void);
int cmd_console(const char *file);

/* supervisor.c */
unsigned long long proc_start_time(pid_t pid);
void remove_cgroups(const struct spec *s);
int write_run_record(const struct spec *s, pid_t init, const char *phase);
void watch_init(const struct spec *s, pid_t child, int master, int logfd, sigset_t *mask);
int read_answer(int fd, char *answer, size_t size);
int cmd_start(const char *file, int restore);

/* restore.c */
int supervise_restore(const struct spec *s, int report_fd, int ctl_fd);

/* terminal.c */
void pass_window_size(int master);
int relay_terminal(int master, pid_t stager, int64_t timeout_ms);
int relay_status(pid_t stager, int64_t timeout_ms);
extern volatile sig_atomic_t relay_timed_out;

/* attach.c */
int cmd_exec(const char *file);

/* netns_exec.c */
int cmd_netns_exec(const char *file);

/* idmap.c */
int idmapped_clone(const char *path, int userns_fd);
int idmapped_root(const struct spec *s, const char *rootfs, pid_t init);
int send_fd(int sock, char byte, int fd);
int recv_fd(int sock, char *byte, int *fd);

/* devices.c */
int cmd_device(const char *file);

/* nic_up.c */
int cmd_nic_up(const char *file);
/* tree_walk.c: the walk of a hostile tree that copy, list, shift and remove share (its rules there). */
#define WALK_MAX_DEPTH 1024
enum walk_visit { WALK_PRE, WALK_POST };
struct walk_entry {
    int dirfd;              /* the parent's fd: name is opened (O_NOFOLLOW) relative to it */
    const char *name;       /* "." for the root */
    const char *rel;        /* from the root, '/'-separated; "" for the root */
    size_t rel_len;
    const struct stat *st;  /* the entry itself, never what a link points to */
    int depth;              /* 0 the root, 1 its entries */
    int fd;                 /* WALK_POST of a directory entered: its own fd; -1 otherwise */
    int other_fs;           /* on another mount or filesystem than the root: a directory is not entered */
};
/* Called WALK_PRE for every entry, and WALK_POST for every directory after its entries (right after
 * WALK_PRE for one not entered); 0 goes on, -1 (after fail()) ends the walk with that error, and
 * WALK_SKIP from WALK_PRE goes on without entering the directory or visiting it WALK_POST. */
#define WALK_SKIP 1
typedef int (*walk_fn)(const struct walk_entry *e, enum walk_visit when, void *ctx);
struct walk {
    walk_fn fn;
    void *ctx;
    const char *verb;        /* errors: "<verb> <path>/<name>: File name too long" */
    const char *shown_root;  /* errors name root/rel (NULL: rel, "." for the root) */
    int with_root;           /* visit the root itself too (dirfd its own fd, name ".") */
};
int walk_tree(int rootfd, const struct stat *root_st, const struct walk *w);

/* tree_copy.c */
int copy_tree(const char *src, const char *dst);
int rewrite_hostname(const char *root, const char *old_name, const char *new_name);
/* tree_list.c */
int list_tree(const char *root, int outfd, int contents);

/* userns_tree.c */
int cmd_userns_tree(const char *file);

#endif
