/*
 * The spec psc-helper is given, and the lines it exchanges with the caller, as C sees them: all
 * expanded from protocol/psc-protocol.h, the definition the C# side is generated from too. A new
 * key there becomes a field here (named by its "psc-helper field" column) without further edits.
 */
#ifndef PSC_SPEC_H
#define PSC_SPEC_H

#include <stddef.h>
#include <stdint.h>
#include <linux/filter.h>
#include "psc-protocol.h"

struct mount_rec { const char *src, *dst, *type, *data; unsigned long long flags; };
struct link_rec { const char *target, *path; };

/* The storage of each kind (see PSC_ARITY_* in psc-protocol.h). Numbers and single values have a
 * has_ flag where 0 is a meaningful value; repeated strings are NULL-terminated (argv, envp). */
#define PSC_FIELD_STR(f, most) const char *f;
#define PSC_FIELD_FLAG(f, most) int f;
#define PSC_FIELD_I32(f, most) int f; int has_##f;
#define PSC_FIELD_U32(f, most) uint32_t f; int has_##f;
#define PSC_FIELD_I64(f, most) int64_t f; int has_##f;
#define PSC_FIELD_U64(f, most) uint64_t f; int has_##f;
#define PSC_FIELD_NSFLAGS(f, most) unsigned long f;
#define PSC_FIELD_NSNAMES(f, most) const char *f[most]; int n_##f;
#define PSC_FIELD_BPF(f, most) struct sock_filter *f; unsigned short f##_len;
#define PSC_FIELD_LIST(f, most) const char *f[(most) + 1]; int n_##f;
#define PSC_FIELD_MOUNT(f, most) struct mount_rec f[most]; int n_##f;
#define PSC_FIELD_ROOTMOUNT(f, most) struct mount_rec f[most]; int n_##f;
#define PSC_FIELD_SYMLINK(f, most) struct link_rec f[most]; int n_##f;

/* One command's spec. Only the keys of that command (PSC_KEYS' "commands that take it") can be
 * set: the parser refuses the others, so a field outside the command's spec stays zero. */
struct spec {
    enum psc_command command;
#define PSC_X(id, wire, kind, field, cs, maxlen, most, in, req, doc) PSC_FIELD_##kind(field, most)
    PSC_KEYS(PSC_X)
#undef PSC_X
};

/* The command named `word` on the command line, or -1. */
int psc_command_of(const char *word);

/* Reads the spec of `command` (from `file`, deleted once read, or from stdin when NULL); dies
 * with the parser's message when it is not one. */
void read_spec(struct spec *s, enum psc_command command, const char *file);

/* Parses `len` bytes of NUL-terminated strings into `s` (which points into `buf`). 0, or -1 with
 * the reason ("spec: ...") in errbuf. */
int psc_parse_spec(struct spec *s, enum psc_command command, char *buf, size_t len);

enum psc_reply {
#define PSC_X(id, reply, cs, doc) PSC_R_##id,
    PSC_REPLIES(PSC_X)
#undef PSC_X
    PSC_R_COUNT
};

/* Writes one reply line, formatted with PSC_FORMAT(reply), in one write. */
#define send_reply(fd, reply, ...) reply_line((fd), PSC_FORMAT(reply), __VA_ARGS__)
int reply_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Does `line` (newline or not) start with the word of `reply`? */
int reply_has_word(const char *line, enum psc_reply reply);

/* Parses `line` (its newline optional) as `reply`: 0 with its PID fields in `pids` (in order, PATH
 * fields skipped), -1 when it is of another shape. */
int parse_reply(const char *line, enum psc_reply reply, int pids[4]);

#endif
