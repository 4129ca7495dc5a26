/*
 * POSIX message queue target, for a container's own IPC namespace: two processes talking
 * through queues.
 *   /cryo-work  maxmsg 16 (above the default msg_max of 10: this namespace's msg_max is raised to
 *               20 first), msgsize 64, mode 0640, owner 1234:5678. The parent sends, the child
 *               receives through its own O_NONBLOCK descriptor.
 *   /cryo-go    the parent tells the child (blocked in mq_receive on it) to drain /cryo-work
 *   /cryo-done  the child answers what it received: "prio:text" pairs in the order received,
 *               and whether its work descriptor is O_NONBLOCK
 *   /cryo-idle  two messages, and nobody has it open
 *   /cryo-full  maxmsg 2, full (f1 f2), with a second child blocked in mq_send of f3 into it
 *               (taking messages out to save them must not let f3 slip in); /cryo-again tells
 *               that child to send f3 once more
 * With "notify" as argument, /cryo-zz-notify gets an mq_notify registration too (SIGEV_NONE); with
 * "unlinked", the parent keeps open a queue it removed (mq_unlink).
 *
 * Before saying ready the parent queues five messages in /cryo-work with priorities 3, 9, 1, 6, 9.
 * Check: the parent tells the child to go; the child must receive exactly those five, in
 * priority order and oldest first within one (m2 m5 m4 m1 m3); the idle queue still holds its
 * two messages; sizes, owner, mode and msg_max are as made; /cryo-full gives f1 f2 and then the
 * blocked sender's f3. Then the parent queues the same
 * messages again, so the next check (after a checkpoint and restore) finds the same state.
 */
#include "target.h"

#include <mqueue.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *texts[5] = { "m1", "m2", "m3", "m4", "m5" };
static const unsigned prios[5] = { 3, 9, 1, 6, 9 };
static const char expected[] = "9:m2,9:m5,6:m4,3:m1,1:m3, nonblock";

static mqd_t work, go, done, full, again;

static void queue_work(void)
{
    for (int i = 0; i < 5; i++)
        if (mq_send(work, texts[i], strlen(texts[i]), prios[i]) != 0)
            target_fail("mq_send(work, %s): %s", texts[i], strerror(errno));
}

static void fill_idle(void)
{
    mqd_t idle = mq_open("/cryo-idle", O_WRONLY);
    if (idle == (mqd_t)-1
        || mq_send(idle, "idle-x", 6, 4) != 0 || mq_send(idle, "idle-y", 6, 2) != 0)
        target_fail("filling /cryo-idle: %s", strerror(errno));
    mq_close(idle);
}

static void child(void)
{
    mqd_t in = mq_open("/cryo-work", O_RDONLY | O_NONBLOCK);
    mqd_t wait_go = mq_open("/cryo-go", O_RDONLY);
    mqd_t answer = mq_open("/cryo-done", O_WRONLY);
    if (in == (mqd_t)-1 || wait_go == (mqd_t)-1 || answer == (mqd_t)-1)
        _exit(3);
    for (;;) {
        char buf[8192];
        if (mq_receive(wait_go, buf, sizeof buf, NULL) < 0)
            continue; /* EINTR */
        char reply[512] = "";
        char m[64];
        unsigned prio;
        ssize_t n;
        while ((n = mq_receive(in, m, sizeof m, &prio)) >= 0)
            snprintf(reply + strlen(reply), sizeof reply - strlen(reply), "%u:%.*s,", prio, (int)n, m);
        struct mq_attr a;
        mq_getattr(in, &a);
        strcat(reply, (a.mq_flags & O_NONBLOCK) ? " nonblock" : " blocking");
        mq_send(answer, reply, strlen(reply), 0);
    }
}

static void sender(void)
{
    mqd_t to = mq_open("/cryo-full", O_WRONLY);
    mqd_t wait_again = mq_open("/cryo-again", O_RDONLY);
    if (to == (mqd_t)-1 || wait_again == (mqd_t)-1)
        _exit(3);
    for (;;) {
        while (mq_send(to, "f3", 2, 0) != 0)
            ; /* EINTR */
        char buf[256];
        while (mq_receive(wait_again, buf, sizeof buf, NULL) < 0)
            ;
    }
}

static void fill_full(void)
{
    if (mq_send(full, "f1", 2, 0) != 0 || mq_send(full, "f2", 2, 0) != 0)
        target_fail("filling /cryo-full: %s", strerror(errno));
}

static void check_full(void)
{
    const char *want[3] = { "f1", "f2", "f3" };
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    for (int i = 0; i < 3; i++) {
        char m[16];
        ssize_t n;
        while ((n = mq_timedreceive(full, m, sizeof m, NULL, &deadline)) < 0 && errno == EINTR)
            ;
        if (n != 2 || memcmp(m, want[i], 2) != 0)
            target_fail("/cryo-full message %d: %zd bytes '%.*s' (%s), expected %s", i, n, n > 0 ? (int)n : 0, m,
                        n < 0 ? strerror(errno) : "", want[i]);
    }
    fill_full();
    if (mq_send(again, "again", 5, 0) != 0)
        target_fail("mq_send(again): %s", strerror(errno));
}

