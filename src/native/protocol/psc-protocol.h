/*
 * The psc-helper protocol: the one definition of what the C# runtime and psc-helper say to each
 * other. Both sides are built from this file, so they cannot disagree:
 *   - psc-helper includes it; its parser, its spec struct and its reply formats are expanded
 *     from the tables below (helper/spec.h, helper/spec.c);
 *   - the runtime's build compiles protocol/gen-csharp.c, which includes it too, and runs it to
 *     write HelperProtocol.g.cs (one spec class per command, MountFlags, the typed replies).
 * Adding a setting is one row in PSC_KEYS plus the code on each side that uses it.
 *
 * Wire format of a spec: "<length>\n" then NUL-terminated UTF-8 strings: a key, then its values
 * (one, or a record's fixed number). Keys a command does not take, unknown keys, a single-valued
 * key given twice, values over their length, bad numbers and missing required keys are refused.
 */
#ifndef PSC_PROTOCOL_H
#define PSC_PROTOCOL_H

#include <sys/mount.h>

/* The commands that take a spec: X(ID, word on the command line, C# spec class). */
#define PSC_COMMANDS(X) \
    X(START,       "start",       StartSpec) \
    X(RESTORE,     "restore",     RestoreSpec) \
    X(EXEC,        "exec",        ExecSpec) \
    X(NETNS_EXEC,  "netns-exec",  NetNsExecSpec) \
    X(USERNS_TREE, "userns-tree", UsernsTreeSpec) \
    X(CONSOLE,     "console",     ConsoleSpec) \
    X(DEVICE,      "device",      DeviceSpec) \
    X(NIC_UP,      "nic-up",      NicUpSpec)

enum psc_command {
#define PSC_X(id, word, cs) PSC_CMD_##id,
    PSC_COMMANDS(PSC_X)
#undef PSC_X
    PSC_CMD_COUNT
};

/* Command sets of a key (which commands take it, which require it). */
#define PSC_IN(c) (1u << PSC_CMD_##c)
#define PSC_ALL ((1u << PSC_CMD_COUNT) - 1)
#define PSC_NONE 0u

/* Value kinds, each with its number of values on the wire, its storage in psc-helper
 * (helper/spec.h) and its C# type (gen-csharp.c):
 *   STR       one string                         string?
 *   FLAG      "1"                                bool (sent when true)
 *   I32       decimal 0..INT32_MAX               int?
 *   U32       decimal 0..UINT32_MAX              uint?
 *   I64       decimal 0..INT64_MAX               long?
 *   U64       decimal 0..UINT64_MAX              ulong?
 *   NSFLAGS   decimal clone flags                NamespaceKind (always sent)
 *   NSNAMES   a /proc/PID/ns name, repeated      NamespaceKind (one per namespace, user first)
 *   BPF       hex of struct sock_filter[]        byte[]?
 *   LIST      one string, repeated               List<string>
 *   MOUNT     source target fstype flags data    List<MountEntry>
 *   ROOTMOUNT source fstype flags data           List<MountEntry> (target unused)
 *   SYMLINK   target linkpath                    List<(string Target, string LinkPath)>
 */
#define PSC_ARITY_STR 1
#define PSC_ARITY_FLAG 1
#define PSC_ARITY_I32 1
#define PSC_ARITY_U32 1
#define PSC_ARITY_I64 1
#define PSC_ARITY_U64 1
#define PSC_ARITY_NSFLAGS 1
#define PSC_ARITY_NSNAMES 1
#define PSC_ARITY_BPF 1
#define PSC_ARITY_LIST 1
#define PSC_ARITY_MOUNT 5
#define PSC_ARITY_ROOTMOUNT 4
#define PSC_ARITY_SYMLINK 2

