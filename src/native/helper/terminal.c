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
int relay_terminal(int master, pid_t stager) {
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
        if (poll(p, 4, -1) < 0) { if (errno == EINTR) continue; break; }
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
    return status < 0 ? 125 : status;
}

/* Non-interactive: the command keeps the caller's stdio (pipes, a file); termination signals to the
 * relay go on to it, through the stager. */
int relay_status(pid_t stager) {
    forward_to = stager;
    install_forwarding();
    sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
    return wait_status(stager);
}

