/*
 * inotify target: watches with their watch descriptors, a gap among them included.
 *
 *   STATE/watched  a directory, watched for IN_CREATE
 *   STATE/file     a file (one byte, 'f'), watched for IN_MODIFY
 *   STATE/other    a directory, watched for IN_DELETE|IN_MOVED_TO|IN_EXCL_UNLINK
 *   fd 70          inotify_init1(IN_NONBLOCK)
 *
 * Setup adds a watch on STATE itself (IN_CREATE|IN_DELETE, wd 1), then on watched (wd 2), file
 * (wd 3), removes the watch on STATE (and reads away its IN_IGNORED), then watches other (wd 4):
 * the watch descriptors are 2, 3, 4, and 1 is a gap. They are written to STATE/wds ("2 3 4").
 *
 * Check (each part twice, leaving the state as it found it):
 *   - fd 70 is an inotify fd (anon_inode:inotify) with O_NONBLOCK, and no event is pending;
 *   - /proc/self/fdinfo/70 lists exactly wds 2, 3, 4, each with its mask and the inode of its
 *     file;
 *   - creating watched/x gives exactly one event: IN_CREATE on wd 2 named "x"; removing x gives
 *     none (IN_DELETE is not watched there);
 *   - writing the byte of file again gives exactly one event: IN_MODIFY on wd 3, without a name;
 *   - afterwards no event is pending.
 */
#include "target.h"

#include <sys/inotify.h>
#include <sys/stat.h>

#define INOTIFY_FD 70
#define WATCHES 3

#define MASK_STATE (IN_CREATE | IN_DELETE)
#define MASK_WATCHED IN_CREATE
#define MASK_FILE IN_MODIFY
#define MASK_OTHER (IN_DELETE | IN_MOVED_TO | IN_EXCL_UNLINK)

static char path_watched[PATH_MAX], path_file[PATH_MAX], path_other[PATH_MAX], path_x[PATH_MAX];

/* The expected watches, in wd order. */
static struct {
    const char *name;
    int wd;
    uint32_t mask;
    ino_t ino;
} watches[WATCHES];

/* One event read from the inotify fd. */
struct event {
    int wd;
    uint32_t mask;
    char name[NAME_MAX + 1];
};

/*
 * Reads every pending event into out (at most max); returns how many there were (also beyond
 * max), or -1 after recording a failure.
 */
static int read_events(struct event *out, int max)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int count = 0;
    for (;;) {
        ssize_t n = read(INOTIFY_FD, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return count;
        if (n <= 0)
            return target_fail("read inotify fd: %s", n < 0 ? strerror(errno) : "end of file");
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (count < max) {
                out[count].wd = ev->wd;
                out[count].mask = ev->mask;
                out[count].name[0] = '\0';
                if (ev->len > 0)
                    snprintf(out[count].name, sizeof out[count].name, "%s", ev->name);
            }
            count++;
            p += sizeof *ev + ev->len;
        }
    }
}

static void describe(char *buf, size_t size, const struct event *ev, int count)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < count && i < 4 && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s{wd %d mask 0x%x name \"%s\"}", i ? " " : "",
                                 ev[i].wd, ev[i].mask, ev[i].name);
}

/* No event pending: returns 0, or -1 after recording a failure naming when. */
static int expect_no_events(const char *when)
{
    struct event ev[4];
    int n = read_events(ev, 4);
    if (n < 0)
        return -1;
    if (n > 0) {
        char text[400];
        describe(text, sizeof text, ev, n);
        return target_fail("%d unexpected event(s) pending %s: %s", n, when, text);
    }
    return 0;
}

/* Exactly one event pending, wd/mask/name as given: returns 0, or -1 after recording a failure. */
static int expect_one_event(const char *after, int wd, uint32_t mask, const char *name)
{
    struct event ev[4];
    int n = read_events(ev, 4);
    if (n < 0)
        return -1;
    if (n != 1 || ev[0].wd != wd || ev[0].mask != mask || strcmp(ev[0].name, name) != 0) {
        char text[400];
        describe(text, sizeof text, ev, n);
        return target_fail("after %s expected exactly {wd %d mask 0x%x name \"%s\"}, got %d event(s): %s", after, wd,
                           mask, name, n, text);
    }
    return 0;
}

static int check_fd(void)
{
    char link[64];
    if (target_fd_link(INOTIFY_FD, link, sizeof link) < 0)
        return target_fail("readlink fd 70: %s", strerror(errno));
    if (strcmp(link, "anon_inode:inotify") != 0)
        return target_fail("fd 70 is %s, not anon_inode:inotify", link);
    int flags = fcntl(INOTIFY_FD, F_GETFL);
    if (flags < 0)
        return target_fail("fcntl(70, F_GETFL): %s", strerror(errno));
    if (!(flags & O_NONBLOCK))
        return target_fail("fd 70 lost O_NONBLOCK (flags 0%o)", flags);
    return 0;
}

