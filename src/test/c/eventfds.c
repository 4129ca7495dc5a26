/*
 * Event fds target: eventfds, a signalfd, a timerfd and epoll (nested too).
 *
 *   fd 30  eventfd, counter 42, EFD_NONBLOCK
 *   fd 31  eventfd, counter 3, EFD_SEMAPHORE (blocking)
 *   fd 32  signalfd for SIGUSR1 and SIGRTMIN+3 (both blocked), SFD_NONBLOCK; one SIGUSR1
 *          pending (sent with kill to the process, not read)
 *   fd 33  timerfd, CLOCK_MONOTONIC, TFD_NONBLOCK, every 200 ms
 *   fd 34  epoll watching fd 30 (EPOLLIN, data 0x1234567890), fd 31 (EPOLLIN|EPOLLET, data 7)
 *          and fd 36 (EPOLLIN, data 99)
 *   fd 35  epoll watching epoll 34 (EPOLLIN, data 5)
 *   fd 36  read end of a pipe holding 1 byte ('x'); fd 37 its write end
 *   fd 38  timerfd, every 10 ms, never read: whenever a checkpoint comes, it has expired and
 *          waits to be read (the kernel shows no time left then)
 *
 * Check:
 *   - each fd has its kind (readlink of /proc/self/fd: anon_inode:[eventfd] ...) and its
 *     O_NONBLOCK setting;
 *   - epoll 35 reports exactly epoll 34 ready, with data 5;
 *   - epoll 34 reports exactly fds 30, 31 and 36 ready, each EPOLLIN with its data; a second
 *     wait right after reports 30 and 36 again but not 31 (edge-triggered);
 *   - epoll 34's fdinfo lists exactly those three targets with their data and EPOLLET only on
 *     fd 31;
 *   - fd 30 reads 42 once, then EAGAIN; 42 is written back;
 *   - fd 31 reads 1 three times, then EAGAIN (with O_NONBLOCK set just for that read); 3 is
 *     written back and O_NONBLOCK cleared again;
 *   - SIGUSR1 is pending and both signals are blocked; the signalfd's fdinfo mask is exactly
 *     SIGUSR1|SIGRTMIN+3; reading it gives SIGUSR1 from our own pid, then EAGAIN; SIGUSR1 is
 *     sent again so it stays pending;
 *   - the pipe holds exactly the 1 byte 'x' (read and written back);
 *   - timerfd: fdinfo says CLOCK_MONOTONIC; timerfd_gettime gives an interval of exactly 200 ms
 *     and a next expiry within 200 ms; after reading what has piled up, a new tick comes within
 *     1 s, and the ticks counted over the next 500 ms match the time that passed (+-1).
 *     The check leaves whatever ticks piled up read (the count only grows);
 *   - timerfd 38: timerfd_gettime gives an interval of exactly 10 ms.
 */
#include "target.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#define EFD 30
#define SEMFD 31
#define SIGFD 32
#define TIMERFD 33
#define EPFD 34
#define EPFD_OUTER 35
#define PIPE_R 36
#define PIPE_W 37
#define UNREAD_TIMERFD 38
#define UNREAD_INTERVAL_NS 10000000LL

#define EFD_COUNT 42
#define SEM_COUNT 3
#define DATA_EFD 0x1234567890ULL
#define DATA_SEM 7ULL
#define DATA_PIPE 99ULL
#define DATA_OUTER 5ULL
#define INTERVAL_NS 200000000LL

static uint64_t ticks_read; /* expirations read from the timerfd so far */
static int sig_rt;          /* SIGRTMIN + 3 */

static void place(int fd, int where, const char *what)
{
    if (fd < 0)
        target_die("creating %s: %s", what, strerror(errno));
    if (fd != where) {
        if (dup2(fd, where) != where)
            target_die("dup2 %s to %d: %s", what, where, strerror(errno));
        close(fd);
    }
}

static void add_watch(int epfd, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        target_die("epoll_ctl(%d, ADD, %d): %s", epfd, fd, strerror(errno));
}

