/* Benchmark target: fills N MiB of private anonymous memory with non-repeating data (xorshift64),
 * writes "ready" into a file, then sleeps in pause(). On SIGUSR1 (sent by bench/run after a
 * restore) it regenerates the sequence, compares it with its memory and writes "ok" or "bad"
 * into the same file, so the benchmark knows the restored task runs with the right contents.
 * usage: target MiB STATUS_FILE */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t check_requested;

static void on_usr1(int sig) { (void)sig; check_requested = 1; }

static void fill(uint64_t *p, size_t words) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < words; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        p[i] = x;
    }
}

static int verify(const uint64_t *p, size_t words) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < words; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        if (p[i] != x) return 0;
    }
    return 1;
}

static void report(const char *path, const char *what) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) _exit(2);
    if (write(fd, what, strlen(what)) < 0) _exit(2);
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s MiB STATUS_FILE\n", argv[0]); return 2; }
    size_t bytes = (size_t)strtoull(argv[1], NULL, 10) << 20;
    uint64_t *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { perror("mmap"); return 1; }
    fill(mem, bytes / 8);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    report(argv[2], "ready\n");
    for (;;) {
        pause();
        if (check_requested) {
            check_requested = 0;
            report(argv[2], verify(mem, bytes / 8) ? "ok\n" : "bad\n");
        }
    }
}