/* fdinfo lists exactly the expected watches ("inotify wd:2 ino:... sdev:... mask:2 ..."). */
static int check_fdinfo(void)
{
    char text[8192];
    if (target_read_file("/proc/self/fdinfo/70", text, sizeof text) < 0)
        return target_fail("reading fdinfo of fd 70: %s", strerror(errno));
    int seen[WATCHES] = { 0 };
    int lines = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "inotify ", 8) != 0)
            continue;
        lines++;
        unsigned int wd, mask;
        unsigned long ino;
        char *w = strstr(line, "wd:"), *i = strstr(line, " ino:"), *m = strstr(line, " mask:");
        if (w == NULL || i == NULL || m == NULL || sscanf(w, "wd:%x", &wd) != 1 || sscanf(i, " ino:%lx", &ino) != 1
            || sscanf(m, " mask:%x", &mask) != 1)
            return target_fail("unparsable fdinfo line: %s", line);
        int k;
        for (k = 0; k < WATCHES && watches[k].wd != (int)wd; k++)
            ;
        if (k == WATCHES)
            return target_fail("fdinfo lists wd %u, expected only 2, 3, 4: %s", wd, line);
        if (seen[k]++)
            return target_fail("fdinfo lists wd %u twice", wd);
        if (mask != watches[k].mask)
            return target_fail("wd %u (%s) has mask 0x%x, expected 0x%x", wd, watches[k].name, mask, watches[k].mask);
        if ((ino_t)ino != watches[k].ino)
            return target_fail("wd %u watches inode %lu, expected %s (inode %lu)", wd, ino, watches[k].name,
                               (unsigned long)watches[k].ino);
    }
    if (lines != WATCHES)
        return target_fail("fdinfo lists %d watches, expected %d", lines, WATCHES);
    return 0;
}

static int check_create_in_watched(void)
{
    int fd = open(path_x, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return target_fail("creating %s: %s", path_x, strerror(errno));
    close(fd);
    int rc = expect_one_event("creating watched/x", watches[0].wd, IN_CREATE, "x");
    if (unlink(path_x) != 0)
        return target_fail("unlink %s: %s", path_x, strerror(errno));
    if (rc != 0)
        return rc;
    return expect_no_events("after removing watched/x");
}

static int check_modify_file(void)
{
    int fd = open(path_file, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return target_fail("opening %s: %s", path_file, strerror(errno));
    ssize_t n = pwrite(fd, "f", 1, 0);
    int saved = errno;
    close(fd);
    if (n != 1)
        return target_fail("writing %s: %s", path_file, n < 0 ? strerror(saved) : "short write");
    return expect_one_event("writing file", watches[1].wd, IN_MODIFY, "");
}

static void check(void)
{
    for (int pass = 0; pass < 2; pass++) {
        if (check_fd() != 0 || expect_no_events("at the start of the check") != 0 || check_fdinfo() != 0
            || check_create_in_watched() != 0 || check_modify_file() != 0
            || expect_no_events("at the end of the check") != 0)
            return;
    }
}

static int add_watch(int fd, const char *path, uint32_t mask)
{
    int wd = inotify_add_watch(fd, path, mask);
    if (wd < 0)
        target_die("inotify_add_watch(%s): %s", path, strerror(errno));
    return wd;
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        target_die("stat %s: %s", path, strerror(errno));
    return st.st_ino;
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    target_path(path_watched, "watched");
    target_path(path_file, "file");
    target_path(path_other, "other");
    target_path(path_x, "watched/x");
    if (mkdir(path_watched, 0755) != 0 || mkdir(path_other, 0755) != 0)
        target_die("mkdir: %s", strerror(errno));
    if (target_write_file("file", "f") != 0)
        target_die("writing file: %s", strerror(errno));

    int fd = inotify_init1(IN_NONBLOCK);
    if (fd < 0)
        target_die("inotify_init1: %s", strerror(errno));
    if (fd != INOTIFY_FD) {
        if (dup2(fd, INOTIFY_FD) != INOTIFY_FD)
            target_die("dup2 inotify fd: %s", strerror(errno));
        close(fd);
    }

    int wd_state = add_watch(INOTIFY_FD, target_state, MASK_STATE);
    watches[0].wd = add_watch(INOTIFY_FD, path_watched, MASK_WATCHED);
    watches[1].wd = add_watch(INOTIFY_FD, path_file, MASK_FILE);
    if (inotify_rm_watch(INOTIFY_FD, wd_state) != 0)
        target_die("inotify_rm_watch(%d): %s", wd_state, strerror(errno));
    struct event ev[4];
    int n = read_events(ev, 4);
    if (n != 1 || ev[0].wd != wd_state || ev[0].mask != IN_IGNORED)
        target_die("expected only IN_IGNORED for wd %d after removing it, read %d event(s): %s", wd_state, n,
                   target_fail_reason);
    watches[2].wd = add_watch(INOTIFY_FD, path_other, MASK_OTHER);
    if (wd_state != 1 || watches[0].wd != 2 || watches[1].wd != 3 || watches[2].wd != 4)
        target_die("watch descriptors %d (removed), %d, %d, %d; expected 1, 2, 3, 4", wd_state, watches[0].wd,
                   watches[1].wd, watches[2].wd);

    watches[0].name = "watched";
    watches[0].mask = MASK_WATCHED;
    watches[0].ino = inode_of(path_watched);
    watches[1].name = "file";
    watches[1].mask = MASK_FILE;
    watches[1].ino = inode_of(path_file);
    watches[2].name = "other";
    watches[2].mask = MASK_OTHER;
    watches[2].ino = inode_of(path_other);

    char text[64];
    snprintf(text, sizeof text, "%d %d %d\n", watches[0].wd, watches[1].wd, watches[2].wd);
    if (target_write_file("wds", text) != 0)
        target_die("writing wds: %s", strerror(errno));
    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check();
            target_report();
        }
        target_sleep_ms(10);
    }
}
