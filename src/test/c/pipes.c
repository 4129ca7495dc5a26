/*
 * Pipes target: pipes with data in flight, inside one process and between two.
 *
 *   pipe a  both ends in the parent: fd 20 (read end, O_NONBLOCK) and fd 21 (write end);
 *           F_SETPIPE_SZ 256 KiB; holds "alpha\n", "beta\n" and 5000 bytes of pattern.
 *   pipe b  parent -> child: the parent holds the write end at fd 22, the child the read end
 *           at fd 22; 1000 bytes of pattern in flight.
 *   pipe c  child -> parent: the child holds the write end at fd 23, the parent the read end
 *           at fd 23; 777 bytes of pattern in flight.
 * The parent and the child talk through a shared anonymous page: the parent posts a command,
 * the child runs it on its own ends of the pipes and answers.
 *
 * Check (by the parent, on SIGUSR2). Pipes get new inodes when restored, so identity is
 * checked between fds (at check time), never against inode numbers recorded at start:
 *   - pipes a, b and c are three different pipes;
 *   - fds 20 and 21 are the two ends of one pipe (fstat: FIFO, same st_dev/st_ino), with access
 *     modes O_RDONLY/O_WRONLY, O_NONBLOCK on fd 20 only; F_GETPIPE_SZ is 256 KiB on both;
 *     FIONREAD shows exactly the bytes in flight; reading them all out (until EAGAIN, which
 *     proves O_NONBLOCK works) gives exactly those bytes in order; a probe byte written to 21
 *     comes out of 20; the bytes are then written back, so the next check finds the same state.
 *   - pipe b: the parent's fd 22 and the child's fd 22 are the same pipe (same st_dev/st_ino),
 *     the read end O_RDONLY in the child; the child sees exactly 1000 bytes queued, reads and
 *     verifies them; a probe byte the parent writes reaches the child; the parent writes the
 *     1000 bytes back and the child sees 1000 bytes queued again.
 *   - pipe c: same st_dev/st_ino on both sides, the write end O_WRONLY in the child; the parent
 *     sees exactly 777 bytes queued, reads and verifies them; a probe byte the child writes
 *     reaches the parent; the child writes the 777 bytes back and the parent sees 777 queued
 *     again.
 *   - the child is alive (answers), still the parent's child, and its heartbeat moves.
 * The parent reaps its child if it dies, so a test's clean-up that kills the child first
 * leaves no zombie.
 */
#include "target.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define A_READ 20
#define A_WRITE 21
#define B_FD 22 /* parent: write end; child: read end */
#define C_FD 23 /* parent: read end; child: write end */

#define A_PIPE_SIZE (256 * 1024)
#define A_PATTERN_LEN 5000
#define B_LEN 1000
#define C_LEN 777
#define CHILD_TIMEOUT_MS 1500

static const char msg1[] = "alpha\n";
static const char msg2[] = "beta\n";
#define A_LEN (sizeof msg1 - 1 + sizeof msg2 - 1 + A_PATTERN_LEN)

enum command {
    CMD_NONE,
    CMD_IDENTITY,   /* child: its fds 22 and 23 are pipes b and c, right modes */
    CMD_DRAIN_B,    /* child: exactly B_LEN bytes queued in b; read and verify them */
    CMD_PROBE_B,    /* child: read the one probe byte from b */
    CMD_COUNT_B,    /* child: exactly B_LEN bytes queued in b */
    CMD_PROBE_C,    /* child: write one probe byte into c */
    CMD_FILL_C,     /* child: write the C_LEN pattern bytes into c */
};

struct shared {
    volatile int command;
    volatile unsigned seq;      /* parent bumps it to post a command */
    volatile unsigned done;     /* child copies seq when the command is done */
    volatile int failed;        /* the child's answer: 0 ok, else reason holds why */
    char reason[256];
    volatile unsigned long heartbeat;
    pid_t parent, child;
    dev_t b_dev, c_dev; /* the parent's pipes b and c, as fstat shows them at this check */
    ino_t b_ino, c_ino;
};
static struct shared *sh;

static unsigned char a_expected[A_LEN];
static struct stat a_stat; /* the parent's fd 20, as fstat shows it at this check */

