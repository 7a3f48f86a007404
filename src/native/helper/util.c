/*
 * Errors and whole writes, used by every other file: fail() records the first error of a step
 * (reported to the C# side verbatim), die() ends the helper with status 125, which the runtime
 * reads as "psc-helper failed", not as the program's own status.
 */
#include "helper.h"

char errbuf[1024];

/* Record the first error: "what: strerror". Reported to the C# side verbatim. */
int fail(const char *fmt, ...) {
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    if (saved && n > 0 && (size_t)n < sizeof errbuf)
        snprintf(errbuf + n, sizeof errbuf - n, ": %s", strerror(saved));
    errno = saved;
    return -1;
}

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("psc-helper: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(125);
}

int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; len -= (size_t)w;
    }
    return 0;
}

int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return fail("open %s", path);
    int rc = write_all(fd, text, strlen(text));
    if (rc < 0) fail("write %s", path);
    close(fd);
    return rc;
}
