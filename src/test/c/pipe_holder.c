/*
 * Pipe holder target: keeps both ends of a pipe open at fixed numbers, with a message sitting
 * unread in it, a userfaultfd of its own at fd 12, and a counter that keeps moving. Cryo cannot
 * save an application's userfaultfd, so a checkpoint of
 * this target must be refused; the test then asks it whether the refused attempt disturbed it.
 *
 * Check: the set of open fds is exactly the one at start; fds 10 (read end) and 11 (write end)
 * are still the same pipe, with their flags; the message written at start is still in the pipe,
 * whole and in order (read out, compared, written back); a byte written now comes out after
 * it; a buffer filled at start still holds its pattern; the counter (in .bss and on the stack)
 * agrees with itself and moved since the previous check.
 */
#include "target.h"

#include <sys/ioctl.h>
#include <sys/stat.h>

#define READ_FD 10
#define WRITE_FD 11
#define BUF_SIZE (256 * 1024)

static const char message[] = "still here after the refused checkpoint";
#define MESSAGE_LEN (sizeof message - 1)

static volatile uint64_t counter;
static uint64_t counter_at_last_check;
static struct stat pipe_stat;       /* identity of the pipe at start */
static int read_flags, write_flags; /* F_GETFL of each end at start */
static unsigned char buffer[BUF_SIZE];
static unsigned char open_at_start[TARGET_FDS];

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 13 + 5 + (i >> 10));
}

static void check_end(int fd, const char *what, int flags)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        target_fail("pipe %s fd %d is not open: %s", what, fd, strerror(errno));
        return;
    }
    if (!S_ISFIFO(st.st_mode) || st.st_dev != pipe_stat.st_dev || st.st_ino != pipe_stat.st_ino)
        target_fail("fd %d is no longer the pipe's %s end", fd, what);
    int now = fcntl(fd, F_GETFL);
    if (now != flags)
        target_fail("pipe %s fd %d flags %#x, expected %#x", what, fd, now, flags);
}

/* Takes the message out of the pipe, compares it, and puts it back for the next check. */
static void check_pipe(void)
{
    int queued = -1;
    if (ioctl(READ_FD, FIONREAD, &queued) != 0) {
        target_fail("FIONREAD on fd %d: %s", READ_FD, strerror(errno));
        return;
    }
    if (queued != (int)MESSAGE_LEN) {
        target_fail("pipe holds %d bytes, expected the %zu of the message", queued, MESSAGE_LEN);
        return;
    }
    char got[MESSAGE_LEN + 2];
    if (write(WRITE_FD, "!", 1) != 1) {
        target_fail("write to pipe fd %d: %s", WRITE_FD, strerror(errno));
        return;
    }
    ssize_t n = read(READ_FD, got, MESSAGE_LEN + 1);
    if (n != (ssize_t)MESSAGE_LEN + 1) {
        target_fail("read %zd bytes from pipe fd %d, expected %zu", n, READ_FD, MESSAGE_LEN + 1);
        return;
    }
    if (memcmp(got, message, MESSAGE_LEN) != 0 || got[MESSAGE_LEN] != '!')
        target_fail("pipe gave \"%.*s\", expected \"%s!\"", (int)n, got, message);
    if (write(WRITE_FD, message, MESSAGE_LEN) != (ssize_t)MESSAGE_LEN)
        target_fail("putting the message back into the pipe: %s", strerror(errno));
}

static void check(uint64_t stack_counter)
{
    uint64_t now = counter;
    if (stack_counter != now)
        target_fail("counter in .bss is %llu but on the stack %llu", (unsigned long long)now,
                    (unsigned long long)stack_counter);
    if (now <= counter_at_last_check)
        target_fail("counter %llu did not move since last check (%llu)",
                    (unsigned long long)now, (unsigned long long)counter_at_last_check);
    counter_at_last_check = now;

    target_check_open_fds(open_at_start);

    check_end(READ_FD, "read", read_flags);
    check_end(WRITE_FD, "write", write_flags);
    check_pipe();

    for (size_t i = 0; i < BUF_SIZE; i++)
        if (buffer[i] != pattern(i)) {
            target_fail("buffer byte %zu is %#x, expected %#x", i, buffer[i], pattern(i));
            break;
        }
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    target_pipe_at(READ_FD, WRITE_FD);
    target_hold_unsupported_fd(12);
    if (fstat(READ_FD, &pipe_stat) != 0)
        target_die("fstat pipe: %s", strerror(errno));
    read_flags = fcntl(READ_FD, F_GETFL);
    write_flags = fcntl(WRITE_FD, F_GETFL);
    if (write(WRITE_FD, message, MESSAGE_LEN) != (ssize_t)MESSAGE_LEN)
        target_die("write to pipe: %s", strerror(errno));
    for (size_t i = 0; i < BUF_SIZE; i++)
        buffer[i] = pattern(i);
    if (target_list_fds(open_at_start, sizeof open_at_start) != 0)
        target_die("%s", target_fail_reason);

    target_count_forever(&counter, check);
}
