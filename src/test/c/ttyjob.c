/*
 * Shell job target: a process whose stdin, stdout and stderr are its controlling terminal, in
 * the terminal's foreground process group, like a command started from an interactive shell.
 *
 * The test runs it inside a pseudo-terminal (under script(1)); it follows target.h for
 * STATE/ready (its pid) and STATE/result, but its stdio is the terminal, not STATE/out.log.
 * Setup fails unless fds 0, 1 and 2 are terminals. It then counts in its main loop.
 *
 * Check:
 *   - fds 0, 1 and 2 are terminals (isatty), all the same one (st_rdev);
 *   - that terminal is its controlling terminal and it is in the foreground:
 *     tcgetpgrp(fd) == getpgrp() for fds 0, 1 and 2;
 *   - a line "ttyjob PID check N" written to stdout goes out whole, without error;
 *   - the counter went on since the last check, and its shadow copy agrees with it.
 */
#include "target.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>

static volatile uint64_t counter, shadow;
static uint64_t counter_at_last_check;
static unsigned checks;

static uint64_t shadow_of(uint64_t c)
{
    return c * 3 + 1;
}

static void check(void)
{
    struct stat st[3];
    for (int fd = 0; fd < 3; fd++) {
        if (!isatty(fd)) {
            target_fail("fd %d is not a terminal: %s", fd, strerror(errno));
            return;
        }
        if (fstat(fd, &st[fd]) != 0) {
            target_fail("fstat fd %d: %s", fd, strerror(errno));
            return;
        }
        if (st[fd].st_rdev != st[0].st_rdev) {
            target_fail("fd %d is terminal %u:%u, fd 0 is %u:%u", fd, major(st[fd].st_rdev), minor(st[fd].st_rdev),
                        major(st[0].st_rdev), minor(st[0].st_rdev));
            return;
        }
    }
    pid_t pgrp = getpgrp();
    for (int fd = 0; fd < 3; fd++) {
        pid_t fg = tcgetpgrp(fd);
        if (fg < 0) {
            target_fail("tcgetpgrp(%d): %s (not the controlling terminal?)", fd, strerror(errno));
            return;
        }
        if (fg != pgrp) {
            target_fail("not in the foreground of fd %d: its foreground group is %d, ours %d", fd, (int)fg, (int)pgrp);
            return;
        }
    }
    checks++;
    char line[96];
    snprintf(line, sizeof line, "ttyjob %d check %u\n", (int)getpid(), checks);
    if (target_write_all(1, line, strlen(line)) != 0) {
        target_fail("writing to stdout (the terminal): %s", strerror(errno));
        return;
    }
    uint64_t c = counter;
    if (shadow != shadow_of(c)) {
        target_fail("counter %llu and its shadow %llu disagree", (unsigned long long)c, (unsigned long long)shadow);
        return;
    }
    if (c <= counter_at_last_check) {
        target_fail("counter stuck at %llu since the last check", (unsigned long long)c);
        return;
    }
    counter_at_last_check = c;
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    for (int fd = 0; fd < 3; fd++)
        if (!isatty(fd))
            target_die("fd %d is not a terminal: %s", fd, strerror(errno));
    char line[64];
    snprintf(line, sizeof line, "ttyjob %d started\n", (int)getpid());
    if (target_write_all(1, line, strlen(line)) != 0)
        target_die("writing to the terminal: %s", strerror(errno));
    target_ready();
    for (;;) {
        counter = counter + 1;
        shadow = shadow_of(counter);
        if (target_check_requested()) {
            check();
            target_report();
        }
        target_sleep_ms(10);
    }
}
