/*
 * Writes the C# side of the psc-helper protocol (HelperProtocol.g.cs) from psc-protocol.h.
 * It is C so that the definition is read by the compiler itself, with the same macros psc-helper
 * is built from: there is no second parser of the definition that could read it differently.
 * The runtime's build (PSContainers.Runtime.csproj, target GenerateHelperProtocol) compiles and
 * runs it before the C# compiler; the output is never checked in.
 *
 *   gen-csharp OUTPUT.cs
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "psc-protocol.h"

struct key { const char *id, *wire, *kind, *cs, *doc; long maxlen, most; unsigned in, required; };
static const struct key keys[] = {
#define PSC_X(id, wire, kind, field, cs, maxlen, most, in, req, doc) { #id, wire, #kind, #cs, doc, maxlen, most, in, req },
    PSC_KEYS(PSC_X)
#undef PSC_X
};

struct command { const char *id, *word, *cs; };
static const struct command commands[] = {
#define PSC_X(id, word, cs) { #id, word, #cs },
    PSC_COMMANDS(PSC_X)
#undef PSC_X
};

struct mount_flag { const char *cs, *doc; unsigned long long value; };
static const struct mount_flag mount_flags[] = {
#define PSC_X(cs, value, doc) { #cs, doc, (unsigned long long)(value) },
    PSC_MOUNT_FLAGS(PSC_X)
#undef PSC_X
};

struct field { const char *kind, *name; };
struct reply { const char *id, *word, *cs, *doc; struct field fields[4]; };
static const struct reply replies[] = {
#define PSC_F(kind, name) { #kind, #name },
#define PSC_R(id, word, fields, cs, doc) { #id, word, #cs, doc, { fields(PSC_F) { NULL, NULL } } },
#define PSC_X(id, reply, cs, doc) PSC_R(id, reply, cs, doc)
    PSC_REPLIES(PSC_X)
#undef PSC_X
#undef PSC_R
#undef PSC_F
};

struct console_byte { const char *cs, *doc; char value; };
static const struct console_byte console_answers[] = {
#define PSC_X(id, byte, cs, doc) { #cs, doc, byte },
    PSC_CONSOLE_ANSWERS(PSC_X)
#undef PSC_X
};
static const struct console_byte console_frames[] = {
#define PSC_X(id, byte, cs, doc) { #cs, doc, byte },
    PSC_CONSOLE_FRAMES(PSC_X)
#undef PSC_X
};

struct event_kind { const char *word, *cs, *doc; };
static const struct event_kind event_kinds[] = {
#define PSC_X(id, word, cs, doc) { word, #cs, doc },
    PSC_EVENT_KINDS(PSC_X)
#undef PSC_X
};

#define COUNT(a) (sizeof (a) / sizeof *(a))

static FILE *out;

/* Text for an XML doc comment. */
static void xml(const char *s) {
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        default: fputc(*s, out);
        }
}

static void summary(const char *indent, const char *doc) {
    fprintf(out, "%s/// <summary>", indent);
    xml(doc);
    fputs("</summary>\n", out);
}

/* Each kind's C# type and the SpecWriter method (HelperSpec.cs) that puts it on the wire. */
static const struct { const char *kind, *type, *writer; } kinds[] = {
    { "STR", "string?", "String" }, { "FLAG", "bool", "Flag" }, { "I32", "int?", "Int32" }, { "U32", "uint?", "UInt32" },
    { "I64", "long?", "Int64" }, { "U64", "ulong?", "UInt64" }, { "NSFLAGS", "NamespaceKind", "NamespaceFlags" },
    { "NSNAMES", "NamespaceKind", "NamespaceNames" }, { "BPF", "byte[]?", "Bpf" }, { "LIST", "List<string>", "List" },
    { "MOUNT", "List<MountEntry>", "Mounts" }, { "ROOTMOUNT", "List<MountEntry>", "RootMounts" },
    { "SYMLINK", "List<(string Target, string LinkPath)>", "Symlinks" },
};

static size_t kind_index(const char *kind) {
    for (size_t i = 0; i < COUNT(kinds); i++) if (!strcmp(kinds[i].kind, kind)) return i;
    fprintf(stderr, "gen-csharp: no C# type for kind %s\n", kind);
    exit(1);
}