/* Longest value in bytes (without its NUL). */
#define PSC_PATH_MAX 4095      /* a path the kernel takes (PATH_MAX - 1); also mount data and id maps (one page) */
#define PSC_ARG_MAX 131071     /* one argument or environment string (MAX_ARG_STRLEN - 1) */
#define PSC_BPF_HEX_MAX 65536  /* BPF_MAXINSNS instructions of 8 bytes, as hex */
#define PSC_NUMBER_MAX 20      /* digits of a 64-bit number */
#define PSC_MAX_ITEMS 256      /* most values of a repeated key */

/*
 * The keys: X(ID, wire name, kind, psc-helper field, C# property, longest value, most occurrences,
 *             commands that take it, commands that require it, what it is).
 * The order is the order on the wire.
 */
#define PSC_KEYS(X) \
    X(PID, "pid", I32, target_pid, TargetPid, PSC_NUMBER_MAX, 1, PSC_IN(EXEC) | PSC_IN(DEVICE) | PSC_IN(NIC_UP), PSC_IN(EXEC) | PSC_IN(DEVICE) | PSC_IN(NIC_UP), \
      "the container's init, whose namespaces are joined") \
    X(PID_START, "pidstart", U64, target_start, TargetStartTime, PSC_NUMBER_MAX, 1, PSC_IN(NIC_UP), PSC_IN(NIC_UP), \
      "the init's start time as recorded (/proc/PID/stat field 22): a pid reused by another process is refused") \
    X(JOIN_NS, "ns", NSNAMES, join_ns, Namespaces, 8, 8, PSC_IN(EXEC), PSC_NONE, \
      "the namespaces of the init to join (user first: it grants the rights for the others)") \
    X(CLONE_FLAGS, "flags", NSFLAGS, clone_flags, Namespaces, PSC_NUMBER_MAX, 1, PSC_IN(START), PSC_NONE, \
      "the namespaces init is cloned into") \
    X(ROOTFS, "rootfs", STR, rootfs, Rootfs, PSC_PATH_MAX, 1, PSC_IN(START), PSC_NONE, \
      "the container's root filesystem (required with a mount namespace)") \
    X(HOSTNAME, "hostname", STR, hostname, Hostname, 64, 1, PSC_IN(START), PSC_NONE, \
      "the hostname set in a new UTS namespace") \
    X(CWD, "cwd", STR, cwd, WorkingDirectory, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(EXEC), PSC_NONE, \
      "the program's working directory inside the container") \
    X(CONSOLE, "console", STR, console_log, ConsoleLog, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "the console log the supervisor copies the console pty to") \
    X(CONSOLE_UID, "consoleuid", I64, console_uid, ConsoleUid, PSC_NUMBER_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "the host uid the console pty is given to: a user-namespaced container's root (absent: the caller's)") \
    X(CONSOLE_GID, "consolegid", I64, console_gid, ConsoleGid, PSC_NUMBER_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "the host gid the console pty is given to, with consoleuid") \
    X(LOG_MAX, "logmax", I64, log_max, ConsoleLogMaxBytes, PSC_NUMBER_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "the console log's cap in bytes, after which it restarts (0: none)") \
    X(CONSOLE_SOCKET, "consolesock", STR, console_socket, ConsoleSocket, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE) | PSC_IN(CONSOLE), PSC_IN(CONSOLE), \
      "the unix socket (0600) on which the supervisor lends the console to one attached caller at a time (Enter-Container -Console)") \
    X(ESCAPE, "escape", U32, escape, EscapeKey, PSC_NUMBER_MAX, 1, PSC_IN(CONSOLE), PSC_NONE, \
      "console: the detach prefix byte (1 = Ctrl+a, default); the prefix then q detaches, the prefix twice sends it") \
    X(PAUSE, "pause", FLAG, pause, PauseBeforeExec, 1, 1, PSC_IN(START), PSC_NONE, \
      "stop before init proceeds, report paused and wait for the caller's go (see Helper.Start)") \
    X(TTY, "tty", FLAG, terminal, Terminal, 1, 1, PSC_IN(EXEC), PSC_NONE, \
      "a new pty in the container's devpts for the command, relayed to the caller's terminal") \
    X(ROOT_MOUNT, "rootmount", ROOTMOUNT, root_mounts, RootMounts, PSC_PATH_MAX, 8, PSC_IN(START), PSC_NONE, \
      "mounted on the rootfs path itself in the new mount namespace, before anything else (an overlay rootfs)") \
    X(EXIT_FILE, "exitfile", STR, exit_file, ExitRecord, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "where the supervisor records how init ended") \
    X(RUN_RECORD, "runrecord", STR, run_record, RunRecord, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "where the supervisor writes its own record before init is released (see State.RunRecord)") \
    X(IMAGES_DIR, "imagesdir", STR, images_dir, ImagesDirectory, PSC_PATH_MAX, 1, PSC_IN(RESTORE), PSC_NONE, \
      "CRIU's images directory, where the empty cgroup-yard directories of a killed criu are removed") \
    X(UID_MAP, "uidmap", STR, uid_map, UidMap, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(USERNS_TREE), PSC_NONE, \
      "the uid_map the helper writes itself (root); without it the caller writes the maps while paused") \
    X(GID_MAP, "gidmap", STR, gid_map, GidMap, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(USERNS_TREE), PSC_NONE, \
      "the gid_map (the uid map when absent)") \
    X(CGROUP_V2, "cgroupv2", STR, cgroup_v2, CgroupV2Directory, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(EXEC), PSC_NONE, \
      "the cgroup2 directory the process is born in with clone3(CLONE_INTO_CGROUP)") \
    X(NETNS, "netns", STR, netns, NetNsPath, PSC_PATH_MAX, 1, PSC_IN(NETNS_EXEC), PSC_IN(NETNS_EXEC), \
      "the network namespace file to enter") \
    X(ETC_DIR, "etcdir", STR, etcdir, EtcDirectory, PSC_PATH_MAX, 1, PSC_IN(NETNS_EXEC), PSC_NONE, \
      "/etc/netns/NAME, whose files are bind-mounted over /etc") \
    X(CRIU_FD, "criufd", I32, criu_fd, CriuSocketFd, PSC_NUMBER_MAX, 1, PSC_IN(RESTORE), PSC_IN(RESTORE), \
      "the inherited end of the socket on which the caller speaks CRIU's RPC (see Checkpoint/CriuService)") \
    X(LOOPBACK_UP, "lo-up", FLAG, loopback_up, LoopbackUp, 1, 1, PSC_IN(START), PSC_NONE, \
      "init brings loopback up itself (the caller cannot reach a user-namespaced container's network)") \
    X(LINK_UP, "link-up", LIST, links_up, LinksUp, 15, PSC_MAX_ITEMS, PSC_IN(START) | PSC_IN(NIC_UP), PSC_IN(NIC_UP), \
      "further links init brings up itself, after the network hooks ran (a non-root user's veths); nic-up: the hot-plugged ones it brings up") \
    X(CALLER_ID, "callerid", U32, caller_id, CallerId, PSC_NUMBER_MAX, 1, PSC_IN(USERNS_TREE), PSC_IN(USERNS_TREE), \
      "the in-namespace id the caller's own uid and gid are mapped to") \
    X(CALLER_COUNT, "callercount", U32, caller_count, CallerCount, PSC_NUMBER_MAX, 1, PSC_IN(USERNS_TREE), PSC_NONE, \
      "how many ids from the caller's are mapped there (absent: 1; root: host ids 0.. as a template made them)") \
    X(OWNERS, "owners", STR, owners, OwnersFile, PSC_PATH_MAX, 1, PSC_IN(USERNS_TREE), PSC_NONE, \
      "a file of NUL-terminated \"uid gid relative-path\" records applied after the shift") \
    X(IDMAP_ROOT, "idmap-root", FLAG, idmap_root, IdmappedRoot, 1, 1, PSC_IN(START), PSC_NONE, \
      "the supervisor hands init the rootfs as an idmapped mount onto init's user namespace (the tree on disk holds the container's own ids)") \
    X(OVL_LOWER, "ovl-lower", LIST, ovl_lowers, OverlayLowers, PSC_PATH_MAX, 64, PSC_IN(START) | PSC_IN(USERNS_TREE), PSC_NONE, \
      "with idmap-root: the overlay's lower layers, topmost first, each idmapped (instead of a rootmount)") \
    X(OVL_DIR, "ovl-dir", STR, ovl_dir, OverlayDirectory, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(USERNS_TREE), PSC_NONE, \
      "with idmap-root and ovl-lower: the directory holding the overlay's upper/ and work/ (idmapped as one mount)") \
    X(CGROUP, "cgroup", LIST, cgroups, CgroupProcsFiles, PSC_PATH_MAX, PSC_MAX_ITEMS, PSC_IN(START) | PSC_IN(EXEC), PSC_NONE, \
      "cgroup.procs files the process joins") \
    X(CGROUP_DIR, "cgdir", LIST, cgdirs, CgroupDirectories, PSC_PATH_MAX, PSC_MAX_ITEMS, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "cgroup directories the supervisor removes when init is gone (innermost last)") \
    X(MOUNT, "mount", MOUNT, mounts, Mounts, PSC_PATH_MAX, PSC_MAX_ITEMS, PSC_IN(START), PSC_NONE, \
      "mounts made inside the rootfs before pivot_root, in order") \
    X(SYMLINK, "symlink", SYMLINK, links, Symlinks, PSC_PATH_MAX, PSC_MAX_ITEMS, PSC_IN(START), PSC_NONE, \
      "symlinks made inside the rootfs after the mounts") \
    X(CAP_DROP, "capdrop", U64, cap_drop, CapabilityDropMask, PSC_NUMBER_MAX, 1, PSC_IN(START) | PSC_IN(EXEC), PSC_NONE, \
      "capabilities (bit n = capability n) removed from every set before exec") \
    X(NO_NEW_PRIVS, "nonewprivs", FLAG, no_new_privs, NoNewPrivileges, 1, 1, PSC_IN(START) | PSC_IN(EXEC), PSC_NONE, \
      "prctl(PR_SET_NO_NEW_PRIVS) before exec") \
    X(SECCOMP, "seccomp", BPF, filter, SeccompFilter, PSC_BPF_HEX_MAX, 1, PSC_IN(START) | PSC_IN(EXEC), PSC_NONE, \
      "a classic BPF program (struct sock_filter[]) installed with seccomp() as the last step before exec") \
    X(NAME, "name", STR, name, ContainerName, 64, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "the container's name, which the supervisor's events carry (never anything the container says)") \
    X(EVENTS, "events", STR, events_dir, EventJournalDirectory, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "the store's event journal directory (PSC_EVENT_*), where the supervisor records exits, OOM kills and restarts") \
    X(EVENTS_MAX, "eventsmax", I64, events_max, EventJournalMaxBytes, PSC_NUMBER_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "the journal's bound in bytes (its current file rotates at half of it)") \
    X(STOP_MARK, "stopmark", STR, stop_mark, StopMarker, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "the file a stop or checkpoint creates before it ends init: that end was asked for (no died event, no restart)") \
    X(OOM_WATCH, "oomwatch", STR, oom_watch, OomWatchDirectory, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "the memory cgroup directory whose OOM kills the supervisor reports (v2 memory.events, v1 memory.oom_control)") \
    X(RESTART, "restart", STR, restart_policy, RestartPolicy, 16, 1, PSC_IN(START), PSC_NONE, \
      "the restart policy the supervisor carries out: no, on-failure or always (see restart.c)") \
    X(RESTART_MAX, "restartmax", I32, restart_max, RestartMaxRetries, PSC_NUMBER_MAX, 1, PSC_IN(START), PSC_NONE, \
      "the most restarts in a row (0: no limit)") \
    X(RESTART_BACKOFF, "restartbackoff", I64, restart_backoff_ms, RestartBackoffMilliseconds, PSC_NUMBER_MAX, 1, PSC_IN(START), PSC_NONE, \
      "the first restart's delay in ms, doubled for each further one") \
    X(RESTART_SPEC, "restartspec", STR, restart_spec, RestartSpecFile, PSC_PATH_MAX, 1, PSC_IN(RESTORE), PSC_NONE, \
      "a file (read and deleted at once) with the START spec of the restored container, its restart keys included: " \
      "what its supervisor makes init again from when the restart policy says so (absent: no restarts)") \
    X(UID, "uid", U32, uid, UserId, PSC_NUMBER_MAX, 1, PSC_IN(EXEC) | PSC_IN(START), PSC_NONE, \
      "the uid, as the container sees it, the command (or init: init.user) runs as (its root when absent)") \
    X(GID, "gid", U32, gid, GroupId, PSC_NUMBER_MAX, 1, PSC_IN(EXEC) | PSC_IN(START), PSC_NONE, \
      "the gid, as the container sees it, the command (or init: init.group) runs as (its root group when absent)") \
    X(GROUPS, "groups", LIST, groups, SupplementaryGroups, PSC_NUMBER_MAX, PSC_MAX_ITEMS, PSC_IN(EXEC) | PSC_IN(START), PSC_NONE, \
      "the command's supplementary gids, decimal (none when uid or gid is given without them)") \
    X(TIMEOUT, "timeout", I64, timeout_ms, TimeoutMilliseconds, PSC_NUMBER_MAX, 1, PSC_IN(EXEC), PSC_NONE, \
      "milliseconds after which the command's process group is killed and the relay exits 124 (0: none)") \
    X(SYSCTL, "sysctl", LIST, sysctls, Sysctls, PSC_PATH_MAX, PSC_MAX_ITEMS, PSC_IN(START), PSC_NONE, \
      "namespaced sysctls, name=value (net.ipv4.ip_forward=1), written by init in its namespaces before its mounts") \
    X(DEV_SOURCE, "devsource", STR, dev_source, SourceNode, PSC_PATH_MAX, 1, PSC_IN(DEVICE), PSC_NONE, \
      "the host device node bind-mounted into the container (absent: the target is unmounted and removed)") \
    X(DEV_TARGET, "devtarget", STR, dev_target, TargetPath, PSC_PATH_MAX, 1, PSC_IN(DEVICE), PSC_IN(DEVICE), \
      "the absolute path of the node inside the container's mount namespace (below /dev)") \
    X(HOOK, "hook", LIST, hooks, Hooks, PSC_ARG_MAX, PSC_MAX_ITEMS, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "a hook the helper runs (hooks.c): TAB-separated type, timeout ms, count of environment entries, those, then path and arguments " \
      "(a restore carries only stop, net-down and post-stop: nothing of init is made anew, so mount and start have nowhere to run)") \
    X(HOOK_REPORT, "hookreport", STR, hook_report, HookReport, PSC_PATH_MAX, 1, PSC_IN(START) | PSC_IN(RESTORE), PSC_NONE, \
      "where the supervisor appends the failures of the hooks it runs when init has ended (stop, net-down, post-stop)") \
    X(ENV, "env", LIST, envs, Environment, PSC_ARG_MAX, PSC_MAX_ITEMS, PSC_ALL & ~PSC_IN(CONSOLE) & ~PSC_IN(DEVICE) & ~PSC_IN(NIC_UP), PSC_NONE, \
      "the program's environment, NAME=value") \
    X(ARG, "arg", LIST, args, Command, PSC_ARG_MAX, PSC_MAX_ITEMS, PSC_ALL & ~PSC_IN(CONSOLE) & ~PSC_IN(DEVICE) & ~PSC_IN(NIC_UP), PSC_ALL & ~PSC_IN(CONSOLE) & ~PSC_IN(DEVICE) & ~PSC_IN(NIC_UP), \
      "the program to run and its arguments")

