/*
 * A pty pair with both ends in the tree: the parent holds the master (in packet mode), a child
 * runs in a session of its own with the slave as controlling terminal, stdin and stdout.
 * The slave's termios is changed (-echo, VINTR = ^G) and its window is 33x101; once the child
 * has it open, the pair is locked (TIOCSPTLCK: the slave cannot be opened again), and the slave
 * is in exclusive mode (TIOCEXCL).
 *
 * Waiting at every checkpoint, in both directions:
 *   for the master: "out-line1\r\nout-partial"  (the child wrote "out-line1\nout-partial": ONLCR)
 *   for the slave:  "in-line1\n" (a complete line) and "in-partial" (a line being typed)
 * STATE/child holds the child's pid.
 *
 * Check (SIGUSR2 to the parent):
 *   parent: termios, window size, packet mode and lock as set (seen from the master); reads exactly
 *     the waiting bytes (one packet), nothing more; asks the child (SIGUSR2) for its part;
 *   child: the slave is its controlling terminal, its session is its own and its group is in the
 *     foreground; termios, window and exclusive mode as set; FIONREAD counts the complete line
 *     only; reads exactly "in-line1\n"; then STATE/child-step1;
 *   parent writes "-more\n": the child reads "in-partial-more\n" (the partial line was kept
 *     partial), answers "reply:in-partial-more\n", writes the bytes for the master again, then
 *     STATE/child-step2; the parent reads exactly "reply:in-partial-more\r\n" and writes the
 *     bytes for the slave again. So every check leaves the pair as it found it.
 */
#include "target.h"

#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <sys/wait.h>

#define OUT "out-line1\nout-partial"
#define OUT_SEEN "out-line1\r\nout-partial"
#define IN "in-line1\nin-partial"
#define REPLY_SEEN "reply:in-partial-more\r\n"
#define ROWS 33
#define COLS 101
#define INTR 7

static pid_t child;

static void check_termios(int fd, const char *who)
{
    struct termios t;
    struct winsize ws;
    if (tcgetattr(fd, &t) != 0) {
        target_fail("%s: tcgetattr: %s", who, strerror(errno));
        return;
    }
    if (t.c_lflag & ECHO)
        target_fail("%s: ECHO is on again", who);
    if (!(t.c_lflag & ICANON))
        target_fail("%s: ICANON is off", who);
    if (t.c_cc[VINTR] != INTR)
        target_fail("%s: VINTR is %d, expected %d", who, t.c_cc[VINTR], INTR);
    if (!(t.c_oflag & OPOST) || !(t.c_oflag & ONLCR))
        target_fail("%s: OPOST/ONLCR off", who);
    if (ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row != ROWS || ws.ws_col != COLS)
        target_fail("%s: window %dx%d, expected %dx%d", who, ws.ws_row, ws.ws_col, ROWS, COLS);
}