static const char *cs_type(const char *kind) { return kinds[kind_index(kind)].type; }

/* Repeated kinds are collections the caller adds to; the others are settable. */
static int is_collection(const char *kind) {
    return !strcmp(kind, "LIST") || !strcmp(kind, "MOUNT") || !strcmp(kind, "ROOTMOUNT") || !strcmp(kind, "SYMLINK");
}

static void spec_class(unsigned c) {
    unsigned bit = 1u << c;
    fprintf(out, "/// <summary>The spec of <c>psc-helper %s</c> (src/native/protocol/psc-protocol.h).</summary>\n", commands[c].word);
    fprintf(out, "public sealed partial class %s : HelperSpec\n{\n", commands[c].cs);
    fprintf(out, "    public override string HelperCommand => \"%s\";\n", commands[c].word);
    for (size_t k = 0; k < COUNT(keys); k++) {
        if (!(keys[k].in & bit)) continue;
        fputc('\n', out);
        char doc[512];
        snprintf(doc, sizeof doc, "\"%s\": %s%s.", keys[k].wire, keys[k].doc, (keys[k].required & bit) ? " (required)" : "");
        summary("    ", doc);
        const char *type = cs_type(keys[k].kind);
        if (is_collection(keys[k].kind)) fprintf(out, "    public %s %s { get; } = new();\n", type, keys[k].cs);
        else fprintf(out, "    public %s %s { get; set; }\n", type, keys[k].cs);
    }
    fputs("\n    private protected override void Write(SpecWriter w)\n    {\n", out);
    for (size_t k = 0; k < COUNT(keys); k++) {
        if (!(keys[k].in & bit)) continue;
        fprintf(out, "        w.%s(\"%s\", %s, %ld, %ld);\n", kinds[kind_index(keys[k].kind)].writer, keys[k].wire, keys[k].cs, keys[k].maxlen, keys[k].most);
    }
    fputs("    }\n}\n\n", out);
}

static void reply_record(const struct reply *r) {
    summary("    ", r->doc);
    fprintf(out, "    public sealed record %s(", r->cs);
    int n = 0;
    for (const struct field *f = r->fields; f->kind; f++, n++)
        fprintf(out, "%s%s %s", n ? ", " : "", !strcmp(f->kind, "PID") ? "int" : "string?", f->name);
    fputs(")\n    {\n", out);
    fprintf(out, "        public const string Word = \"%s\";\n", r->word);
    fprintf(out, "        public const int FieldCount = %d;\n\n", n);
    fprintf(out, "        /// <summary>Whether <paramref name=\"line\"/> is a \"%s\" line (of any shape: <see cref=\"Parse\"/> checks that).</summary>\n", r->word);
    fputs("        public static bool Matches(string line) => HelperProtocol.HasWord(line, Word);\n\n", out);
    fputs("        /// <summary>Reads the line; one of another shape is a <see cref=\"ContainerException\"/> (HelperProtocolError).</summary>\n", out);
    fprintf(out, "        public static %s Parse(string line)\n        {\n", r->cs);
    fputs("            var f = HelperProtocol.Fields(line, Word, FieldCount);\n", out);
    fprintf(out, "            return new %s(", r->cs);
    int i = 1;
    for (const struct field *f = r->fields; f->kind; f++, i++)
        fprintf(out, "%sHelperProtocol.%s(f[%d], line)", i > 1 ? ", " : "", !strcmp(f->kind, "PID") ? "Pid" : "Path", i);
    fputs(");\n        }\n\n", out);
    fputs("        /// <summary>The line as sent (without its newline).</summary>\n", out);
    fputs("        public string Format() => HelperProtocol.Join(Word", out);
    for (const struct field *f = r->fields; f->kind; f++)
        fprintf(out, ", HelperProtocol.%s(%s)", !strcmp(f->kind, "PID") ? "FormatPid" : "FormatPath", f->name);
    fputs(");\n    }\n\n", out);
}