enum psc_key {
#define PSC_X(id, ...) PSC_KEY_##id,
    PSC_KEYS(PSC_X)
#undef PSC_X
    PSC_KEY_COUNT
};

/* Flags of psc-helper's own, carried in the high bits of a mount record's flags (never kernel flags). */
#define PSC_MNT_SRC_IN_ROOT (1ULL << 40)
#define PSC_MNT_CONSOLE     (1ULL << 41)
#define PSC_MNT_OPTIONAL    (1ULL << 42)
#define PSC_MNT_FILE        (1ULL << 43)
#define PSC_MNT_MASK        (1ULL << 44)

/* A mount record's flags: X(C# name, value, what it means). Any other bit is refused. */
#define PSC_MOUNT_FLAGS(X) \
    X(ReadOnly, MS_RDONLY, "read-only (a bind mount is remounted read-only, recursively with Recursive)") \
    X(NoSuid, MS_NOSUID, "setuid and setgid bits and file capabilities are ignored") \
    X(NoDev, MS_NODEV, "device nodes cannot be opened") \
    X(NoExec, MS_NOEXEC, "programs cannot be executed") \
    X(Bind, MS_BIND, "a bind mount of the source") \
    X(Recursive, MS_REC, "with everything mounted below the source") \
    X(SourceInRoot, PSC_MNT_SRC_IN_ROOT, "the source is a path inside the rootfs, opened without leaving it") \
    X(Console, PSC_MNT_CONSOLE, "the source is the console pty the supervisor allocated") \
    X(Optional, PSC_MNT_OPTIONAL, "skip the mount when the source does not exist") \
    X(FileTarget, PSC_MNT_FILE, "the target is a file (bind target for a device node), not a directory") \
    X(Mask, PSC_MNT_MASK, "mask the target if it exists: /dev/null over a file, an empty read-only tmpfs over a directory")

