/*
 * Signals target: handlers with flags and masks, an ignored signal, a blocked mask with
 * pending signals (one per-thread, two queued real-time ones with values), an alternate
 * signal stack, an itimer and a POSIX timer.
 *
 * Check: dispositions (handler, flags, mask, restorer) are as installed, and every other signal
 * is still at its default; the blocked mask is as set; SIGINT is pending for the thread and SIGRTMIN+2 twice for the process, with values
 * 111 then 222 (taken with sigtimedwait and queued again); the alternate stack is the same
 * and SIGUSR1 runs on it with SIGTERM blocked; the itimer still has a 50 ms interval and both
 * timers keep ticking, each tick carrying the right siginfo.
 */
#include "target.h"

#include <sys/time.h>

#define ALTSTACK_SIZE (64 * 1024)
#define TIMER_VALUE 0x5ee

static volatile sig_atomic_t alrm_ticks, timer_ticks, usr1_count, usr1_off_stack,
    usr1_mask_wrong, timer_info_wrong;
static char *altstack;
static timer_t posix_timer;

/* Dispositions and masks as read back right after setup. */
static struct sigaction usr1_at_start, hup_at_start, alrm_at_start, rt5_at_start;
static sigset_t blocked_at_start;

static int sig_rt2(void) { return SIGRTMIN + 2; }
static int sig_rt5(void) { return SIGRTMIN + 5; }

static void on_usr1(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)info;
    (void)uc;
    char here;
    if (&here < altstack || &here >= altstack + ALTSTACK_SIZE)
        usr1_off_stack = 1;
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    if (!sigismember(&now, SIGTERM) || !sigismember(&now, SIGUSR1))
        usr1_mask_wrong = 1;
    usr1_count++;
}

static void on_alrm(int sig)
{
    (void)sig;
    alrm_ticks++;
}

static void on_timer(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)uc;
    if (info->si_code != SI_TIMER || info->si_value.sival_int != TIMER_VALUE)
        timer_info_wrong = 1;
    timer_ticks++;
}

static void install(int sig, struct sigaction *sa, struct sigaction *readback)
{
    if (sigaction(sig, sa, NULL) != 0 || sigaction(sig, NULL, readback) != 0)
        target_die("sigaction(%d): %s", sig, strerror(errno));
}

static void queue_rt2(void)
{
    union sigval v;
    v.sival_int = 111;
    if (sigqueue(getpid(), sig_rt2(), v) != 0)
        target_die("sigqueue: %s", strerror(errno));
    v.sival_int = 222;
    if (sigqueue(getpid(), sig_rt2(), v) != 0)
        target_die("sigqueue: %s", strerror(errno));
}

static void setup(void)
{
    altstack = malloc(ALTSTACK_SIZE);
    stack_t ss = { .ss_sp = altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
    if (altstack == NULL || sigaltstack(&ss, NULL) != 0)
        target_die("sigaltstack: %s", strerror(errno));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_RESTART | SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGTERM);
    install(SIGUSR1, &sa, &usr1_at_start);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    install(SIGHUP, &sa, &hup_at_start);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    install(SIGALRM, &sa, &alrm_at_start);

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_timer;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    install(sig_rt5(), &sa, &rt5_at_start);

    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, sig_rt2());
    sigaddset(&block, SIGINT);
    if (sigprocmask(SIG_BLOCK, &block, NULL) != 0 || sigprocmask(SIG_BLOCK, NULL, &blocked_at_start) != 0)
        target_die("sigprocmask: %s", strerror(errno));

    /* raise() sends to the thread, sigqueue() to the process: both pending sets are used. */
    raise(SIGINT);
    queue_rt2();

    struct itimerval it = { { 0, 50000 }, { 0, 50000 } };
    if (setitimer(ITIMER_REAL, &it, NULL) != 0)
        target_die("setitimer: %s", strerror(errno));

    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = sig_rt5();
    sev.sigev_value.sival_int = TIMER_VALUE;
    if (timer_create(CLOCK_MONOTONIC, &sev, &posix_timer) != 0)
        target_die("timer_create: %s", strerror(errno));
    struct itimerspec its = { { 0, 100000000 }, { 0, 100000000 } };
    if (timer_settime(posix_timer, 0, &its, NULL) != 0)
        target_die("timer_settime: %s", strerror(errno));
}

