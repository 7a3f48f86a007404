/*
 * psc-helper: the only native code of PSContainers besides psc-usernic.
 *
 * A .NET process is multi-threaded, and a multi-threaded process can neither unshare/setns a
 * user or mount namespace nor safely run code after fork(). So everything that must happen in a
 * single-threaded process lives here; everything else (what to mount, which cgroups, state) is
 * decided by the C# runtime and handed over as a spec on stdin (or in a file, for an interactive
 * exec). The commands, their specs' keys and the replies are defined once, for both sides, in
 * protocol/psc-protocol.h; what each command does:
 *
 *   start        supervisor.c: daemonize a supervisor, which clones the container init (init.c) in
 *                new namespaces and inside its rootfs (rootfs.c); replies STARTED once init exec'd,
 *                after START_PAUSED and the caller's GO when the spec asks for a pause.
 *   restore      restore.c: like start, but the supervisor runs `criu swrk` on the caller's socket
 *                and supervises the init criu restores.
 *   exec         attach.c: join a running container's cgroups and namespaces and run a program
 *                there, staged so that the container never sees an unconstrained process, and with
 *                "tty" on a pty of the container relayed to the caller's terminal (terminal.c);
 *                exits with its status (128+signal if killed). Runs from a sealed copy (security.c).
 *   netns-exec   netns_exec.c: ip netns exec.
 *   device       devices.c: bind a host device node into a running container's /dev, or take it out.
 *   userns-tree  userns_tree.c: chown a tree into a user namespace's ids, or delete one owned by them, or
 *                probe whether a path can be idmapped (idmap.c: the idmapped rootfs the supervisor gives init);
 *                copy (tree_copy.c) or list (tree_list.c) one; every tree is walked by tree_walk.c.
 *   console      console_relay.c: attach the caller's terminal to a running container's console,
 *                which its supervisor lends on a unix socket (bytes only), until the detach key.
 *   nic-up       nic_up.c: bring up the links a non-root user hot-plugged into its running
 *                container (what init does at a start), joining its user and network namespaces.
 *
 * Exit status 125 (with "psc-helper: ..." on stderr) is the helper's own failure.
 */
#include "helper.h"

int main(int argc, char **argv) {
    if (argc < 2) die("usage: psc-helper start|restore|exec|netns-exec|userns-tree|console|device|nic-up [spec-file] (the spec on stdin without a file)");
    if (!strcmp(argv[1], "--version")) { puts("psc-helper 1"); return 0; }
    const char *file = argc > 2 ? argv[2] : NULL;
    switch (psc_command_of(argv[1])) {
    case PSC_CMD_START: return cmd_start(file, 0);
    case PSC_CMD_RESTORE: return cmd_start(file, 1);
    case PSC_CMD_EXEC: reexec_from_sealed_copy(argv); return cmd_exec(file);
    case PSC_CMD_NETNS_EXEC: return cmd_netns_exec(file);
    case PSC_CMD_USERNS_TREE: return cmd_userns_tree(file);
    case PSC_CMD_CONSOLE: return cmd_console(file);
    case PSC_CMD_DEVICE: return cmd_device(file);
    case PSC_CMD_NIC_UP: return cmd_nic_up(file);
    default: die("unknown command '%s'", argv[1]);
    }
}
