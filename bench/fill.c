/* Restore baseline: the time to fill N MiB of freshly mapped anonymous memory with memcpy from a
 * small source buffer that is already touched, as a restore that copies pages eagerly must.
 * Prints "fill_ns=X copy_ns=Y": X for the fresh memory (mmap + first touch + copy), Y for a second
 * copy into the same, now touched, memory (the cost of the copy alone).
 * usage: fill MiB */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define CHUNK (8u << 20)

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void copy_all(char *dst, const char *src, size_t bytes) {
    for (size_t off = 0; off < bytes; off += CHUNK) {
        size_t n = bytes - off < CHUNK ? bytes - off : CHUNK;
        memcpy(dst + off, src, n);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s MiB\n", argv[0]); return 2; }
    size_t bytes = (size_t)strtoull(argv[1], NULL, 10) << 20;
    uint64_t *src = malloc(CHUNK);
    if (!src) { perror("malloc"); return 1; }
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < CHUNK / 8; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; src[i] = x; }

    long long t0 = now_ns();
    char *dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dst == MAP_FAILED) { perror("mmap"); return 1; }
    copy_all(dst, (const char *)src, bytes);
    long long t1 = now_ns();
    copy_all(dst, (const char *)src, bytes);
    long long t2 = now_ns();
    /* keep the copies from being optimized away */
    volatile char sink = dst[bytes - 1];
    (void)sink;
    printf("fill_ns=%lld copy_ns=%lld\n", t1 - t0, t2 - t1);
    munmap(dst, bytes);
    return 0;
}