/*
 * Lines between the caller and psc-helper during a start, restore or userns-tree. A reply is its
 * first word and its fields, F(kind, C# name), space-separated after the word; field kinds:
 * PID (a decimal pid > 0), PATH (a path without spaces, "-" for none).
 *   helper -> caller (stdout):  the *_PAUSED reports, then STARTED;
 *   caller -> helper (stdin):   GO, GO_RESTORED or ABORT (anything else is an abort too).
 * In C: PSC_FORMAT(PSC_REPLY_STARTED) is "ok %d %d\n" (checked against its arguments by
 * -Wformat), PSC_WORD(...) the word.
 */
#define PSC_REPLY_START_PAUSED   "paused", PSC_FIELDS_START_PAUSED
#define PSC_REPLY_RESTORE_PAUSED "paused", PSC_FIELDS_RESTORE_PAUSED
#define PSC_REPLY_TREE_PAUSED    "paused", PSC_FIELDS_TREE_PAUSED
#define PSC_REPLY_STARTED        "ok", PSC_FIELDS_STARTED
#define PSC_REPLY_GO             "go", PSC_FIELDS_NONE
#define PSC_REPLY_GO_RESTORED    "go", PSC_FIELDS_GO_RESTORED
#define PSC_REPLY_ABORT          "abort", PSC_FIELDS_NONE

