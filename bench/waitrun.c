/* Waits until task PID exists and runs on its own: /proc/PID/status shows TracerPid 0 (Cryo has
 * released it; a restored task is traced from its creation until then) and a state other than
 * stopped, traced or zombie. Prints the CLOCK_REALTIME time in ns when that was first seen
 * (comparable with `date +%s%N`), polling every 100 us. Exit 1 after TIMEOUT_MS.
 * usage: waitrun PID TIMEOUT_MS */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int running(const char *path) {
    char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    const char *st = strstr(buf, "\nState:\t");
    const char *tr = strstr(buf, "\nTracerPid:\t");
    if (!st || !tr) return 0;
    char s = st[8];
    if (s == 't' || s == 'T' || s == 'Z' || s == 'X') return 0;
    return atoi(tr + 12) == 0;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s PID TIMEOUT_MS\n", argv[0]); return 2; }
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/status", argv[1]);
    long long deadline = now_ns(CLOCK_MONOTONIC) + atoll(argv[2]) * 1000000LL;
    struct timespec pause = {0, 100000};
    while (now_ns(CLOCK_MONOTONIC) < deadline) {
        if (running(path)) {
            printf("%lld\n", now_ns(CLOCK_REALTIME));
            return 0;
        }
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "waitrun: task %s not running untraced after %s ms\n", argv[1], argv[2]);
    return 1;
}
