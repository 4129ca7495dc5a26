/*
 * The floor of each checkpoint page path, in C, on the same memory and file system (issue 7:
 * "measure both, keep the faster"; bench/page-paths measures Cryo itself both ways). A child
 * holds N MiB of non-repeating data; each run saves it to a file in DIR:
 *   read+write: one thread reads the child's memory with process_vm_readv into two 8 MiB buffers
 *          and checksums them (CRC-32C), another writes the buffers to the file (Cryo's copy);
 *   task writes: the child writes its own memory to the file with one write(2) (what Cryo's
 *          injected pwritev makes it do), while the parent checksums it: by reading the child's
 *          memory with process_vm_readv, or (what Cryo does) by reading the file behind the write;
 *   both again without any checksum, and dd's way: write(2) of a zeroed, reused 8 MiB buffer.
 * usage: gcc -O2 -msse4.2 -pthread -o paths bench/paths.c && ./paths MiB DIR RUNS
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <nmmintrin.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (8UL << 20)
static size_t size;
static char *mem;
static pid_t child;
static char path[4096];
static char *buf[2];
static size_t filled[2];
static int ready[2], done[2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int out;
static int withCrc = 1;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static uint64_t crc(uint64_t c, const char *p, size_t n) {
    for (size_t i = 0; i < n; i += 8) c = _mm_crc32_u64(c, *(const uint64_t *)(p + i));
    return c;
}

static size_t readChild(char *dst, size_t off, size_t n) {
    struct iovec l = {dst, n}, r = {mem + off, n};
    return process_vm_readv(child, &l, 1, &r, 1, 0);
}

static void *writer(void *arg) {
    (void)arg;
    for (size_t off = 0, k = 0; off < size; off += CHUNK, k ^= 1) {
        pthread_mutex_lock(&lock);
        while (!ready[k]) pthread_cond_wait(&cond, &lock);
        pthread_mutex_unlock(&lock);
        if (write(out, buf[k], filled[k]) != (ssize_t)filled[k]) { perror("write"); exit(1); }
        pthread_mutex_lock(&lock);
        ready[k] = 0; done[k] = 1;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static double viaRead(void) {
    out = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    done[0] = done[1] = 1; ready[0] = ready[1] = 0;
    double t = now();
    pthread_t w; pthread_create(&w, NULL, writer, NULL);
    uint64_t c = 0;
    for (size_t off = 0, k = 0; off < size; off += CHUNK, k ^= 1) {
        pthread_mutex_lock(&lock);
        while (!done[k]) pthread_cond_wait(&cond, &lock);
        done[k] = 0;
        pthread_mutex_unlock(&lock);
        filled[k] = readChild(buf[k], off, CHUNK);
        if (withCrc) c = crc(c, buf[k], filled[k]);
        pthread_mutex_lock(&lock);
        ready[k] = 1;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
    }
    pthread_join(w, NULL);
    double e = now() - t;
    close(out); unlink(path);
    return e;
}

static double viaTask(int go, int back) {
    double t = now();
    if (write(go, "w", 1) != 1) exit(1);  /* the child writes its memory to the file */
    uint64_t c = 0;
    for (size_t off = 0; withCrc && off < size; off += CHUNK) c = crc(c, buf[0], readChild(buf[0], off, CHUNK));
    char ch;
    if (read(back, &ch, 1) != 1) exit(1);
    double e = now() - t;
    unlink(path);
    return e;
}

/* the child writes; the parent checksums the file behind it, reading what is written so far */
static double viaTaskFile(int go, int back) {
    double t = now();
    if (write(go, "w", 1) != 1) exit(1);
    int in = -1;
    uint64_t c = 0;
    size_t at = 0;
    while (at < size) {
        if (in < 0) { in = open(path, O_RDONLY); if (in < 0) continue; }
        ssize_t n = pread(in, buf[0], CHUNK, at);
        if (n <= 0) { sched_yield(); continue; }
        c = crc(c, buf[0], n & ~7L);
        at += n & ~7L;
    }
    char ch;
    if (read(back, &ch, 1) != 1) exit(1);
    double e = now() - t;
    close(in); unlink(path);
    return e;
}

static double viaDd(void) {
    out = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    double t = now();
    for (size_t off = 0; off < size; off += CHUNK) { memset(buf[0], 0, CHUNK); if (write(out, buf[0], CHUNK) != (ssize_t)CHUNK) exit(1); }
    double e = now() - t;
    close(out); unlink(path);
    return e;
}

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: paths MiB DIR RUNS\n"); return 2; }
    size = strtoul(argv[1], 0, 10) << 20;
    snprintf(path, sizeof path, "%s/paths.img", argv[2]);
    int runs = atoi(argv[3]);
    mem = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int go[2], back[2];
    if (pipe(go) || pipe(back)) return 1;
    child = fork();
    if (child == 0) {
        uint64_t x = 88172645463325252ULL, *m = (uint64_t *)mem;
        for (size_t i = 0; i < size / 8; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; m[i] = x; }
        char ch;
        if (write(back[1], "r", 1) != 1) _exit(1);
        while (read(go[0], &ch, 1) == 1) {
            int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
            for (size_t off = 0; off < size;) { ssize_t n = write(fd, mem + off, size - off); if (n <= 0) _exit(1); off += n; }
            close(fd);
            if (write(back[1], "d", 1) != 1) _exit(1);
        }
        _exit(0);
    }
    char ch;
    if (read(back[0], &ch, 1) != 1) return 1;  /* the child's memory is filled (its own pages now) */
    buf[0] = aligned_alloc(4096, CHUNK); buf[1] = aligned_alloc(4096, CHUNK);
    memset(buf[0], 0, CHUNK); memset(buf[1], 0, CHUNK);
    double r[64], k[64], d[64], rn[64], kn[64], kf[64];
    for (int i = 0; i < runs && i < 64; i++) {  /* alternating, so that load changes hit all of them */
        withCrc = 1;
        r[i] = viaRead(); k[i] = viaTask(go[1], back[0]); d[i] = viaDd();
        withCrc = 0;
        rn[i] = viaRead(); kn[i] = viaTask(go[1], back[0]);
        withCrc = 1; kf[i] = viaTaskFile(go[1], back[0]);
        printf("run %d: read+write %.0f ms, task writes %.0f ms, dd %.0f ms; without the checksum: read+write %.0f ms, task writes %.0f ms; task writes + checksum read from the file %.0f ms\n",
               i + 1, r[i] * 1e3, k[i] * 1e3, d[i] * 1e3, rn[i] * 1e3, kn[i] * 1e3, kf[i] * 1e3);
    }
    qsort(r, runs, sizeof r[0], cmp); qsort(k, runs, sizeof k[0], cmp); qsort(d, runs, sizeof d[0], cmp);
    qsort(rn, runs, sizeof rn[0], cmp); qsort(kn, runs, sizeof kn[0], cmp); qsort(kf, runs, sizeof kf[0], cmp);
    double dd = d[runs / 2];
    printf("median of %d, as x dd (%.0f ms): read+write %.2f, task writes %.2f; without the checksum: read+write %.2f, task writes %.2f; task writes + checksum from the file %.2f\n",
           runs, dd * 1e3, r[runs / 2] / dd, k[runs / 2] / dd, rn[runs / 2] / dd, kn[runs / 2] / dd, kf[runs / 2] / dd);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return 0;
}
