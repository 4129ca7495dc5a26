/*
 * Many-threads target: 16 worker threads besides the main one, each waiting its own way, so a
 * checkpoint catches threads in different places:
 *   w-0..w-3    FUTEX_WAIT_PRIVATE on a private word of their own, 5 ms timeout
 *   w-4..w-7    nanosleep of 1, 2, 3, 4 ms
 *   w-8..w-11   sigwait (even) or sigtimedwait with a 50 ms timeout (odd) on SIGRTMIN, which
 *               only they block; the main thread sends it to each of them with tgkill every
 *               10 ms and they count what they receive
 *   w-12..w-15  busy loop counting, with sched_yield
 * Each worker counts in a __thread counter and publishes its address. At start each worker
 * records its TID (gettid) in a __thread variable and in a global table, names itself "w-<n>",
 * sets a signal mask of its own (SIGUSR2, SIGRTMIN+1+n, SIGUSR1 in odd threads, SIGRTMIN in the
 * sigwait threads: no two threads have the same mask) and a __thread value n*1000 + secret,
 * where secret is chosen at run time. All workers block SIGUSR2, so check requests reach the
 * main thread.
 *
 * Check (main thread, on SIGUSR2):
 *   - the main thread's gettid() is the pid;
 *   - every worker is alive: pthread_tryjoin_np says EBUSY and /proc/self/task/<tid>/stat shows
 *     it neither zombie nor dead;
 *   - /proc/self/task lists exactly 17 threads: the pid and the 16 recorded TIDs;
 *   - every worker's __thread counter is above its value at the previous check, and moves again
 *     within 500 ms;
 *   - each worker, asked through a per-thread verify flag, answers within 2 s that: gettid()
 *     equals its recorded TID (both copies); its __thread value is n*1000 + secret, its __thread
 *     index is n, an initialised __thread word kept its value, and the address of its __thread
 *     counter is the one it published (the thread pointer is where it was); pthread_sigmask(0,
 *     NULL, &m) gives exactly the mask it set; /proc/self/task/<tid>/comm and
 *     pthread_getname_np say "w-<n>"; none of its waits failed with anything but the expected
 *     errors (EINTR, ETIMEDOUT, EAGAIN), and every SIGRTMIN it took with sigtimedwait came
 *     from a kill by this process and user (glibc reports tgkill's SI_TKILL as SI_USER);
 *   - every tgkill of the main thread succeeded.
 */
#include "target.h"

#include <dirent.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>

#define WORKERS 16
#define KIND_FUTEX 0
#define KIND_SLEEP 1
#define KIND_SIGWAIT 2
#define KIND_BUSY 3
#define KIND(n) ((n) / 4)

#define TLS_MAGIC 0x7e11a5c0ffee1234ULL
#define COUNTER_WINDOW_NS (500 * 1000000ULL)
#define VERIFY_WINDOW_NS (2000 * 1000000ULL)
#define SEND_INTERVAL_NS (10 * 1000000ULL)

static const char *const kind_names[] = { "futex", "nanosleep", "sigwait", "busy" };

/* Per-thread state, reached through the thread pointer. */
static __thread uint64_t tls_counter;
static __thread uint64_t tls_value;
static __thread int tls_index = -1;
static __thread pid_t tls_tid;
static __thread uint64_t tls_magic = TLS_MAGIC;

/* What each worker published at start. */
static pthread_t threads[WORKERS];
static pid_t tids[WORKERS];
static uint64_t *counter_ptr[WORKERS];
static sigset_t masks[WORKERS];
static int started[WORKERS];

static uint64_t secret;
static uint32_t futex_words[WORKERS]; /* stay 0: each FUTEX_WAIT sleeps until its timeout */

/* Verify requests: main stores a generation in verify_req[n]; worker n answers by writing
 * verify_msg[n] ("" when all is well) and then storing the same generation in verify_ans[n]. */