static int check_kind(int fd, const char *link, int nonblock)
{
    char got[256];
    if (target_fd_link(fd, got, sizeof got) < 0)
        return target_fail("fd %d is not open: %s", fd, strerror(errno));
    if (strncmp(got, link, strlen(link)) != 0)
        return target_fail("fd %d is %s, expected %s", fd, got, link);
    int fl = fcntl(fd, F_GETFL);
    if (((fl & O_NONBLOCK) != 0) != nonblock)
        return target_fail("fd %d (%s) O_NONBLOCK is %d, expected %d", fd, got, (fl & O_NONBLOCK) != 0,
                           nonblock);
    return 0;
}

/* Reads /proc/self/fdinfo/FD into buf. */
static int fdinfo(int fd, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    if (target_read_file(path, buf, size) < 0)
        return target_fail("reading %s: %s", path, strerror(errno));
    return 0;
}

struct want {
    uint64_t data;
    uint32_t events;
    int seen;
};

/* epoll_wait(epfd, 0) must report exactly the wanted events, each once. */
static void expect_ready(int epfd, struct want *want, int nwant, const char *when)
{
    struct epoll_event ev[16];
    int n = epoll_wait(epfd, ev, 16, 0);
    if (n < 0) {
        target_fail("epoll_wait(%d) %s: %s", epfd, when, strerror(errno));
        return;
    }
    for (int i = 0; i < nwant; i++)
        want[i].seen = 0;
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < nwant; j++)
            if (want[j].data == ev[i].data.u64 && !want[j].seen) {
                want[j].seen = found = 1;
                if (ev[i].events != want[j].events)
                    target_fail("epoll %d %s: data %#llx has events %#x, expected %#x", epfd, when,
                                (unsigned long long)ev[i].data.u64, ev[i].events, want[j].events);
            }
        if (!found)
            target_fail("epoll %d %s: unexpected ready entry, data %#llx events %#x", epfd, when,
                        (unsigned long long)ev[i].data.u64, ev[i].events);
    }
    for (int j = 0; j < nwant; j++)
        if (!want[j].seen)
            target_fail("epoll %d %s: data %#llx not reported ready (%d entries were)", epfd, when,
                        (unsigned long long)want[j].data, n);
}

/* epoll 34's fdinfo: exactly three targets, with their data and EPOLLET only on fd 31. */
static void check_epoll_fdinfo(void)
{
    char buf[4096];
    if (fdinfo(EPFD, buf, sizeof buf) != 0)
        return;
    int count = 0, seen30 = 0, seen31 = 0, seen36 = 0;
    for (char *line = strstr(buf, "tfd:"); line != NULL; line = strstr(line + 1, "tfd:")) {
        int tfd;
        unsigned events;
        unsigned long long data;
        if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3) {
            target_fail("cannot parse epoll fdinfo line: %.60s", line);
            return;
        }
        count++;
        int et = (events & EPOLLET) != 0, in = (events & EPOLLIN) != 0;
        if (tfd == EFD && data == DATA_EFD && in && !et)
            seen30++;
        else if (tfd == SEMFD && data == DATA_SEM && in && et)
            seen31++;
        else if (tfd == PIPE_R && data == DATA_PIPE && in && !et)
            seen36++;
        else
            target_fail("epoll %d watches fd %d with events %#x data %#llx, not expected", EPFD, tfd,
                        events, data);
    }
    if (count != 3 || seen30 != 1 || seen31 != 1 || seen36 != 1)
        target_fail("epoll %d fdinfo lists %d targets (fd30 %d, fd31 %d, fd36 %d), expected one each",
                    EPFD, count, seen30, seen31, seen36);

    if (fdinfo(EPFD_OUTER, buf, sizeof buf) != 0)
        return;
    char *line = strstr(buf, "tfd:");
    int tfd;
    unsigned events;
    unsigned long long data;
    if (line == NULL || sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3 ||
        tfd != EPFD || data != DATA_OUTER || !(events & EPOLLIN) || (events & EPOLLET) ||
        strstr(line + 1, "tfd:") != NULL)
        target_fail("epoll %d should watch only epoll %d with data 5; its fdinfo: %s", EPFD_OUTER, EPFD,
                    buf);
}

