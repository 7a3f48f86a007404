/*
 * The protocol's C side: reading a spec (a command's keys, as psc-protocol.h defines them) and
 * the reply lines. Everything here treats its input as hostile: a spec comes from the runtime, but
 * a parser that trusted it would turn any mistake there into memory corruption in a root process.
 * Kept free of the rest of psc-helper (it needs only util.c) so that tests/native/spec-parser-test.c
 * can run it on its own.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "spec.h"

extern char errbuf[1024];
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int write_all(int fd, const void *buf, size_t len);

static const char *const command_words[] = {
#define PSC_X(id, word, cs) word,
    PSC_COMMANDS(PSC_X)
#undef PSC_X
};

struct key_def { const char *wire, *doc; size_t maxlen; int arity, most; unsigned in, required; };
static const struct key_def key_defs[] = {
#define PSC_X(id, wire, kind, field, cs, maxlen, most, in, req, doc) { wire, doc, maxlen, PSC_ARITY_##kind, most, in, req },
    PSC_KEYS(PSC_X)
#undef PSC_X
};

int psc_command_of(const char *word) {
    for (int c = 0; c < PSC_CMD_COUNT; c++) if (!strcmp(word, command_words[c])) return c;
    return -1;
}

/* At most 48 characters of hostile text for an error message, control characters as '?'. */
static const char *shown(const char *text) {
    static char buf[2][52];
    static int which;
    char *out = buf[which ^= 1];
    size_t i = 0;
    for (; text[i] && i < 48; i++) out[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i];
    strcpy(out + i, text[i] ? "..." : "");
    return out;
}

/* A decimal number, digits only (no sign, blanks or base prefix), at most `max`. */
static int parse_number(const char *key, const char *text, unsigned long long max, unsigned long long *value) {
    if (!text[0] || strlen(text) > PSC_NUMBER_MAX || strspn(text, "0123456789") != strlen(text)) {
        errno = 0;
        return fail("spec: '%s' must be a decimal number, not '%s'", key, shown(text));
    }
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno == ERANGE || v > max) { errno = 0; return fail("spec: '%s' is out of range (%s, at most %llu)", key, shown(text), max); }
    *value = v;
    return 0;
}

static int parse_flag(const char *key, const char *text, int *flag) {
    if (strcmp(text, "1")) { errno = 0; return fail("spec: '%s' takes 1 (or is left out), not '%s'", key, shown(text)); }
    *flag = 1;
    return 0;
}

/* Only namespace bits: the number goes to clone(), where CLONE_VM or CLONE_FILES would be a disaster. */
#define PSC_NAMESPACE_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)
static int parse_ns_flags(const char *key, const char *text, unsigned long *flags) {
    unsigned long long v;
    if (parse_number(key, text, ULONG_MAX, &v) < 0) return -1;
    if (v & ~(unsigned long long)PSC_NAMESPACE_FLAGS) { errno = 0; return fail("spec: '%s' holds bits that are not namespaces (0x%llx)", key, v); }
    *flags = (unsigned long)v;
    return 0;
}

/* A name under /proc/PID/ns (it becomes part of that path). */
static int parse_ns_name(const char *key, const char *text, const char **names, int *count) {
    static const char *const known[] = { "user", "mnt", "pid", "uts", "ipc", "net", "cgroup", "time" };
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(text, known[i])) {
            for (int j = 0; j < *count; j++)
                if (!strcmp(names[j], text)) { errno = 0; return fail("spec: '%s' names %s twice", key, text); }
            names[(*count)++] = text;
            return 0;
        }
    errno = 0;
    return fail("spec: '%s' must name a namespace (user, mnt, pid, uts, ipc, net, cgroup, time), not '%s'", key, shown(text));
}

/* Mount flags: the kernel's and our own, nothing else (psc-protocol.h, PSC_MOUNT_FLAGS). */
static const unsigned long long known_mount_flags = 0
#define PSC_X(cs, value, doc) | (unsigned long long)(value)
    PSC_MOUNT_FLAGS(PSC_X)
#undef PSC_X
    ;
static int parse_mount(const char *key, const char *src, const char *dst, const char *type, const char *flags,
                       const char *data, struct mount_rec *m) {
    unsigned long long v;
    if (parse_number(key, flags, ULLONG_MAX, &v) < 0) return -1;
    if (v & ~known_mount_flags) { errno = 0; return fail("spec: '%s' flags hold unknown bits (0x%llx)", key, v & ~known_mount_flags); }
    *m = (struct mount_rec){ src, dst, type, data, v };
    return 0;
}

