/*
 * Blocking-syscalls target: the main loop spends nearly all its time inside nanosleep,
 * pause (woken by a 20 ms itimer whose SIGALRM handler has no SA_RESTART),
 * futex(FUTEX_WAIT) with a timeout, and clock_nanosleep(TIMER_ABSTIME), so a checkpoint
 * almost always catches it inside one of them. Each call that returns bumps a counter.
 *
 * Check (SIGUSR2 starts it, the result comes 500 ms later): the counter moved during those
 * 500 ms, and no call ever failed with anything but EINTR, ETIMEDOUT or EAGAIN. A restore
 * that resumes a task without fixing up an interrupted syscall shows up here as errno 516
 * (ERESTART_RESTARTBLOCK) or 512-514; an absolute sleep that returns before its deadline
 * fails too.
 */
#include "target.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/time.h>

#define CHECK_WINDOW_NS (500 * 1000000ULL)

static const char *const call_names[] = { "nanosleep", "pause", "futex", "clock_nanosleep" };
#define CALLS 4

static volatile uint64_t iterations;
static uint64_t returns[CALLS]; /* completed calls per kind, for the log */
static volatile sig_atomic_t alrm_count;
static uint32_t futex_word;     /* stays 0: FUTEX_WAIT always sleeps until its timeout */

/* First unexpected outcome, kept until reported. */
static char bad[256];

static void on_alrm(int sig)
{
    (void)sig;
    alrm_count++;
}

static void unexpected(int call, int err)
{
    if (bad[0] == '\0')
        snprintf(bad, sizeof bad, "%s returned errno %d (%s)", call_names[call], err,
                 strerror(err));
}

static void expect_errno(int call, int err)
{
    if (err != EINTR && err != ETIMEDOUT && err != EAGAIN)
        unexpected(call, err);
}

static void set_itimer_ms(long ms)
{
    struct itimerval it = { { 0, ms * 1000 }, { 0, ms * 1000 } };
    if (setitimer(ITIMER_REAL, &it, NULL) != 0)
        unexpected(1, errno);
}

static void one_call(int call)
{
    switch (call) {
    case 0: {
        struct timespec ts = { 0, 200 * 1000000L };
        if (nanosleep(&ts, NULL) != 0)
            expect_errno(call, errno);
        break;
    }
    case 1: {
        /* Periodic rather than one-shot: a tick lost before pause() is made up 20 ms later. */
        set_itimer_ms(20);
        int r = pause();
        if (r != -1 || errno != EINTR)
            unexpected(call, r == -1 ? errno : 0);
        set_itimer_ms(0);
        break;
    }
    case 2: {
        struct timespec timeout = { 0, 100 * 1000000L };
        long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, &timeout, NULL, 0);
        if (r != 0)
            expect_errno(call, errno);
        break;
    }
    case 3: {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += 150 * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        int err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL);
        if (err != 0) {
            expect_errno(call, err);
        } else {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec < deadline.tv_sec ||
                 (now.tv_sec == deadline.tv_sec && now.tv_nsec < deadline.tv_nsec)) &&
                bad[0] == '\0')
                snprintf(bad, sizeof bad, "clock_nanosleep(TIMER_ABSTIME) returned 0 before "
                         "its deadline");
        }
        break;
    }
    }
    returns[call]++;
    iterations++;
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm;
    sa.sa_flags = 0; /* no SA_RESTART: pause and the sleeps see EINTR */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0)
        target_die("sigaction: %s", strerror(errno));
    target_ready();

    int checking = 0;
    uint64_t check_start_ns = 0, check_start_iterations = 0;
    for (int call = 0;; call = (call + 1) % CALLS) {
        if (target_check_requested() && !checking) {
            checking = 1;
            check_start_ns = target_now_ns();
            check_start_iterations = iterations;
        }
        if (checking && target_now_ns() - check_start_ns >= CHECK_WINDOW_NS) {
            checking = 0;
            if (bad[0] != '\0')
                target_fail("%s", bad);
            if (iterations <= check_start_iterations)
                target_fail("no syscall returned during 500 ms (%llu iterations)",
                            (unsigned long long)iterations);
            fprintf(stderr, "[%d] returns: nanosleep %llu, pause %llu, futex %llu, "
                    "clock_nanosleep %llu, SIGALRM %d\n", (int)getpid(),
                    (unsigned long long)returns[0], (unsigned long long)returns[1],
                    (unsigned long long)returns[2], (unsigned long long)returns[3],
                    (int)alrm_count);
            target_report();
        }
        one_call(call);
    }
}
