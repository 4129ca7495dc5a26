/* Benchmark target for incremental dumps: fills N MiB of private anonymous memory, then keeps
 * rewriting R MiB of it per second (pages spread over the whole area, each rewrite giving the
 * page its next generation), writes "ready" into a file first. On SIGUSR1 (sent by bench/run
 * after a restore) it checks that every page holds the sequence of its current generation and
 * writes "ok" or "bad": a page restored from the wrong image of a chain holds an older one.
 * usage: rewriter MiB MiB_PER_SECOND STATUS_FILE */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
static volatile sig_atomic_t check_requested;
static void on_usr1(int sig) { (void)sig; check_requested = 1; }

static void fill(uint64_t *p, size_t page, uint32_t gen) {
    uint64_t x = (page + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)gen << 32);
    if (x == 0) x = 1;
    for (size_t i = 0; i < PAGE / 8; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        p[i] = x;
    }
}

static int holds(const uint64_t *p, size_t page, uint32_t gen) {
    uint64_t x = (page + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)gen << 32);
    if (x == 0) x = 1;
    for (size_t i = 0; i < PAGE / 8; i++) {
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

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s MiB MiB_PER_SECOND STATUS_FILE\n", argv[0]); return 2; }
    size_t pages = ((size_t)strtoull(argv[1], NULL, 10) << 20) / PAGE;
    uint64_t per_second = ((uint64_t)strtoull(argv[2], NULL, 10) << 20) / PAGE;
    unsigned char *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t *gen = mmap(NULL, pages * sizeof(uint32_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED || gen == MAP_FAILED) { perror("mmap"); return 1; }
    for (size_t i = 0; i < pages; i++) fill((uint64_t *)(mem + i * PAGE), i, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    report(argv[3], "ready\n");
    uint64_t start = now_ns(), done = 0;
    size_t cursor = 0;
    for (;;) {
        if (check_requested) {
            check_requested = 0;
            int ok = 1;
            for (size_t i = 0; i < pages && ok; i++) ok = holds((uint64_t *)(mem + i * PAGE), i, gen[i]);
            report(argv[3], ok ? "ok\n" : "bad\n");
        }
        /* the pages due by now at the given rate (a restore resumes the schedule from its start:
         * after a pause it catches up at most one second's worth) */
        uint64_t due = (now_ns() - start) / 1000 * per_second / 1000000;
        if (due > done + per_second) done = due - per_second;
        for (; done < due; done++) {
            fill((uint64_t *)(mem + cursor * PAGE), cursor, gen[cursor] + 1);
            gen[cursor]++;
            cursor = (cursor + 7919) % pages; /* a prime stride spreads the writes over the area */
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}