static void check_epolls(void)
{
    struct want outer[] = { { DATA_OUTER, EPOLLIN, 0 } };
    expect_ready(EPFD_OUTER, outer, 1, "(nested)");
    struct want all[] = { { DATA_EFD, EPOLLIN, 0 }, { DATA_SEM, EPOLLIN, 0 }, { DATA_PIPE, EPOLLIN, 0 } };
    expect_ready(EPFD, all, 3, "(first wait)");
    /* fd 31 is edge-triggered: reported once, not again until it changes. */
    struct want level[] = { { DATA_EFD, EPOLLIN, 0 }, { DATA_PIPE, EPOLLIN, 0 } };
    expect_ready(EPFD, level, 2, "(second wait, edge-triggered fd 31 must not show)");
    check_epoll_fdinfo();
}

static void check_eventfds(void)
{
    uint64_t v = 0;
    if (read(EFD, &v, sizeof v) != sizeof v)
        target_fail("read of eventfd %d: %s", EFD, strerror(errno));
    else if (v != EFD_COUNT)
        target_fail("eventfd %d counter is %llu, expected %d", EFD, (unsigned long long)v, EFD_COUNT);
    if (read(EFD, &v, sizeof v) != -1 || errno != EAGAIN)
        target_fail("second read of eventfd %d did not fail with EAGAIN", EFD);
    v = EFD_COUNT;
    if (write(EFD, &v, sizeof v) != sizeof v)
        target_fail("writing eventfd %d back: %s", EFD, strerror(errno));

    for (int i = 0; i < SEM_COUNT; i++) {
        v = 0;
        if (read(SEMFD, &v, sizeof v) != sizeof v || v != 1) {
            target_fail("semaphore eventfd %d read %d gave %llu (%s), expected 1", SEMFD, i + 1,
                        (unsigned long long)v, strerror(errno));
            break;
        }
    }
    int fl = fcntl(SEMFD, F_GETFL);
    if (fl < 0 || fcntl(SEMFD, F_SETFL, fl | O_NONBLOCK) != 0) {
        target_fail("F_SETFL on %d: %s", SEMFD, strerror(errno));
    } else {
        if (read(SEMFD, &v, sizeof v) != -1 || errno != EAGAIN)
            target_fail("semaphore eventfd %d not empty after %d reads", SEMFD, SEM_COUNT);
        fcntl(SEMFD, F_SETFL, fl);
    }
    /* Written back from zero in any case, so the count is what it was. */
    v = SEM_COUNT;
    if (write(SEMFD, &v, sizeof v) != sizeof v)
        target_fail("writing semaphore eventfd %d back: %s", SEMFD, strerror(errno));

    char buf[1024];
    if (fdinfo(SEMFD, buf, sizeof buf) == 0) {
        char *s = strstr(buf, "eventfd-semaphore:");
        if (s != NULL && atoi(s + strlen("eventfd-semaphore:")) != 1)
            target_fail("eventfd %d is not a semaphore any more: %s", SEMFD, buf);
    }
}