static void check(void)
{
    check_full();
    if (mq_send(go, "go", 2, 0) != 0)
        target_fail("mq_send(go): %s", strerror(errno));
    char reply[8192];
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    ssize_t n;
    while ((n = mq_timedreceive(done, reply, sizeof reply, NULL, &deadline)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        target_fail("no answer from the child: %s", strerror(errno));
    else if (n != (ssize_t)strlen(expected) || memcmp(reply, expected, n) != 0)
        target_fail("the child received '%.*s', expected '%s'", (int)n, reply, expected);

    struct mq_attr a;
    struct stat st;
    if (mq_getattr(work, &a) != 0 || a.mq_maxmsg != 16 || a.mq_msgsize != 64 || a.mq_curmsgs != 0)
        target_fail("/cryo-work: maxmsg %ld msgsize %ld curmsgs %ld", a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs);
    if (fstat(work, &st) != 0 || (st.st_mode & 07777) != 0640 || st.st_uid != 1234 || st.st_gid != 5678)
        target_fail("/cryo-work: mode %o owner %d:%d", st.st_mode & 07777, st.st_uid, st.st_gid);

    mqd_t idle = mq_open("/cryo-idle", O_RDONLY | O_NONBLOCK);
    char m[8192];
    unsigned prio;
    if (idle == (mqd_t)-1) {
        target_fail("mq_open(/cryo-idle): %s", strerror(errno));
    } else {
        if ((n = mq_receive(idle, m, sizeof m, &prio)) != 6 || memcmp(m, "idle-x", 6) != 0 || prio != 4)
            target_fail("/cryo-idle first: %zd bytes, prio %u", n, prio);
        if ((n = mq_receive(idle, m, sizeof m, &prio)) != 6 || memcmp(m, "idle-y", 6) != 0 || prio != 2)
            target_fail("/cryo-idle second: %zd bytes, prio %u", n, prio);
        if (mq_receive(idle, m, sizeof m, &prio) >= 0)
            target_fail("/cryo-idle holds a third message");
        mq_close(idle);
    }
    char max[32] = "";
    target_read_file("/proc/sys/fs/mqueue/msg_max", max, sizeof max);
    if (atoi(max) != 20)
        target_fail("msg_max is %s", max);

    queue_work();
    fill_idle();
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    int fd = open("/proc/sys/fs/mqueue/msg_max", O_WRONLY);
    if (fd < 0 || write(fd, "20", 2) != 2)
        target_die("raising msg_max: %s", strerror(errno));
    close(fd);
    /* small queues: every queue of root's counts against root's RLIMIT_MSGQUEUE, whatever its namespace */
    struct mq_attr attr = { .mq_maxmsg = 16, .mq_msgsize = 64 }, small = { .mq_maxmsg = 4, .mq_msgsize = 256 };
    work = mq_open("/cryo-work", O_WRONLY | O_CREAT | O_EXCL, 0600, &attr);
    go = mq_open("/cryo-go", O_WRONLY | O_CREAT | O_EXCL, 0600, &small);
    done = mq_open("/cryo-done", O_RDONLY | O_CREAT | O_EXCL, 0600, &small);
    mqd_t idle = mq_open("/cryo-idle", O_WRONLY | O_CREAT | O_EXCL, 0600, &small);
    struct mq_attr two = { .mq_maxmsg = 2, .mq_msgsize = 16 };
    full = mq_open("/cryo-full", O_RDWR | O_CREAT | O_EXCL, 0600, &two);
    again = mq_open("/cryo-again", O_WRONLY | O_CREAT | O_EXCL, 0600, &small);
    if (work == (mqd_t)-1 || go == (mqd_t)-1 || done == (mqd_t)-1 || idle == (mqd_t)-1 || full == (mqd_t)-1
        || again == (mqd_t)-1)
        target_die("mq_open: %s", strerror(errno));
    mq_close(idle);
    if (fchown(work, 1234, 5678) != 0 || fchmod(work, 0640) != 0)
        target_die("chown/chmod /cryo-work: %s", strerror(errno));
    if (argc > 2 && strcmp(argv[2], "notify") == 0) {
        mqd_t n = mq_open("/cryo-zz-notify", O_RDONLY | O_CREAT | O_EXCL, 0600, &small);
        struct sigevent ev = { .sigev_notify = SIGEV_NONE };
        if (n == (mqd_t)-1 || mq_notify(n, &ev) != 0)
            target_die("mq_notify: %s", strerror(errno));
    }
    if (argc > 2 && strcmp(argv[2], "unlinked") == 0) {
        mqd_t gone = mq_open("/cryo-gone", O_RDONLY | O_CREAT | O_EXCL, 0600, &small);
        if (gone == (mqd_t)-1 || mq_unlink("/cryo-gone") != 0)
            target_die("unlinked queue: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0)
        target_die("fork: %s", strerror(errno));
    if (pid == 0)
        child();
    fill_full();
    pid = fork();
    if (pid < 0)
        target_die("fork: %s", strerror(errno));
    if (pid == 0)
        sender();

    fill_idle();
    queue_work();
    if (target_fail_reason[0])
        target_die("%s", target_fail_reason);
    target_serve_checks(check);
}
