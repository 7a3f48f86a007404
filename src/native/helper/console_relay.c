/*
 * Enter-Container -Console: the container's console lent to one caller at a time, like
 * lxc-console -t 0.
 *
 * The supervisor side: the supervisor holds the console pty's master and keeps copying its output
 * to the console log (console.c). While it supervises, it also listens on a unix socket in the
 * container's directory (0600, the store owner's; each peer's SO_PEERCRED checked too), which lies
 * outside the container's rootfs, and is created after init was cloned (init inherits nothing of
 * it). One caller at a time is attached: the console's output goes to the log and to it; what it
 * sends goes to the master. A second caller gets a refusal byte and is closed. Only bytes cross the
 * socket: the master stays with the supervisor, and the caller's terminal stays with the caller.
 * The socket is SOCK_SEQPACKET, and what the caller sends is framed (psc-protocol.h,
 * PSC_CONSOLE_FRAMES): input, or its window size, which the supervisor sets on the master
 * (TIOCSWINSZ; the kernel then signals SIGWINCH to the console's foreground group). A frame that is
 * not exactly right detaches the caller; a detach leaves the console's size as it is, like LXC.
 *
 * The caller's side (`psc-helper console`): connects, puts its own terminal in raw mode, relays
 * bytes both ways, and watches for the detach key (the prefix, Ctrl+a by default, then q; the
 * prefix twice sends it once). It sends its terminal's size at the attach and at every SIGWINCH.
 * Every way out restores its terminal. The container only ever sees its own pty: no descriptor of
 * the caller's terminal exists anywhere the container can reach, so TIOCSTI from inside lands in
 * the container's own input queue.
 */
#include "helper.h"
#include <sys/un.h>

static int listen_fd = -1, client_fd = -1, dir_fd = -1;
static char socket_name[NAME_MAX + 1];

/* "/proc/self/fd/N/NAME": the socket's path through an open directory, so that a store path longer
 * than sun_path (108 bytes) works. */
static int socket_address(struct sockaddr_un *addr, const char *path, int *dirfd, char *name, size_t size) {
    const char *slash = strrchr(path, '/');
    if (!slash || !slash[1] || strlen(slash + 1) >= size) { errno = EINVAL; return -1; }
    snprintf(name, size, "%s", slash + 1);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) > 0 ? (int)(slash - path) : 1, path);
    *dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd < 0) return -1;
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    snprintf(addr->sun_path, sizeof addr->sun_path, "/proc/self/fd/%d/%s", *dirfd, name);
    return 0;
}

int console_relay_listen(const struct spec *s) {
    if (!s->console_socket) return -1;
    struct sockaddr_un addr;
    if (socket_address(&addr, s->console_socket, &dir_fd, socket_name, sizeof socket_name) < 0) return -1;
    unlinkat(dir_fd, socket_name, 0); /* a supervisor killed before it cleaned up */
    listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd < 0) return -1;
    mode_t old = umask(0177); /* the socket is born 0600: nobody else ever had a window to connect */
    int rc = bind(listen_fd, (struct sockaddr *)&addr, sizeof addr);
    umask(old);
    if (rc < 0 || listen(listen_fd, 4) < 0) { close(listen_fd); listen_fd = -1; return -1; }
    return listen_fd;
}

int console_relay_client(void) { return client_fd; }

void console_relay_close(void) {
    if (client_fd >= 0) close(client_fd);
    if (listen_fd >= 0) close(listen_fd);
    if (dir_fd >= 0) { unlinkat(dir_fd, socket_name, 0); close(dir_fd); }
    client_fd = listen_fd = dir_fd = -1;
}

/* A caller connects: the store owner (our uid) or root only; one at a time. */
void console_relay_accept(void) {
    int fd;
    while ((fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
        struct ucred cred;
        socklen_t len = sizeof cred;
        char answer = PSC_CONSOLE_OK;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || (cred.uid != geteuid() && cred.uid != 0)) answer = PSC_CONSOLE_DENIED;
        else if (client_fd >= 0) answer = PSC_CONSOLE_BUSY;
        if (write(fd, &answer, 1) != 1 || answer != PSC_CONSOLE_OK) { close(fd); continue; }
        client_fd = fd;
    }
}

