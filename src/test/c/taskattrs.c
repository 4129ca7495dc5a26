/*
 * Per-task attributes a fresh task would otherwise take from whoever restores it.
 *
 * Setup, per thread (the main thread and a second one, each with values of its own): CPU
 * affinity (main: the last online CPU; second: CPU 0), I/O priority (best-effort level 6 / 3),
 * timer slack (123456 / 654321 ns) and no parent-death signal: the root's parent is not
 * checkpointed with it, so restore leaves that signal unset. Per process: oom_score_adj 345,
 * child subreaper, THP disabled, not dumpable. A child process has SIGKILL as parent-death
 * signal (its parent is restored with it; it also ends with the target) and reports the signal
 * it has, with a heartbeat, in memory shared with the root. Every value is read back before
 * saying ready; setup fails if the kernel does not show what was asked.
 *
 * Check: each thread reads its own values back (the second thread on request from the main
 * one, which waits for its answer), the process-wide ones, and the child's fresh report; any
 * difference fails with the value seen and the one expected.
 */
#include "target.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_CLASS_BE 2
#define IOPRIO_VALUE(class, level) (((class) << 13) | (level))

struct thread_attrs {
    cpu_set_t affinity;
    int ioprio;
    long timer_slack;
    int pdeath_signal;
    char error[128]; /* a getter that failed; empty when all worked */
};

struct process_attrs {
    int oom_score_adj;
    int child_subreaper;
    int thp_disable;
    int dumpable;
};

/* What each thread sets and must find again. */
struct wanted {
    int cpu;
    int ioprio;
    long timer_slack;
    int pdeath_signal;
};

static struct wanted main_wanted, second_wanted;
static const struct process_attrs process_wanted = { 345, 1, 1, 0 };

/* The second thread answers a request (a new number) with its attributes, then the number. */
static int second_request, second_answered;
static struct thread_attrs second_seen;
static int second_setup_errno; /* nonzero: setting up the second thread failed */
static char second_setup_what[64];

static void read_thread(struct thread_attrs *a)
{
    memset(a, 0, sizeof *a);
    if (sched_getaffinity(0, sizeof a->affinity, &a->affinity) != 0)
        snprintf(a->error, sizeof a->error, "sched_getaffinity: %s", strerror(errno));
    a->ioprio = (int)syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
    if (a->ioprio < 0)
        snprintf(a->error, sizeof a->error, "ioprio_get: %s", strerror(errno));
    a->timer_slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    if (a->timer_slack < 0)
        snprintf(a->error, sizeof a->error, "PR_GET_TIMERSLACK: %s", strerror(errno));
    if (prctl(PR_GET_PDEATHSIG, &a->pdeath_signal, 0, 0, 0) != 0)
        snprintf(a->error, sizeof a->error, "PR_GET_PDEATHSIG: %s", strerror(errno));
}

/* Sets w in the calling thread. Returns 0, or errno with *what naming the call. */
static int set_thread(const struct wanted *w, const char **what)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    *what = "sched_setaffinity";
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        return errno;
    *what = "ioprio_set";
    if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, w->ioprio) != 0)
        return errno;
    *what = "PR_SET_TIMERSLACK";
    if (prctl(PR_SET_TIMERSLACK, w->timer_slack, 0, 0, 0) != 0)
        return errno;
    *what = "PR_SET_PDEATHSIG";
    if (prctl(PR_SET_PDEATHSIG, w->pdeath_signal, 0, 0, 0) != 0)
        return errno;
    return 0;
}

/* "cpus {1}" of a, into buf. */
static const char *cpus(const cpu_set_t *a, char *buf, size_t size)
{
    size_t len = (size_t)snprintf(buf, size, "{");
    int first = 1;
    for (int cpu = 0; cpu < CPU_SETSIZE && len < size - 8; cpu++) {
        if (CPU_ISSET(cpu, a)) {
            len += (size_t)snprintf(buf + len, size - len, "%s%d", first ? "" : ",", cpu);
            first = 0;
        }
    }
    snprintf(buf + len, size - len, "}");
    return buf;
}