int main(int argc, char **argv) {
    if (argc != 2) { fputs("usage: gen-csharp OUTPUT.cs\n", stderr); return 2; }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    out = fopen(tmp, "w");
    if (!out) { perror(tmp); return 1; }
    fputs("// <auto-generated/>\n"
          "// Written at build time by src/native/protocol/gen-csharp.c from src/native/protocol/psc-protocol.h,\n"
          "// the definition psc-helper is compiled from too. Edit that file, not this one.\n"
          "#nullable enable\n"
          "namespace PSContainers.Runtime.Namespaces;\n\n", out);

    fputs("/// <summary>A mount record's flags: sys/mount.h's, plus the helper's own in the high bits.</summary>\n"
          "[Flags]\npublic enum MountFlags : ulong\n{\n    None = 0,\n", out);
    for (size_t i = 0; i < COUNT(mount_flags); i++) {
        summary("    ", mount_flags[i].doc);
        fprintf(out, "    %s = %lluUL,\n", mount_flags[i].cs, mount_flags[i].value);
    }
    fputs("}\n\n", out);

    for (unsigned c = 0; c < COUNT(commands); c++) spec_class(c);

    fputs("/// <summary>The lines a start, restore or userns-tree exchanges with the caller (psc-protocol.h, PSC_REPLIES).</summary>\n"
          "public static partial class HelperProtocol\n{\n", out);
    for (size_t i = 0; i < COUNT(replies); i++) reply_record(&replies[i]);
    fputs("    /// <summary>The commands' words, as psc-helper's main() takes them.</summary>\n    public static readonly string[] Commands = { ", out);
    for (size_t c = 0; c < COUNT(commands); c++) fprintf(out, "%s\"%s\"", c ? ", " : "", commands[c].word);
    fputs(" };\n}\n", out);

    fputs("/// <summary>What happened to a container (psc-protocol.h, PSC_EVENT_KINDS).</summary>\n"
          "public enum ContainerEventKind\n{\n", out);
    for (size_t i = 0; i < COUNT(event_kinds); i++) {
        summary("    ", event_kinds[i].doc);
        fprintf(out, "    %s,\n", event_kinds[i].cs);
    }
    fputs("}\n\n/// <summary>The event journal's record (psc-protocol.h, PSC_EVENT_*).</summary>\n"
          "public static class EventRecordFormat\n{\n", out);
    fputs("    /// <summary>Each kind's word in a record, in the order of <see cref=\"ContainerEventKind\"/>.</summary>\n    public static readonly string[] Words = { ", out);
    for (size_t i = 0; i < COUNT(event_kinds); i++) fprintf(out, "%s\"%s\"", i ? ", " : "", event_kinds[i].word);
    fprintf(out, " };\n    public const int RecordMax = %d;\n    public const string Journal = \"%s\";\n"
            "    public const string Rotated = \"%s\";\n    public const string Lock = \"%s\";\n}\n",
            PSC_EVENT_RECORD_MAX, PSC_EVENT_JOURNAL, PSC_EVENT_ROTATED, PSC_EVENT_LOCK);

    fputs("\n/// <summary>The console socket's messages (psc-protocol.h, PSC_CONSOLE_*): the supervisor's answer byte, the relay's frame types.</summary>\n"
          "public static class ConsoleSocketProtocol\n{\n", out);
    for (size_t i = 0; i < COUNT(console_answers); i++) {
        summary("    ", console_answers[i].doc);
        fprintf(out, "    public const byte %s = (byte)'%c';\n", console_answers[i].cs, console_answers[i].value);
    }
    for (size_t i = 0; i < COUNT(console_frames); i++) {
        summary("    ", console_frames[i].doc);
        fprintf(out, "    public const byte %sFrame = (byte)'%c';\n", console_frames[i].cs, console_frames[i].value);
    }
    fprintf(out, "    public const int DataMax = %d;\n    public const int WindowSizeLength = %d;\n    public const int FrameMax = %d;\n}\n",
            PSC_CONSOLE_DATA_MAX, PSC_CONSOLE_WINSIZE_LENGTH, PSC_CONSOLE_FRAME_MAX);

    if (fclose(out) != 0 || rename(tmp, argv[1]) != 0) { perror(argv[1]); return 1; }
    return 0;
}
