/*
 * Deleted-file and O_PATH target.
 *
 *   fd 50  STATE/gone.txt opened O_RDWR, 20 KiB of pattern written, offset 4321, then the file
 *          unlinked: open but deleted
 *   fd 51  O_PATH on the STATE directory
 *   fd 52  O_PATH on /etc/hostname
 *
 * Check:
 *   - fd 50 is a regular file with no links left (st_nlink 0), 20 KiB long, with the same
 *     st_dev as STATE had; /proc/self/fd/50 ends with " (deleted)" (the name before it is not
 *     checked: a restore may recreate the file under another name before unlinking it); STATE/gone.txt
 *     does not exist and STATE holds nothing but the files of the test protocol (nothing was
 *     left behind by the restore under any name); access mode O_RDWR; offset
 *     4321 and reading there gives the pattern (offset put back); the whole content is the
 *     pattern (pread); a write works (the same byte written back).
 *   - fds 51 and 52: F_GETFL has O_PATH; fstat works and gives the st_dev/st_ino recorded with
 *     stat() of the path at start; /proc/self/fd/N names that path; read() on them fails with
 *     EBADF (as it must on an O_PATH fd); fd 51 works as a directory fd (fstatat "ready").
 */
#include "target.h"

#include <dirent.h>
#include <sys/stat.h>

#define GONE_FD 50
#define DIR_PATH_FD 51
#define FILE_PATH_FD 52
#define SIZE (20 * 1024)
#define OFFSET 4321
#define OTHER_FILE "/etc/hostname"

static char gone_path[PATH_MAX];
static dev_t state_dev;

struct path_fd {
    int fd;
    char path[PATH_MAX];
    dev_t dev;
    ino_t ino;
};
static struct path_fd path_fds[2];

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 17 + 1 + (i >> 8));
}

static int check_link(int fd, const char *expected)
{
    char link[PATH_MAX + 32];
    if (target_fd_link(fd, link, sizeof link) < 0)
        return target_fail("fd %d is not open: %s", fd, strerror(errno));
    if (strcmp(link, expected) != 0)
        return target_fail("fd %d is \"%s\", expected \"%s\"", fd, link, expected);
    return 0;
}

static void check_deleted(void)
{
    char link[PATH_MAX + 32];
    static const char suffix[] = " (deleted)";
    ssize_t len = target_fd_link(GONE_FD, link, sizeof link);
    if (len < 0) {
        target_fail("fd %d is not open: %s", GONE_FD, strerror(errno));
        return;
    }
    if ((size_t)len < sizeof suffix || strcmp(link + len - (sizeof suffix - 1), suffix) != 0)
        target_fail("fd %d is \"%s\", which does not end with \"%s\"", GONE_FD, link, suffix);
    struct stat st;
    if (fstat(GONE_FD, &st) != 0) {
        target_fail("fstat %d: %s", GONE_FD, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode) || st.st_nlink != 0 || st.st_size != SIZE)
        target_fail("fd %d: mode %o, %lu links, size %lld; expected a deleted regular file of %d bytes",
                    GONE_FD, (unsigned)st.st_mode, (unsigned long)st.st_nlink, (long long)st.st_size, SIZE);
    if (st.st_dev != state_dev)
        target_fail("fd %d is on device %lx, STATE on %lx", GONE_FD, (unsigned long)st.st_dev,
                    (unsigned long)state_dev);
    if (access(gone_path, F_OK) == 0)
        target_fail("%s exists again", gone_path);
    int fl = fcntl(GONE_FD, F_GETFL);
    if ((fl & O_ACCMODE) != O_RDWR)
        target_fail("fd %d access mode %d, expected O_RDWR", GONE_FD, fl & O_ACCMODE);

    target_check_read_at(GONE_FD, "the deleted file", OFFSET, pattern);

    static unsigned char buf[SIZE + 16];
    ssize_t n = pread(GONE_FD, buf, sizeof buf, 0);
    if (n != SIZE)
        target_fail("pread of fd %d gave %zd bytes (%s), expected %d", GONE_FD, n,
                    n < 0 ? strerror(errno) : "short", SIZE);
    else
        for (size_t i = 0; i < SIZE; i++)
            if (buf[i] != pattern(i)) {
                target_fail("deleted file byte %zu is %#x, expected %#x", i, buf[i], pattern(i));
                break;
            }
    unsigned char b = pattern(10);
    if (pwrite(GONE_FD, &b, 1, 10) != 1)
        target_fail("writing to fd %d: %s", GONE_FD, strerror(errno));
}

