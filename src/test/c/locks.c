/*
 * File locks target: a POSIX record lock, an open-file-description (OFD) lock and a flock.
 *
 *   fd 60  STATE/locked, O_RDWR, POSIX write lock (F_SETLK) on bytes 0-99
 *   fd 61  STATE/locked opened again, O_RDWR, OFD write lock (F_OFD_SETLK) on bytes 200-299
 *   fd 62  STATE/flocked, O_RDONLY, flock(LOCK_EX)
 *
 * Check: a helper child is forked; it opens both files afresh (never through the inherited
 * fds, which share the OFD lock and the flock) and must see:
 *   - F_GETLK on 0-99: a write lock on 0-99 held by our pid;
 *   - F_OFD_GETLK on 0-99: the same (a POSIX lock, l_pid our pid);
 *   - F_OFD_GETLK and F_GETLK on 200-299: a write lock on 200-299 with l_pid -1 (OFD);
 *   - F_GETLK on 100-199 and on 300-: unlocked;
 *   - flock(LOCK_EX|LOCK_NB) on STATE/flocked: EWOULDBLOCK; flock(LOCK_SH|LOCK_NB) too.
 * The child writes its first complaint into a shared page and exits. The parent also checks
 * /proc/locks: for the inode of STATE/locked exactly one POSIX WRITE 0-99 by our pid and one
 * OFDLCK WRITE 200-299 (pid -1), for STATE/flocked exactly one FLOCK WRITE by our pid, and
 * nothing waiting; and that fds 60-62 still refer to those files. The parent never opens or
 * closes STATE/locked during a check: closing any fd of it would drop its POSIX lock.
 */
#include "target.h"

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define POSIX_FD 60
#define OFD_FD 61
#define FLOCK_FD 62

static char locked_path[PATH_MAX], flocked_path[PATH_MAX];
static ino_t locked_ino, flocked_ino;
static dev_t locked_dev, flocked_dev;
static pid_t me;
static char *child_reason; /* shared page: the helper child's complaint */

static void place(int fd, int where, const char *what)
{
    if (fd < 0)
        target_die("opening %s: %s", what, strerror(errno));
    if (dup2(fd, where) != where)
        target_die("dup2 %s: %s", what, strerror(errno));
    close(fd);
}

static int lock(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    return fcntl(fd, cmd, &fl);
}

/* In the helper child: records the first complaint. */
static void complain(const char *fmt, ...)
{
    if (child_reason[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(child_reason, 256, fmt, ap);
    va_end(ap);
    if (child_reason[0] == '\0')
        strcpy(child_reason, "?");
}

/* In the helper child: asks cmd (F_GETLK or F_OFD_GETLK) about a write lock on start/len. */
static void expect_lock(int fd, int cmd, const char *cmdname, off_t start, off_t len, short type,
                        off_t lstart, off_t llen, pid_t pid)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    if (fcntl(fd, cmd, &fl) != 0) {
        complain("helper: %s on %lld+%lld: %s", cmdname, (long long)start, (long long)len, strerror(errno));
        return;
    }
    if (type == F_UNLCK) {
        if (fl.l_type != F_UNLCK)
            complain("helper: %s on %lld+%lld sees a lock type %d on %lld+%lld by pid %d, expected none",
                     cmdname, (long long)start, (long long)len, fl.l_type, (long long)fl.l_start,
                     (long long)fl.l_len, (int)fl.l_pid);
        return;
    }
    if (fl.l_type != type || fl.l_start != lstart || fl.l_len != llen || fl.l_pid != pid)
        complain("helper: %s on %lld+%lld sees type %d on %lld+%lld by pid %d, expected a write lock on "
                 "%lld+%lld by pid %d",
                 cmdname, (long long)start, (long long)len, fl.l_type, (long long)fl.l_start,
                 (long long)fl.l_len, (int)fl.l_pid, (long long)lstart, (long long)llen, (int)pid);
}

static void helper(void)
{
    int fd = open(locked_path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        complain("helper: open %s: %s", locked_path, strerror(errno));
        _exit(1);
    }
    expect_lock(fd, F_GETLK, "F_GETLK", 0, 100, F_WRLCK, 0, 100, me);
    expect_lock(fd, F_GETLK, "F_GETLK", 50, 1, F_WRLCK, 0, 100, me);
    expect_lock(fd, F_OFD_GETLK, "F_OFD_GETLK", 0, 100, F_WRLCK, 0, 100, me);
    expect_lock(fd, F_OFD_GETLK, "F_OFD_GETLK", 200, 100, F_WRLCK, 200, 100, -1);
    expect_lock(fd, F_GETLK, "F_GETLK", 250, 10, F_WRLCK, 200, 100, -1);
    expect_lock(fd, F_GETLK, "F_GETLK", 100, 100, F_UNLCK, 0, 0, 0);
    expect_lock(fd, F_OFD_GETLK, "F_OFD_GETLK", 300, 0, F_UNLCK, 0, 0, 0);
    /* A real attempt must be refused too (and, refused, takes nothing). */
    if (lock(fd, F_SETLK, F_RDLCK, 10, 1) != -1 || (errno != EAGAIN && errno != EACCES))
        complain("helper: F_SETLK read lock on byte 10 was not refused (%s)", strerror(errno));
    if (lock(fd, F_OFD_SETLK, F_RDLCK, 210, 1) != -1 || errno != EAGAIN)
        complain("helper: F_OFD_SETLK read lock on byte 210 was not refused (%s)", strerror(errno));
    close(fd);

    fd = open(flocked_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        complain("helper: open %s: %s", flocked_path, strerror(errno));
        _exit(1);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != -1 || errno != EWOULDBLOCK)
        complain("helper: flock(LOCK_EX|LOCK_NB) on %s was not refused (%s)", flocked_path, strerror(errno));
    if (flock(fd, LOCK_SH | LOCK_NB) != -1 || errno != EWOULDBLOCK)
        complain("helper: flock(LOCK_SH|LOCK_NB) on %s was not refused (%s)", flocked_path, strerror(errno));
    close(fd);
    _exit(0);
}

static void check_fd(int fd, const char *what, dev_t dev, ino_t ino, int accmode)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        target_fail("fd %d (%s) is not open: %s", fd, what, strerror(errno));
        return;
    }
    if (st.st_dev != dev || st.st_ino != ino)
        target_fail("fd %d is not %s any more", fd, what);
    int fl = fcntl(fd, F_GETFL);
    if ((fl & O_ACCMODE) != accmode)
        target_fail("fd %d (%s) access mode %d, expected %d", fd, what, fl & O_ACCMODE, accmode);
}

