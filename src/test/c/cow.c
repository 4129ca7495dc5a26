/*
 * Copy-on-write sharing across fork: the parent fills MiB (argv[2], default 64) of memory with
 * pseudo-random data, then forks CHILDREN (argv[3], default 4) that only read it. Each child
 * keeps the checksum it computed right after the fork; one child also writes to a few pages of
 * its own (those must stay its own). The parent's check: every child is alive and, asked
 * through the shared control page, recomputes the checksum of its view and finds it unchanged,
 * and the parent's own view is intact too. How much memory the tree uses is for the test to
 * read from /proc (Pss), before and after a restore.
 */
#include "target.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define MAX_CHILDREN 16

struct control {
    volatile int ask;                       /* bumped by the parent to ask for a check */
    volatile int answered[MAX_CHILDREN];    /* each child copies ask here when done */
    volatile int bad[MAX_CHILDREN];
    volatile int up[MAX_CHILDREN];          /* set once the child has its checksum and watches ask */
    pid_t pid[MAX_CHILDREN];
};

static uint64_t checksum(const uint64_t *p, size_t words)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < words; i++) {
        h = (h ^ p[i]) * 1099511628211ULL;
    }
    return h;
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 64;
    int children = argc > 3 ? atoi(argv[3]) : 4;
    if (children > MAX_CHILDREN) children = MAX_CHILDREN;
    size_t bytes = mib << 20, words = bytes / 8;
    uint64_t *data = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct control *ctl = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED || ctl == MAP_FAILED) target_die("mmap: %s", strerror(errno));
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < words; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        data[i] = x;
    }
    uint64_t sum = checksum(data, words);
    for (int c = 0; c < children; c++) {
        pid_t pid = fork();
        if (pid < 0) target_die("fork: %s", strerror(errno));
        if (pid == 0) {
            signal(SIGUSR2, SIG_IGN);
            if (c == 0) {               /* a few pages of its own */
                for (size_t i = 0; i < 4; i++) data[i * 512] ^= 0x5a5a5a5aULL;
            }
            uint64_t mine = checksum(data, words);
            int seen = ctl->ask;
            ctl->up[c] = 1;
            for (;;) {
                if (ctl->ask != seen) {
                    seen = ctl->ask;
                    ctl->bad[c] = checksum(data, words) != mine;
                    ctl->answered[c] = seen;
                }
                target_sleep_ms(5);
            }
        }
        ctl->pid[c] = pid;
    }
    for (int c = 0; c < children; c++) {
        while (!ctl->up[c]) target_sleep_ms(1);   /* a check asked before a child watches would go unanswered */
    }
    target_ready();
    for (;;) {
        if (target_check_requested()) {
            int ask = ++ctl->ask;
            for (int c = 0; c < children; c++) {
                for (int waited = 0; ctl->answered[c] != ask && waited < 3000; waited += 5) target_sleep_ms(5);
                if (ctl->answered[c] != ask) target_fail("child %d (pid %d) did not answer", c, ctl->pid[c]);
                else if (ctl->bad[c]) target_fail("child %d (pid %d) sees changed memory", c, ctl->pid[c]);
            }
            if (checksum(data, words) != sum) target_fail("the parent's memory changed");
            target_report();
        }
        target_sleep_ms(5);
    }
}