static uint64_t verify_req[WORKERS];
static uint64_t verify_ans[WORKERS];
static char verify_msg[WORKERS][320];
static uint64_t generation;

/* First unexpected outcome of a wait, per worker, kept until a verify reports it. */
static char wait_error[WORKERS][160];

/* Main thread: tgkill bookkeeping. */
static uint64_t last_send_ns;
static uint64_t sent[WORKERS];
static char send_error[160];

static uint64_t counter_at_last_check[WORKERS];

static int wait_sig(void) { return SIGRTMIN; }

static pid_t my_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void count(void)
{
    __atomic_store_n(&tls_counter, tls_counter + 1, __ATOMIC_RELAXED);
}

static void wait_failed(int n, const char *what, int err)
{
    if (wait_error[n][0] == '\0')
        snprintf(wait_error[n], sizeof wait_error[n], "%s failed: errno %d (%s)", what, err,
                 strerror(err));
}

static void build_mask(int n, sigset_t *m)
{
    sigemptyset(m);
    sigaddset(m, SIGUSR2);
    sigaddset(m, SIGRTMIN + 1 + n);
    if (n % 2 == 1)
        sigaddset(m, SIGUSR1);
    if (KIND(n) == KIND_SIGWAIT)
        sigaddset(m, wait_sig());
}

static void describe_mask(const sigset_t *m, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int s = 1; s <= SIGRTMAX && len + 8 < size; s++)
        if (sigismember(m, s))
            len += (size_t)snprintf(buf + len, size - len, "%s%d", len ? "," : "", s);
}

/* Runs in worker n when main asks. Writes "" or the first problem into verify_msg[n]. */
static void verify_self(int n)
{
    char *msg = verify_msg[n];
    size_t size = sizeof verify_msg[n];
    msg[0] = '\0';
    pid_t tid = my_gettid();
    char name[32];
    snprintf(name, sizeof name, "w-%d", n);

    if (tid != tls_tid || tid != tids[n]) {
        snprintf(msg, size, "gettid() is %d but recorded %d (TLS) / %d (table)", (int)tid,
                 (int)tls_tid, (int)tids[n]);
        return;
    }
    if (tls_index != n) {
        snprintf(msg, size, "TLS index is %d", tls_index);
        return;
    }
    if (tls_value != (uint64_t)n * 1000 + secret) {
        snprintf(msg, size, "TLS value is %llu, expected %llu", (unsigned long long)tls_value,
                 (unsigned long long)((uint64_t)n * 1000 + secret));
        return;
    }
    if (tls_magic != TLS_MAGIC) {
        snprintf(msg, size, "initialised TLS word is %#llx, expected %#llx",
                 (unsigned long long)tls_magic, TLS_MAGIC);
        return;
    }
    if (&tls_counter != counter_ptr[n]) {
        snprintf(msg, size, "TLS counter is at %p, published %p (thread pointer %p)",
                 (void *)&tls_counter, (void *)counter_ptr[n], __builtin_thread_pointer());
        return;
    }
    sigset_t now;
    int rc = pthread_sigmask(0, NULL, &now);
    if (rc != 0) {
        snprintf(msg, size, "pthread_sigmask: %s", strerror(rc));
        return;
    }
    if (!target_same_sigmask(&now, &masks[n])) {
        char got[128], want[128];
        describe_mask(&now, got, sizeof got);
        describe_mask(&masks[n], want, sizeof want);
        snprintf(msg, size, "signal mask is {%s}, expected {%s}", got, want);
        return;
    }
    char path[64], comm[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)tid);
    if (target_read_file(path, comm, sizeof comm) < 0) {
        snprintf(msg, size, "reading %s: %s", path, strerror(errno));
        return;
    }
    comm[strcspn(comm, "\n")] = '\0';
    if (strcmp(comm, name) != 0) {
        snprintf(msg, size, "%s is \"%s\"", path, comm);
        return;
    }
    char pname[32];
    rc = pthread_getname_np(pthread_self(), pname, sizeof pname);
    if (rc != 0 || strcmp(pname, name) != 0) {
        snprintf(msg, size, "pthread_getname_np gives \"%s\" (%s)", rc ? "" : pname,
                 rc ? strerror(rc) : "ok");
        return;
    }
    if (wait_error[n][0] != '\0') {
        snprintf(msg, size, "%s", wait_error[n]);
        return;
    }
}