static void detach_client(void) { close(client_fd); client_fd = -1; }

/* One frame of the caller: 0 when applied, -1 when it is not a frame of PSC_CONSOLE_FRAMES exactly
 * (the caller is then detached; nothing of the frame was applied). */
static int apply_frame(int master, const unsigned char *f, size_t len) {
    if (len < 1) return -1;
    switch (f[0]) {
    case PSC_CONSOLE_FRAME_DATA:
        if (len < 2 || len > 1 + PSC_CONSOLE_DATA_MAX) return -1;
        return write_all(master, f + 1, len - 1);
    case PSC_CONSOLE_FRAME_WINSIZE: {
        if (len != PSC_CONSOLE_WINSIZE_LENGTH) return -1;
        struct winsize ws = { .ws_row = (unsigned short)(f[1] | f[2] << 8), .ws_col = (unsigned short)(f[3] | f[4] << 8) };
        if (!ws.ws_row || !ws.ws_col) return -1;
        /* Only the master's size changes, and it cannot fail on a master we hold: the caller learns
         * nothing, and the kernel signals the console's foreground group. */
        ioctl(master, TIOCSWINSZ, &ws);
        return 0;
    }
    default:
        return -1;
    }
}

/* What the attached caller sent, to the console. Its end (detach, the caller gone, or a frame that
 * is not right) detaches it. */
void console_relay_input(int master) {
    unsigned char buf[PSC_CONSOLE_FRAME_MAX];
    for (;;) {
        /* MSG_TRUNC: the frame's real length, so a longer one is refused, never taken in part. */
        ssize_t n = recv(client_fd, buf, sizeof buf, MSG_TRUNC | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0 || (size_t)n > sizeof buf || apply_frame(master, buf, (size_t)n) < 0) { detach_client(); return; }
    }
}

/* The console's output, also to the attached caller, one message per read of the master. A caller
 * that does not keep up loses what its socket cannot take (the log has all of it): the container
 * is never held up by it. */
