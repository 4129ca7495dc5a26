/*
 * Counter target: counts once per 10 ms and writes each count to STATE/count with pwrite at
 * offset 0, through one fd opened at start. The test can also watch STATE/count move.
 *
 * Check: the fd still refers to STATE/count, read-write, with its file offset untouched (0);
 * the file holds the in-memory count (or one less); the copy of the count on the stack agrees
 * with the global one; the count moved since the previous check.
 */
#include "target.h"

#include <sys/stat.h>

static volatile uint64_t count;
static uint64_t count_at_last_check;
static int count_fd = -1;
static struct stat count_stat; /* identity of STATE/count at start */
static int io_errno;           /* first unexpected errno from pwrite or nanosleep */

static void publish(void)
{
    char text[32];
    int len = snprintf(text, sizeof text, "%llu\n", (unsigned long long)count);
    /* Counts only grow, so each write covers the previous, shorter-or-equal, one. */
    if (pwrite(count_fd, text, (size_t)len, 0) != len && io_errno == 0)
        io_errno = errno ? errno : EIO;
}

static void check(uint64_t stack_count)
{
    uint64_t now = count;
    if (io_errno != 0)
        target_fail("pwrite or nanosleep failed with errno %d (%s)", io_errno,
                    strerror(io_errno));
    if (stack_count != now)
        target_fail("count in .bss is %llu but on the stack %llu", (unsigned long long)now,
                    (unsigned long long)stack_count);
    if (now <= count_at_last_check)
        target_fail("count %llu did not move since last check (%llu)",
                    (unsigned long long)now, (unsigned long long)count_at_last_check);
    count_at_last_check = now;

    struct stat st;
    if (fstat(count_fd, &st) != 0) {
        target_fail("fstat(count fd %d): %s", count_fd, strerror(errno));
        return;
    }
    if (st.st_dev != count_stat.st_dev || st.st_ino != count_stat.st_ino)
        target_fail("count fd %d now refers to another file", count_fd);
    int fl = fcntl(count_fd, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) != O_RDWR)
        target_fail("count fd %d flags are %#x, expected O_RDWR", count_fd, fl);
    off_t pos = lseek(count_fd, 0, SEEK_CUR);
    if (pos != 0)
        target_fail("count fd offset is %lld, expected 0 (only pwrite is used)",
                    (long long)pos);

    char text[64];
    ssize_t n = pread(count_fd, text, sizeof text - 1, 0);
    if (n <= 0) {
        target_fail("pread of STATE/count returned %zd", n);
        return;
    }
    text[n] = '\0';
    unsigned long long in_file = strtoull(text, NULL, 10);
    if (in_file != now && in_file + 1 != now)
        target_fail("STATE/count holds %llu but memory %llu", in_file,
                    (unsigned long long)now);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    char path[PATH_MAX];
    target_path(path, "count");
    count_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (count_fd < 0 || fstat(count_fd, &count_stat) != 0)
        target_die("open %s: %s", path, strerror(errno));

    uint64_t stack_count = 0;
    count++;
    stack_count++;
    publish();
    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check(stack_count);
            target_report();
        }
        /* An interrupted sleep (a check request, a checkpoint) just ends this tick early. */
        struct timespec ts = { 0, 10 * 1000000L };
        if (nanosleep(&ts, NULL) != 0 && errno != EINTR && io_errno == 0)
            io_errno = errno;
        count++;
        stack_count++;
        publish();
    }
}