/* The seccomp program comes as hex of struct sock_filter[] in little-endian byte order (what the
 * C# compiler emits; x86_64 and aarch64 are both little-endian, so the bytes are the structs). */
static int parse_bpf(const char *key, const char *hex, struct sock_filter **filter, unsigned short *len) {
    size_t n = strlen(hex), insn = 2 * sizeof(struct sock_filter);
    if (n == 0 || n % insn || n / insn > BPF_MAXINSNS) {
        errno = 0;
        return fail("spec: '%s' must be 1..%d instructions of %zu bytes", key, BPF_MAXINSNS, sizeof(struct sock_filter));
    }
    if (strspn(hex, "0123456789abcdefABCDEF") != n) { errno = 0; return fail("spec: '%s' is not hex", key); }
    unsigned char *bytes = malloc(n / 2);
    if (!bytes) return fail("spec: '%s'", key);
    for (size_t i = 0; i < n / 2; i++) {
        char pair[3] = { hex[2 * i], hex[2 * i + 1], 0 };
        bytes[i] = (unsigned char)strtoul(pair, NULL, 16);
    }
    *filter = (struct sock_filter *)bytes;
    *len = (unsigned short)(n / insn);
    return 0;
}

/* Stores one key's values (v[0..arity-1]) in its field, by the key's kind. */
#define PSC_STORE_STR(f) (s->f = v[0], 0)
#define PSC_STORE_FLAG(f) parse_flag(key, v[0], &s->f)
#define PSC_STORE_NUM(f, type, max) (parse_number(key, v[0], (max), &num) < 0 ? -1 : (s->f = (type)num, s->has_##f = 1, 0))
#define PSC_STORE_I32(f) PSC_STORE_NUM(f, int, INT32_MAX)
#define PSC_STORE_U32(f) PSC_STORE_NUM(f, uint32_t, UINT32_MAX)
#define PSC_STORE_I64(f) PSC_STORE_NUM(f, int64_t, INT64_MAX)
#define PSC_STORE_U64(f) PSC_STORE_NUM(f, uint64_t, UINT64_MAX)
#define PSC_STORE_NSFLAGS(f) parse_ns_flags(key, v[0], &s->f)
#define PSC_STORE_NSNAMES(f) parse_ns_name(key, v[0], s->f, &s->n_##f)
#define PSC_STORE_BPF(f) parse_bpf(key, v[0], &s->f, &s->f##_len)
#define PSC_STORE_LIST(f) (s->f[s->n_##f++] = v[0], 0)
#define PSC_STORE_MOUNT(f) parse_mount(key, v[0], v[1], v[2], v[3], v[4], &s->f[s->n_##f++])
#define PSC_STORE_ROOTMOUNT(f) parse_mount(key, v[0], "", v[1], v[2], v[3], &s->f[s->n_##f++])
#define PSC_STORE_SYMLINK(f) (s->f[s->n_##f++] = (struct link_rec){ v[0], v[1] }, 0)

static int store(struct spec *s, int id, const char *key, const char **v) {
    unsigned long long num;
    (void)num;
    switch (id) {
#define PSC_X(id, wire, kind, field, cs, maxlen, most, in, req, doc) case PSC_KEY_##id: return PSC_STORE_##kind(field);
    PSC_KEYS(PSC_X)
#undef PSC_X
    }
    return -1;
}

int psc_parse_spec(struct spec *s, enum psc_command command, char *buf, size_t len) {
    memset(s, 0, sizeof *s);
    s->command = command;
    errno = 0;
    if ((unsigned)command >= PSC_CMD_COUNT) return fail("spec: no such command");
    if (len == 0 || buf[len - 1] != '\0') return fail("spec: must be NUL-terminated strings");
    const unsigned bit = 1u << command;
    const char *word = command_words[command];
    int seen[PSC_KEY_COUNT] = { 0 };
    for (size_t off = 0; off < len;) {
        const char *key = buf + off;
        off += strlen(key) + 1;
        int id = -1;
        for (int k = 0; k < PSC_KEY_COUNT && id < 0; k++) if (!strcmp(key, key_defs[k].wire)) id = k;
        if (id < 0) { errno = 0; return fail("spec: unknown key '%s'", shown(key)); }
        const struct key_def *d = &key_defs[id];
        if (!(d->in & bit)) { errno = 0; return fail("spec: '%s' is not part of the %s spec", key, word); }
        if (seen[id] >= d->most) {
            errno = 0;
            return d->most == 1 ? fail("spec: '%s' is given twice", key) : fail("spec: too many '%s' (at most %d)", key, d->most);
        }
        seen[id]++;
        const char *v[8];
        for (int i = 0; i < d->arity; i++) {
            if (off >= len) { errno = 0; return fail("spec: '%s' needs %d value(s)", key, d->arity); }
            v[i] = buf + off;
            size_t n = strlen(v[i]);
            if (n > d->maxlen) { errno = 0; return fail("spec: a value of '%s' is too long (%zu bytes, at most %zu)", key, n, d->maxlen); }
            off += n + 1;
        }
        if (store(s, id, key, v) < 0) return -1;
    }
    for (int k = 0; k < PSC_KEY_COUNT; k++)
        if ((key_defs[k].required & bit) && !seen[k]) { errno = 0; return fail("spec: %s needs '%s' (%s)", word, key_defs[k].wire, key_defs[k].doc); }
    return 0;
}