/* Records a failure for each attribute of seen (in thread `which`) that is not w. */
static int compare_thread(const char *which, const struct thread_attrs *seen, const struct wanted *w)
{
    if (seen->error[0] != '\0')
        return target_fail("%s thread: %s", which, seen->error);
    cpu_set_t want;
    CPU_ZERO(&want);
    CPU_SET(w->cpu, &want);
    char got[256];
    if (!CPU_EQUAL(&seen->affinity, &want))
        target_fail("%s thread: CPU affinity is %s, expected {%d}", which,
                    cpus(&seen->affinity, got, sizeof got), w->cpu);
    if (seen->ioprio != w->ioprio)
        target_fail("%s thread: I/O priority is %#x (class %d level %d), expected %#x (class %d level %d)",
                    which, seen->ioprio, seen->ioprio >> 13, seen->ioprio & 0xff, w->ioprio,
                    w->ioprio >> 13, w->ioprio & 0xff);
    if (seen->timer_slack != w->timer_slack)
        target_fail("%s thread: timer slack is %ld ns, expected %ld ns", which, seen->timer_slack,
                    w->timer_slack);
    if (seen->pdeath_signal != w->pdeath_signal)
        target_fail("%s thread: parent-death signal is %d, expected %d", which,
                    seen->pdeath_signal, w->pdeath_signal);
    return target_fail_reason[0] == '\0' ? 0 : -1;
}

static int read_process(struct process_attrs *p)
{
    char text[32];
    if (target_read_file("/proc/self/oom_score_adj", text, sizeof text) < 0)
        return target_fail("reading /proc/self/oom_score_adj: %s", strerror(errno));
    p->oom_score_adj = atoi(text);
    if (prctl(PR_GET_CHILD_SUBREAPER, &p->child_subreaper, 0, 0, 0) != 0)
        return target_fail("PR_GET_CHILD_SUBREAPER: %s", strerror(errno));
    p->thp_disable = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
    if (p->thp_disable < 0)
        return target_fail("PR_GET_THP_DISABLE: %s", strerror(errno));
    p->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    if (p->dumpable < 0)
        return target_fail("PR_GET_DUMPABLE: %s", strerror(errno));
    return 0;
}

static int compare_process(const struct process_attrs *p)
{
    const struct process_attrs *w = &process_wanted;
    if (p->oom_score_adj != w->oom_score_adj)
        target_fail("oom_score_adj is %d, expected %d", p->oom_score_adj, w->oom_score_adj);
    if (p->child_subreaper != w->child_subreaper)
        target_fail("child subreaper flag is %d, expected %d", p->child_subreaper,
                    w->child_subreaper);
    if (p->thp_disable != w->thp_disable)
        target_fail("PR_GET_THP_DISABLE gives %d, expected %d", p->thp_disable, w->thp_disable);
    if (p->dumpable != w->dumpable)
        target_fail("dumpable is %d, expected %d", p->dumpable, w->dumpable);
    return target_fail_reason[0] == '\0' ? 0 : -1;
}