/* /proc/locks: exactly our three locks on these two inodes, nothing blocked on them. */
static void check_proc_locks(void)
{
    static char buf[65536];
    if (target_read_file("/proc/locks", buf, sizeof buf) < 0) {
        target_fail("reading /proc/locks: %s", strerror(errno));
        return;
    }
    int posix = 0, ofd = 0, flk = 0, other = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char cls[16], mode[16], type[16], start[32], end[32];
        int pid;
        unsigned maj, min;
        unsigned long ino;
        int blocked = strstr(line, "->") != NULL;
        char *p = strchr(line, ':');
        if (p == NULL)
            continue;
        p++;
        if (blocked)
            p = strstr(p, "->") + 2;
        if (sscanf(p, "%15s %15s %15s %d %x:%x:%lu %31s %31s", cls, mode, type, &pid, &maj, &min, &ino,
                   start, end) != 9)
            continue;
        if (ino != (unsigned long)locked_ino && ino != (unsigned long)flocked_ino)
            continue;
        if (blocked)
            other++;
        else if (ino == (unsigned long)locked_ino && !strcmp(cls, "POSIX") && !strcmp(type, "WRITE") &&
                 pid == me && !strcmp(start, "0") && !strcmp(end, "99"))
            posix++;
        else if (ino == (unsigned long)locked_ino && !strcmp(cls, "OFDLCK") && !strcmp(type, "WRITE") &&
                 pid == -1 && !strcmp(start, "200") && !strcmp(end, "299"))
            ofd++;
        else if (ino == (unsigned long)flocked_ino && !strcmp(cls, "FLOCK") && !strcmp(type, "WRITE") &&
                 pid == me)
            flk++;
        else
            other++;
    }
    if (posix != 1 || ofd != 1 || flk != 1 || other != 0)
        target_fail("/proc/locks shows %d POSIX 0-99, %d OFD 200-299, %d FLOCK locks of ours and %d "
                    "others on our files; expected 1, 1, 1 and 0",
                    posix, ofd, flk, other);
}

static void check(void)
{
    check_fd(POSIX_FD, "STATE/locked", locked_dev, locked_ino, O_RDWR);
    check_fd(OFD_FD, "STATE/locked", locked_dev, locked_ino, O_RDWR);
    check_fd(FLOCK_FD, "STATE/flocked", flocked_dev, flocked_ino, O_RDONLY);
    if (getpid() != me)
        target_fail("pid is %d, expected %d", (int)getpid(), (int)me);
    check_proc_locks();

    child_reason[0] = '\0';
    pid_t child = fork();
    if (child < 0) {
        target_fail("fork: %s", strerror(errno));
        return;
    }
    if (child == 0)
        helper();
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (child_reason[0] != '\0')
        target_fail("%s", child_reason);
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        target_fail("helper child ended with status %#x", status);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    me = getpid();
    child_reason = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (child_reason == MAP_FAILED)
        target_die("mmap: %s", strerror(errno));

    target_path(locked_path, "locked");
    target_path(flocked_path, "flocked");
    int fd = open(locked_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    char zeros[400];
    memset(zeros, 0, sizeof zeros);
    if (fd < 0 || write(fd, zeros, sizeof zeros) != (ssize_t)sizeof zeros)
        target_die("creating %s: %s", locked_path, strerror(errno));
    place(fd, POSIX_FD, locked_path);
    place(open(locked_path, O_RDWR), OFD_FD, locked_path);
    int ffd = open(flocked_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (ffd < 0)
        target_die("creating %s: %s", flocked_path, strerror(errno));
    close(ffd);
    place(open(flocked_path, O_RDONLY), FLOCK_FD, flocked_path);

    struct stat st;
    if (fstat(POSIX_FD, &st) != 0)
        target_die("fstat: %s", strerror(errno));
    locked_dev = st.st_dev;
    locked_ino = st.st_ino;
    if (fstat(FLOCK_FD, &st) != 0)
        target_die("fstat: %s", strerror(errno));
    flocked_dev = st.st_dev;
    flocked_ino = st.st_ino;

    if (lock(POSIX_FD, F_SETLK, F_WRLCK, 0, 100) != 0)
        target_die("F_SETLK: %s", strerror(errno));
    if (lock(OFD_FD, F_OFD_SETLK, F_WRLCK, 200, 100) != 0)
        target_die("F_OFD_SETLK: %s", strerror(errno));
    if (flock(FLOCK_FD, LOCK_EX) != 0)
        target_die("flock: %s", strerror(errno));

    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check();
            target_report();
        }
        target_sleep_ms(10);
    }
}
