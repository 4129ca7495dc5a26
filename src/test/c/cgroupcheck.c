/*
 * Cgroup membership: the process, with a second thread, says which cgroups it is in.
 *
 * The test moves the process into cgroups of its own after it said ready, so the first check
 * request records /proc/self/cgroup (and writes it to STATE/cgroups for the test to see) and
 * passes. Every later check reads /proc/self/cgroup again, and the second thread's
 * /proc/self/task/TID/cgroup, and fails with both texts if either differs from the record.
 */
#include "target.h"

#include <pthread.h>

static char recorded[4096];
static pid_t second_tid;

static void *second(void *arg)
{
    (void)arg;
    second_tid = (pid_t)syscall(SYS_gettid);
    for (;;)
        pause();
    return NULL;
}

/* /proc/self/cgroup, or a thread's, with newlines as ';' so a failure stays one line. */
static int read_cgroups(const char *path, char *buf, size_t size)
{
    if (target_read_file(path, buf, size) < 0) {
        target_fail("reading %s: %s", path, strerror(errno));
        return -1;
    }
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ';';
    return 0;
}

static void check(void)
{
    char now[4096], thread[4096], path[64];
    if (read_cgroups("/proc/self/cgroup", now, sizeof now) != 0)
        return;
    if (recorded[0] == '\0') {
        memcpy(recorded, now, sizeof recorded);
        if (target_write_file("cgroups", recorded) != 0)
            target_fail("writing STATE/cgroups: %s", strerror(errno));
        return;
    }
    if (strcmp(now, recorded) != 0)
        target_fail("in cgroups %s, recorded %s", now, recorded);
    snprintf(path, sizeof path, "/proc/self/task/%d/cgroup", (int)second_tid);
    if (read_cgroups(path, thread, sizeof thread) == 0 && strcmp(thread, recorded) != 0)
        target_fail("second thread %d in cgroups %s, recorded %s", (int)second_tid, thread, recorded);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    pthread_t t;
    if (pthread_create(&t, NULL, second, NULL) != 0)
        target_die("pthread_create failed");
    while (__atomic_load_n(&second_tid, __ATOMIC_SEQ_CST) == 0)
        target_sleep_ms(1);
    target_serve_checks(check);
}
