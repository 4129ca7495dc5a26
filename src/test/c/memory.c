/*
 * Memory target: private, shared, read-only, guard and sparse mappings plus a heap buffer,
 * each with known content, a mapping with content that is then made PROT_NONE (as a JVM's heap
 * has: the process itself cannot read it), and a counter that keeps moving.
 *
 * Check: every area's content still matches its checksum; /proc/self/maps shows each area
 * with the permissions it was given; in the sparse mapping the touched pages are intact and
 * any other resident page is zero, and under 16 MiB of it is resident; the counter (kept in
 * .bss and on the stack) is intact and moving.
 */
#include "target.h"

#include <sys/mman.h>

#define MIB (1024UL * 1024UL)
#define PAGE 4096UL

#define BIG_SIZE (64 * MIB)
#define SPARSE_SIZE (256 * MIB)
#define HEAP_SIZE (64 * 1024UL) /* below glibc's mmap threshold: lives in the brk heap */
#define SHARED_SIZE (1 * MIB)
#define RO_SIZE (16 * PAGE)
#define HIDDEN_SIZE (64 * PAGE)

/* Pages of the sparse mapping that are written; all others stay untouched. */
static const size_t sparse_touched[] = { 0, 100 * MIB / PAGE, SPARSE_SIZE / PAGE - 1 };
#define SPARSE_TOUCHED (sizeof sparse_touched / sizeof sparse_touched[0])

struct area {
    const char *name;
    unsigned char *addr;
    size_t size;
    const char *perms; /* as /proc/self/maps shows them */
    uint64_t checksum; /* 0 for areas not checksummed (guard) */
};

enum { BIG, SPARSE, HEAP, SHARED, READONLY, GUARD, HIDDEN, AREAS };
static struct area areas[AREAS];

static volatile uint64_t counter;      /* moved by the main loop */
static uint64_t counter_at_last_check;

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void fill_random(unsigned char *p, size_t size, uint64_t seed)
{
    uint64_t s = seed;
    uint64_t *w = (uint64_t *)p;
    for (size_t i = 0; i < size / 8; i++)
        w[i] = xorshift64(&s);
}

static void fill_pattern(unsigned char *p, size_t size, unsigned mul, unsigned add)
{
    for (size_t i = 0; i < size; i++)
        p[i] = (unsigned char)(i * mul + add + (i >> 12));
}

