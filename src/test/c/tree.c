/*
 * A process tree: 7 processes over 3 levels, with a second session, a second process group and
 * a zombie, all counting in one shared anonymous mapping made before the first fork.
 *
 *   root (session and group leader)
 *   +-- a            same group
 *   |   +-- a1       same group
 *   |   +-- a2       a group of its own
 *   +-- b            a session of its own
 *   |   +-- b1       in b's session and group
 *   +-- z            exited with status 7, never waited for: a zombie
 *
 * Every live process bumps its counter every 5 ms and checks its own pid, ppid, pgid and sid
 * against what it recorded when it started; a mismatch is written into the shared area. The
 * root's check (SIGUSR2): every counter moves, nobody saw a wrong id, the zombie is still a
 * zombie with status 7 (waitid WNOWAIT, so it stays one), the shared area is one object (a word
 * written by the root is seen by every child, which echoes it back).
 */
#include "target.h"
#include <sys/mman.h>
#include <sys/wait.h>

enum { ROOT, A, A1, A2, B, B1, NPROC };
static const char *names[NPROC] = {"root", "a", "a1", "a2", "b", "b1"};

struct shared {
    volatile long counter[NPROC];
    volatile long ping;                 /* written by the root */
    volatile long pong[NPROC];          /* each process copies ping here */
    volatile int bad;
    char reason[256];
    pid_t pid[NPROC], ppid[NPROC], pgid[NPROC], sid[NPROC];
    pid_t zombie;
};
static struct shared *sh;

static void record(int me)
{
    sh->pid[me] = getpid();
    sh->ppid[me] = getppid();
    sh->pgid[me] = getpgid(0);
    sh->sid[me] = getsid(0);
}

static void verify_ids(int me)
{
    if (sh->bad) {
        return;
    }
    /* the root's parent is outside the tree (it becomes Cryo after a restore): not its state */
    pid_t ppid = me == ROOT ? sh->ppid[me] : getppid();
    if (getpid() != sh->pid[me] || ppid != sh->ppid[me] || getpgid(0) != sh->pgid[me] || getsid(0) != sh->sid[me]) {
        snprintf(sh->reason, sizeof sh->reason, "%s: ids pid %d ppid %d pgid %d sid %d, expected %d %d %d %d", names[me],
                 getpid(), getppid(), getpgid(0), getsid(0), sh->pid[me], sh->ppid[me], sh->pgid[me], sh->sid[me]);
        sh->bad = 1;
    }
}

/* A child's whole life: count, echo the root's ping, check its ids. */
static void live(int me)
{
    signal(SIGUSR2, SIG_IGN);
    for (;;) {
        sh->counter[me]++;
        sh->pong[me] = sh->ping;
        verify_ids(me);
        target_sleep_ms(5);
    }
}

static pid_t spawn(int me, void (*setup)(int))
{
    pid_t pid = fork();
    if (pid < 0) {
        target_die("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        if (setup) {
            setup(me);
        }
        record(me);
        return 0;
    }
    while (sh->pid[me] == 0) {
        target_sleep_ms(1);
    }
    return pid;
}

static void own_group(int me) { (void)me; setpgid(0, 0); }
static void own_session(int me) { (void)me; setsid(); }

int main(int argc, char **argv)
{
    target_init(argc, argv);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        target_die("mmap: %s", strerror(errno));
    }
    record(ROOT);
    if (spawn(A, NULL) == 0) {
        if (spawn(A1, NULL) == 0) live(A1);
        if (spawn(A2, own_group) == 0) live(A2);
        live(A);
    }
    if (spawn(B, own_session) == 0) {
        if (spawn(B1, NULL) == 0) live(B1);
        live(B);
    }
    pid_t z = fork();
    if (z == 0) {
        _exit(7);
    }
    sh->zombie = z;
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, z, &info, WEXITED | WNOWAIT) != 0) {
        target_die("waitid: %s", strerror(errno));
    }
    for (int i = A; i < NPROC; i++) {
        while (sh->counter[i] == 0) {      /* everyone is up and counting before "ready" */
            target_sleep_ms(1);
        }
    }
    target_ready();

    long last[NPROC] = {0};
    for (;;) {
        sh->counter[ROOT]++;
        verify_ids(ROOT);
        if (target_check_requested()) {
            long ping = sh->ping + 1;
            sh->ping = ping;
            for (int i = 0; i < NPROC; i++) {
                last[i] = sh->counter[i];
            }
            target_sleep_ms(100);
            for (int i = 0; i < NPROC; i++) {
                if (i != ROOT && sh->counter[i] <= last[i]) {
                    target_fail("%s (pid %d) stopped counting at %ld", names[i], sh->pid[i], sh->counter[i]);
                }
                if (i != ROOT && sh->pong[i] != ping) {
                    target_fail("%s does not see the root's writes to the shared area (pong %ld, ping %ld)", names[i],
                                sh->pong[i], ping);
                }
            }
            if (sh->bad) {
                target_fail("%s", sh->reason);
            }
            memset(&info, 0, sizeof info);
            if (waitid(P_PID, sh->zombie, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
                target_fail("zombie %d: waitid: %s", sh->zombie, strerror(errno));
            } else if (info.si_pid != sh->zombie || info.si_code != CLD_EXITED || info.si_status != 7) {
                target_fail("zombie %d: code %d status %d, expected exited with 7", sh->zombie, info.si_code, info.si_status);
            }
            target_report();
        }
        target_sleep_ms(5);
    }
}
