/*
 * Task-state target: scheduling, futex/tid bookkeeping, rseq and credentials. Must be started
 * as root; it drops to other ids during setup, so STATE must be writable (and reachable) by
 * uid 2001/2002: the test makes it mode 0777.
 *
 * Setup: SCHED_BATCH (if refused, the policy it has is what is recorded), nice 7; a robust
 * list head of its own (an empty list pointing to itself) with set_robust_list and a tid word
 * of its own with set_tid_address; confirms glibc's rseq registration by registering glibc's
 * area again, which must fail with EBUSY. Then groups {4, 24, 27}, PR_SET_KEEPCAPS,
 * setresgid(1001, 1002, 1003), setresuid(2001, 2002, 2003), capabilities
 * effective = permitted = {NET_BIND_SERVICE, KILL}, inheritable = {NET_BIND_SERVICE}, and
 * PR_SET_NO_NEW_PRIVS. Everything is then read back and recorded.
 *
 * Check: scheduling policy and priority, nice, get_robust_list (head and size) and the head's
 * content, PR_GET_TID_ADDRESS and the tid word, the rseq re-registration still failing with
 * EBUSY (same area, length and signature) and its cpu_id field valid, getresuid, getresgid,
 * fsuid, fsgid, the supplementary groups (in any order), capget (effective, permitted,
 * inheritable), the bounding and ambient sets, PR_GET_NO_NEW_PRIVS, PR_GET_SECUREBITS and
 * PR_GET_DUMPABLE are as recorded; a counter moved by the main loop keeps increasing.
 */
#include "target.h"

#include <grp.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

#define NICE 7
#define MAX_GROUPS 64

static const gid_t groups_set[] = { 4, 24, 27 };
#define GROUPS_SET (sizeof groups_set / sizeof groups_set[0])

struct caps {
    uint64_t effective, permitted, inheritable;
};

struct recorded {
    int sched_errno; /* of sched_setscheduler; 0 if it worked */
    int policy;
    int sched_priority;
    int nice;
    void *robust_head;
    size_t robust_len;
    int *tid_address;
    int rseq_errno; /* of registering glibc's area again: EBUSY; 0 if glibc has no rseq */
    uid_t ruid, euid, suid, fsuid;
    gid_t rgid, egid, sgid, fsgid;
    int ngroups;
    gid_t groups[MAX_GROUPS]; /* sorted */
    struct caps caps;
    uint64_t bounding, ambient;
    int no_new_privs;
    int securebits;
    int dumpable;
};

static struct recorded at_start;

static struct robust_list_head my_head;
static int my_tid_word;

static volatile uint64_t counter;
static uint64_t counter_at_last_check;

static int cap_last;

static void *rseq_area(void)
{
    return (char *)__builtin_thread_pointer() + __rseq_offset;
}

/* The length glibc registered: __rseq_size, but never less than the original 32 bytes. */
static unsigned rseq_len(void)
{
    return __rseq_size < 32 ? 32 : __rseq_size;
}

/* errno of registering glibc's rseq area again (0 if that succeeded). */
static int rseq_register_errno(void)
{
    long r = syscall(SYS_rseq, rseq_area(), rseq_len(), 0, RSEQ_SIG);
    return r == 0 ? 0 : errno;
}

static int cmp_gid(const void *a, const void *b)
{
    gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
    return x < y ? -1 : x > y;
}

static int read_caps(struct caps *out)
{
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &hdr, data) != 0)
        return -1;
    out->effective = data[0].effective | (uint64_t)data[1].effective << 32;
    out->permitted = data[0].permitted | (uint64_t)data[1].permitted << 32;
    out->inheritable = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
    return 0;
}

static uint64_t read_cap_set(int option)
{
    uint64_t mask = 0;
    for (int cap = 0; cap <= cap_last; cap++) {
        int r = option == PR_CAPBSET_READ
                    ? prctl(PR_CAPBSET_READ, cap, 0, 0, 0)
                    : prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
        if (r > 0)
            mask |= 1ULL << cap;
    }
    return mask;
}

