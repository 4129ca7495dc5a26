/*
 * Seccomp target: two seccomp filters stacked (no_new_privs set): the first makes sigaltstack(2)
 * fail with EPERM, the second makes getpriority(2) fail with ENOSYS. Cryo injects both calls into
 * the task while it checkpoints and restores it, so the filters must be suspended meanwhile and
 * installed again at restore.
 *
 * Check: /proc/self/status shows seccomp filter mode with 2 filters and no_new_privs;
 * sigaltstack fails with EPERM and getpriority with ENOSYS; the counter moves.
 */
#include "target.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

static volatile uint64_t counter;
static uint64_t counter_at_last_check;

/* A filter that makes syscall nr fail with errno err, and lets everything else through. */
static void install(int nr, int err)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof code / sizeof code[0], code };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        target_die("seccomp: %s", strerror(errno));
}

static long status_field(const char *name)
{
    static char status[8192];
    if (target_read_file("/proc/self/status", status, sizeof status) < 0)
        return target_fail("reading /proc/self/status: %s", strerror(errno));
    char *at = strstr(status, name);
    if (at == NULL)
        return target_fail("no %s in /proc/self/status", name);
    return strtol(at + strlen(name), NULL, 10);
}

static void check(uint64_t stack_counter)
{
    target_check_counter(counter, stack_counter, &counter_at_last_check);
    if (status_field("\nSeccomp:") != 2)
        target_fail("seccomp mode is %ld, expected 2 (filter)", status_field("\nSeccomp:"));
    if (status_field("\nSeccomp_filters:") != 2)
        target_fail("%ld seccomp filters, expected 2", status_field("\nSeccomp_filters:"));
    if (status_field("\nNoNewPrivs:") != 1)
        target_fail("no_new_privs is not set");
    stack_t ss;
    errno = 0;
    if (sigaltstack(NULL, &ss) != -1 || errno != EPERM)
        target_fail("sigaltstack was not refused with EPERM (errno %d)", errno);
    errno = 0;
    if (getpriority(PRIO_PROCESS, 0) != -1 || errno != ENOSYS)
        target_fail("getpriority was not refused with ENOSYS (errno %d)", errno);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        target_die("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    install(SYS_sigaltstack, EPERM);
    install(SYS_getpriority, ENOSYS);
    target_count_forever(&counter, check);
}
