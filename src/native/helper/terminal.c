/*
 * The relay's side of an attach: the caller's terminal to and from the pty master of the container
 * (raw mode, window size, the caller's terminal restored on every way out), or, non-interactive,
 * just the command's status with signals passed on.
 */
#include "helper.h"

struct terminal_state { int active; struct termios saved; pid_t foreground; };

static struct terminal_state caller_terminal;

/* Raw mode on the caller's terminal while attached; what it was is restored by terminal_restore. */
static void terminal_enter_raw(struct terminal_state *t) {
    if (!isatty(0) || tcgetattr(0, &t->saved) < 0) return;
    t->foreground = tcgetpgrp(0);
    struct termios raw = t->saved;
    cfmakeraw(&raw);
    if (tcsetattr(0, TCSADRAIN, &raw) == 0) t->active = 1;
}

/* The caller's terminal as it was: its modes and its foreground process group. */
static void terminal_restore(struct terminal_state *t) {
    if (!t->active) return;
    t->active = 0;
    struct sigaction ign = { .sa_handler = SIG_IGN }, old;
    sigaction(SIGTTOU, &ign, &old); /* a background caller may still put things back */
    tcsetattr(0, TCSADRAIN, &t->saved);
    if (t->foreground > 0 && tcgetpgrp(0) != t->foreground) tcsetpgrp(0, t->foreground);
    sigaction(SIGTTOU, &old, NULL);
}

void pass_window_size(int master) {
    struct winsize ws;
    if (isatty(0) && ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) ioctl(master, TIOCSWINSZ, &ws);
}

/* Copies what is readable on `from` to `to`: 1 data moved, 0 end (EOF, or EIO of a pty whose slave
 * is closed), -1 nothing now. */
static int pump(int from, int to) {
    char buf[8192];
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return -1;
    if (n <= 0) return 0;
    return write_all(to, buf, (size_t)n) < 0 ? 0 : 1;
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* Relays until the stager (and so the command) ends; returns its status. Every way out restores the
 * caller's terminal: the command's end, a signal to the relay (SIGTERM, SIGHUP, SIGINT, SIGQUIT),
 * the end of the caller (its pidfd). */
volatile sig_atomic_t relay_timed_out;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int relay_terminal(int master, pid_t stager, int64_t timeout_ms) {
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD); sigaddset(&mask, SIGWINCH);
    for (size_t i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++) sigaddset(&mask, forwarded_signals[i]);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK); /* the signals are blocked since before the fork */
    if (sfd < 0) die("signalfd: %s", strerror(errno));
    int caller = (int)syscall(SYS_pidfd_open, getppid(), 0);
    int in_open = 1, master_open = 1, status = -1;
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    terminal_enter_raw(&caller_terminal);
    pass_window_size(master);
    while (status < 0) {
        struct pollfd p[4] = { { master_open ? master : -1, POLLIN, 0 }, { sfd, POLLIN, 0 }, { in_open ? 0 : -1, POLLIN, 0 }, { caller, POLLIN, 0 } };
        int wait = -1;
        if (deadline && !relay_timed_out) {
            int64_t left = deadline - now_ms();
            if (left <= 0) { relay_timed_out = 1; kill(stager, SIGUSR1); }
            else wait = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        if (poll(p, 4, wait) < 0) { if (errno == EINTR) continue; break; }
        if (p[0].revents) {
            int r;
            while ((r = pump(master, 1)) > 0) {}
            if (r == 0) master_open = 0; /* every slave closed: wait for the stager's status */
        }
        if (p[2].revents && pump(0, master) == 0) {
            in_open = 0; /* the caller's input ended (not a terminal): end of file for the program */
            char eof = caller_terminal.active ? caller_terminal.saved.c_cc[VEOF] : 4;
            write_all(master, &eof, 1);
        }
        if (p[3].revents) { kill(stager, SIGHUP); status = 128 + SIGHUP; break; }
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            if (si.ssi_signo == SIGWINCH) pass_window_size(master);
            else if (si.ssi_signo == SIGCHLD) {
                int st;
                if (waitpid(stager, &st, WNOHANG) == stager) {
                    while (pump(master, 1) > 0) {} /* the command's last words */
                    status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                }
            } else { kill(stager, SIGHUP); status = 128 + (int)si.ssi_signo; }
        }
    }
    terminal_restore(&caller_terminal);
    close(master);
    if (relay_timed_out) return 124;
    return status < 0 ? 125 : status;
}

/* Non-interactive: the command keeps the caller's stdio (pipes, a file); termination signals to the
 * relay go on to it, through the stager. */
static pid_t timed_stager;

static void on_timeout(int sig) {
    (void)sig;
    relay_timed_out = 1;
    if (timed_stager > 0) kill(timed_stager, SIGUSR1);
}

int relay_status(pid_t stager, int64_t timeout_ms) {
    forward_to = stager;
    install_forwarding();
    if (timeout_ms > 0) {
        timed_stager = stager;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_timeout;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval it = { { 0, 0 }, { (time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000 } };
        if (setitimer(ITIMER_REAL, &it, NULL) < 0) die("setitimer: %s", strerror(errno));
    }
    sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
    int status = wait_status(stager);
    return relay_timed_out ? 124 : status;
}