static void check_signalfd(void)
{
    sigset_t blocked, pending;
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    if (!sigismember(&blocked, SIGUSR1) || !sigismember(&blocked, sig_rt))
        target_fail("SIGUSR1 and SIGRTMIN+3 are not both blocked");
    sigpending(&pending);
    if (!sigismember(&pending, SIGUSR1))
        target_fail("SIGUSR1 is not pending");

    char buf[1024];
    if (fdinfo(SIGFD, buf, sizeof buf) == 0) {
        char *s = strstr(buf, "sigmask:");
        unsigned long long mask = s ? strtoull(s + strlen("sigmask:"), NULL, 16) : 0;
        unsigned long long want = (1ULL << (SIGUSR1 - 1)) | (1ULL << (sig_rt - 1));
        if (mask != want)
            target_fail("signalfd %d mask is %#llx, expected %#llx", SIGFD, mask, want);
    }

    struct signalfd_siginfo si;
    memset(&si, 0, sizeof si);
    ssize_t n = read(SIGFD, &si, sizeof si);
    if (n != sizeof si)
        target_fail("read of signalfd %d gave %zd (%s), expected the pending SIGUSR1", SIGFD, n,
                    n < 0 ? strerror(errno) : "short");
    else if (si.ssi_signo != SIGUSR1 || si.ssi_code != SI_USER || si.ssi_pid != (uint32_t)getpid())
        target_fail("signalfd %d gave signal %u code %d from pid %u, expected SIGUSR1 from kill by %d",
                    SIGFD, si.ssi_signo, si.ssi_code, si.ssi_pid, (int)getpid());
    if (read(SIGFD, &si, sizeof si) != -1 || errno != EAGAIN)
        target_fail("signalfd %d had a second signal queued, or blocks", SIGFD);
    if (kill(getpid(), SIGUSR1) != 0)
        target_fail("re-queueing SIGUSR1: %s", strerror(errno));
}

static void check_pipe(void)
{
    int n = -1;
    char c = 0;
    if (ioctl(PIPE_R, FIONREAD, &n) != 0 || n != 1)
        target_fail("pipe fd %d holds %d bytes, expected 1", PIPE_R, n);
    else if (read(PIPE_R, &c, 1) != 1 || c != 'x')
        target_fail("pipe fd %d gave %#x, expected 'x'", PIPE_R, c);
    else if (write(PIPE_W, "x", 1) != 1)
        target_fail("writing pipe fd %d back: %s", PIPE_W, strerror(errno));
}

static uint64_t read_ticks(void)
{
    uint64_t t = 0;
    if (read(TIMERFD, &t, sizeof t) != sizeof t) {
        if (errno != EAGAIN)
            target_fail("read of timerfd %d: %s", TIMERFD, strerror(errno));
        return 0;
    }
    ticks_read += t;
    return t;
}

static void check_timerfd(void)
{
    char buf[1024];
    if (fdinfo(TIMERFD, buf, sizeof buf) == 0) {
        char *s = strstr(buf, "clockid:");
        if (s == NULL || atoi(s + strlen("clockid:")) != CLOCK_MONOTONIC)
            target_fail("timerfd %d is not on CLOCK_MONOTONIC: %s", TIMERFD, buf);
    }
    struct itimerspec its;
    if (timerfd_gettime(TIMERFD, &its) != 0) {
        target_fail("timerfd_gettime(%d): %s", TIMERFD, strerror(errno));
        return;
    }
    long long interval = its.it_interval.tv_sec * 1000000000LL + its.it_interval.tv_nsec;
    long long next = its.it_value.tv_sec * 1000000000LL + its.it_value.tv_nsec;
    if (interval != INTERVAL_NS)
        target_fail("timerfd interval is %lld ns, expected %lld", interval, INTERVAL_NS);
    if (next <= 0 || next > INTERVAL_NS)
        target_fail("timerfd next expiry in %lld ns, expected within %lld", next, INTERVAL_NS);

    read_ticks(); /* what piled up since the last look */
    struct pollfd p = { TIMERFD, POLLIN, 0 };
    uint64_t deadline = target_now_ns() + 1000000000u, got = 0;
    while (got == 0 && target_now_ns() < deadline) {
        int left = (int)((deadline - target_now_ns()) / 1000000u) + 1;
        if (poll(&p, 1, left) < 0 && errno != EINTR) {
            target_fail("poll of timerfd: %s", strerror(errno));
            return;
        }
        got = read_ticks();
    }
    if (got == 0) {
        target_fail("timerfd %d gave no tick within 1 s", TIMERFD);
        return;
    }
    uint64_t t0 = target_now_ns();
    target_sleep_ms(500);
    uint64_t n = read_ticks();
    uint64_t elapsed = target_now_ns() - t0;
    long long expected = (long long)(elapsed / (uint64_t)INTERVAL_NS);
    if ((long long)n < expected - 1 || (long long)n > expected + 1)
        target_fail("timerfd gave %llu ticks in %llu ms, expected about %lld", (unsigned long long)n,
                    (unsigned long long)(elapsed / 1000000u), expected);
}