static unsigned char pattern(unsigned seed, size_t i)
{
    return (unsigned char)(i * 31 + seed + (i >> 7));
}

static int read_exact(int fd, void *buf, size_t len)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

static int queued(int fd)
{
    int n = -1;
    if (ioctl(fd, FIONREAD, &n) != 0)
        return -1;
    return n;
}

/* ---- the child ---------------------------------------------------------------------- */

static void child_fail(const char *fmt, ...)
{
    if (sh->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sh->reason, sizeof sh->reason, fmt, ap);
    va_end(ap);
    sh->failed = 1;
}

static void child_check_end(int fd, const char *what, dev_t dev, ino_t ino, int accmode)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        child_fail("child: fd %d (%s) is not open: %s", fd, what, strerror(errno));
        return;
    }
    if (!S_ISFIFO(st.st_mode) || st.st_dev != dev || st.st_ino != ino)
        child_fail("child: fd %d is not %s any more (ino %lu, expected %lu)", fd, what,
                   (unsigned long)st.st_ino, (unsigned long)ino);
    int fl = fcntl(fd, F_GETFL);
    if ((fl & O_ACCMODE) != accmode || (fl & O_NONBLOCK))
        child_fail("child: fd %d (%s) flags %#x", fd, what, fl);
}

static void child_run(int command)
{
    unsigned char buf[B_LEN > C_LEN ? B_LEN : C_LEN];
    int n;
    switch (command) {
    case CMD_IDENTITY:
        child_check_end(B_FD, "the read end of pipe b", sh->b_dev, sh->b_ino, O_RDONLY);
        child_check_end(C_FD, "the write end of pipe c", sh->c_dev, sh->c_ino, O_WRONLY);
        break;
    case CMD_DRAIN_B:
        if ((n = queued(B_FD)) != B_LEN) {
            child_fail("child: pipe b holds %d bytes, expected %d", n, B_LEN);
            break;
        }
        if (read_exact(B_FD, buf, B_LEN) != 0) {
            child_fail("child: reading pipe b: %s", strerror(errno));
            break;
        }
        for (size_t i = 0; i < B_LEN; i++)
            if (buf[i] != pattern(2, i)) {
                child_fail("child: pipe b byte %zu is %#x, expected %#x", i, buf[i], pattern(2, i));
                break;
            }
        if ((n = queued(B_FD)) != 0)
            child_fail("child: pipe b still holds %d bytes after reading %d", n, B_LEN);
        break;
    case CMD_PROBE_B:
        if (read_exact(B_FD, buf, 1) != 0 || buf[0] != 'p')
            child_fail("child: the probe byte did not come through pipe b");
        break;
    case CMD_COUNT_B:
        if ((n = queued(B_FD)) != B_LEN)
            child_fail("child: pipe b holds %d bytes after the write-back, expected %d", n, B_LEN);
        break;
    case CMD_PROBE_C:
        if (target_write_all(C_FD, "q", 1) != 0)
            child_fail("child: writing the probe byte into pipe c: %s", strerror(errno));
        break;
    case CMD_FILL_C:
        for (size_t i = 0; i < C_LEN; i++)
            buf[i] = pattern(3, i);
        if (target_write_all(C_FD, buf, C_LEN) != 0)
            child_fail("child: writing pipe c: %s", strerror(errno));
        break;
    default:
        child_fail("child: unknown command %d", command);
    }
}

static void child_main(void)
{
    signal(SIGUSR2, SIG_IGN);
    unsigned seen = sh->seq;
    for (;;) {
        if (getppid() != sh->parent)
            _exit(0); /* the parent is gone: do not linger */
        sh->heartbeat++;
        unsigned seq = sh->seq;
        if (seq != seen) {
            seen = seq;
            sh->failed = 0;
            sh->reason[0] = '\0';
            child_run(sh->command);
            __atomic_store_n(&sh->done, seq, __ATOMIC_SEQ_CST);
        }
        target_sleep_ms(1);
    }
}

/* ---- the parent --------------------------------------------------------------------- */

static int child_gone; /* set once the child is found dead: no more questions this check */