/* STATE holds only what the protocol puts there: no file left behind by a restore. */
static void check_state_dir(void)
{
    static const char *const known[] = { "ready", "result", "pid", "out.log", "launch.log" };
    DIR *d = opendir(target_state);
    if (d == NULL) {
        target_fail("opendir %s: %s", target_state, strerror(errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strncmp(n, ".ready.", 7) || !strncmp(n, ".result.", 8))
            continue; /* the temporary names of target_write_file */
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (!strcmp(n, known[i]))
                ok = 1;
        if (!ok)
            target_fail("%s/%s appeared (left behind by a restore?)", target_state, n);
    }
    closedir(d);
}

static void check_path_fd(const struct path_fd *p)
{
    if (check_link(p->fd, p->path) != 0)
        return;
    int fl = fcntl(p->fd, F_GETFL);
    if (fl < 0 || !(fl & O_PATH))
        target_fail("fd %d (%s) flags %#x lack O_PATH", p->fd, p->path, fl);
    struct stat st;
    if (fstat(p->fd, &st) != 0)
        target_fail("fstat of O_PATH fd %d (%s): %s", p->fd, p->path, strerror(errno));
    else if (st.st_dev != p->dev || st.st_ino != p->ino)
        target_fail("fd %d is dev %lx ino %lu, but %s was dev %lx ino %lu", p->fd,
                    (unsigned long)st.st_dev, (unsigned long)st.st_ino, p->path, (unsigned long)p->dev,
                    (unsigned long)p->ino);
    char c;
    if (read(p->fd, &c, 1) != -1 || errno != EBADF)
        target_fail("read() on O_PATH fd %d (%s) did not fail with EBADF (%s)", p->fd, p->path,
                    strerror(errno));
}

static void check(void)
{
    check_deleted();
    check_state_dir();
    check_path_fd(&path_fds[0]);
    check_path_fd(&path_fds[1]);
    struct stat st;
    if (fstatat(DIR_PATH_FD, "ready", &st, 0) != 0)
        target_fail("fstatat(%d, \"ready\"): %s", DIR_PATH_FD, strerror(errno));
}

static void open_path(int which, int where, const char *path)
{
    struct path_fd *p = &path_fds[which];
    struct stat st;
    int fd = open(path, O_PATH);
    if (fd < 0 || stat(path, &st) != 0)
        target_die("O_PATH %s: %s", path, strerror(errno));
    if (dup2(fd, where) != where)
        target_die("dup2: %s", strerror(errno));
    close(fd);
    p->fd = where;
    if (realpath(path, p->path) == NULL) /* what /proc/self/fd shows if path is a symlink */
        target_die("realpath %s: %s", path, strerror(errno));
    p->dev = st.st_dev;
    p->ino = st.st_ino;
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    struct stat st;
    if (stat(target_state, &st) != 0)
        target_die("stat %s: %s", target_state, strerror(errno));
    state_dev = st.st_dev;

    target_path(gone_path, "gone.txt");
    int fd = open(gone_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        target_die("open %s: %s", gone_path, strerror(errno));
    if (dup2(fd, GONE_FD) != GONE_FD)
        target_die("dup2: %s", strerror(errno));
    close(fd);
    static unsigned char buf[SIZE];
    for (size_t i = 0; i < SIZE; i++)
        buf[i] = pattern(i);
    if (write(GONE_FD, buf, SIZE) != SIZE)
        target_die("write %s: %s", gone_path, strerror(errno));
    if (lseek(GONE_FD, OFFSET, SEEK_SET) != OFFSET)
        target_die("lseek: %s", strerror(errno));
    if (unlink(gone_path) != 0)
        target_die("unlink %s: %s", gone_path, strerror(errno));

    open_path(0, DIR_PATH_FD, target_state);
    open_path(1, FILE_PATH_FD, OTHER_FILE);

    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check();
            target_report();
        }
        target_sleep_ms(10);
    }
}