/* Reads everything recorded into r. Returns 0, or -1 with a failure recorded. */
static int record(struct recorded *r)
{
    memset(r, 0, sizeof *r);
    r->sched_errno = at_start.sched_errno;
    r->policy = sched_getscheduler(0);
    if (r->policy < 0)
        return target_fail("sched_getscheduler: %s", strerror(errno));
    struct sched_param sp;
    if (sched_getparam(0, &sp) != 0)
        return target_fail("sched_getparam: %s", strerror(errno));
    r->sched_priority = sp.sched_priority;
    errno = 0;
    r->nice = getpriority(PRIO_PROCESS, 0);
    if (errno != 0)
        return target_fail("getpriority: %s", strerror(errno));

    struct robust_list_head *head = NULL;
    size_t len = 0;
    if (syscall(SYS_get_robust_list, 0, &head, &len) != 0)
        return target_fail("get_robust_list: %s", strerror(errno));
    r->robust_head = head;
    r->robust_len = len;
    int *tid_address = NULL;
    if (prctl(PR_GET_TID_ADDRESS, &tid_address, 0, 0, 0) != 0)
        return target_fail("PR_GET_TID_ADDRESS: %s", strerror(errno));
    r->tid_address = tid_address;
    if (__rseq_size > 0)
        r->rseq_errno = rseq_register_errno();

    if (getresuid(&r->ruid, &r->euid, &r->suid) != 0)
        return target_fail("getresuid: %s", strerror(errno));
    if (getresgid(&r->rgid, &r->egid, &r->sgid) != 0)
        return target_fail("getresgid: %s", strerror(errno));
    r->fsuid = (uid_t)setfsuid((uid_t)-1);
    r->fsgid = (gid_t)setfsgid((gid_t)-1);
    r->ngroups = getgroups(MAX_GROUPS, r->groups);
    if (r->ngroups < 0)
        return target_fail("getgroups: %s", strerror(errno));
    qsort(r->groups, (size_t)r->ngroups, sizeof r->groups[0], cmp_gid);
    if (read_caps(&r->caps) != 0)
        return target_fail("capget: %s", strerror(errno));
    r->bounding = read_cap_set(PR_CAPBSET_READ);
    r->ambient = read_cap_set(PR_CAP_AMBIENT);
    r->no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    if (r->no_new_privs < 0)
        return target_fail("PR_GET_NO_NEW_PRIVS: %s", strerror(errno));
    r->securebits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
    if (r->securebits < 0)
        return target_fail("PR_GET_SECUREBITS: %s", strerror(errno));
    r->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    if (r->dumpable < 0)
        return target_fail("PR_GET_DUMPABLE: %s", strerror(errno));
    return 0;
}

