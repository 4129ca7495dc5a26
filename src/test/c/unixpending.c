/*
 * Unix listeners with connections not yet accepted. A stream listener (abstract name unique to
 * this pid, backlog 8) has three connections waiting in its accept queue, made in this order:
 * client 1 by a forked child, client 2 by this process (non-blocking), client 3 by the child.
 * Each client sent "hello-N" and the listener accepted nothing. A seqpacket listener has two
 * waiting connections, one from this process and one from the child, each having sent two
 * messages ("seq-Na", "seq-Nb").
 *
 * Check (only after restore: it accepts the connections, so it can run only once): the stream
 * listener gives the three connections in order, each with exactly its client's bytes; the
 * seqpacket one gives its two, each message whole and on its own; an answer sent on each
 * accepted socket reaches its client (the child reads its own and reports through a pipe); the
 * clients' fd flags are those of before; both listeners take a new connection.
 */
#include "target.h"

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#define STREAM_LISTENER 10
#define SEQ_LISTENER 11
#define CLIENT_2 12      /* this process's stream client, O_NONBLOCK */
#define SEQ_CLIENT_1 13  /* this process's seqpacket client */
#define TO_CHILD 14      /* "check now" to the child */
#define FROM_CHILD 15    /* the child's verdict: "ok" or the reason */

static pid_t child;
static pid_t owner;  /* the listeners' process, whose pid names them */

static socklen_t address(struct sockaddr_un *a, pid_t of, const char *kind)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "cryo-unixpending-%d-%s", (int)of, kind);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static void move_to(int fd, int at)
{
    if (fd != at) {
        if (dup2(fd, at) != at)
            target_die("dup2(%d, %d): %s", fd, at, strerror(errno));
        close(fd);
    }
}

static int connect_and_send(int type, const char *kind, const char *first, const char *second)
{
    struct sockaddr_un a;
    socklen_t len = address(&a, owner, kind);
    int s = socket(AF_UNIX, type, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, len) != 0)
        target_die("connect to %s: %s", kind, strerror(errno));
    if (send(s, first, strlen(first), 0) != (ssize_t)strlen(first))
        target_die("send %s: %s", first, strerror(errno));
    if (second != NULL && send(s, second, strlen(second), 0) != (ssize_t)strlen(second))
        target_die("send %s: %s", second, strerror(errno));
    return s;
}

static void wait_byte(int fd)
{
    char c;
    while (read(fd, &c, 1) != 1) {
        if (errno != EINTR)
            target_die("read of the sync pipe: %s", strerror(errno));
    }
}

