/*
 * Shared protocol of Cryo's C test targets. Include this first in every target.
 *
 * A target is started as `NAME STATE [args...]`, where STATE is a directory the test made.
 *   1. It sets up the state under test, then calls target_ready(): STATE/ready appears
 *      (atomically) holding its pid.
 *   2. It loops forever. SIGUSR2 only sets a flag; the main loop notices it
 *      (target_check_requested()), verifies its own state and calls target_report(), which
 *      writes STATE/result atomically: "PASS" or "FAIL: <first reason>". It then keeps
 *      running, so it can be checkpointed and checked again.
 * Everything here uses raw open/read/write rather than stdio, so that no target grows its
 * heap or opens extra files behind its own back after it said ready (except
 * target_list_fds(), which needs opendir() and is for the targets that already listed fds so).
 */
#ifndef CRYO_TARGET_H
#define CRYO_TARGET_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>

/* Helpers are static so each target is one translation unit; unused ones must not warn. */
#include <sys/syscall.h>
#define TARGET_FN static __attribute__((unused))

/* Absolute path of STATE, resolved at start (some targets chdir). */
static char target_state[PATH_MAX];

static volatile sig_atomic_t target_check_flag;

/* First failure of the current check; empty while the check passes. */
static char target_fail_reason[512];

static void target_on_sigusr2(int sig)
{
    (void)sig;
    target_check_flag = 1;
}

/* Exits the program: for setup failures before ready, which the test sees as a timeout. */
TARGET_FN void target_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("target setup failed: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/*
 * Resolves STATE and installs the SIGUSR2 handler. No SA_RESTART: a check request should
 * interrupt whatever the main loop blocks in, and every loop treats EINTR as normal.
 */
TARGET_FN void target_init(int argc, char **argv)
{
    if (argc < 2)
        target_die("usage: %s STATE [args...]", argc > 0 ? argv[0] : "target");
    if (realpath(argv[1], target_state) == NULL)
        target_die("realpath(%s): %s", argv[1], strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = target_on_sigusr2;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR2, &sa, NULL) != 0)
        target_die("sigaction(SIGUSR2): %s", strerror(errno));
}

/* STATE/name into buf (PATH_MAX bytes). */
TARGET_FN void target_path(char *buf, const char *name)
{
    if (snprintf(buf, PATH_MAX, "%s/%s", target_state, name) >= PATH_MAX)
        target_die("path too long: %s/%s", target_state, name);
}

/* Writes all len bytes of buf to fd, going on after EINTR. Returns 0, or -1 (errno set unless
 * write() returned 0). */