static void setup(void)
{
    if (geteuid() != 0)
        target_die("must be started as root");
    char text[32];
    if (target_read_file("/proc/sys/kernel/cap_last_cap", text, sizeof text) < 0)
        target_die("reading cap_last_cap: %s", strerror(errno));
    cap_last = atoi(text);
    if (cap_last <= 0 || cap_last > 63)
        target_die("unexpected cap_last_cap %d", cap_last);

    struct sched_param sp = { .sched_priority = 0 };
    if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0) {
        at_start.sched_errno = errno;
        fprintf(stderr, "sched_setscheduler(SCHED_BATCH): %s; keeping the policy it has\n",
                strerror(errno));
    }
    if (setpriority(PRIO_PROCESS, 0, NICE) != 0)
        target_die("setpriority: %s", strerror(errno));

    my_head.list.next = &my_head.list;
    my_head.futex_offset = -16;
    my_head.list_op_pending = NULL;
    if (syscall(SYS_set_robust_list, &my_head, sizeof my_head) != 0)
        target_die("set_robust_list: %s", strerror(errno));
    my_tid_word = (int)syscall(SYS_set_tid_address, &my_tid_word);
    if (my_tid_word != (int)syscall(SYS_gettid))
        target_die("set_tid_address returned %d, not the tid", my_tid_word);

    if (__rseq_size > 0) {
        int e = rseq_register_errno();
        if (e != EBUSY)
            target_die("registering glibc's rseq area %p (len %u) again gave %s, expected EBUSY",
                       rseq_area(), rseq_len(), e == 0 ? "success" : strerror(e));
    } else {
        fprintf(stderr, "glibc does not register rseq: not checking it\n");
    }

    if (setgroups(GROUPS_SET, groups_set) != 0)
        target_die("setgroups: %s", strerror(errno));
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
        target_die("PR_SET_KEEPCAPS: %s", strerror(errno));
    if (setresgid(1001, 1002, 1003) != 0)
        target_die("setresgid: %s", strerror(errno));
    if (setresuid(2001, 2002, 2003) != 0)
        target_die("setresuid: %s", strerror(errno));
    uint64_t keep = 1ULL << CAP_NET_BIND_SERVICE | 1ULL << CAP_KILL;
    uint64_t inherit = 1ULL << CAP_NET_BIND_SERVICE;
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    for (int i = 0; i < 2; i++) {
        data[i].effective = data[i].permitted = (uint32_t)(keep >> (32 * i));
        data[i].inheritable = (uint32_t)(inherit >> (32 * i));
    }
    if (syscall(SYS_capset, &hdr, data) != 0)
        target_die("capset: %s", strerror(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        target_die("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));

    if (record(&at_start) != 0)
        target_die("%s", target_fail_reason);
    /* What was asked for must be what the kernel shows, or the check proves nothing. */
    if (at_start.sched_errno == 0 && at_start.policy != SCHED_BATCH)
        target_die("policy is %d after setting SCHED_BATCH", at_start.policy);
    if (at_start.nice != NICE)
        target_die("nice is %d after setting %d", at_start.nice, NICE);
    if (at_start.robust_head != &my_head || at_start.robust_len != sizeof my_head)
        target_die("get_robust_list gave %p/%zu", at_start.robust_head, at_start.robust_len);
    if (at_start.tid_address != &my_tid_word)
        target_die("PR_GET_TID_ADDRESS gave %p", (void *)at_start.tid_address);
    if (at_start.ruid != 2001 || at_start.euid != 2002 || at_start.suid != 2003 ||
        at_start.fsuid != 2002)
        target_die("uids are %u/%u/%u fs %u", at_start.ruid, at_start.euid, at_start.suid,
                   at_start.fsuid);
    if (at_start.rgid != 1001 || at_start.egid != 1002 || at_start.sgid != 1003 ||
        at_start.fsgid != 1002)
        target_die("gids are %u/%u/%u fs %u", at_start.rgid, at_start.egid, at_start.sgid,
                   at_start.fsgid);
    if (at_start.ngroups != (int)GROUPS_SET)
        target_die("%d supplementary groups", at_start.ngroups);
    if (at_start.caps.effective != keep || at_start.caps.permitted != keep ||
        at_start.caps.inheritable != inherit)
        target_die("caps are e=%#llx p=%#llx i=%#llx",
                   (unsigned long long)at_start.caps.effective,
                   (unsigned long long)at_start.caps.permitted,
                   (unsigned long long)at_start.caps.inheritable);
    if (__rseq_size > 0 && at_start.rseq_errno != EBUSY)
        target_die("rseq re-registration gave errno %d after setup", at_start.rseq_errno);
    if (at_start.no_new_privs != 1)
        target_die("no_new_privs is %d", at_start.no_new_privs);
    fprintf(stderr,
            "recorded: policy %d (setscheduler errno %d) prio %d nice %d robust %p/%zu "
            "tid_address %p rseq %s uid %u/%u/%u/%u gid %u/%u/%u/%u groups %d "
            "caps e=%#llx p=%#llx i=%#llx bnd=%#llx amb=%#llx nnp %d securebits %#x "
            "dumpable %d\n",
            at_start.policy, at_start.sched_errno, at_start.sched_priority, at_start.nice,
            at_start.robust_head, at_start.robust_len, (void *)at_start.tid_address,
            at_start.rseq_errno == EBUSY ? "registered" : "absent", at_start.ruid, at_start.euid,
            at_start.suid, at_start.fsuid, at_start.rgid, at_start.egid, at_start.sgid,
            at_start.fsgid, at_start.ngroups, (unsigned long long)at_start.caps.effective,
            (unsigned long long)at_start.caps.permitted,
            (unsigned long long)at_start.caps.inheritable, (unsigned long long)at_start.bounding,
            (unsigned long long)at_start.ambient, at_start.no_new_privs, at_start.securebits,
            at_start.dumpable);
}

static void check(void)
{
    uint64_t now = counter;
    if (now <= counter_at_last_check)
        target_fail("loop counter %llu did not move since the last check (%llu)",
                    (unsigned long long)now, (unsigned long long)counter_at_last_check);
    counter_at_last_check = now;

    struct recorded r;
    if (record(&r) != 0)
        return;
    const struct recorded *s = &at_start;
    if (r.policy != s->policy || r.sched_priority != s->sched_priority)
        target_fail("scheduling policy/priority is %d/%d, expected %d/%d", r.policy,
                    r.sched_priority, s->policy, s->sched_priority);
    if (r.nice != s->nice)
        target_fail("nice is %d, expected %d", r.nice, s->nice);
    if (r.robust_head != s->robust_head || r.robust_len != s->robust_len)
        target_fail("robust list is %p (len %zu), expected %p (len %zu)", r.robust_head,
                    r.robust_len, s->robust_head, s->robust_len);
    if (my_head.list.next != &my_head.list || my_head.futex_offset != -16 ||
        my_head.list_op_pending != NULL)
        target_fail("the robust list head's content changed");
    if (r.tid_address != s->tid_address)
        target_fail("tid address is %p, expected %p", (void *)r.tid_address,
                    (void *)s->tid_address);
    if (my_tid_word != (int)syscall(SYS_gettid))
        target_fail("tid word holds %d, but the tid is %d", my_tid_word,
                    (int)syscall(SYS_gettid));
    if (r.rseq_errno != s->rseq_errno)
        target_fail("registering glibc's rseq area %p (len %u, sig %#x) again gave %s, "
                    "expected %s: rseq is not registered as it was",
                    rseq_area(), rseq_len(), RSEQ_SIG,
                    r.rseq_errno == 0 ? "success" : strerror(r.rseq_errno),
                    strerror(s->rseq_errno));
    else if (s->rseq_errno != 0) {
        const struct rseq *rs = rseq_area();
        if ((int32_t)rs->cpu_id < 0)
            target_fail("rseq cpu_id is %d: not updated by the kernel", (int)(int32_t)rs->cpu_id);
    }
    if (r.ruid != s->ruid || r.euid != s->euid || r.suid != s->suid || r.fsuid != s->fsuid)
        target_fail("uids (real/effective/saved/fs) are %u/%u/%u/%u, expected %u/%u/%u/%u",
                    r.ruid, r.euid, r.suid, r.fsuid, s->ruid, s->euid, s->suid, s->fsuid);
    if (r.rgid != s->rgid || r.egid != s->egid || r.sgid != s->sgid || r.fsgid != s->fsgid)
        target_fail("gids (real/effective/saved/fs) are %u/%u/%u/%u, expected %u/%u/%u/%u",
                    r.rgid, r.egid, r.sgid, r.fsgid, s->rgid, s->egid, s->sgid, s->fsgid);
    if (r.ngroups != s->ngroups ||
        memcmp(r.groups, s->groups, (size_t)r.ngroups * sizeof r.groups[0]) != 0) {
        char got[256] = "";
        size_t len = 0;
        for (int i = 0; i < r.ngroups && len < sizeof got - 16; i++)
            len += (size_t)snprintf(got + len, sizeof got - len, "%s%u", i ? "," : "",
                                    r.groups[i]);
        target_fail("supplementary groups are {%s}, expected {4,24,27}", got);
    }
    if (r.caps.effective != s->caps.effective || r.caps.permitted != s->caps.permitted ||
        r.caps.inheritable != s->caps.inheritable)
        target_fail("capabilities are e=%#llx p=%#llx i=%#llx, expected e=%#llx p=%#llx i=%#llx",
                    (unsigned long long)r.caps.effective, (unsigned long long)r.caps.permitted,
                    (unsigned long long)r.caps.inheritable,
                    (unsigned long long)s->caps.effective, (unsigned long long)s->caps.permitted,
                    (unsigned long long)s->caps.inheritable);
    if (r.bounding != s->bounding)
        target_fail("capability bounding set is %#llx, expected %#llx",
                    (unsigned long long)r.bounding, (unsigned long long)s->bounding);
    if (r.ambient != s->ambient)
        target_fail("ambient capabilities are %#llx, expected %#llx",
                    (unsigned long long)r.ambient, (unsigned long long)s->ambient);
    if (r.no_new_privs != s->no_new_privs)
        target_fail("no_new_privs is %d, expected %d", r.no_new_privs, s->no_new_privs);
    if (r.securebits != s->securebits)
        target_fail("securebits are %#x, expected %#x", r.securebits, s->securebits);
    if (r.dumpable != s->dumpable)
        target_fail("dumpable is %d, expected %d", r.dumpable, s->dumpable);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    setup();
    counter++;
    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check();
            target_report();
        }
        counter++;
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
}
