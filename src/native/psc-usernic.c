/*
 * psc-usernic: the one privileged step of networking for non-root users (LXC's lxc-user-nic).
 *
 * A non-root user cannot make an interface in the host's network namespace nor attach one to a
 * bridge. Root grants veths per user and bridge in /etc/pscontainers/usernet (lxc-usernet format:
 * "user|@group veth BRIDGE COUNT"), and installs this program setuid root or with the file
 * capability cap_net_admin (Install-ContainerUserNic). The module itself never runs privileged.
 *
 *   psc-usernic create PID BRIDGE NAME HOSTNAME
 *       a veth pair: HOSTNAME in the host namespace, attached to BRIDGE and up; its peer NAME in
 *       the network namespace of process PID, which must belong to the caller. The peer is left
 *       down: the container's init brings it up at a start (psc-helper "link-up"), and for a
 *       hot-plug the unprivileged psc-helper nic-up does, joining the container's namespaces with
 *       the caller's own rights (so nothing more needs privileges here).
 *       HOSTNAME is "vu", the caller's uid as 8 hex digits, and 1-5 hex digits of the caller's
 *       choice: a user can only ever take names of its own, never one another user's start needs.
 *   psc-usernic delete HOSTNAME
 *       deletes a host end this program made for the caller (a no-op when it is already gone).
 *
 * Nothing from the caller is trusted: the caller is the real uid (and its groups from the C
 * library), the quota file is fixed and must be root's and writable only by root, names are
 * validated, the namespace is opened with the caller's own rights and its owner checked, and
 * every privilege but CAP_NET_ADMIN is dropped before any of that. No shell, no exec, no
 * environment.
 *
 * Which veths are a user's is recorded in the kernel, not in a file, and from the moment the pair
 * exists: its host end's name carries the uid, and the one RTM_NEWLINK that makes the pair also
 * attaches it to the bridge and brings it up, so a call killed at any point leaves nothing that is
 * not counted against its owner's quota or that its owner cannot delete (lxc-user-nic's
 * CVE-2017-5985 class). The alias (IFLA_IFALIAS, set right after: the kernel takes no alias at
 * creation) says "psc-usernic:uid=N" too, and is what names from before the uid was in them are
 * recognised by. Only CAP_NET_ADMIN in the host namespace can make such names or set an alias, so
 * a user cannot forge or clear either; an interface that is gone (its container's namespace died,
 * which deletes both ends) is simply no longer counted, so there is nothing to prune; and the
 * program needs no writable state (no CAP_DAC_OVERRIDE for /run). Counting and creating run under
 * an exclusive flock on the quota file, so two calls of one user cannot both take the last veth.
 *
 * Exit codes: 0 done, 1 failed, 2 invalid arguments, 3 quota exhausted, 4 not the caller's
 * (namespace or interface), 5 bridge missing or not a bridge, 6 not installed privileged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#define QUOTA_DIR "/etc/pscontainers"
#define QUOTA_FILE QUOTA_DIR "/usernet"
#define ALIAS_FORMAT "psc-usernic:uid=%u"
#define HOST_PREFIX "vu" /* host ends are "vu<hex>": a user never names a host interface freely */

enum { OK = 0, FAILED = 1, USAGE = 2, QUOTA = 3, NOT_YOURS = 4, NO_BRIDGE = 5, NOT_PRIVILEGED = 6 };

static uid_t caller;

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("psc-usernic: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

/*
 * Become the caller again, keeping only CAP_NET_ADMIN. Setuid: real, effective and saved uid
 * and gid all become the caller's (PR_SET_KEEPCAPS carries the permitted set over), then every
 * capability but CAP_NET_ADMIN goes. File capability: uids are already the caller's; the same
 * capset just confirms the one capability. Either way opening the caller's /proc/PID/ns/net
 * afterwards is checked by the kernel against the caller's own rights.
 */
static void drop_privileges(void)
{
    caller = getuid();
    gid_t gid = getgid();
    if (geteuid() == 0 && caller != 0) {
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(caller, caller, caller) < 0)
            die(FAILED, "cannot drop root: %s", strerror(errno));
    }
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2] = { 0 };
    data[CAP_TO_INDEX(CAP_NET_ADMIN)].permitted = CAP_TO_MASK(CAP_NET_ADMIN);
    data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective = CAP_TO_MASK(CAP_NET_ADMIN);
    if (syscall(SYS_capset, &header, data) < 0)
        die(NOT_PRIVILEGED, "not installed privileged (it needs the setuid bit and root as owner, or the file capability "
            "cap_net_admin+ep): as root run Install-ContainerUserNic, or: setcap cap_net_admin+ep PATH");
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    /* Nobody but root may trace or core-dump a process that holds a capability. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* An interface name: 1..15 of [A-Za-z0-9_.-], not "." or "..". */
static int valid_ifname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= IFNAMSIZ || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
            return 0;
    return 1;
}