#define PSC_FIELDS_NONE(F)
#define PSC_FIELDS_START_PAUSED(F) F(PID, Supervisor) F(PID, Init)
#define PSC_FIELDS_RESTORE_PAUSED(F) F(PID, Supervisor) F(PID, Criu) F(PATH, ConsolePty)
#define PSC_FIELDS_TREE_PAUSED(F) F(PID, Parent) F(PID, Child)
#define PSC_FIELDS_STARTED(F) F(PID, Supervisor) F(PID, Init)
#define PSC_FIELDS_GO_RESTORED(F) F(PID, Init)

/* X(ID, reply, C# record, what it says) */
#define PSC_REPLIES(X) \
    X(START_PAUSED, PSC_REPLY_START_PAUSED, StartPaused, \
      "start: init waits in its namespaces for go or abort (the caller sets up the network meanwhile)") \
    X(RESTORE_PAUSED, PSC_REPLY_RESTORE_PAUSED, RestorePaused, \
      "restore: criu runs on the caller's socket, with the console pty as its fd 4; answered by go INIT or abort") \
    X(TREE_PAUSED, PSC_REPLY_TREE_PAUSED, TreePaused, \
      "userns-tree: the child waits in its new user namespace for its id maps, then go or abort") \
    X(STARTED, PSC_REPLY_STARTED, Started, \
      "start, restore: the supervisor and the started (or restored) init, which runs") \
    X(GO, PSC_REPLY_GO, Go, \
      "start, userns-tree: go on") \
    X(GO_RESTORED, PSC_REPLY_GO_RESTORED, GoRestored, \
      "restore: criu restored this init (the supervisor's child, rst_sibling): supervise it") \
    X(ABORT, PSC_REPLY_ABORT, Abort, \
      "give up: kill what was started and undo it")