/* True if the child has ended (it is left a zombie, not reaped). */
static int child_ended(void)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, sh->child, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
        return 1; /* not our child at all */
    return info.si_pid == sh->child;
}

/* Posts a command and waits for the child's answer. Returns 0 if the child says it went well. */
static int ask_child(int command, const char *what)
{
    if (child_gone)
        return -1;
    sh->command = command;
    unsigned seq = sh->seq + 1;
    __atomic_store_n(&sh->seq, seq, __ATOMIC_SEQ_CST);
    uint64_t deadline = target_now_ns() + (uint64_t)CHILD_TIMEOUT_MS * 1000000u;
    while (__atomic_load_n(&sh->done, __ATOMIC_SEQ_CST) != seq) {
        if (child_ended()) {
            child_gone = 1;
            return target_fail("child %d is dead or not our child (asked to %s)", (int)sh->child, what);
        }
        if (target_now_ns() > deadline) {
            child_gone = 1;
            return target_fail("child %d did not answer \"%s\" within %d ms", (int)sh->child, what,
                               CHILD_TIMEOUT_MS);
        }
        target_sleep_ms(1);
    }
    if (sh->failed)
        return target_fail("%s", sh->reason);
    return 0;
}

static int check_pipe_end(int fd, const char *what, dev_t dev, ino_t ino, int accmode, int nonblock)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return target_fail("fd %d (%s) is not open: %s", fd, what, strerror(errno));
    if (!S_ISFIFO(st.st_mode))
        return target_fail("fd %d (%s) is not a pipe (mode %o)", fd, what, (unsigned)st.st_mode);
    if (st.st_dev != dev || st.st_ino != ino)
        return target_fail("fd %d (%s) is another pipe now: ino %lu, expected %lu", fd, what,
                           (unsigned long)st.st_ino, (unsigned long)ino);
    int fl = fcntl(fd, F_GETFL);
    if ((fl & O_ACCMODE) != accmode)
        return target_fail("fd %d (%s) access mode %d, expected %d", fd, what, fl & O_ACCMODE, accmode);
    if (((fl & O_NONBLOCK) != 0) != nonblock)
        return target_fail("fd %d (%s) O_NONBLOCK is %d, expected %d", fd, what,
                           (fl & O_NONBLOCK) != 0, nonblock);
    return 0;
}

static void check_pipe_a(void)
{
    if (check_pipe_end(A_READ, "pipe a read end", a_stat.st_dev, a_stat.st_ino, O_RDONLY, 1) != 0 ||
        check_pipe_end(A_WRITE, "pipe a write end", a_stat.st_dev, a_stat.st_ino, O_WRONLY, 0) != 0)
        return;
    int size = fcntl(A_READ, F_GETPIPE_SZ), wsize = fcntl(A_WRITE, F_GETPIPE_SZ);
    if (size != A_PIPE_SIZE || wsize != A_PIPE_SIZE)
        target_fail("pipe a F_GETPIPE_SZ is %d (read end) / %d (write end), expected %d", size,
                    wsize, A_PIPE_SIZE);
    int n = queued(A_READ);
    if (n != (int)A_LEN) {
        target_fail("pipe a holds %d bytes, expected %zu", n, A_LEN);
        return;
    }
    /* Read everything there is: the read end is non-blocking, so this ends with EAGAIN. */
    static unsigned char got[A_LEN + 4096];
    size_t total = 0;
    for (;;) {
        ssize_t r = read(A_READ, got + total, sizeof got - total);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            break;
        if (r <= 0) {
            target_fail("reading pipe a: %zd (%s)", r, r < 0 ? strerror(errno) : "end of file");
            break;
        }
        total += (size_t)r;
        if (total == sizeof got)
            break;
    }
    if (total != A_LEN)
        target_fail("pipe a gave %zu bytes, expected %zu", total, A_LEN);
    else
        for (size_t i = 0; i < A_LEN; i++)
            if (got[i] != a_expected[i]) {
                target_fail("pipe a byte %zu is %#x, expected %#x", i, got[i], a_expected[i]);
                break;
            }
    /* The write end still works: a probe byte goes through, and nothing else follows. */
    unsigned char probe = 0;
    if (target_write_all(A_WRITE, "P", 1) != 0)
        target_fail("writing the probe byte into pipe a: %s", strerror(errno));
    else if (read(A_READ, &probe, 1) != 1 || probe != 'P')
        target_fail("the probe byte did not come out of pipe a (%s)", strerror(errno));
    else if (read(A_READ, &probe, 1) != -1 || errno != EAGAIN)
        target_fail("pipe a not empty after the probe, or its read end blocks");
    /* Put the state back for the next check. */
    if (target_write_all(A_WRITE, a_expected, A_LEN) != 0)
        target_fail("writing pipe a back: %s", strerror(errno));
}

