/*
 * memfd target: a sealed memfd held only by an fd (not mapped).
 *
 *   fd 40  memfd_create("cryo-test", MFD_ALLOW_SEALING), 100 KiB of pattern, offset 1234,
 *          seals F_SEAL_SHRINK | F_SEAL_GROW
 *
 * Check: fd 40 is /memfd:cryo-test (deleted), O_RDWR, not close-on-exec; it is 100 KiB long
 * with the pattern throughout (pread, which leaves the offset alone); the offset is 1234 and a
 * read there gives the pattern bytes from 1234 (offset put back afterwards); F_GET_SEALS is
 * exactly SHRINK|GROW; ftruncate to 0 and to 200 KiB, and a write past the end, are refused
 * with EPERM, and the size stays; a write inside the file is allowed (the same byte is
 * written back, so nothing changes).
 */
#include "target.h"

#include <sys/mman.h>
#include <sys/stat.h>

#define MEMFD 40
#define SIZE (100 * 1024)
#define OFFSET 1234
#define NAME "cryo-test"
#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 11 + 7 + (i >> 9));
}

static void check(void)
{
    char link[256];
    ssize_t n = target_fd_link(MEMFD, link, sizeof link);
    if (n < 0) {
        target_fail("fd %d is not open: %s", MEMFD, strerror(errno));
        return;
    }
    if (strcmp(link, "/memfd:" NAME " (deleted)") != 0)
        target_fail("fd %d is %s, expected /memfd:" NAME " (deleted)", MEMFD, link);

    int fl = fcntl(MEMFD, F_GETFL), fdfl = fcntl(MEMFD, F_GETFD);
    if ((fl & O_ACCMODE) != O_RDWR)
        target_fail("fd %d access mode %d, expected O_RDWR", MEMFD, fl & O_ACCMODE);
    if (fdfl & FD_CLOEXEC)
        target_fail("fd %d became close-on-exec", MEMFD);

    struct stat st;
    if (fstat(MEMFD, &st) != 0) {
        target_fail("fstat %d: %s", MEMFD, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode) || st.st_size != SIZE)
        target_fail("fd %d: mode %o size %lld, expected a regular file of %d bytes", MEMFD,
                    (unsigned)st.st_mode, (long long)st.st_size, SIZE);

    static unsigned char buf[SIZE + 16];
    n = pread(MEMFD, buf, sizeof buf, 0);
    if (n != SIZE)
        target_fail("pread of the memfd gave %zd bytes (%s), expected %d", n,
                    n < 0 ? strerror(errno) : "short", SIZE);
    else
        for (size_t i = 0; i < SIZE; i++)
            if (buf[i] != pattern(i)) {
                target_fail("memfd byte %zu is %#x, expected %#x", i, buf[i], pattern(i));
                break;
            }

    target_check_read_at(MEMFD, "the memfd", OFFSET, pattern);

    int seals = fcntl(MEMFD, F_GET_SEALS);
    if (seals != SEALS)
        target_fail("F_GET_SEALS is %#x (%s), expected %#x (SHRINK|GROW)", seals,
                    seals < 0 ? strerror(errno) : "", SEALS);

    if (ftruncate(MEMFD, 0) != -1 || errno != EPERM)
        target_fail("ftruncate(%d, 0) was not refused with EPERM (%s)", MEMFD, strerror(errno));
    if (ftruncate(MEMFD, 2 * SIZE) != -1 || errno != EPERM)
        target_fail("ftruncate(%d, %d) was not refused with EPERM (%s)", MEMFD, 2 * SIZE, strerror(errno));
    unsigned char b = pattern(SIZE);
    if (pwrite(MEMFD, &b, 1, SIZE) != -1 || errno != EPERM)
        target_fail("a write past the end of the memfd was not refused with EPERM (%s)", strerror(errno));
    b = pattern(100);
    if (pwrite(MEMFD, &b, 1, 100) != 1)
        target_fail("a write inside the memfd failed: %s", strerror(errno));
    if (fstat(MEMFD, &st) == 0 && st.st_size != SIZE)
        target_fail("the memfd is %lld bytes after the refused resizes", (long long)st.st_size);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    int fd = memfd_create(NAME, MFD_ALLOW_SEALING);
    if (fd < 0)
        target_die("memfd_create: %s", strerror(errno));
    if (dup2(fd, MEMFD) != MEMFD)
        target_die("dup2: %s", strerror(errno));
    close(fd);
    static unsigned char buf[SIZE];
    for (size_t i = 0; i < SIZE; i++)
        buf[i] = pattern(i);
    if (write(MEMFD, buf, SIZE) != SIZE)
        target_die("write memfd: %s", strerror(errno));
    if (lseek(MEMFD, OFFSET, SEEK_SET) != OFFSET)
        target_die("lseek: %s", strerror(errno));
    if (fcntl(MEMFD, F_ADD_SEALS, SEALS) != 0)
        target_die("F_ADD_SEALS: %s", strerror(errno));

    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check();
            target_report();
        }
        target_sleep_ms(10);
    }
}