static void check_disposition(const char *name, int sig, const struct sigaction *expected)
{
    struct sigaction now;
    if (sigaction(sig, NULL, &now) != 0) {
        target_fail("sigaction(%s): %s", name, strerror(errno));
        return;
    }
    if (now.sa_handler != expected->sa_handler)
        target_fail("%s handler is %p, expected %p", name, (void *)now.sa_handler,
                    (void *)expected->sa_handler);
    if (now.sa_flags != expected->sa_flags)
        target_fail("%s flags are %#x, expected %#x", name, (unsigned)now.sa_flags,
                    (unsigned)expected->sa_flags);
    if (now.sa_restorer != expected->sa_restorer)
        target_fail("%s restorer is %p, expected %p", name, (void *)now.sa_restorer,
                    (void *)expected->sa_restorer);
    if (!target_same_sigmask(&now.sa_mask, &expected->sa_mask))
        target_fail("%s sa_mask changed", name);
}

/* Bit of sig in a hex mask line of /proc/self/status ("SigPnd:", "ShdPnd:"). */
static int status_mask_has(const char *field, int sig)
{
    static char status[16384];
    if (target_read_file("/proc/self/status", status, sizeof status) < 0)
        return -1;
    char *line = strstr(status, field);
    unsigned long long mask;
    if (line == NULL || sscanf(line + strlen(field), " %llx", &mask) != 1)
        return -1;
    return (int)((mask >> (sig - 1)) & 1);
}

/* Takes every pending instance of sig, expecting the given values in order. */
static void take_queued(int sig, const char *name, const int *values, int count)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    struct timespec zero = { 0, 0 };
    for (int i = 0;; i++) {
        siginfo_t info;
        int got = sigtimedwait(&set, &info, &zero);
        if (got < 0) {
            if (errno == EINTR) {
                i--;
                continue;
            }
            if (i < count)
                target_fail("%s: %d pending instances, expected %d (%s)", name, i, count,
                            strerror(errno));
            return;
        }
        if (i >= count) {
            target_fail("%s: more than %d instances pending", name, count);
            continue;
        }
        if (values != NULL && (info.si_code != SI_QUEUE || info.si_value.sival_int != values[i]))
            target_fail("%s instance %d: si_code %d value %d, expected SI_QUEUE value %d", name,
                        i, info.si_code, info.si_value.sival_int, values[i]);
        if (info.si_pid != getpid())
            target_fail("%s instance %d: si_pid %d, expected %d", name, i, (int)info.si_pid,
                        (int)getpid());
    }
}