/* Reads what is waiting on fd (one message for seqpacket) and compares it with expected. */
static void expect(int fd, const char *what, const char *expected, char *why, size_t why_len)
{
    char got[64];
    ssize_t n;
    do {
        n = recv(fd, got, sizeof got - 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (why[0] == 0)
            snprintf(why, why_len, "%s: recv: %s", what, strerror(errno));
        return;
    }
    got[n] = 0;
    if (strcmp(got, expected) != 0 && why[0] == 0)
        snprintf(why, why_len, "%s: got \"%s\", expected \"%s\"", what, got, expected);
}

/* The child: clients 1 and 3 (stream) and seqpacket client 2, then answers the parent's check. */
static void child_main(int go, int sync_to_parent, int verdict)
{
    int c1 = connect_and_send(SOCK_STREAM, "stream", "hello-1", NULL);
    int q2 = -1;
    if (write(sync_to_parent, "1", 1) != 1)
        target_die("sync write");
    wait_byte(go);  /* the parent connected client 2 */
    int c3 = connect_and_send(SOCK_STREAM, "stream", "hello-3", NULL);
    wait_byte(go);  /* the parent connected its seqpacket client */
    q2 = connect_and_send(SOCK_SEQPACKET, "seq", "seq-2a", "seq-2b");
    if (write(sync_to_parent, "3", 1) != 1)
        target_die("sync write");
    wait_byte(go);  /* check: the parent answered every accepted connection */
    char why[256] = "";
    expect(c1, "child's client 1", "reply-1", why, sizeof why);
    expect(c3, "child's client 3", "reply-3", why, sizeof why);
    expect(q2, "child's seqpacket client 2", "seq-reply-2", why, sizeof why);
    const char *v = why[0] ? why : "ok";
    if (write(verdict, v, strlen(v)) < 0)
        _exit(3);
    for (;;)
        pause();
}

static void check(void)
{
    char why[256] = "";
    const char *hello[] = {"hello-1", "hello-2", "hello-3"};
    const char *reply[] = {"reply-1", "reply-2", "reply-3"};
    int flags = fcntl(CLIENT_2, F_GETFL);
    if (flags < 0 || !(flags & O_NONBLOCK))
        target_fail("client 2 (fd %d) flags %#x: O_NONBLOCK lost", CLIENT_2, flags);
    for (int i = 0; i < 3; i++) {
        int s = accept(STREAM_LISTENER, NULL, NULL);
        if (s < 0) {
            target_fail("stream accept %d: %s", i + 1, strerror(errno));
            return;
        }
        char what[32];
        snprintf(what, sizeof what, "accepted stream %d", i + 1);
        expect(s, what, hello[i], why, sizeof why);
        if (send(s, reply[i], strlen(reply[i]), 0) < 0)
            target_fail("send %s: %s", reply[i], strerror(errno));
    }
    for (int i = 0; i < 2; i++) {
        int s = accept(SEQ_LISTENER, NULL, NULL);
        if (s < 0) {
            target_fail("seqpacket accept %d: %s", i + 1, strerror(errno));
            return;
        }
        char a[16], b[16], r[16], what[32];
        snprintf(a, sizeof a, "seq-%da", i + 1);
        snprintf(b, sizeof b, "seq-%db", i + 1);
        snprintf(r, sizeof r, "seq-reply-%d", i + 1);
        snprintf(what, sizeof what, "accepted seqpacket %d", i + 1);
        expect(s, what, a, why, sizeof why);
        expect(s, what, b, why, sizeof why);
        if (send(s, r, strlen(r), 0) < 0)
            target_fail("send %s: %s", r, strerror(errno));
    }
    if (why[0])
        target_fail("%s", why);
    usleep(20000);  /* the reply reaches client 2, which does not block */
    char mine[256] = "";
    expect(CLIENT_2, "client 2", "reply-2", mine, sizeof mine);
    expect(SEQ_CLIENT_1, "seqpacket client 1", "seq-reply-1", mine, sizeof mine);
    if (mine[0])
        target_fail("%s", mine);
    if (write(TO_CHILD, "c", 1) != 1)
        target_fail("telling the child to check: %s", strerror(errno));
    char verdict[256];
    ssize_t n;
    do {
        n = read(FROM_CHILD, verdict, sizeof verdict - 1);
    } while (n < 0 && errno == EINTR);
    verdict[n > 0 ? n : 0] = 0;
    if (strcmp(verdict, "ok") != 0)
        target_fail("child: %s", n > 0 ? verdict : "no verdict");
    /* a brand-new connection on each listener */
    const int types[] = {SOCK_STREAM, SOCK_SEQPACKET};
    const char *kinds[] = {"stream", "seq"};
    const int listeners[] = {STREAM_LISTENER, SEQ_LISTENER};
    for (int i = 0; i < 2; i++) {
        struct sockaddr_un a;
        socklen_t len = address(&a, owner, kinds[i]);
        int c = socket(AF_UNIX, types[i], 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, len) != 0) {
            target_fail("new %s connection: %s", kinds[i], strerror(errno));
            continue;
        }
        send(c, "new", 3, 0);
        int s = accept(listeners[i], NULL, NULL);
        if (s < 0) {
            target_fail("accepting the new %s connection: %s", kinds[i], strerror(errno));
        } else {
            char ignore[256] = "";
            expect(s, "new connection", "new", ignore, sizeof ignore);
            if (ignore[0])
                target_fail("%s", ignore);
            close(s);
        }
        close(c);
    }
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    owner = getpid();
    const int types[] = {SOCK_STREAM, SOCK_SEQPACKET};
    const char *kinds[] = {"stream", "seq"};
    for (int i = 0; i < 2; i++) {
        struct sockaddr_un a;
        socklen_t len = address(&a, owner, kinds[i]);
        int l = socket(AF_UNIX, types[i], 0);
        if (l < 0 || bind(l, (struct sockaddr *)&a, len) != 0 || listen(l, 8) != 0)
            target_die("%s listener: %s", kinds[i], strerror(errno));
        move_to(l, i == 0 ? STREAM_LISTENER : SEQ_LISTENER);
    }
    int go[2], sync[2], verdict[2];
    if (pipe(go) != 0 || pipe(sync) != 0 || pipe(verdict) != 0)
        target_die("pipe: %s", strerror(errno));
    child = fork();
    if (child < 0)
        target_die("fork: %s", strerror(errno));
    if (child == 0) {
        close(STREAM_LISTENER);
        close(SEQ_LISTENER);
        child_main(go[0], sync[1], verdict[1]);
    }
    wait_byte(sync[0]);  /* client 1 connected */
    move_to(connect_and_send(SOCK_STREAM, "stream", "hello-2", NULL), CLIENT_2);
    if (fcntl(CLIENT_2, F_SETFL, O_NONBLOCK) != 0)
        target_die("O_NONBLOCK: %s", strerror(errno));
    if (write(go[1], "2", 1) != 1)
        target_die("sync write");
    move_to(connect_and_send(SOCK_SEQPACKET, "seq", "seq-1a", "seq-1b"), SEQ_CLIENT_1);
    if (write(go[1], "q", 1) != 1)
        target_die("sync write");
    wait_byte(sync[0]);  /* clients 3 and seqpacket 2 connected */
    move_to(go[1], TO_CHILD);
    move_to(verdict[0], FROM_CHILD);
    target_serve_checks(check);
}
