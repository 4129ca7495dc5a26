/*
 * Threads target: a second thread counts alongside the main one. Started as `threads STATE pipe`
 * it also holds a pipe (fds 10 and 11, a message unread in it), which Cryo cannot save: its
 * checkpoint is refused only after every thread was frozen, and must leave both running.
 *
 * Check: the process has exactly two threads (/proc/self/status); the worker thread is still
 * running (not joinable) and its counter moved since the previous check; the main counter (in
 * .bss and on the stack) agrees with itself and moved too; with a pipe, the message is still
 * all in it.
 */
#include "target.h"

#include <pthread.h>

#define READ_FD 10
#define WRITE_FD 11
static const char message[] = "both threads saw this";
static int with_pipe;

static volatile uint64_t counter;
static uint64_t counter_at_last_check;
static volatile uint64_t worker_counter;
static uint64_t worker_at_last_check;
static pthread_t worker;

static void *work(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* check requests go to the main thread */
    for (;;) {
        worker_counter++;
        struct timespec ts = { 0, 5 * 1000000L };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int thread_count(void)
{
    static char status[8192];
    if (target_read_file("/proc/self/status", status, sizeof status) < 0)
        return target_fail("reading /proc/self/status: %s", strerror(errno));
    char *t = strstr(status, "\nThreads:");
    int n;
    if (t == NULL || sscanf(t, "\nThreads: %d", &n) != 1)
        return target_fail("no Threads line in /proc/self/status");
    return n;
}

static void check(uint64_t stack_counter)
{
    target_check_counter(counter, stack_counter, &counter_at_last_check);

    uint64_t w = worker_counter;
    if (w <= worker_at_last_check)
        target_fail("worker counter %llu did not move since last check", (unsigned long long)w);
    worker_at_last_check = w;

    int rc = pthread_tryjoin_np(worker, NULL);
    if (rc != EBUSY)
        target_fail("worker thread is gone (tryjoin: %s)", strerror(rc));
    int n = thread_count();
    if (n >= 0 && n != 2)
        target_fail("process has %d threads, expected 2", n);

    if (with_pipe)
        target_check_pipe_holds(READ_FD, sizeof message - 1);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    with_pipe = argc > 2 && strcmp(argv[2], "pipe") == 0;
    if (with_pipe) {
        target_pipe_at(READ_FD, WRITE_FD);
        target_hold_unsupported_fd(12);
        if (write(WRITE_FD, message, sizeof message - 1) != (ssize_t)sizeof message - 1)
            target_die("write to pipe: %s", strerror(errno));
    }
    int rc = pthread_create(&worker, NULL, work, NULL);
    if (rc != 0)
        target_die("pthread_create: %s", strerror(rc));
    while (worker_counter == 0)
        target_sleep_ms(1);

    target_count_forever(&counter, check);
}