TARGET_FN int target_write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* Writes STATE/name through a temporary name and rename(), so readers never see half. */
TARGET_FN int target_write_file(const char *name, const char *text)
{
    char tmp[PATH_MAX], final[PATH_MAX], tmpname[64];
    snprintf(tmpname, sizeof tmpname, ".%s.%d.tmp", name, (int)getpid());
    target_path(tmp, tmpname);
    target_path(final, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (target_write_all(fd, text, strlen(text)) != 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    return rename(tmp, final);
}

/* Reads a whole (small) file, NUL-terminated. Returns its length, or -1 with errno. */
TARGET_FN ssize_t target_read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done + 1 < size) {
        ssize_t n = read(fd, buf + done, size - 1 - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    buf[done] = '\0';
    return (ssize_t)done;
}

/* What /proc/self/fd/FD links to, NUL-terminated in buf. Returns its length, or -1 with errno. */
TARGET_FN ssize_t target_fd_link(int fd, char *buf, size_t size)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, buf, size - 1);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* Says "ready" with the pid, once the state under test is set up. */
TARGET_FN void target_ready(void)
{
    char text[32];
    snprintf(text, sizeof text, "%d\n", (int)getpid());
    if (target_write_file("ready", text) != 0)
        target_die("writing ready: %s", strerror(errno));
}

/* Says "ready" with other content, e.g. "SKIP" when the machine lacks what is tested. */
TARGET_FN void target_ready_text(const char *text)
{
    if (target_write_file("ready", text) != 0)
        target_die("writing ready: %s", strerror(errno));
}

/* Returns 1 once per SIGUSR2 received (several signals before a look count as one). */
TARGET_FN int target_check_requested(void)
{
    if (!target_check_flag)
        return 0;
    target_check_flag = 0;
    return 1;
}

/* Records a failure of the current check (only the first is kept). Returns -1 for chaining. */
TARGET_FN int target_fail(const char *fmt, ...)
{
    if (target_fail_reason[0] != '\0')
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(target_fail_reason, sizeof target_fail_reason, fmt, ap);
    va_end(ap);
    if (target_fail_reason[0] == '\0')
        strcpy(target_fail_reason, "unspecified");
    /* The result is one line. */
    for (char *p = target_fail_reason; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return -1;
}

/* How many fds target_list_fds() and target_check_open_fds() look at. */
#define TARGET_FDS 1024

/*
 * Marks in open_fds (n entries) the fds the process has open (/proc/self/fd, less the fd of the
 * listing itself). An fd of n or more is a failure. Uses opendir(), so it allocates.
 */
TARGET_FN int target_list_fds(unsigned char *open_fds, size_t n)
{
    memset(open_fds, 0, n);
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return target_fail("opendir /proc/self/fd: %s", strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd == dirfd(d))
            continue;
        if (fd < 0 || (size_t)fd >= n) {
            closedir(d);
            return target_fail("unexpected fd %d open", fd);
        }
        open_fds[fd] = 1;
    }
    closedir(d);
    return 0;
}

/* The set of open fds is exactly at_start (TARGET_FDS entries, from target_list_fds()). */
TARGET_FN void target_check_open_fds(const unsigned char *at_start)
{
    unsigned char now_open[TARGET_FDS];
    if (target_list_fds(now_open, sizeof now_open) == 0)
        for (size_t fd = 0; fd < sizeof now_open; fd++)
            if (now_open[fd] != at_start[fd])
                target_fail("fd %zu is %s now but was %s at start", fd,
                            now_open[fd] ? "open" : "closed", at_start[fd] ? "open" : "closed");
}

/* Makes a pipe whose ends are read_fd and write_fd (and no other fd). */
TARGET_FN void target_pipe_at(int read_fd, int write_fd)
{
    int p[2];
    if (pipe(p) != 0)
        target_die("pipe: %s", strerror(errno));
    if (dup2(p[0], read_fd) != read_fd || dup2(p[1], write_fd) != write_fd)
        target_die("dup2: %s", strerror(errno));
    close(p[0]);
    close(p[1]);
}

/* The pipe read end fd holds exactly `expected` unread bytes (FIONREAD). */
TARGET_FN void target_check_pipe_holds(int fd, size_t expected)
{
    int queued = -1;
    if (ioctl(fd, FIONREAD, &queued) != 0 || queued != (int)expected)
        target_fail("pipe fd %d holds %d bytes, expected %zu (%s)", fd, queued, expected,
                    strerror(errno));
}

/*
 * The fd's offset is `offset` and reading there gives pattern(offset + i); the offset is put
 * back afterwards. what names the file in failures.
 */
TARGET_FN void target_check_read_at(int fd, const char *what, off_t offset,
                                    unsigned char (*pattern)(size_t))
{
    off_t pos = lseek(fd, 0, SEEK_CUR);
    if (pos != offset) {
        target_fail("%s (fd %d) offset is %lld, expected %lld", what, fd, (long long)pos,
                    (long long)offset);
    } else {
        unsigned char here[64];
        if (read(fd, here, sizeof here) != (ssize_t)sizeof here)
            target_fail("read at the offset: %s", strerror(errno));
        else
            for (size_t i = 0; i < sizeof here; i++)
                if (here[i] != pattern((size_t)offset + i)) {
                    target_fail("read at offset %lld gave a wrong byte at +%zu", (long long)offset, i);
                    break;
                }
    }
    lseek(fd, offset, SEEK_SET);
}

/* True if a and b hold the same signals. */
TARGET_FN int target_same_sigmask(const sigset_t *a, const sigset_t *b)
{
    for (int s = 1; s <= SIGRTMAX; s++)
        if (sigismember(a, s) != sigismember(b, s))
            return 0;
    return 1;
}

/* A counter kept both in .bss (now) and on the stack agrees with itself and moved since *last. */
TARGET_FN void target_check_counter(uint64_t now, uint64_t stack_counter, uint64_t *last)
{
    if (stack_counter != now)
        target_fail("counter in .bss is %llu but on the stack %llu", (unsigned long long)now,
                    (unsigned long long)stack_counter);
    if (now <= *last)
        target_fail("counter %llu did not move since last check", (unsigned long long)now);
    *last = now;
}

/* Writes STATE/result for the check just done and starts the next check clean. */
TARGET_FN void target_report(void)
{
    char text[sizeof target_fail_reason + 16];
    if (target_fail_reason[0] == '\0')
        snprintf(text, sizeof text, "PASS\n");
    else
        snprintf(text, sizeof text, "FAIL: %s\n", target_fail_reason);
    fprintf(stderr, "[%d] check: %s", (int)getpid(), text);
    if (target_write_file("result", text) != 0)
        fprintf(stderr, "[%d] writing result: %s\n", (int)getpid(), strerror(errno));
    target_fail_reason[0] = '\0';
}

TARGET_FN uint64_t target_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps the whole time even if signals interrupt it. */
TARGET_FN void target_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Says ready, then answers check requests forever (check(), then target_report()), idle between. */
TARGET_FN void target_serve_checks(void (*check)(void))
{
    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check();
            target_report();
        }
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/*
 * Says ready, then counts forever: *counter (in .bss) and a copy on this stack, both bumped
 * after every 10 ms sleep. Each check request runs check(the stack copy), then target_report().
 */
TARGET_FN void target_count_forever(volatile uint64_t *counter, void (*check)(uint64_t stack_counter))
{
    uint64_t stack_counter = 0;
    (*counter)++;
    stack_counter++;
    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check(stack_counter);
            target_report();
        }
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
        (*counter)++;
        stack_counter++;
    }
}

/*
 * Puts a userfaultfd of the target's own at fd: a kind of fd Cryo refuses to save (an
 * application's own userfaultfd), for the tests of refusals.
 */
TARGET_FN void target_hold_unsupported_fd(int fd)
{
    int u = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
    if (u < 0)
        target_die("userfaultfd: %s", strerror(errno));
    if (u != fd) {
        if (dup2(u, fd) != fd)
            target_die("dup2 userfaultfd: %s", strerror(errno));
        close(u);
    }
}

#endif