/* Waits up to 300 ms for a tick counter to move past start. */
static int ticks_move(volatile sig_atomic_t *ticks)
{
    sig_atomic_t start = *ticks;
    for (int i = 0; i < 30 && *ticks == start; i++) {
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
    return *ticks != start;
}

/* Every disposition once setup is done; those left alone are the defaults the launcher gave. */
static struct sigaction all_at_start[_NSIG];
static int readable_at_start[_NSIG];

static void record_all_dispositions(void)
{
    for (int sig = 1; sig < _NSIG; sig++)
        readable_at_start[sig] = sigaction(sig, NULL, &all_at_start[sig]) == 0; /* not glibc's own */
}

static void check(void)
{
    /* including those left at their default: a restore must not hand on its own caller's
       (SIGINT and SIGQUIT ignored under a shell's `&`, say) */
    for (int sig = 1; sig < _NSIG; sig++) {
        char name[32];
        snprintf(name, sizeof name, "signal %d (%s)", sig, strsignal(sig));
        if (readable_at_start[sig])
            check_disposition(name, sig, &all_at_start[sig]);
    }
    check_disposition("SIGUSR1", SIGUSR1, &usr1_at_start);
    check_disposition("SIGHUP", SIGHUP, &hup_at_start);
    check_disposition("SIGALRM", SIGALRM, &alrm_at_start);
    check_disposition("SIGRTMIN+5", sig_rt5(), &rt5_at_start);
    if (hup_at_start.sa_handler != SIG_IGN)
        target_fail("SIGHUP was not ignored at start");

    sigset_t blocked;
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    if (!target_same_sigmask(&blocked, &blocked_at_start))
        target_fail("blocked signal mask changed");

    sigset_t pending;
    sigpending(&pending);
    if (!sigismember(&pending, SIGINT))
        target_fail("SIGINT is not pending");
    if (!sigismember(&pending, sig_rt2()))
        target_fail("SIGRTMIN+2 is not pending");
    if (status_mask_has("SigPnd:", SIGINT) != 1)
        target_fail("SIGINT is not pending for the thread (SigPnd)");
    if (status_mask_has("ShdPnd:", sig_rt2()) != 1)
        target_fail("SIGRTMIN+2 is not pending for the process (ShdPnd)");

    static const int rt2_values[] = { 111, 222 };
    take_queued(sig_rt2(), "SIGRTMIN+2", rt2_values, 2);
    queue_rt2();
    take_queued(SIGINT, "SIGINT", NULL, 1);
    raise(SIGINT);

    stack_t ss;
    if (sigaltstack(NULL, &ss) != 0)
        target_fail("sigaltstack: %s", strerror(errno));
    else if (ss.ss_sp != altstack || ss.ss_size != ALTSTACK_SIZE || ss.ss_flags != 0)
        target_fail("sigaltstack is %p size %zu flags %d, expected %p size %d flags 0",
                    ss.ss_sp, ss.ss_size, ss.ss_flags, (void *)altstack, ALTSTACK_SIZE);

    sig_atomic_t usr1_before = usr1_count;
    raise(SIGUSR1);
    if (usr1_count == usr1_before)
        target_fail("SIGUSR1 handler did not run on raise");
    if (usr1_off_stack)
        target_fail("SIGUSR1 handler ran off the alternate stack");
    if (usr1_mask_wrong)
        target_fail("SIGUSR1 handler ran without SIGTERM and SIGUSR1 blocked");

    struct itimerval it;
    if (getitimer(ITIMER_REAL, &it) != 0)
        target_fail("getitimer: %s", strerror(errno));
    else if (it.it_interval.tv_sec != 0 || it.it_interval.tv_usec != 50000)
        target_fail("ITIMER_REAL interval is %ld.%06lds, expected 0.050000s",
                    (long)it.it_interval.tv_sec, (long)it.it_interval.tv_usec);
    else if (it.it_value.tv_sec != 0 || it.it_value.tv_usec > 50000)
        target_fail("ITIMER_REAL value is %ld.%06lds, expected at most 0.050000s",
                    (long)it.it_value.tv_sec, (long)it.it_value.tv_usec);

    struct itimerspec its;
    if (timer_gettime(posix_timer, &its) != 0)
        target_fail("timer_gettime(timer %ld): %s", (long)(intptr_t)posix_timer,
                    strerror(errno));
    else if (its.it_interval.tv_sec != 0 || its.it_interval.tv_nsec != 100000000)
        target_fail("POSIX timer interval is %ld.%09lds, expected 0.1s",
                    (long)its.it_interval.tv_sec, its.it_interval.tv_nsec);

    if (!ticks_move(&alrm_ticks))
        target_fail("SIGALRM (itimer, 50 ms) did not tick within 300 ms");
    if (!ticks_move(&timer_ticks))
        target_fail("SIGRTMIN+5 (POSIX timer, 100 ms) did not tick within 300 ms");
    if (timer_info_wrong)
        target_fail("a POSIX timer tick came with the wrong si_code or value");
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    setup();
    record_all_dispositions();
    target_serve_checks(check);
}