/* Answers a pending verify request, if any. */
static void maybe_verify(int n)
{
    uint64_t req = load(&verify_req[n]);
    if (req != load(&verify_ans[n])) {
        verify_self(n);
        __atomic_store_n(&verify_ans[n], req, __ATOMIC_RELEASE);
    }
}

static void wait_futex(int n)
{
    struct timespec timeout = { 0, 5 * 1000000L };
    long r = syscall(SYS_futex, &futex_words[n], FUTEX_WAIT_PRIVATE, 0, &timeout, NULL, 0);
    if (r != 0 && errno != ETIMEDOUT && errno != EINTR && errno != EAGAIN)
        wait_failed(n, "futex(FUTEX_WAIT_PRIVATE)", errno);
    count();
}

static void wait_sleep(int n)
{
    long ms = 1 + (n % 4);
    struct timespec ts = { 0, ms * 1000000L };
    if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
        wait_failed(n, "nanosleep", errno);
    count();
}

static void check_siginfo(int n, const siginfo_t *info)
{
    /* glibc's sigtimedwait reports tgkill's SI_TKILL as SI_USER. */
    if (info->si_signo != wait_sig() || (info->si_code != SI_TKILL && info->si_code != SI_USER) ||
        info->si_pid != getpid() || info->si_uid != getuid()) {
        char what[160];
        snprintf(what, sizeof what, "took signal %d with si_code %d from pid %d uid %d, expected "
                 "%d, SI_TKILL or SI_USER, pid %d uid %d", info->si_signo, info->si_code,
                 (int)info->si_pid, (int)info->si_uid, wait_sig(), (int)getpid(), (int)getuid());
        if (wait_error[n][0] == '\0')
            snprintf(wait_error[n], sizeof wait_error[n], "%s", what);
    }
}

static void wait_signal(int n)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, wait_sig());
    if (n % 2 == 0) {
        int sig;
        int rc = sigwait(&set, &sig);
        if (rc != 0) {
            if (rc != EINTR)
                wait_failed(n, "sigwait", rc);
            return;
        }
        if (sig != wait_sig()) {
            siginfo_t fake = { 0 };
            fake.si_signo = sig;
            check_siginfo(n, &fake);
        }
        count();
    } else {
        siginfo_t info;
        struct timespec timeout = { 0, 50 * 1000000L };
        int sig = sigtimedwait(&set, &info, &timeout);
        if (sig < 0) {
            if (errno != EAGAIN && errno != EINTR)
                wait_failed(n, "sigtimedwait", errno);
            return;
        }
        check_siginfo(n, &info);
        count();
    }
}

static void wait_busy(int n)
{
    (void)n;
    count();
    sched_yield();
}

static void *worker(void *arg)
{
    int n = (int)(intptr_t)arg;
    tls_index = n;
    tls_tid = my_gettid();
    tls_value = (uint64_t)n * 1000 + secret;
    char name[16];
    snprintf(name, sizeof name, "w-%d", n);
    int rc = pthread_setname_np(pthread_self(), name);
    if (rc != 0)
        target_die("pthread_setname_np(%s): %s", name, strerror(rc));
    rc = pthread_sigmask(SIG_SETMASK, &masks[n], NULL);
    if (rc != 0)
        target_die("pthread_sigmask(w-%d): %s", n, strerror(rc));
    sigset_t back;
    pthread_sigmask(0, NULL, &back);
    if (!target_same_sigmask(&back, &masks[n]))
        target_die("w-%d: signal mask did not read back as set", n);
    tids[n] = tls_tid;
    counter_ptr[n] = &tls_counter;
    __atomic_store_n(&started[n], 1, __ATOMIC_RELEASE);

    for (;;) {
        switch (KIND(n)) {
        case KIND_FUTEX:
            wait_futex(n);
            break;
        case KIND_SLEEP:
            wait_sleep(n);
            break;
        case KIND_SIGWAIT:
            wait_signal(n);
            break;
        default:
            wait_busy(n);
            break;
        }
        maybe_verify(n);
    }
    return NULL;
}