#define PSC_REPLY_FMT_PID " %d"
#define PSC_REPLY_FMT_PATH " %s"
#define PSC_REPLY_FMT_FIELD(kind, name) PSC_REPLY_FMT_##kind
#define PSC_FORMAT(...) PSC_FORMAT_(__VA_ARGS__)
#define PSC_FORMAT_(word, fields) word fields(PSC_REPLY_FMT_FIELD) "\n"
#define PSC_WORD(...) PSC_WORD_(__VA_ARGS__)
#define PSC_WORD_(word, fields) word

/*
 * Container events (Events/EventJournal): the kinds, and the record both the runtime and the
 * supervisor append to <store>/.events/journal. One record is one line,
 *   "<unix seconds>.<nanoseconds, 9 digits>\t<kind word>\t<container>\t<details>\n"
 * at most PSC_EVENT_RECORD_MAX bytes (under PIPE_BUF), written with one write(2) to a file opened
 * O_APPEND while holding an exclusive flock on PSC_EVENT_LOCK, which is also what a rotation (the
 * journal renamed to PSC_EVENT_ROTATED once it reaches half the bound) takes. Details are
 * space-separated key=value pairs; a value has no space, tab, newline or '%' (those are %XX).
 * X(ID, word, C# name, what it means)
 */