void console_relay_output(const char *buf, size_t len) {
    if (client_fd < 0 || len == 0) return;
    for (;;) {
        ssize_t w = send(client_fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return;
        if (w < 0) detach_client();
        return; /* a SOCK_SEQPACKET message goes whole or not at all */
    }
}

/* ---- psc-helper console: the caller's side ---------------------------------------------------- */

static struct termios saved_terminal;
static int terminal_raw;

/* The caller's terminal's size, as a frame (not when it has none: not a terminal, or 0x0). */
static int send_window_size(int sock) {
    struct winsize ws;
    if (!isatty(0) || ioctl(0, TIOCGWINSZ, &ws) < 0 || !ws.ws_row || !ws.ws_col) return 0;
    unsigned char f[PSC_CONSOLE_WINSIZE_LENGTH] = { PSC_CONSOLE_FRAME_WINSIZE, ws.ws_row & 0xff, ws.ws_row >> 8, ws.ws_col & 0xff, ws.ws_col >> 8 };
    return send(sock, f, sizeof f, MSG_NOSIGNAL) == (ssize_t)sizeof f ? 0 : -1;
}

/* Typed input as data frames of at most PSC_CONSOLE_DATA_MAX bytes. */
static int send_input(int sock, const unsigned char *buf, size_t len) {
    unsigned char f[PSC_CONSOLE_FRAME_MAX];
    f[0] = PSC_CONSOLE_FRAME_DATA;
    while (len > 0) {
        size_t n = len < PSC_CONSOLE_DATA_MAX ? len : PSC_CONSOLE_DATA_MAX;
        memcpy(f + 1, buf, n);
        ssize_t w = send(sock, f, n + 1, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w != (ssize_t)(n + 1)) return -1;
        buf += n; len -= n;
    }
    return 0;
}

static void restore_caller_terminal(void) {
    if (!terminal_raw) return;
    terminal_raw = 0;
    tcsetattr(0, TCSADRAIN, &saved_terminal);
}

int cmd_console(const char *file) {
    struct spec s;
    read_spec(&s, PSC_CMD_CONSOLE, file);
    unsigned char escape = s.has_escape ? (unsigned char)s.escape : 1;
    if (escape == 0 || escape >= 32) die("spec: escape must be a control character (1-31), not %u", (unsigned)s.escape);
    struct sockaddr_un addr;
    char name[NAME_MAX + 1];
    int dirfd;
    if (socket_address(&addr, s.console_socket, &dirfd, name, sizeof name) < 0) die("console socket %s: %s", s.console_socket, strerror(errno));
    int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int err = errno;
        fprintf(stderr, "psc-helper: no console to attach to at %s: %s\n", s.console_socket, strerror(err));
        /* A stream socket: the supervisor of an older version, which takes no frames. */
        return err == EPROTOTYPE ? 6 : 3;
    }
    close(dirfd);
    char answer = 0;
    if (read(sock, &answer, 1) != 1) { fputs("psc-helper: the supervisor closed the console\n", stderr); return 3; }
    if (answer == PSC_CONSOLE_BUSY) { fputs("psc-helper: the console is attached elsewhere\n", stderr); return 4; }
    if (answer != PSC_CONSOLE_OK) { fputs("psc-helper: the supervisor refused the console\n", stderr); return 5; }

    sigset_t mask;
    sigemptyset(&mask);
    for (size_t i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++) sigaddset(&mask, forwarded_signals[i]);
    sigaddset(&mask, SIGWINCH); /* before the first size is read: no resize falls between the two */
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (isatty(0) && tcgetattr(0, &saved_terminal) == 0) {
        struct termios raw = saved_terminal;
        cfmakeraw(&raw);
        if (tcsetattr(0, TCSADRAIN, &raw) == 0) terminal_raw = 1;
    }
    char letter = (char)(escape + 'a' - 1);
    char hello[160];
    int n = snprintf(hello, sizeof hello, "Connected to the console. Type Ctrl+%c q to detach, Ctrl+%c %c to send Ctrl+%c.\r\n", letter, letter, letter, letter);
    write_all(1, hello, (size_t)n);
    if (send_window_size(sock) < 0) { restore_caller_terminal(); fputs("psc-helper: the supervisor closed the console\n", stderr); return 2; }

    /* The caller's end (pwsh killed) ends the attach too: nobody would be left to restore the terminal. */
    int caller = (int)syscall(434 /* pidfd_open */, getppid(), 0);
    int status = 0, prefix = 0, in_open = 1;
    for (;;) {
        struct pollfd p[4] = { { sock, POLLIN, 0 }, { in_open ? 0 : -1, POLLIN, 0 }, { sfd, POLLIN, 0 }, { caller, POLLIN, 0 } };
        if (poll(p, 4, -1) < 0) { if (errno == EINTR) continue; break; }
        if (p[3].revents) { status = 1; break; }
        /* Signals first: a resize that came before typed input reaches the console before it. */
        if (p[2].revents) {
            struct signalfd_siginfo si;
            int end = 0;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                if (si.ssi_signo != SIGWINCH) end = 1;
            if (end) { status = 1; break; }
            if (send_window_size(sock) < 0) { status = 2; break; }
        }
        if (p[0].revents) {
            char buf[16384]; /* more than a supervisor's message (one read of the console) */
            ssize_t r = read(sock, buf, sizeof buf);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) { status = 2; break; } /* the container stopped (its supervisor closed the console) */
            write_all(1, buf, (size_t)r);
        }
        if (p[1].revents) {
            unsigned char in[4096], out[8192];
            ssize_t r = read(0, in, sizeof in);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) { in_open = 0; continue; } /* not a terminal and at its end: keep showing output */
            size_t o = 0;
            int detach = 0;
            for (ssize_t i = 0; i < r && !detach; i++) {
                unsigned char c = in[i];
                if (prefix) {
                    prefix = 0;
                    if (c == 'q' || c == 'Q') { detach = 1; break; }
                    if (c == escape || c == (unsigned char)letter) { out[o++] = escape; continue; }
                    out[o++] = escape;
                    out[o++] = c;
                } else if (c == escape) prefix = 1;
                else out[o++] = c;
            }
            if (o && send_input(sock, out, o) < 0) { status = 2; break; }
            if (detach) break;
        }
    }
    restore_caller_terminal();
    write_all(1, "\r\n", 2);
    close(sock);
    return status;
}
