/*
 * One end of a TCP byte stream checked in both directions: `tcp_stream STATE server ADDR`
 * listens on ADDR (127.0.0.1 or ::1, port chosen by the kernel, written to STATE/port) and
 * accepts one peer (`server ADDR slow` reads slowly); `tcp_stream STATE client ADDR PORT [slow]`
 * connects to it. Each end sends
 * the same deterministic byte sequence at about 1 MB/s and checks every byte it receives
 * against it, so a lost, repeated or reordered byte is caught at its offset; a reset or an end
 * of stream fails too. A `slow` end reads only 8 KiB every 50 ms, so the other end's send
 * queue (and this end's receive queue) stay full. The server also answers every further
 * connection to its listening socket with "hello\n", to show the listener still works.
 * STATE/progress holds "RECEIVED SENT" (bytes). Check: nothing went wrong and bytes flowed.
 */
#include "target.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#define RATE (1 << 20)  /* bytes per second sent */

static unsigned char pattern(uint64_t p)
{
    return (unsigned char)(p ^ (p >> 8) ^ (p >> 16) ^ (p >> 24) ^ 0x5a);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static socklen_t make_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(host, ':') != NULL) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            target_die("bad address %s", host);
        return sizeof *a;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        target_die("bad address %s", host);
    return sizeof *a;
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    if (argc < 4)
        target_die("usage: tcp_stream STATE server ADDR | client ADDR PORT [slow]");
    int server = strcmp(argv[2], "server") == 0;
    int slow = server ? argc > 4 && strcmp(argv[4], "slow") == 0 : argc > 5 && strcmp(argv[5], "slow") == 0;
    struct sockaddr_storage ss;
    int listener = -1, conn;
    if (server) {
        socklen_t len = make_addr(argv[3], 0, &ss);
        listener = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (listener < 0 || bind(listener, (struct sockaddr *)&ss, len) != 0 || listen(listener, 16) != 0)
            target_die("listen on %s: %s", argv[3], strerror(errno));
        len = sizeof ss;
        getsockname(listener, (struct sockaddr *)&ss, &len);
        char port[16];
        snprintf(port, sizeof port, "%d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
        target_write_file("port", port);
        conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0)
            target_die("accept: %s", strerror(errno));
        fcntl(listener, F_SETFL, O_NONBLOCK);
    } else {
        socklen_t len = make_addr(argv[3], atoi(argv[4]), &ss);
        conn = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (conn < 0 || connect(conn, (struct sockaddr *)&ss, len) != 0)
            target_die("connect to %s port %s: %s", argv[3], argv[4], strerror(errno));
    }
    int one = 1;
    setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(conn, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    fcntl(conn, F_SETFL, O_NONBLOCK);
    target_ready();

    uint64_t sent = 0, received = 0;
    double start = now(), last_progress = 0, last_read = 0;
    static unsigned char buf[65536];
    char failed[256] = "";
    for (;;) {
        double t = now();
        uint64_t budget = (uint64_t)((t - start) * RATE);
        struct pollfd p[2] = {{conn, POLLIN | (budget > sent ? POLLOUT : 0), 0}, {listener, POLLIN, 0}};
        int ready = poll(p, listener >= 0 ? 2 : 1, 10);
        if (ready < 0 && errno != EINTR && failed[0] == '\0')
            snprintf(failed, sizeof failed, "poll: %s", strerror(errno));
        if (!failed[0] && (p[0].revents & POLLOUT) && budget > sent) {
            size_t n = budget - sent > sizeof buf ? sizeof buf : (size_t)(budget - sent);
            for (size_t i = 0; i < n; i++)
                buf[i] = pattern(sent + i);
            ssize_t w = send(conn, buf, n, MSG_NOSIGNAL);
            if (w > 0)
                sent += (uint64_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR)
                snprintf(failed, sizeof failed, "send at offset %llu: %s", (unsigned long long)sent, strerror(errno));
        }
        if (!failed[0] && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) && (!slow || t - last_read >= 0.05)) {
            last_read = t;
            ssize_t r = recv(conn, buf, slow ? 8192 : sizeof buf, 0);
            if (r == 0)
                snprintf(failed, sizeof failed, "the peer closed the stream at offset %llu", (unsigned long long)received);
            else if (r < 0 && errno != EAGAIN && errno != EINTR)
                snprintf(failed, sizeof failed, "recv at offset %llu: %s", (unsigned long long)received, strerror(errno));
            for (ssize_t i = 0; i < r && !failed[0]; i++) {
                if (buf[i] != pattern(received + i))
                    snprintf(failed, sizeof failed, "byte at offset %llu is %d, expected %d",
                             (unsigned long long)(received + i), buf[i], pattern(received + i));
            }
            if (r > 0)
                received += (uint64_t)r;
        }
        if (listener >= 0 && (p[1].revents & POLLIN)) {
            int c = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                send(c, "hello\n", 6, MSG_NOSIGNAL);
                close(c);
            }
        }
        if (t - last_progress > 0.1) {
            char text[64];
            snprintf(text, sizeof text, "%llu %llu\n", (unsigned long long)received, (unsigned long long)sent);
            target_write_file("progress", text);
            last_progress = t;
        }
        if (target_check_requested()) {
            if (failed[0])
                target_fail("%s", failed);
            else if (received == 0 || sent == 0)
                target_fail("nothing flowed: received %llu, sent %llu", (unsigned long long)received, (unsigned long long)sent);
            target_report();
        }
    }
}