/* Sends SIGRTMIN to each sigwait thread once SEND_INTERVAL_NS passed since the last round. */
static void send_due(void)
{
    uint64_t now = target_now_ns();
    if (now - last_send_ns < SEND_INTERVAL_NS)
        return;
    last_send_ns = now;
    for (int n = 0; n < WORKERS; n++) {
        if (KIND(n) != KIND_SIGWAIT)
            continue;
        if (syscall(SYS_tgkill, getpid(), tids[n], wait_sig()) != 0) {
            if (send_error[0] == '\0')
                snprintf(send_error, sizeof send_error, "tgkill(%d, %d (w-%d), SIGRTMIN): %s",
                         (int)getpid(), (int)tids[n], n, strerror(errno));
        } else {
            sent[n]++;
        }
    }
}

/* Sleeps about 1 ms, keeping the signals going. */
static void tick(void)
{
    struct timespec ts = { 0, 1000000L };
    nanosleep(&ts, NULL);
    send_due();
}

/* The TIDs in /proc/self/task, read with getdents64 into a static buffer (no malloc). */
static int list_tasks(pid_t *out, int max)
{
    static char buf[8192];
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return target_fail("opening /proc/self/task: %s", strerror(errno));
    int count = 0;
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (got < 0) {
            int err = errno;
            close(fd);
            return target_fail("getdents64(/proc/self/task): %s", strerror(err));
        }
        if (got == 0)
            break;
        for (long off = 0; off < got;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9')
                continue;
            if (count < max)
                out[count] = (pid_t)atoi(d->d_name);
            count++;
        }
    }
    close(fd);
    return count;
}

/* 'R', 'S', 'Z'... of /proc/self/task/<tid>/stat, or 0 if it cannot be read. */
static char task_state(pid_t tid)
{
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    if (target_read_file(path, stat, sizeof stat) < 0)
        return 0;
    char *close = strrchr(stat, ')');
    return close != NULL && close[1] == ' ' ? close[2] : 0;
}

static void check_alive(void)
{
    if (my_gettid() != getpid())
        target_fail("main thread gettid() is %d, pid %d", (int)my_gettid(), (int)getpid());
    for (int n = 0; n < WORKERS; n++) {
        int rc = pthread_tryjoin_np(threads[n], NULL);
        if (rc != EBUSY)
            target_fail("w-%d (tid %d) is gone: pthread_tryjoin_np says %s", n, (int)tids[n],
                        rc == 0 ? "joined" : strerror(rc));
        char state = task_state(tids[n]);
        if (state == 0)
            target_fail("w-%d: /proc/self/task/%d/stat unreadable: %s", n, (int)tids[n],
                        strerror(errno));
        else if (state == 'Z' || state == 'X')
            target_fail("w-%d (tid %d) is in state %c", n, (int)tids[n], state);
    }
}

static void check_task_list(void)
{
    pid_t listed[64];
    int count = list_tasks(listed, 64);
    if (count < 0)
        return;
    if (count != WORKERS + 1) {
        target_fail("/proc/self/task has %d threads, expected %d", count, WORKERS + 1);
        return;
    }
    for (int i = 0; i < count; i++) {
        int known = listed[i] == getpid();
        for (int n = 0; n < WORKERS && !known; n++)
            known = listed[i] == tids[n];
        if (!known) {
            target_fail("/proc/self/task lists tid %d, which is neither the pid nor a worker",
                        (int)listed[i]);
            return;
        }
    }
}