static void *second_thread(void *unused)
{
    (void)unused;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* check requests go to the main thread */
    const char *what = "";
    int e = set_thread(&second_wanted, &what);
    if (e != 0) {
        snprintf(second_setup_what, sizeof second_setup_what, "%s", what);
        __atomic_store_n(&second_setup_errno, e, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&second_answered, -1, __ATOMIC_RELEASE); /* set up */
    for (;;) {
        int request = __atomic_load_n(&second_request, __ATOMIC_ACQUIRE);
        if (request != __atomic_load_n(&second_answered, __ATOMIC_RELAXED) && request > 0) {
            read_thread(&second_seen);
            __atomic_store_n(&second_answered, request, __ATOMIC_RELEASE);
        }
        target_sleep_ms(5);
    }
    return NULL;
}

/* Asks the second thread for its attributes; 0 once they are in second_seen. */
static int ask_second(void)
{
    int request = __atomic_load_n(&second_request, __ATOMIC_RELAXED) + 1;
    __atomic_store_n(&second_request, request, __ATOMIC_RELEASE);
    for (int waited = 0; waited < 5000; waited += 5) {
        if (__atomic_load_n(&second_answered, __ATOMIC_ACQUIRE) == request)
            return 0;
        target_sleep_ms(5);
    }
    return target_fail("the second thread did not answer within 5 s");
}

/* The child's report: [0] a heartbeat, [1] its parent-death signal as PR_GET_PDEATHSIG says. */
static volatile int *child_report;

static void run_child(void)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        _exit(1);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL); /* check requests are the root's */
    for (;;) {
        int sig = -1;
        prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0);
        child_report[1] = sig;
        __atomic_add_fetch(&child_report[0], 1, __ATOMIC_RELEASE);
        target_sleep_ms(5);
    }
}

/* The child's parent-death signal, from a report made after this call. */
static void check_child(void)
{
    int beat = __atomic_load_n(&child_report[0], __ATOMIC_ACQUIRE);
    for (int waited = 0; __atomic_load_n(&child_report[0], __ATOMIC_ACQUIRE) - beat < 2; waited += 5) {
        if (waited >= 5000) {
            target_fail("the child reported nothing new within 5 s");
            return;
        }
        target_sleep_ms(5);
    }
    if (child_report[1] != SIGKILL)
        target_fail("the child's parent-death signal is %d, expected %d (SIGKILL)", child_report[1], SIGKILL);
}

static void check(void)
{
    struct thread_attrs seen;
    read_thread(&seen);
    compare_thread("main", &seen, &main_wanted);
    if (ask_second() == 0)
        compare_thread("second", &second_seen, &second_wanted);
    struct process_attrs p;
    if (read_process(&p) == 0)
        compare_process(&p);
    check_child();
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1)
        target_die("sysconf(_SC_NPROCESSORS_ONLN) gave %ld", online);
    main_wanted = (struct wanted){ (int)online - 1, IOPRIO_VALUE(IOPRIO_CLASS_BE, 6), 123456, 0 };
    second_wanted = (struct wanted){ 0, IOPRIO_VALUE(IOPRIO_CLASS_BE, 3), 654321, 0 };

    const char *what = "";
    int e = set_thread(&main_wanted, &what);
    if (e != 0)
        target_die("%s: %s", what, strerror(e));
    pthread_t second;
    if ((e = pthread_create(&second, NULL, second_thread, NULL)) != 0)
        target_die("pthread_create: %s", strerror(e));
    while (__atomic_load_n(&second_answered, __ATOMIC_ACQUIRE) != -1)
        target_sleep_ms(1);
    if ((e = __atomic_load_n(&second_setup_errno, __ATOMIC_ACQUIRE)) != 0)
        target_die("second thread: %s: %s", second_setup_what, strerror(e));

    char text[32];
    snprintf(text, sizeof text, "%d\n", process_wanted.oom_score_adj);
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || target_write_all(fd, text, strlen(text)) != 0)
        target_die("writing /proc/self/oom_score_adj: %s", strerror(errno));
    close(fd);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        target_die("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
        target_die("PR_SET_THP_DISABLE: %s", strerror(errno));
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        target_die("PR_SET_DUMPABLE: %s", strerror(errno));

    child_report = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (child_report == MAP_FAILED)
        target_die("mmap: %s", strerror(errno));
    pid_t child = fork();
    if (child < 0)
        target_die("fork: %s", strerror(errno));
    if (child == 0)
        run_child();

    /* What was asked for must be what the kernel shows, or the check proves nothing. */
    check();
    if (target_fail_reason[0] != '\0')
        target_die("after setup: %s", target_fail_reason);
    target_serve_checks(check);
}