/* A host end: "vu" and 1..13 lower-case hex digits. */
static int valid_host_name(const char *s)
{
    size_t n = strlen(s);
    if (n <= strlen(HOST_PREFIX) || n >= IFNAMSIZ || strncmp(s, HOST_PREFIX, strlen(HOST_PREFIX))) return 0;
    for (const char *p = s + strlen(HOST_PREFIX); *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

/* A host end named for `uid`: "vu", the uid as 8 hex digits, then 1..5 hex digits. */
static int named_for(const char *s, uid_t uid)
{
    char prefix[16];
    snprintf(prefix, sizeof prefix, HOST_PREFIX "%08x", (unsigned)uid);
    return valid_host_name(s) && strlen(s) > strlen(prefix) && !strncmp(s, prefix, strlen(prefix));
}

/* ---- the quota file ---------------------------------------------------------------------------- */

static void on_alarm(int sig) { (void)sig; }

/*
 * Opens and locks the quota file, after checking that it and its directory are root's and that
 * nobody else can write them. The lock waits at most 10 seconds: the file is world-readable, so
 * any user can hold a flock on it (that only delays others' calls, it cannot grant anything).
 */
static int open_quota(void)
{
    struct stat st;
    if (stat(QUOTA_DIR, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
        die(QUOTA, "%s must be a directory owned by root and writable only by root; no veths are granted", QUOTA_DIR);
    int fd = open(QUOTA_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        die(QUOTA, "%s: %s; root grants veths there with lines like 'USER veth BRIDGE COUNT'", QUOTA_FILE, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
        die(QUOTA, "%s must be a regular file owned by root and writable only by root; no veths are granted", QUOTA_FILE);
    struct sigaction sa = { .sa_handler = on_alarm };
    sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART: the alarm interrupts flock */
    alarm(10);
    if (flock(fd, LOCK_EX) < 0) die(FAILED, "cannot lock %s: %s", QUOTA_FILE, strerror(errno));
    alarm(0);
    return fd;
}

static int in_groups(const char *name, char **groups, int ngroups)
{
    for (int i = 0; i < ngroups; i++)
        if (!strcmp(groups[i], name)) return 1;
    return 0;
}

/*
 * How many veths the caller may attach to the bridge: the sum of the lines naming the caller or
 * one of its groups (lxc-user-nic's rule). A malformed line fails the call: a typo must neither
 * grant nor withhold silently. The matching lines are quoted into `quoted` for the messages.
 */
static unsigned long allowed_veths(int fd, const char *user, char **groups, int ngroups, const char *bridge, char *quoted, size_t quoted_size)
{
    static char text[65536];
    ssize_t n = read(fd, text, sizeof text - 1);
    if (n < 0) die(FAILED, "cannot read %s: %s", QUOTA_FILE, strerror(errno));
    if (n == sizeof text - 1) die(QUOTA, "%s is larger than %zu bytes", QUOTA_FILE, sizeof text - 2);
    text[n] = 0;
    unsigned long total = 0;
    quoted[0] = 0;
    int number = 0;
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        number++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char copy[512];
        snprintf(copy, sizeof copy, "%.200s", line);
        char *save, *field[5];
        int count = 0;
        for (char *f = strtok_r(line, " \t\r", &save); f && count < 5; f = strtok_r(NULL, " \t\r", &save)) field[count++] = f;
        if (count == 0) continue;
        char *end;
        errno = 0;
        unsigned long veths = count == 4 ? strtoul(field[3], &end, 10) : 0;
        if (count != 4 || strcmp(field[1], "veth") || field[3][0] < '0' || field[3][0] > '9' || *end || errno)
            die(QUOTA, "%s:%d is not 'user|@group veth bridge count'; fix it (root) before any veth is granted", QUOTA_FILE, number);
        int matches = field[0][0] == '@' ? in_groups(field[0] + 1, groups, ngroups) : !strcmp(field[0], user);
        if (!matches || strcmp(field[2], bridge)) continue;
        total = total + veths < total ? (unsigned long)-1 : total + veths;
        size_t used = strlen(quoted);
        snprintf(quoted + used, quoted_size - used, "%s%s:%d: '%s'", used ? ", " : "", QUOTA_FILE, number, copy);
    }
    return total;
}

/* ---- rtnetlink ----------------------------------------------------------------------------------- */

struct request {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
    char attrs[1024];
};

static struct rtattr *add_attr(struct nlmsghdr *nh, unsigned short type, const void *data, size_t len)
{
    struct rtattr *rta = (struct rtattr *)((char *)nh + NLMSG_ALIGN(nh->nlmsg_len));
    rta->rta_type = type;
    rta->rta_len = RTA_LENGTH(len);
    if (len) memcpy(RTA_DATA(rta), data, len);
    nh->nlmsg_len = NLMSG_ALIGN(nh->nlmsg_len) + RTA_ALIGN(rta->rta_len);
    return rta;
}

static void end_nest(struct nlmsghdr *nh, struct rtattr *nest)
{
    nest->rta_len = (char *)nh + nh->nlmsg_len - (char *)nest;
}

static void init_request(struct request *r, unsigned short type, unsigned short flags)
{
    memset(r, 0, sizeof *r);
    r->nh.nlmsg_len = NLMSG_LENGTH(sizeof r->ifi);
    r->nh.nlmsg_type = type;
    r->nh.nlmsg_flags = NLM_F_REQUEST | flags;
    r->nh.nlmsg_seq = 1;
    r->ifi.ifi_family = AF_UNSPEC;
}

static int nl_socket(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) die(FAILED, "netlink: %s", strerror(errno));
    return fd;
}

/* Sends a request that is answered by an ack; returns 0 or a negative errno. */
static int nl_call(int fd, struct request *r)
{
    static char buf[8192];
    r->nh.nlmsg_flags |= NLM_F_ACK;
    if (send(fd, r, r->nh.nlmsg_len, 0) < 0) return -errno;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) return -errno;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n))
        if (h->nlmsg_type == NLMSG_ERROR) return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
    return -EPROTO;
}

/* What this program needs to know of a link. */
struct link {
    int index, master;
    char name[IFNAMSIZ], kind[16], alias[64];
};

static void parse_link(struct nlmsghdr *h, struct link *l)
{
    struct ifinfomsg *ifi = NLMSG_DATA(h);
    memset(l, 0, sizeof *l);
    l->index = ifi->ifi_index;
    int len = IFLA_PAYLOAD(h);
    for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == IFLA_IFNAME) snprintf(l->name, sizeof l->name, "%s", (char *)RTA_DATA(a));
        else if (a->rta_type == IFLA_IFALIAS) snprintf(l->alias, sizeof l->alias, "%.*s", (int)RTA_PAYLOAD(a), (char *)RTA_DATA(a));
        else if (a->rta_type == IFLA_MASTER) l->master = *(int *)RTA_DATA(a);
        else if (a->rta_type == IFLA_LINKINFO) {
            int inner = RTA_PAYLOAD(a);
            for (struct rtattr *i = RTA_DATA(a); RTA_OK(i, inner); i = RTA_NEXT(i, inner))
                if (i->rta_type == IFLA_INFO_KIND) snprintf(l->kind, sizeof l->kind, "%.*s", (int)RTA_PAYLOAD(i), (char *)RTA_DATA(i));
        }
    }
}