static void check_counters(void)
{
    uint64_t at_start[WORKERS];
    for (int n = 0; n < WORKERS; n++) {
        at_start[n] = load(counter_ptr[n]);
        if (at_start[n] <= counter_at_last_check[n])
            target_fail("w-%d (%s) counter is %llu, not above %llu at the previous check", n,
                        kind_names[KIND(n)], (unsigned long long)at_start[n],
                        (unsigned long long)counter_at_last_check[n]);
    }
    uint64_t begin = target_now_ns();
    for (;;) {
        int still = -1;
        for (int n = 0; n < WORKERS && still < 0; n++)
            if (load(counter_ptr[n]) <= at_start[n])
                still = n;
        if (still < 0)
            break;
        if (target_now_ns() - begin >= COUNTER_WINDOW_NS) {
            target_fail("w-%d (%s, tid %d) counter stayed at %llu for 500 ms", still,
                        kind_names[KIND(still)], (int)tids[still],
                        (unsigned long long)load(counter_ptr[still]));
            break;
        }
        tick();
    }
    for (int n = 0; n < WORKERS; n++)
        counter_at_last_check[n] = load(counter_ptr[n]);
}

static void check_verify(void)
{
    uint64_t gen = ++generation;
    for (int n = 0; n < WORKERS; n++)
        __atomic_store_n(&verify_req[n], gen, __ATOMIC_RELEASE);
    uint64_t begin = target_now_ns();
    for (;;) {
        int missing = 0;
        for (int n = 0; n < WORKERS; n++)
            if (load(&verify_ans[n]) != gen)
                missing++;
        if (missing == 0)
            break;
        if (target_now_ns() - begin >= VERIFY_WINDOW_NS) {
            for (int n = 0; n < WORKERS; n++)
                if (load(&verify_ans[n]) != gen)
                    target_fail("w-%d (%s, tid %d) did not answer a verify request within 2 s",
                                n, kind_names[KIND(n)], (int)tids[n]);
            break;
        }
        tick();
    }
    for (int n = 0; n < WORKERS; n++)
        if (load(&verify_ans[n]) == gen && verify_msg[n][0] != '\0')
            target_fail("w-%d (%s, tid %d): %s", n, kind_names[KIND(n)], (int)tids[n],
                        verify_msg[n]);
}

static void check(void)
{
    check_alive();
    check_task_list();
    check_counters();
    check_verify();
    if (send_error[0] != '\0')
        target_fail("%s", send_error);
    fprintf(stderr, "[%d] counters:", (int)getpid());
    for (int n = 0; n < WORKERS; n++)
        fprintf(stderr, " %llu", (unsigned long long)counter_at_last_check[n]);
    fprintf(stderr, "; SIGRTMIN sent:");
    for (int n = 0; n < WORKERS; n++)
        if (KIND(n) == KIND_SIGWAIT)
            fprintf(stderr, " %llu", (unsigned long long)sent[n]);
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    secret = (target_now_ns() ^ ((uint64_t)getpid() << 20)) % 1000000007ULL;
    for (int n = 0; n < WORKERS; n++)
        build_mask(n, &masks[n]);

    /* Workers start with everything blocked until they set their own mask. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int n = 0; n < WORKERS; n++) {
        int rc = pthread_create(&threads[n], NULL, worker, (void *)(intptr_t)n);
        if (rc != 0)
            target_die("pthread_create(w-%d): %s", n, strerror(rc));
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    for (int n = 0; n < WORKERS; n++)
        while (!__atomic_load_n(&started[n], __ATOMIC_ACQUIRE))
            target_sleep_ms(1);
    /* Every counter moves once before ready, the signalled ones included. */
    for (int n = 0; n < WORKERS; n++)
        while (load(counter_ptr[n]) == 0)
            tick();
    target_ready();

    for (;;) {
        if (target_check_requested()) {
            check();
            target_report();
        }
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
        send_due();
    }
}