static void check(void)
{
    check_kind(EFD, "anon_inode:[eventfd]", 1);
    check_kind(SEMFD, "anon_inode:[eventfd]", 0);
    check_kind(SIGFD, "anon_inode:[signalfd]", 1);
    check_kind(TIMERFD, "anon_inode:[timerfd]", 1);
    check_kind(EPFD, "anon_inode:[eventpoll]", 0);
    check_kind(EPFD_OUTER, "anon_inode:[eventpoll]", 0);
    check_kind(PIPE_R, "pipe:", 0);
    check_kind(PIPE_W, "pipe:", 0);
    check_kind(UNREAD_TIMERFD, "anon_inode:[timerfd]", 1);
    if (target_fail_reason[0] != '\0')
        return;
    check_epolls();
    check_eventfds();
    check_signalfd();
    check_pipe();
    check_timerfd();
    struct itimerspec its;
    if (timerfd_gettime(UNREAD_TIMERFD, &its) != 0)
        target_fail("timerfd_gettime(%d): %s", UNREAD_TIMERFD, strerror(errno));
    else if (its.it_interval.tv_sec * 1000000000LL + its.it_interval.tv_nsec != UNREAD_INTERVAL_NS)
        target_fail("unread timerfd %d has interval %lld ns, expected %lld", UNREAD_TIMERFD,
                    its.it_interval.tv_sec * 1000000000LL + its.it_interval.tv_nsec, UNREAD_INTERVAL_NS);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    sig_rt = SIGRTMIN + 3;

    place(eventfd(EFD_COUNT, EFD_NONBLOCK), EFD, "eventfd");
    place(eventfd(SEM_COUNT, EFD_SEMAPHORE), SEMFD, "semaphore eventfd");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, sig_rt);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        target_die("sigprocmask: %s", strerror(errno));
    place(signalfd(-1, &set, SFD_NONBLOCK), SIGFD, "signalfd");
    if (kill(getpid(), SIGUSR1) != 0)
        target_die("kill SIGUSR1: %s", strerror(errno));

    place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), TIMERFD, "timerfd");
    struct itimerspec its = { { 0, INTERVAL_NS }, { 0, INTERVAL_NS } };
    if (timerfd_settime(TIMERFD, 0, &its, NULL) != 0)
        target_die("timerfd_settime: %s", strerror(errno));

    place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), UNREAD_TIMERFD, "unread timerfd");
    struct itimerspec fast = { { 0, UNREAD_INTERVAL_NS }, { 0, UNREAD_INTERVAL_NS } };
    if (timerfd_settime(UNREAD_TIMERFD, 0, &fast, NULL) != 0)
        target_die("timerfd_settime: %s", strerror(errno));

    int p[2];
    if (pipe(p) != 0)
        target_die("pipe: %s", strerror(errno));
    place(p[0], PIPE_R, "pipe read end");
    place(p[1], PIPE_W, "pipe write end");
    if (write(PIPE_W, "x", 1) != 1)
        target_die("write pipe: %s", strerror(errno));

    place(epoll_create1(0), EPFD, "epoll");
    add_watch(EPFD, EFD, EPOLLIN, DATA_EFD);
    add_watch(EPFD, SEMFD, EPOLLIN | EPOLLET, DATA_SEM);
    add_watch(EPFD, PIPE_R, EPOLLIN, DATA_PIPE);
    place(epoll_create1(0), EPFD_OUTER, "outer epoll");
    add_watch(EPFD_OUTER, EPFD, EPOLLIN, DATA_OUTER);

    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check();
            target_report();
        }
        target_sleep_ms(10);
    }
}