/* The host link called `name`: 1 found, 0 no such link. */
static int get_link(int fd, const char *name, struct link *l)
{
    static char buf[16384];
    struct request r;
    init_request(&r, RTM_GETLINK, 0);
    add_attr(&r.nh, IFLA_IFNAME, name, strlen(name) + 1);
    if (send(fd, &r, r.nh.nlmsg_len, 0) < 0) die(FAILED, "netlink: %s", strerror(errno));
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) die(FAILED, "netlink: %s", strerror(errno));
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    if (!NLMSG_OK(h, (size_t)n)) die(FAILED, "netlink: short answer");
    if (h->nlmsg_type == NLMSG_ERROR) {
        int e = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
        if (e == -ENODEV) return 0;
        die(FAILED, "cannot look up %s: %s", name, strerror(-e));
    }
    parse_link(h, l);
    return 1;
}

/* The caller's veths on the bridge (host ends named for the caller or with its alias), their names into `names`. */
static unsigned long count_veths(int fd, int bridge, const char *alias, char *names, size_t names_size)
{
    static char buf[32768];
    struct request r;
    init_request(&r, RTM_GETLINK, NLM_F_DUMP);
    if (send(fd, &r, r.nh.nlmsg_len, 0) < 0) die(FAILED, "netlink: %s", strerror(errno));
    unsigned long count = 0;
    names[0] = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) die(FAILED, "netlink: %s", strerror(errno));
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) return count;
            if (h->nlmsg_type == NLMSG_ERROR) die(FAILED, "cannot list links: %s", strerror(-((struct nlmsgerr *)NLMSG_DATA(h))->error));
            struct link l;
            parse_link(h, &l);
            if (l.master != bridge || (strcmp(l.alias, alias) && !named_for(l.name, caller))) continue;
            count++;
            size_t used = strlen(names);
            snprintf(names + used, names_size - used, "%s%s", used ? ", " : "", l.name);
        }
    }
}