/* Reads exactly len bytes from fd within 0.8 s (fd blocking, so poll first). */
static ssize_t read_exactly(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = { fd, POLLIN, 0 };
        int r = poll(&p, 1, 800);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int await_file(const char *name, char *text, size_t size)
{
    char path[PATH_MAX];
    target_path(path, name);
    for (int i = 0; i < 120; i++) {
        if (target_read_file(path, text, size) >= 0) {
            unlink(path);
            return 0;
        }
        target_sleep_ms(10);
    }
    return -1;
}

static void child_check(void)
{
    char buf[256];
    if (getsid(0) != getpid())
        target_fail("child: not a session leader (sid %d)", getsid(0));
    if (tcgetsid(0) != getpid())
        target_fail("child: stdin is not its session's terminal: %s", strerror(errno));
    if (tcgetpgrp(0) != getpgrp())
        target_fail("child: foreground group %d, its own %d", tcgetpgrp(0), getpgrp());
    /* (not open("/dev/tty"): that opens the slave again, which a locked pair refuses with EIO) */
    check_termios(0, "child");
    int excl = -1;
    if (ioctl(0, TIOCGEXCL, &excl) != 0 || excl != 1)
        target_fail("child: the slave is not in exclusive mode (%d)", excl);
    int queued = -1;
    if (ioctl(0, FIONREAD, &queued) != 0 || queued != 9)
        target_fail("child: FIONREAD %d, expected 9 (the complete line)", queued);
    ssize_t n = read(0, buf, sizeof buf);
    if (n != 9 || memcmp(buf, "in-line1\n", 9) != 0)
        target_fail("child: first read gave %zd bytes \"%.*s\"", n, n > 0 ? (int)n : 0, buf);
    if (ioctl(0, FIONREAD, &queued) != 0 || queued != 0)
        target_fail("child: FIONREAD %d after the line, expected 0 (a partial line)", queued);
    target_write_file("child-step1", target_fail_reason[0] ? target_fail_reason : "PASS");
    n = read(0, buf, sizeof buf);
    if (n != 16 || memcmp(buf, "in-partial-more\n", 16) != 0)
        target_fail("child: second read gave %zd bytes \"%.*s\"", n, n > 0 ? (int)n : 0, buf);
    char reply[300];
    int len = snprintf(reply, sizeof reply, "reply:%.*s", n > 0 ? (int)n : 0, buf);
    target_write_all(1, reply, (size_t)len);
    target_write_all(1, OUT, strlen(OUT));
    target_write_file("child-step2", target_fail_reason[0] ? target_fail_reason : "PASS");
    target_fail_reason[0] = '\0';
}

static void child_main(const char *name)
{
    setsid();
    int s = open(name, O_RDWR); /* a session leader without a terminal: it becomes its controlling one */
    if (s < 0)
        target_die("open %s: %s", name, strerror(errno));
    dup2(s, 0);
    dup2(s, 1);
    close(s);
    struct termios t;
    tcgetattr(0, &t);
    t.c_lflag &= ~ECHO;
    t.c_cc[VINTR] = INTR;
    tcsetattr(0, TCSANOW, &t);
    struct winsize ws = { ROWS, COLS, 0, 0 };
    ioctl(0, TIOCSWINSZ, &ws);
    ioctl(0, TIOCEXCL);
    target_write_all(1, OUT, strlen(OUT));
    target_write_file("child-ready", "ok");
    for (;;) {
        if (target_check_requested())
            child_check();
        target_sleep_ms(10);
    }
}

static void parent_check(int m)
{
    char buf[256], text[600];
    int pkt = -1;
    if (ioctl(m, TIOCGPKT, &pkt) != 0 || pkt != 1)
        target_fail("packet mode is %d", pkt);
    int locked = -1;
    if (ioctl(m, TIOCGPTLCK, &locked) != 0 || locked != 1)
        target_fail("the pair is not locked (%d)", locked);
    check_termios(m, "master");
    int queued = -1;
    if (ioctl(m, FIONREAD, &queued) != 0 || queued != (int)strlen(OUT_SEEN))
        target_fail("master: FIONREAD %d, expected %zu", queued, strlen(OUT_SEEN));
    ssize_t n = read_exactly(m, buf, 1 + strlen(OUT_SEEN));
    if (n != (ssize_t)(1 + strlen(OUT_SEEN)) || buf[0] != 0 || memcmp(buf + 1, OUT_SEEN, strlen(OUT_SEEN)) != 0)
        target_fail("master read %zd bytes \"%.*s\", expected a packet of \"%s\"", n, n > 1 ? (int)n - 1 : 0, buf + 1, OUT_SEEN);
    if (ioctl(m, FIONREAD, &queued) != 0 || queued != 0)
        target_fail("master: %d more bytes after the waiting ones", queued);
    kill(child, SIGUSR2);
    if (await_file("child-step1", text, sizeof text) != 0)
        target_fail("child: no step 1 answer");
    else if (strcmp(text, "PASS") != 0)
        target_fail("%s", text);
    target_write_all(m, "-more\n", 6);
    if (await_file("child-step2", text, sizeof text) != 0)
        target_fail("child: no step 2 answer");
    else if (strcmp(text, "PASS") != 0)
        target_fail("%s", text);
    n = read_exactly(m, buf, 1 + strlen(REPLY_SEEN));
    if (n != (ssize_t)(1 + strlen(REPLY_SEEN)) || buf[0] != 0 || memcmp(buf + 1, REPLY_SEEN, strlen(REPLY_SEEN)) != 0)
        target_fail("master read %zd bytes \"%.*s\", expected the reply \"%s\"", n, n > 1 ? (int)n - 1 : 0, buf + 1, REPLY_SEEN);
    target_write_all(m, IN, strlen(IN));
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0)
        target_die("posix_openpt: %s", strerror(errno));
    int one = 1;
    if (ioctl(m, TIOCPKT, &one) != 0)
        target_die("TIOCPKT: %s", strerror(errno));
    char name[64];
    snprintf(name, sizeof name, "%s", ptsname(m));
    child = fork();
    if (child < 0)
        target_die("fork: %s", strerror(errno));
    if (child == 0) {
        close(m);
        child_main(name);
    }
    char text[64], pid[32];
    if (await_file("child-ready", text, sizeof text) != 0)
        target_die("the child did not get ready");
    if (ioctl(m, TIOCSPTLCK, &one) != 0)
        target_die("TIOCSPTLCK: %s", strerror(errno));
    snprintf(pid, sizeof pid, "%d\n", (int)child);
    target_write_file("child", pid);
    target_write_all(m, IN, strlen(IN));
    target_sleep_ms(50);
    target_ready();
    for (;;) {
        if (target_check_requested()) {
            parent_check(m);
            target_report();
        }
        target_sleep_ms(10);
    }
}