#define PSC_EVENT_KINDS(X) \
    X(CREATED, "created", Created, "New-Container (or a copy or import) made the container") \
    X(STARTED, "started", Started, "init was started (recorded by its supervisor before init runs; details: init)") \
    X(STOPPED, "stopped", Stopped, "Stop-Container ended init (reason: requested or killed)") \
    X(DIED, "died", Died, "init ended on its own (code, or signal): reported by its supervisor") \
    X(OOM_KILLED, "oom-killed", OomKilled, "the kernel's OOM killer killed a process of the container (its memory limit): reported by its supervisor") \
    X(FROZEN, "frozen", Frozen, "Suspend-Container froze it") \
    X(THAWED, "thawed", Thawed, "Resume-Container thawed it") \
    X(CHECKPOINTED, "checkpointed", Checkpointed, "Checkpoint-Container or Save-Container dumped it") \
    X(RESTORED, "restored", Restored, "Restore-Container (or the start of a saved container) restored it") \
    X(REMOVED, "removed", Removed, "Remove-Container removed it") \
    X(RENAMED, "renamed", Renamed, "Rename-Container renamed it (details: from, to)") \
    X(LIMITS_CHANGED, "limits-changed", LimitsChanged, "Set-ContainerLimit changed its limits") \
    X(DEVICE_ADDED, "device-added", DeviceAdded, "Add-ContainerDevice gave it a device node (path, destination, rule, persisted)") \
    X(DEVICE_REMOVED, "device-removed", DeviceRemoved, "Remove-ContainerDevice took a device node out (path, destination, rule, persisted)") \
    X(RESTARTED_BY_POLICY, "restarted", RestartedByPolicy, "its supervisor started init again by its restart policy (attempt, delay)") \
    X(HOOK_FAILED, "hook-failed", HookFailed, "a stop, net-down or post-stop hook its supervisor ran failed (hook, and code, signal or timeout; recovered=1: the runtime ran it for a run whose supervisor was killed)") \
    X(NIC_ADDED, "nic-added", NetworkInterfaceAdded, "Add-ContainerNetworkInterface (or a manifest's live network change) gave it a NIC (interface, type, link, hostName, live, persisted)") \
    X(NIC_REMOVED, "nic-removed", NetworkInterfaceRemoved, "Remove-ContainerNetworkInterface (or a manifest's live network change) took a NIC out (interface, type, link, hostName, live, persisted)")