static int delete_link(int fd, int index)
{
    struct request r;
    init_request(&r, RTM_DELLINK, 0);
    r.ifi.ifi_index = index;
    return nl_call(fd, &r);
}

/* ---- the operations ------------------------------------------------------------------------------ */

/* The network namespace of process `pid`, opened with the caller's rights; it must belong to the caller. */
static int open_callers_netns(const char *pid_text)
{
    char *end;
    errno = 0;
    long pid = strtol(pid_text, &end, 10);
    if (pid_text[0] < '1' || pid_text[0] > '9' || *end || errno || pid > INT32_MAX) die(USAGE, "'%s' is not a process id", pid_text);
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/ns/net", pid);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0) die(NOT_YOURS, "cannot open the network namespace of process %ld as uid %u: %s", pid, caller, strerror(errno));
    /* Its owner: the user namespace that owns the network namespace, and that one's creator. */
    int userns = ioctl(ns, NS_GET_USERNS);
    uid_t owner;
    if (userns < 0 || ioctl(userns, NS_GET_OWNER_UID, &owner) < 0)
        die(NOT_YOURS, "cannot find the owner of the network namespace of process %ld: %s", pid, strerror(errno));
    close(userns);
    struct stat target, self;
    if (fstat(ns, &target) < 0 || stat("/proc/self/ns/net", &self) < 0) die(FAILED, "cannot stat network namespaces: %s", strerror(errno));
    if (target.st_ino == self.st_ino && target.st_dev == self.st_dev)
        die(NOT_YOURS, "process %ld is in the host's network namespace, not in a container's", pid);
    if (owner != caller)
        die(NOT_YOURS, "the network namespace of process %ld belongs to uid %u, not to the caller (uid %u)", pid, owner, caller);
    return ns;
}