/* The spec comes on stdin as "<length>\n<bytes>", so that stdin stays open afterwards (the start
 * handshake, or the input of an exec'd program); or from a file named on the command line
 * (deleted once read) when stdin must stay the caller's terminal (interactive attach). */
static char *slurp_spec(const char *file, size_t *len) {
    if (file) {
        int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) die("open spec %s: %s", file, strerror(errno));
        unlink(file);
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > (1 << 24)) die("spec file %s: bad size", file);
        char *buf = malloc((size_t)st.st_size);
        if (!buf) die("out of memory");
        size_t n = 0;
        while (n < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
            if (r <= 0) { if (r < 0 && errno == EINTR) continue; die("read spec %s: %s", file, r ? strerror(errno) : "short"); }
            n += (size_t)r;
        }
        close(fd);
        *len = n;
        return buf;
    }
    /* Byte by byte up to the newline: nothing beyond the spec may be consumed from stdin. */
    size_t want = 0;
    for (int digits = 0;; digits++) {
        char c;
        ssize_t r = read(0, &c, 1);
        if (r < 0 && errno == EINTR) { digits--; continue; }
        if (r != 1) die("read spec length: %s", r ? strerror(errno) : "end of input");
        if (c == '\n' && digits > 0) break;
        if (c < '0' || c > '9' || digits > 8) die("spec must start with its length and a newline");
        want = want * 10 + (size_t)(c - '0');
    }
    char *buf = malloc(want ? want : 1);
    if (!buf) die("out of memory");
    size_t n = 0;
    while (n < want) {
        ssize_t r = read(0, buf + n, want - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("read spec: %s", r ? strerror(errno) : "end of input");
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

void read_spec(struct spec *s, enum psc_command command, const char *file) {
    size_t len;
    char *buf = slurp_spec(file, &len);
    if (psc_parse_spec(s, command, buf, len) < 0) die("%s", errbuf);
}

int reply_line(int fd, const char *fmt, ...) {
    char line[PSC_REPLY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) { errno = EOVERFLOW; return fail("reply too long"); }
    return write_all(fd, line, (size_t)n);
}

static const struct { const char *word, *kinds; } reply_defs[] = {
#define PSC_F(kind, name) #kind " "
#define PSC_R(id, word, fields, cs, doc) { word, "" fields(PSC_F) },
#define PSC_X(id, reply, cs, doc) PSC_R(id, reply, cs, doc)
    PSC_REPLIES(PSC_X)
#undef PSC_X
#undef PSC_R
#undef PSC_F
};

int reply_has_word(const char *line, enum psc_reply reply) {
    size_t n = strlen(reply_defs[reply].word);
    return !strncmp(line, reply_defs[reply].word, n) && (line[n] == ' ' || line[n] == '\n' || line[n] == '\0');
}

int parse_reply(const char *line, enum psc_reply reply, int pids[4]) {
    if (!reply_has_word(line, reply)) return -1;
    const char *p = line + strlen(reply_defs[reply].word);
    int npid = 0;
    for (const char *k = reply_defs[reply].kinds; *k; k = strchr(k, ' ') + 1) {
        if (*p++ != ' ') return -1;
        size_t n = strcspn(p, " \n");
        if (n == 0) return -1;
        if (!strncmp(k, "PID ", 4)) {
            char text[16];
            unsigned long long v;
            if (n >= sizeof text) return -1;
            memcpy(text, p, n);
            text[n] = '\0';
            if (strspn(text, "0123456789") != n || text[0] == '0') return -1;
            v = strtoull(text, NULL, 10);
            if (v > INT32_MAX) return -1;
            if (pids) pids[npid] = (int)v;
            npid++;
        }
        p += n;
    }
    return (*p == '\0' || (p[0] == '\n' && p[1] == '\0')) ? 0 : -1;
}