static void check_pipe_b(void)
{
    if (check_pipe_end(B_FD, "pipe b write end", sh->b_dev, sh->b_ino, O_WRONLY, 0) != 0)
        return;
    if (ask_child(CMD_DRAIN_B, "read pipe b") != 0)
        return;
    if (target_write_all(B_FD, "p", 1) != 0)
        target_fail("writing the probe byte into pipe b: %s", strerror(errno));
    else
        ask_child(CMD_PROBE_B, "read the probe byte of pipe b");
    unsigned char buf[B_LEN];
    for (size_t i = 0; i < B_LEN; i++)
        buf[i] = pattern(2, i);
    if (target_write_all(B_FD, buf, B_LEN) != 0)
        target_fail("writing pipe b back: %s", strerror(errno));
    else
        ask_child(CMD_COUNT_B, "count pipe b");
}

static void check_pipe_c(void)
{
    if (check_pipe_end(C_FD, "pipe c read end", sh->c_dev, sh->c_ino, O_RDONLY, 0) != 0)
        return;
    int n = queued(C_FD);
    if (n != C_LEN) {
        target_fail("pipe c holds %d bytes, expected %d", n, C_LEN);
        return;
    }
    unsigned char buf[C_LEN];
    if (read_exact(C_FD, buf, C_LEN) != 0) {
        target_fail("reading pipe c: %s", strerror(errno));
        return;
    }
    for (size_t i = 0; i < C_LEN; i++)
        if (buf[i] != pattern(3, i)) {
            target_fail("pipe c byte %zu is %#x, expected %#x", i, buf[i], pattern(3, i));
            break;
        }
    if ((n = queued(C_FD)) != 0)
        target_fail("pipe c still holds %d bytes after reading %d", n, C_LEN);
    if (ask_child(CMD_PROBE_C, "write a probe byte into pipe c") == 0) {
        unsigned char probe = 0;
        if (read_exact(C_FD, &probe, 1) != 0 || probe != 'q')
            target_fail("the child's probe byte did not come out of pipe c");
    }
    if (ask_child(CMD_FILL_C, "write pipe c back") == 0 && (n = queued(C_FD)) != C_LEN)
        target_fail("pipe c holds %d bytes after the write-back, expected %d", n, C_LEN);
}

/* Records what the parent's fds 20, 22 and 23 are now; they must be three different pipes. */
static int identify(void)
{
    struct stat b, c;
    if (fstat(A_READ, &a_stat) != 0 || fstat(B_FD, &b) != 0 || fstat(C_FD, &c) != 0)
        return target_fail("fstat of fds %d, %d and %d: %s", A_READ, B_FD, C_FD, strerror(errno));
    if (!S_ISFIFO(a_stat.st_mode) || !S_ISFIFO(b.st_mode) || !S_ISFIFO(c.st_mode))
        return target_fail("fds %d, %d and %d are not all pipes (modes %o %o %o)", A_READ, B_FD, C_FD,
                           (unsigned)a_stat.st_mode, (unsigned)b.st_mode, (unsigned)c.st_mode);
    if (a_stat.st_ino == b.st_ino || a_stat.st_ino == c.st_ino || b.st_ino == c.st_ino)
        return target_fail("fds %d, %d and %d are not three different pipes (inodes %lu %lu %lu)", A_READ,
                           B_FD, C_FD, (unsigned long)a_stat.st_ino, (unsigned long)b.st_ino,
                           (unsigned long)c.st_ino);
    sh->b_dev = b.st_dev;
    sh->b_ino = b.st_ino;
    sh->c_dev = c.st_dev;
    sh->c_ino = c.st_ino;
    return 0;
}

