using System.Runtime.InteropServices;
using System.Text;

namespace PSContainers.Runtime.IdMapping;

/// <summary>A user account as the C library resolves it (files, LDAP, sssd: whatever nsswitch.conf says).</summary>
public sealed record UserAccount(string Name, uint Uid, uint Gid, string Home, string Shell)
{
    public override string ToString() => $"{Name} ({Uid})";
}

/// <summary>
/// User and group lookups through libc's getpwnam_r/getpwuid_r/getgrouplist, so accounts from any
/// NSS source count, exactly as shadow-utils and newuidmap see them.
/// </summary>
public static unsafe class UserAccounts
{
    [StructLayout(LayoutKind.Sequential)]
    private struct Passwd
    {
        public byte* Name;
        public byte* Password;
        public uint Uid;
        public uint Gid;
        public byte* Gecos;
        public byte* Dir;
        public byte* Shell;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Group
    {
        public byte* Name;
        public byte* Password;
        public uint Gid;
        public byte** Members;
    }

    [DllImport("libc", SetLastError = true)] private static extern int getpwnam_r(byte* name, Passwd* pwd, byte* buf, nuint size, Passwd** result);
    [DllImport("libc", SetLastError = true)] private static extern int getpwuid_r(uint uid, Passwd* pwd, byte* buf, nuint size, Passwd** result);
    [DllImport("libc", SetLastError = true)] private static extern int getgrgid_r(uint gid, Group* grp, byte* buf, nuint size, Group** result);
    [DllImport("libc", SetLastError = true)] private static extern int getgrouplist(byte* user, uint group, uint* groups, int* ngroups);
    [DllImport("libc", SetLastError = true)] private static extern void setpwent();
    [DllImport("libc", SetLastError = true)] private static extern Passwd* getpwent();
    [DllImport("libc", SetLastError = true)] private static extern void endpwent();
    [DllImport("libc")] private static extern uint getuid();

    private const int ERANGE = 34;
    private static readonly object EnumerationGate = new();

    /// <summary>The account with this name, or null.</summary>
    public static UserAccount? FindByName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('\0')) return null;
        var z = Encoding.UTF8.GetBytes(name + "\0");
        return Lookup((pwd, buf, size, result) => { fixed (byte* n = z) return getpwnam_r(n, pwd, buf, size, result); });
    }

    /// <summary>The account with this uid, or null.</summary>
    public static UserAccount? FindByUid(uint uid) =>
        Lookup((pwd, buf, size, result) => getpwuid_r(uid, pwd, buf, size, result));

    /// <summary>A user given by name or by numeric uid (as /etc/subuid lines may name it); null if none.</summary>
    public static UserAccount? Find(string nameOrUid) =>
        FindByName(nameOrUid) ?? (uint.TryParse(nameOrUid, System.Globalization.NumberStyles.None, null, out var uid) ? FindByUid(uid) : null);

    /// <summary>Like <see cref="Find"/>, but a missing user is an error that says so.</summary>
    public static UserAccount Require(string nameOrUid) =>
        Find(nameOrUid) ?? throw new ContainerException("UserNotFound", ContainerErrorKind.ObjectNotFound,
            $"No user '{nameOrUid}' exists on this host (getpwnam). Create it first (useradd {nameOrUid}) or check the spelling.", nameOrUid);

    /// <summary>The account of the real uid of this process.</summary>
    public static UserAccount Current()
    {
        var uid = getuid();
        return FindByUid(uid) ?? new UserAccount(uid.ToString(), uid, uid, "", "");
    }

    /// <summary>Names of the groups the user belongs to (primary and supplementary), as lxc-user-nic checks @group lines.</summary>
    public static IReadOnlyList<string> GroupNames(UserAccount user)
    {
        var z = Encoding.UTF8.GetBytes(user.Name + "\0");
        int n = 32;
        uint[] gids;
        while (true)
        {
            gids = new uint[n];
            int count = n;
            fixed (byte* u = z)
            fixed (uint* g = gids)
                if (getgrouplist(u, user.Gid, g, &count) >= 0) { n = count; break; }
            n = Math.Max(count, n * 2);
        }
        var names = new List<string>();
        foreach (var gid in gids.Take(n).Distinct())
            if (GroupName(gid) is { } name) names.Add(name);
        return names;
    }

    private static string? GroupName(uint gid)
    {
        for (nuint size = 1024; size <= 1 << 20; size *= 4)
        {
            var buf = new byte[size];
            Group grp;
            Group* result;
            fixed (byte* b = buf)
            {
                int rc = getgrgid_r(gid, &grp, b, size, &result);
                if (rc == ERANGE) continue;
                return rc == 0 && result != null ? Marshal.PtrToStringUTF8((nint)grp.Name) : null;
            }
        }
        return null;
    }

    /// <summary>Every account the C library enumerates (for tab completion; NSS sources may list none).</summary>
    public static IReadOnlyList<UserAccount> All()
    {
        // getpwent has one cursor per process: serialize.
        lock (EnumerationGate)
        {
            var list = new List<UserAccount>();
            setpwent();
            try
            {
                Passwd* p;
                while ((p = getpwent()) != null) list.Add(ToAccount(p));
            }
            finally { endpwent(); }
            return list;
        }
    }

    private delegate int LookupCall(Passwd* pwd, byte* buf, nuint size, Passwd** result);

    private static UserAccount? Lookup(LookupCall call)
    {
        for (nuint size = 1024; size <= 1 << 20; size *= 4)
        {
            var buf = new byte[size];
            Passwd pwd;
            Passwd* result;
            fixed (byte* b = buf)
            {
                int rc = call(&pwd, b, size, &result);
                if (rc == ERANGE) continue;
                // The strings live in buf: copy them out while it is pinned.
                return rc == 0 && result != null ? ToAccount(&pwd) : null;
            }
        }
        return null;
    }

    private static UserAccount ToAccount(Passwd* p) => new(
        Marshal.PtrToStringUTF8((nint)p->Name) ?? "", p->Uid, p->Gid,
        Marshal.PtrToStringUTF8((nint)p->Dir) ?? "", Marshal.PtrToStringUTF8((nint)p->Shell) ?? "");
}