static int create(const char *pid_text, const char *bridge, const char *name, const char *host)
{
    if (!valid_ifname(bridge)) die(USAGE, "'%s' is not an interface name", bridge);
    if (!valid_ifname(name)) die(USAGE, "'%s' is not an interface name (1-15 of A-Z a-z 0-9 _ . -)", name);
    if (!named_for(host, caller))
        die(USAGE, "host end '%s' must be '" HOST_PREFIX "%08x' (your uid in hex) and 1-5 hex digits", host, (unsigned)caller);
    int ns = open_callers_netns(pid_text);

    struct passwd *pw = getpwuid(caller);
    if (!pw) die(FAILED, "uid %u has no account", caller);
    char user[256];
    snprintf(user, sizeof user, "%s", pw->pw_name);
    gid_t gids[512];
    int ngroups = 512;
    if (getgrouplist(user, pw->pw_gid, gids, &ngroups) < 0) die(FAILED, "user %s is in too many groups", user);
    char *groups[512];
    int named = 0;
    for (int i = 0; i < ngroups; i++) {
        struct group *g = getgrgid(gids[i]);
        if (g && (groups[named] = strdup(g->gr_name))) named++;
    }

    int quota = open_quota(); /* locked until exit */
    char quoted[2048];
    unsigned long allowed = allowed_veths(quota, user, groups, named, bridge, quoted, sizeof quoted);
    if (allowed == 0)
        die(QUOTA, "no line of %s grants user %s veths on bridge %s; root adds one like '%s veth %s 1'", QUOTA_FILE, user, bridge, user, bridge);

    int fd = nl_socket();
    struct link br;
    if (!get_link(fd, bridge, &br)) die(NO_BRIDGE, "bridge %s does not exist", bridge);
    if (strcmp(br.kind, "bridge")) die(NO_BRIDGE, "%s is not a bridge (it is a %s link)", bridge, br.kind[0] ? br.kind : "plain");
    char alias[64], in_use[1024];
    snprintf(alias, sizeof alias, ALIAS_FORMAT, caller);
    unsigned long used = count_veths(fd, br.index, alias, in_use, sizeof in_use);
    if (used >= allowed)
        die(QUOTA, "quota exhausted: user %s may attach %lu veth%s to %s (%s) and %lu %s in use (%s); stop a container that uses one, or ask root to raise the count",
            user, allowed, allowed == 1 ? "" : "s", bridge, quoted, used, used == 1 ? "is" : "are", in_use);

    /* The pair: host end here, already on the bridge and up, peer created straight in the
     * container's namespace; all in one request, so there is never a pair that is not attached. */
    struct request r;
    init_request(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    r.ifi.ifi_flags = IFF_UP;
    r.ifi.ifi_change = IFF_UP;
    add_attr(&r.nh, IFLA_IFNAME, host, strlen(host) + 1);
    add_attr(&r.nh, IFLA_MASTER, &br.index, sizeof br.index);
    struct rtattr *linkinfo = add_attr(&r.nh, IFLA_LINKINFO, NULL, 0);
    add_attr(&r.nh, IFLA_INFO_KIND, "veth", 4);
    struct rtattr *data = add_attr(&r.nh, IFLA_INFO_DATA, NULL, 0);
    struct rtattr *peer = add_attr(&r.nh, VETH_INFO_PEER, NULL, 0);
    struct ifinfomsg peer_ifi = { .ifi_family = AF_UNSPEC };
    memcpy(RTA_DATA(peer), &peer_ifi, sizeof peer_ifi);
    r.nh.nlmsg_len += NLMSG_ALIGN(sizeof peer_ifi);
    add_attr(&r.nh, IFLA_IFNAME, name, strlen(name) + 1);
    add_attr(&r.nh, IFLA_NET_NS_FD, &ns, sizeof ns);
    end_nest(&r.nh, peer);
    end_nest(&r.nh, data);
    end_nest(&r.nh, linkinfo);
    int e = nl_call(fd, &r);
    if (e == -EEXIST) die(FAILED, "cannot create the veth %s/%s: an interface of that name exists (here or in the container)", host, name);
    if (e < 0) die(FAILED, "cannot create the veth %s/%s: %s", host, name, strerror(-e));

    /* The alias too (its name already says whose it is); undo the pair if that fails. */
    struct link made;
    if (!get_link(fd, host, &made)) die(FAILED, "the new veth %s vanished", host);
    init_request(&r, RTM_NEWLINK, 0);
    r.ifi.ifi_index = made.index;
    add_attr(&r.nh, IFLA_IFALIAS, alias, strlen(alias));
    e = nl_call(fd, &r);
    if (e < 0) {
        delete_link(fd, made.index);
        die(FAILED, "cannot mark %s as uid %u's: %s", host, caller, strerror(-e));
    }
    return OK;
}

static int delete(const char *host)
{
    if (!valid_host_name(host)) die(USAGE, "host end '%s' must be '" HOST_PREFIX "' and 1-13 hex digits", host);
    /* No lock: deleting cannot exceed a quota, and it must work after root removed the file. */
    int fd = nl_socket();
    struct link l;
    if (!get_link(fd, host, &l)) return OK;
    char alias[64];
    snprintf(alias, sizeof alias, ALIAS_FORMAT, caller);
    /* The caller's: its alias, or (a call killed before the alias) a veth named for the caller and no alias at all. */
    int mine = !strcmp(l.alias, alias) || (l.alias[0] == 0 && !strcmp(l.kind, "veth") && named_for(host, caller));
    if (!mine) die(NOT_YOURS, "%s was not made by psc-usernic for uid %u", host, caller);
    int e = delete_link(fd, l.index);
    if (e < 0 && e != -ENODEV) die(FAILED, "cannot delete %s: %s", host, strerror(-e));
    return OK;
}

int main(int argc, char **argv)
{
    /* A caller that closed 0-2 must not get our netlink socket or quota file written to as stderr. */
    int null;
    while ((null = open("/dev/null", O_RDWR)) >= 0 && null <= 2) {}
    if (null > 2) close(null);
    clearenv();
    drop_privileges();
    if (argc == 6 && !strcmp(argv[1], "create")) return create(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 3 && !strcmp(argv[1], "delete")) return delete(argv[2]);
    die(USAGE, "usage: psc-usernic create PID BRIDGE NAME HOSTNAME | delete HOSTNAME");
}
