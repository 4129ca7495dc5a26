/*
 * Files target: regular files at known offsets and with various flags, a directory fd,
 * character devices, fds at chosen numbers (one sharing its open file with another fd),
 * a umask and a working directory.
 *
 * Check: the set of open fds is exactly the one at start; each fd refers to the same file
 * (st_dev/st_ino), with the same access mode, O_APPEND and FD_CLOEXEC; offsets are where
 * they were and reading there gives the known bytes; fds 42 and the data fd still share one
 * offset; appending still appends; /dev/zero reads zeros; umask is 027; cwd is STATE.
 */
#include "target.h"

#include <sys/stat.h>

#define DATA_SIZE 8192
#define DATA_OFFSET 1234
#define RW_OFFSET 77
#define SHARED_FD 42 /* dup2 of the data fd: same open file, same offset */
#define NULL_FD 100  /* dup2 of /dev/null */

struct fd_spec {
    const char *what;
    int fd;
    char path[PATH_MAX];
    dev_t dev;
    ino_t ino;
    int accmode;
    int append;
    int cloexec;
    off_t offset; /* -1: not checked (devices) */
};

enum { DATA, APPEND, RDWR, DIR_FD, DEVNULL, DEVZERO, URANDOM, SHARED, NULLDUP, SPECS };
static struct fd_spec specs[SPECS];

static unsigned char data_byte(size_t i)
{
    return (unsigned char)(i * 7 + 3 + (i >> 8));
}

static void create_data_file(const char *path)
{
    unsigned char buf[DATA_SIZE];
    for (size_t i = 0; i < DATA_SIZE; i++)
        buf[i] = data_byte(i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, buf, DATA_SIZE) != DATA_SIZE || close(fd) != 0)
        target_die("creating %s: %s", path, strerror(errno));
}

static void record(int which, const char *what, int fd, const char *path)
{
    struct fd_spec *s = &specs[which];
    struct stat st;
    if (fd < 0)
        target_die("open %s: %s", path, strerror(errno));
    if (stat(path, &st) != 0)
        target_die("stat %s: %s", path, strerror(errno));
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    s->what = what;
    s->fd = fd;
    snprintf(s->path, sizeof s->path, "%s", path);
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->accmode = fl & O_ACCMODE;
    s->append = (fl & O_APPEND) != 0;
    s->cloexec = (fdfl & FD_CLOEXEC) != 0;
    s->offset = S_ISREG(st.st_mode) ? lseek(fd, 0, SEEK_CUR) : -1;
}

/* fds open at start (bitmap over small numbers, enough for this target). */
static unsigned char open_at_start[TARGET_FDS];

static void check_fd(const struct fd_spec *s)
{
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        target_fail("fd %d (%s) is not open: %s", s->fd, s->what, strerror(errno));
        return;
    }
    if (st.st_dev != s->dev || st.st_ino != s->ino)
        target_fail("fd %d (%s) refers to dev %lx ino %lu, expected %s (dev %lx ino %lu)",
                    s->fd, s->what, (unsigned long)st.st_dev, (unsigned long)st.st_ino,
                    s->path, (unsigned long)s->dev, (unsigned long)s->ino);
    int fl = fcntl(s->fd, F_GETFL), fdfl = fcntl(s->fd, F_GETFD);
    if ((fl & O_ACCMODE) != s->accmode)
        target_fail("fd %d (%s) access mode %d, expected %d", s->fd, s->what, fl & O_ACCMODE,
                    s->accmode);
    if (((fl & O_APPEND) != 0) != s->append)
        target_fail("fd %d (%s) O_APPEND is %d, expected %d", s->fd, s->what,
                    (fl & O_APPEND) != 0, s->append);
    if (((fdfl & FD_CLOEXEC) != 0) != s->cloexec)
        target_fail("fd %d (%s) FD_CLOEXEC is %d, expected %d", s->fd, s->what,
                    (fdfl & FD_CLOEXEC) != 0, s->cloexec);
    if (s->offset >= 0) {
        off_t pos = lseek(s->fd, 0, SEEK_CUR);
        if (pos != s->offset)
            target_fail("fd %d (%s) offset %lld, expected %lld", s->fd, s->what,
                        (long long)pos, (long long)s->offset);
    }
}

/* Reads at the current offset of fd (moving it), then puts the offset back. */
static void check_data_at_offset(int fd)
{
    unsigned char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n != (ssize_t)sizeof buf) {
        target_fail("read of data fd %d returned %zd", fd, n);
    } else {
        for (size_t i = 0; i < sizeof buf; i++)
            if (buf[i] != data_byte(DATA_OFFSET + i)) {
                target_fail("data fd %d: byte at offset %zu is %#x, expected %#x", fd,
                            DATA_OFFSET + i, buf[i], data_byte(DATA_OFFSET + i));
                break;
            }
    }
    lseek(fd, DATA_OFFSET, SEEK_SET);
}