/* FNV-1a over 64-bit words (the sizes here are multiples of 8). */
static uint64_t checksum(const unsigned char *p, size_t size)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < size / 8; i++) {
        h ^= w[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t sparse_checksum(void)
{
    uint64_t h = 0;
    for (size_t i = 0; i < SPARSE_TOUCHED; i++)
        h = h * 31 + checksum(areas[SPARSE].addr + sparse_touched[i] * PAGE, PAGE);
    return h;
}

static unsigned char *map(size_t size, int prot, int flags)
{
    void *p = mmap(NULL, size, prot, flags, -1, 0);
    if (p == MAP_FAILED)
        target_die("mmap(%zu): %s", size, strerror(errno));
    return p;
}

static void setup(void)
{
    areas[BIG] = (struct area){ "64MiB private", map(BIG_SIZE, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS), BIG_SIZE, "rw-p", 0 };
    fill_random(areas[BIG].addr, BIG_SIZE, 0x5eed1234abcdef01ULL);
    areas[BIG].checksum = checksum(areas[BIG].addr, BIG_SIZE);

    /* Fenced by PROT_NONE pages so it stays one mapping of its own, whose Rss can be read. */
    unsigned char *fenced = map(SPARSE_SIZE + 2 * PAGE, PROT_NONE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (mprotect(fenced + PAGE, SPARSE_SIZE, PROT_READ | PROT_WRITE) != 0)
        target_die("mprotect: %s", strerror(errno));
    areas[SPARSE] = (struct area){ "256MiB sparse", fenced + PAGE, SPARSE_SIZE, "rw-p", 0 };
    for (size_t i = 0; i < SPARSE_TOUCHED; i++)
        fill_random(areas[SPARSE].addr + sparse_touched[i] * PAGE, PAGE, 77 + i);
    areas[SPARSE].checksum = sparse_checksum();

    unsigned char *heap = malloc(HEAP_SIZE);
    if (heap == NULL)
        target_die("malloc");
    areas[HEAP] = (struct area){ "heap buffer", heap, HEAP_SIZE, "rw-p", 0 };
    fill_pattern(heap, HEAP_SIZE, 7, 3);
    areas[HEAP].checksum = checksum(heap, HEAP_SIZE);

    areas[SHARED] = (struct area){ "shared anon", map(SHARED_SIZE, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS), SHARED_SIZE, "rw-s", 0 };
    fill_pattern(areas[SHARED].addr, SHARED_SIZE, 13, 101);
    areas[SHARED].checksum = checksum(areas[SHARED].addr, SHARED_SIZE);

    areas[READONLY] = (struct area){ "read-only", map(RO_SIZE, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS), RO_SIZE, "r--p", 0 };
    fill_pattern(areas[READONLY].addr, RO_SIZE, 29, 55);
    areas[READONLY].checksum = checksum(areas[READONLY].addr, RO_SIZE);
    if (mprotect(areas[READONLY].addr, RO_SIZE, PROT_READ) != 0)
        target_die("mprotect: %s", strerror(errno));

    /* A guard page between two writable pages, as thread stacks have. */
    unsigned char *g = map(3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    if (mprotect(g + PAGE, PAGE, PROT_NONE) != 0)
        target_die("mprotect: %s", strerror(errno));
    memset(g, 0xa5, PAGE);
    memset(g + 2 * PAGE, 0x5a, PAGE);
    areas[GUARD] = (struct area){ "guard page", g + PAGE, PAGE, "---p", 0 };

    unsigned char *h = map(HIDDEN_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    fill_random(h, HIDDEN_SIZE, 0x48696464656e2121ULL);
    areas[HIDDEN] = (struct area){ "hidden (PROT_NONE) pages", h, HIDDEN_SIZE, "---p", checksum(h, HIDDEN_SIZE) };
    if (mprotect(h, HIDDEN_SIZE, PROT_NONE) != 0)
        target_die("mprotect: %s", strerror(errno));
}

/* Finds the /proc/self/maps line covering addr: its range and permissions. */
static int maps_lookup(const void *addr, uintptr_t *start, uintptr_t *end, char perms[5])
{
    static char maps[1 << 20];
    if (target_read_file("/proc/self/maps", maps, sizeof maps) < 0)
        return target_fail("reading /proc/self/maps: %s", strerror(errno));
    uintptr_t a = (uintptr_t)addr;
    for (char *line = maps; *line; ) {
        char *nl = strchr(line, '\n');
        unsigned long s, e;
        char p[5];
        if (sscanf(line, "%lx-%lx %4s", &s, &e, p) == 3 && s <= a && a < e) {
            *start = s;
            *end = e;
            memcpy(perms, p, 5);
            return 0;
        }
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    return target_fail("no mapping in /proc/self/maps covers %p", addr);
}

/* Resident bytes of the mapping starting at start, from /proc/self/smaps. */
static long smaps_rss_kb(uintptr_t start)
{
    static char smaps[4 << 20];
    if (target_read_file("/proc/self/smaps", smaps, sizeof smaps) < 0)
        return target_fail("reading /proc/self/smaps: %s", strerror(errno));
    char head[32];
    snprintf(head, sizeof head, "%lx-", (unsigned long)start);
    for (char *line = smaps; line != NULL && *line; ) {
        if (strncmp(line, head, strlen(head)) == 0) {
            char *rss = strstr(line, "\nRss:");
            long kb;
            if (rss == NULL || sscanf(rss, "\nRss: %ld kB", &kb) != 1)
                return target_fail("no Rss for %lx in smaps", (unsigned long)start);
            return kb;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return target_fail("mapping %lx missing from smaps", (unsigned long)start);
}

static void check(uint64_t stack_counter)
{
    uint64_t now = counter;
    if (stack_counter != now)
        target_fail("counter in .bss is %llu but on the stack %llu",
                    (unsigned long long)now, (unsigned long long)stack_counter);
    if (now <= counter_at_last_check)
        target_fail("counter %llu did not move since last check (%llu)",
                    (unsigned long long)now, (unsigned long long)counter_at_last_check);
    counter_at_last_check = now;

    for (int i = 0; i < AREAS; i++) {
        struct area *a = &areas[i];
        uintptr_t s = 0, e = 0;
        char perms[5];
        if (maps_lookup(a->addr, &s, &e, perms) != 0)
            continue;
        if (strcmp(perms, a->perms) != 0)
            target_fail("%s at %p has perms %s, expected %s", a->name, a->addr, perms, a->perms);
        if ((uintptr_t)a->addr + a->size > e)
            target_fail("%s at %p: mapping ends at %lx, before the area's end",
                        a->name, a->addr, (unsigned long)e);
        if (i == GUARD || i == SPARSE)
            continue;
        if (i == HIDDEN && mprotect(a->addr, a->size, PROT_READ) != 0)
            target_die("mprotect: %s", strerror(errno));
        uint64_t sum = checksum(a->addr, a->size);
        if (i == HIDDEN && mprotect(a->addr, a->size, PROT_NONE) != 0)
            target_die("mprotect: %s", strerror(errno));
        if (sum != a->checksum)
            target_fail("%s at %p: checksum %016llx, expected %016llx", a->name, a->addr,
                        (unsigned long long)sum, (unsigned long long)a->checksum);
    }

    /* The guard's neighbours keep their fill and stay separate mappings. */
    const unsigned char *g = areas[GUARD].addr;
    if (g[-1] != 0xa5 || g[-PAGE] != 0xa5 || g[PAGE] != 0x5a || g[2 * PAGE - 1] != 0x5a)
        target_fail("pages around the guard page lost their content");

    struct area *sp = &areas[SPARSE];
    if (sparse_checksum() != sp->checksum)
        target_fail("touched pages of the sparse mapping changed");
    /*
     * Untouched pages are never read (that would map the zero page into them), only asked
     * about: any page resident besides the touched ones must hold zeros.
     */
    static unsigned char resident[SPARSE_SIZE / PAGE];
    if (mincore(sp->addr, SPARSE_SIZE, resident) != 0) {
        target_fail("mincore: %s", strerror(errno));
    } else {
        for (size_t page = 0; page < SPARSE_SIZE / PAGE; page++) {
            int touched = 0;
            for (size_t i = 0; i < SPARSE_TOUCHED; i++)
                touched |= sparse_touched[i] == page;
            if (touched) {
                if (!(resident[page] & 1))
                    target_fail("touched sparse page %zu is not resident", page);
                continue;
            }
            if (!(resident[page] & 1))
                continue;
            const uint64_t *w = (const uint64_t *)(sp->addr + page * PAGE);
            for (size_t j = 0; j < PAGE / 8; j++)
                if (w[j] != 0) {
                    target_fail("untouched sparse page %zu is not zero", page);
                    break;
                }
        }
    }
    long rss = smaps_rss_kb((uintptr_t)sp->addr);
    /* 3 touched pages; allow huge pages around them if THP is on. */
    if (rss > 16 * 1024)
        target_fail("sparse 256MiB mapping has %ld kB resident: untouched pages got populated",
                    rss);
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    setup();
    uint64_t stack_counter = 0;
    counter++;
    stack_counter++;
    target_ready();
    for (;;) {
        if (target_check_requested()) {
            check(stack_counter);
            target_report();
        }
        counter++;
        stack_counter++;
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep(&ts, NULL);
    }
}