static void check(void)
{
    unsigned long beat = sh->heartbeat;
    child_gone = 0;
    if (identify() != 0)
        return;
    ask_child(CMD_IDENTITY, "check its fds");
    check_pipe_a();
    check_pipe_b();
    check_pipe_c();
    target_sleep_ms(20);
    if (child_ended())
        target_fail("child %d is dead or not our child", (int)sh->child);
    else if (sh->heartbeat == beat)
        target_fail("the child's heartbeat did not move");
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    /* A write into a pipe whose reader died must fail the check, not kill the target. */
    signal(SIGPIPE, SIG_IGN);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        target_die("mmap: %s", strerror(errno));
    sh->parent = getpid();

    int pb[2], pc[2];
    if (pipe(pb) != 0 || pipe(pc) != 0)
        target_die("pipe: %s", strerror(errno));
    pid_t child = fork();
    if (child < 0)
        target_die("fork: %s", strerror(errno));
    if (child == 0) {
        if (dup2(pb[0], B_FD) != B_FD || dup2(pc[1], C_FD) != C_FD)
            target_die("child dup2: %s", strerror(errno));
        close(pb[0]);
        close(pb[1]);
        close(pc[0]);
        close(pc[1]);
        signal(SIGPIPE, SIG_DFL);
        unsigned char buf[C_LEN];
        for (size_t i = 0; i < C_LEN; i++)
            buf[i] = pattern(3, i);
        if (target_write_all(C_FD, buf, C_LEN) != 0)
            target_die("child writing pipe c: %s", strerror(errno));
        sh->child = getpid();
        child_main();
    }
    if (dup2(pb[1], B_FD) != B_FD || dup2(pc[0], C_FD) != C_FD)
        target_die("dup2: %s", strerror(errno));
    close(pb[0]);
    close(pb[1]);
    close(pc[0]);
    close(pc[1]);
    unsigned char buf[B_LEN];
    for (size_t i = 0; i < B_LEN; i++)
        buf[i] = pattern(2, i);
    if (target_write_all(B_FD, buf, B_LEN) != 0)
        target_die("writing pipe b: %s", strerror(errno));

    /* Pipe a, made after the fork so the child holds none of it. */
    target_pipe_at(A_READ, A_WRITE);
    if (fcntl(A_WRITE, F_SETPIPE_SZ, A_PIPE_SIZE) != A_PIPE_SIZE)
        target_die("F_SETPIPE_SZ: %s", strerror(errno));
    if (fcntl(A_READ, F_SETFL, fcntl(A_READ, F_GETFL) | O_NONBLOCK) != 0)
        target_die("F_SETFL: %s", strerror(errno));
    size_t off = 0;
    memcpy(a_expected, msg1, sizeof msg1 - 1);
    off += sizeof msg1 - 1;
    memcpy(a_expected + off, msg2, sizeof msg2 - 1);
    off += sizeof msg2 - 1;
    for (size_t i = 0; i < A_PATTERN_LEN; i++)
        a_expected[off + i] = pattern(1, i);
    /* Three writes, three messages. */
    if (target_write_all(A_WRITE, msg1, sizeof msg1 - 1) != 0 ||
        target_write_all(A_WRITE, msg2, sizeof msg2 - 1) != 0 ||
        target_write_all(A_WRITE, a_expected + off, A_PATTERN_LEN) != 0)
        target_die("writing pipe a: %s", strerror(errno));

    /* Ready once the child is up and its bytes are in pipe c. */
    uint64_t deadline = target_now_ns() + 5000000000u;
    while (sh->child == 0 || queued(C_FD) != C_LEN) {
        if (target_now_ns() > deadline)
            target_die("child did not start");
        target_sleep_ms(1);
    }
    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check();
            target_report();
        }
        /* A child that died (killed by a test's clean-up, say) is reaped, so no zombie is left
         * behind to be orphaned; the next check then finds it gone. */
        int status;
        waitpid(-1, &status, WNOHANG);
        target_sleep_ms(10);
    }
}