static void check(void)
{
    target_check_open_fds(open_at_start);

    for (int i = 0; i < SPECS; i++)
        check_fd(&specs[i]);

    /* fd 42 and the data fd are one open file: moving one moves the other. */
    int data = specs[DATA].fd;
    check_data_at_offset(data);
    if (lseek(SHARED_FD, 100, SEEK_SET) != 100 || lseek(data, 0, SEEK_CUR) != 100)
        target_fail("fd %d and fd %d no longer share their file offset", SHARED_FD, data);
    lseek(data, DATA_OFFSET, SEEK_SET);
    check_data_at_offset(SHARED_FD);

    /* Appending goes to the end whatever the offset was. */
    int app = specs[APPEND].fd;
    struct stat before, after;
    static const char line[] = "check\n";
    if (fstat(app, &before) != 0 || write(app, line, sizeof line - 1) != sizeof line - 1 ||
        fstat(app, &after) != 0 || after.st_size != before.st_size + (off_t)sizeof line - 1)
        target_fail("append to fd %d did not grow the file by %zu", app, sizeof line - 1);
    else
        specs[APPEND].offset = after.st_size;

    unsigned char z[256];
    memset(z, 0x77, sizeof z);
    if (read(specs[DEVZERO].fd, z, sizeof z) != sizeof z)
        target_fail("read of /dev/zero failed: %s", strerror(errno));
    for (size_t i = 0; i < sizeof z; i++)
        if (z[i] != 0) {
            target_fail("/dev/zero gave a non-zero byte");
            break;
        }
    if (read(specs[URANDOM].fd, z, 16) != 16)
        target_fail("read of /dev/urandom failed: %s", strerror(errno));
    if (write(NULL_FD, z, 16) != 16)
        target_fail("write to /dev/null (fd %d) failed: %s", NULL_FD, strerror(errno));

    /* The directory fd resolves names relative to STATE. */
    struct stat st;
    if (fstatat(specs[DIR_FD].fd, "data.bin", &st, 0) != 0 || st.st_ino != specs[DATA].ino)
        target_fail("data.bin not found through the directory fd %d", specs[DIR_FD].fd);

    mode_t mask = umask(0);
    umask(mask);
    if (mask != 027)
        target_fail("umask is %03o, expected 027", (unsigned)mask);

    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL)
        target_fail("getcwd: %s", strerror(errno));
    else if (strcmp(cwd, target_state) != 0)
        target_fail("cwd is %s, expected %s", cwd, target_state);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    char data[PATH_MAX], append[PATH_MAX], rdwr[PATH_MAX];
    target_path(data, "data.bin");
    target_path(append, "append.log");
    target_path(rdwr, "rdwr.bin");
    create_data_file(data);

    int fd = open(data, O_RDONLY);
    if (fd >= 0 && lseek(fd, DATA_OFFSET, SEEK_SET) != DATA_OFFSET)
        target_die("lseek: %s", strerror(errno));
    record(DATA, "data.bin", fd, data);

    fd = open(append, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0640);
    if (fd >= 0 && write(fd, "start\n", 6) != 6)
        target_die("write append.log: %s", strerror(errno));
    record(APPEND, "append.log", fd, append);

    fd = open(rdwr, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        char buf[200];
        memset(buf, 'x', sizeof buf);
        if (write(fd, buf, sizeof buf) != sizeof buf || lseek(fd, RW_OFFSET, SEEK_SET) != RW_OFFSET)
            target_die("preparing rdwr.bin: %s", strerror(errno));
    }
    record(RDWR, "rdwr.bin", fd, rdwr);

    record(DIR_FD, "STATE directory", open(target_state, O_RDONLY | O_DIRECTORY), target_state);
    record(DEVNULL, "/dev/null", open("/dev/null", O_WRONLY), "/dev/null");
    record(DEVZERO, "/dev/zero", open("/dev/zero", O_RDONLY), "/dev/zero");
    record(URANDOM, "/dev/urandom", open("/dev/urandom", O_RDONLY | O_CLOEXEC), "/dev/urandom");

    if (dup2(specs[DATA].fd, SHARED_FD) != SHARED_FD || dup2(specs[DEVNULL].fd, NULL_FD) != NULL_FD)
        target_die("dup2: %s", strerror(errno));
    record(SHARED, "dup of data.bin", SHARED_FD, data);
    record(NULLDUP, "dup of /dev/null", NULL_FD, "/dev/null");

    umask(027);
    if (chdir(target_state) != 0)
        target_die("chdir %s: %s", target_state, strerror(errno));
    if (target_list_fds(open_at_start, sizeof open_at_start) != 0)
        target_die("%s", target_fail_reason);

    target_serve_checks(check);
}
