/*
 * The constraints a container's processes get, applied as the last steps before execve (init and
 * exec alike): no inherited descriptors, no_new_privs, capabilities, the seccomp filter. And the
 * sealed copy exec runs from, so that nothing in a container can rewrite the helper (CVE-2019-5736).
 */
#include "helper.h"

/* No descriptor of ours may reach the container (the runc CVE-2024-21626 class): everything above
 * stdio becomes close-on-exec. Not closed outright: init still reports errors on its pipe. */
static int cloexec_inherited_fds(void) {
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return 0;
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < (max > 0 ? max : 1024); fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

/* Removes the capabilities in `mask` from the bounding set (so no later execve, setuid binary or
 * file capability can regain them), the ambient and inheritable sets, and the permitted and
 * effective sets. keep_admin: CAP_SYS_ADMIN stays effective until the seccomp filter is in
 * (installing one needs it without no_new_privs); execve drops it anyway, because it is gone
 * from the bounding and inheritable sets. */
int drop_capabilities(uint64_t mask, int keep_admin) {
    for (int cap = 0; cap < 64; cap++) {
        int in_bounding = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (in_bounding < 0) break; /* EINVAL: past this kernel's last capability */
        if ((mask >> cap & 1) && in_bounding && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return fail("drop capability %d from the bounding set", cap);
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return fail("clear ambient capabilities");
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0) return fail("capget");
    uint64_t admin = keep_admin ? 1ULL << CAP_SYS_ADMIN : 0;
    for (int i = 0; i < 2; i++) {
        uint32_t drop = (uint32_t)(mask >> (32 * i)), keep = (uint32_t)(admin >> (32 * i));
        data[i].inheritable &= ~drop;
        data[i].permitted &= ~drop | keep;
        data[i].effective &= ~drop | keep;
    }
    if (syscall(SYS_capset, &hdr, data) < 0) return fail("capset");
    return 0;
}

int install_seccomp(const struct spec *s) {
    struct sock_fprog prog = { s->filter_len, s->filter };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) return fail("install seccomp filter (%u instructions)", s->filter_len);
    return 0;
}

/* Order matters: descriptors, no_new_privs, capabilities, then the filter as the very last step
 * (the filter applies to everything after it, and the helper's own calls are not the policy's business). */
int apply_security(const struct spec *s) {
    cloexec_inherited_fds();
    if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return fail("set no_new_privs");
    int keep_admin = s->filter_len > 0 && !s->no_new_privs && (s->cap_drop >> CAP_SYS_ADMIN & 1);
    if (s->has_cap_drop && drop_capabilities(s->cap_drop, keep_admin) < 0) return -1;
    if (s->filter_len && install_seccomp(s) < 0) return -1;
    /* Best effort: a profile may deny capset; execve clears CAP_SYS_ADMIN regardless (see above). */
    if (keep_admin) drop_capabilities(s->cap_drop, 0);
    return 0;
}

/* ---- exec: never run from a file the container could rewrite (CVE-2019-5736) -------------- */

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#define PSC_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* Is /proc/self/exe a sealed memory file (we already re-executed)? */
static int running_from_sealed_copy(void) {
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int seals = fcntl(fd, F_GET_SEALS);
    close(fd);
    return seals >= 0 && (seals & PSC_SEALS) == PSC_SEALS;
}

/* exec joins a running container: its processes could see us in /proc and open /proc/PID/exe,
 * and a container whose program is a link to /proc/self/exe even makes us run inside it. So
 * before joining anything we re-execute from a sealed, anonymous copy of ourselves: whatever
 * /proc/PID/exe reaches is that copy, which no one can write, never the helper file on the host. */
void reexec_from_sealed_copy(char **argv) {
    extern char **environ;
    if (running_from_sealed_copy()) return;
    int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (self < 0) die("open /proc/self/exe: %s", strerror(errno));
    int copy = memfd_create("psc-helper", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (copy < 0 && errno == EINVAL) copy = memfd_create("psc-helper", MFD_CLOEXEC | MFD_ALLOW_SEALING); /* before 6.3 */
    if (copy < 0) die("memfd_create: %s (is vm.memfd_noexec 2?)", strerror(errno));
    struct stat st;
    if (fstat(self, &st) < 0) die("stat /proc/self/exe: %s", strerror(errno));
    for (off_t done = 0; done < st.st_size;) {
        ssize_t n = sendfile(copy, self, NULL, (size_t)(st.st_size - done));
        if (n <= 0) die("copy the helper into memory: %s", n ? strerror(errno) : "short read");
        done += n;
    }
    close(self);
    if (fcntl(copy, F_ADD_SEALS, PSC_SEALS) < 0) die("seal the helper copy: %s", strerror(errno));
    fexecve(copy, argv, environ);
    die("re-execute the sealed helper copy: %s", strerror(errno));
}