enum psc_event {
#define PSC_X(id, word, cs, doc) PSC_EVENT_##id,
    PSC_EVENT_KINDS(PSC_X)
#undef PSC_X
    PSC_EVENT_COUNT
};

#define PSC_EVENT_RECORD_MAX 1024
#define PSC_EVENT_JOURNAL "journal"
#define PSC_EVENT_ROTATED "journal.1"
#define PSC_EVENT_LOCK "lock"

/*
 * Enter-Container -Console (helper/console_relay.c): the relay (`psc-helper console`, the caller's
 * side) and the supervisor talk over the container's console socket, a unix SOCK_SEQPACKET socket,
 * so every message arrives whole and alone. The supervisor's first message is one answer byte
 * (PSC_CONSOLE_ANSWERS); each later one is console output, as is. Each message of the relay is one
 * frame: a type byte (PSC_CONSOLE_FRAMES), then its payload. The supervisor takes a frame that is
 * empty, longer than PSC_CONSOLE_FRAME_MAX, of an unknown type or of the wrong size as the relay's
 * end: it detaches it, and nothing else changes.
 * X(ID, byte, C# name, what it means)
 */
#define PSC_CONSOLE_ANSWERS(X) \
    X(OK, 'o', Attached, "the console is lent to this caller") \
    X(BUSY, 'b', Busy, "another caller is attached (the socket is then closed)") \
    X(DENIED, 'd', Denied, "the caller is neither root nor the store's owner (the socket is then closed)")
#define PSC_CONSOLE_FRAMES(X) \
    X(DATA, 'd', Input, "what the caller typed, for the console: 1 to PSC_CONSOLE_DATA_MAX bytes") \
    X(WINSIZE, 'w', WindowSize, "the caller's window size: rows, then columns, each 2 bytes little-endian, both nonzero")

enum psc_console_answer {
#define PSC_X(id, byte, cs, doc) PSC_CONSOLE_##id = byte,
    PSC_CONSOLE_ANSWERS(PSC_X)
#undef PSC_X
};
enum psc_console_frame {
#define PSC_X(id, byte, cs, doc) PSC_CONSOLE_FRAME_##id = byte,
    PSC_CONSOLE_FRAMES(PSC_X)
#undef PSC_X
};

#define PSC_CONSOLE_DATA_MAX 4096
#define PSC_CONSOLE_WINSIZE_LENGTH 5
#define PSC_CONSOLE_FRAME_MAX (1 + PSC_CONSOLE_DATA_MAX)

/* The longest reply line, with its newline. */
#define PSC_REPLY_MAX 128

#endif
