/*
 * Rewriter target, for incremental dumps: memory that keeps changing while it is pre-dumped.
 *
 *   rewriter STATE [MIB [PAGES_PER_MS]]   (defaults: 64 MiB, 2 pages per millisecond)
 *
 * - "big": MIB MiB of private anonymous memory; every page holds a sequence derived from its
 *   index and its generation, gen[page] (the generations live in memory too). The main loop
 *   rewrites PAGES_PER_MS pages per millisecond, moving through the area, each with its
 *   generation plus one.
 * - "shared": 4 MiB of MAP_SHARED anonymous memory (shmem), rewritten the same way, slower.
 * - "churn": 1 MiB replaced every 100 ms by a new mapping at the same address (mmap MAP_FIXED)
 *   and filled with the next generation: the new mapping is not the one a pre-dump saw.
 * - "appuffd" (only with REWRITER_OWN_UFFD=1): 1 MiB the program registers with a userfaultfd
 *   of its own, in async write-protect mode, and tracks itself with PAGEMAP_SCAN; the check
 *   asks the kernel which of its pages were written since it protected them and expects
 *   exactly the ones it wrote (so Cryo's tracker left the area alone). Such a process cannot
 *   be checkpointed (its userfaultfd is an fd Cryo refuses), only pre-dumped.
 *
 * Check (between two iterations, so always at a consistent point): every page of big, shared
 * and churn holds the sequence of its current generation. After a chain of pre-dumps and an
 * incremental checkpoint, a page restored from the wrong image holds an older generation.
 */
#include "target.h"

#include <sys/mman.h>
#include <linux/userfaultfd.h>

#define MIB (1024UL * 1024UL)
#define PAGE 4096UL
#define SHARED_SIZE (4 * MIB)
#define CHURN_SIZE (1 * MIB)
#define OWN_SIZE (1 * MIB)

struct area {
    const char *name;
    unsigned char *addr;
    size_t pages;
    uint32_t *gen;
    size_t cursor;
};

static struct area big, shared, churn;
static uint32_t churn_gen;

static uint64_t seed_of(size_t page, uint32_t gen, uint64_t salt)
{
    uint64_t s = (page + 1) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)gen << 32) ^ salt;
    return s ? s : 1;
}

static void fill_page(unsigned char *p, size_t page, uint32_t gen, uint64_t salt)
{
    uint64_t s = seed_of(page, gen, salt);
    uint64_t *w = (uint64_t *)p;
    for (size_t i = 0; i < PAGE / 8; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        w[i] = s;
    }
}

static int page_ok(const unsigned char *p, size_t page, uint32_t gen, uint64_t salt)
{
    uint64_t s = seed_of(page, gen, salt);
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < PAGE / 8; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        if (w[i] != s)
            return 0;
    }
    return 1;
}

static unsigned char *map(size_t size, int flags)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED)
        target_die("mmap(%zu): %s", size, strerror(errno));
    return p;
}

static void setup_area(struct area *a, const char *name, size_t size, int flags)
{
    a->name = name;
    a->addr = map(size, flags);
    a->pages = size / PAGE;
    a->gen = (uint32_t *)map(a->pages * sizeof(uint32_t), MAP_PRIVATE | MAP_ANONYMOUS);
    for (size_t i = 0; i < a->pages; i++)
        fill_page(a->addr + i * PAGE, i, 0, (uint64_t)(uintptr_t)name);
}

static void rewrite(struct area *a, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        size_t page = a->cursor;
        fill_page(a->addr + page * PAGE, page, a->gen[page] + 1, (uint64_t)(uintptr_t)a->name);
        a->gen[page]++;
        a->cursor = (a->cursor + 7919) % a->pages; /* a prime stride: spread over the area */
    }
}

static void replace_churn(void)
{
    /* a new mapping in the place of the old one, in one call */
    void *p = mmap(churn.addr, CHURN_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED)
        target_die("mmap churn: %s", strerror(errno));
    uint32_t next = churn_gen + 1;
    for (size_t i = 0; i < churn.pages; i++)
        fill_page(churn.addr + i * PAGE, i, next, (uint64_t)(uintptr_t)churn.name);
    churn_gen = next;
}

/* Every page holds its generation: gen[page], or all the same one when gen is NULL (churn). */
static void check_area(struct area *a, uint32_t all_gen)
{
    for (size_t i = 0; i < a->pages; i++) {
        uint32_t gen = a->gen != NULL ? a->gen[i] : all_gen;
        if (!page_ok(a->addr + i * PAGE, i, gen, (uint64_t)(uintptr_t)a->name)) {
            target_fail("%s: page %zu does not hold generation %u", a->name, i, gen);
            return;
        }
    }
}

/* ---- the application's own userfaultfd (REWRITER_OWN_UFFD=1) ---- */

struct pm_scan_arg_v1 { uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages,
                        category_inverted, category_mask, category_anyof_mask, return_mask; };
struct page_region_v1 { uint64_t start, end, categories; };
#define PAGEMAP_SCAN_REQ 0xc0606610UL
#define PAGE_IS_WRITTEN_BIT (1UL << 1)

static int own_uffd = -1;
static unsigned char *own;
static int own_written[OWN_SIZE / PAGE];

static void setup_own_uffd(void)
{
    own = map(OWN_SIZE, MAP_PRIVATE | MAP_ANONYMOUS);
    own_uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
    if (own_uffd < 0)
        target_die("userfaultfd: %s", strerror(errno));
    struct uffdio_api api = { .api = UFFD_API, .features = (1UL << 15) | (1UL << 13) };
    if (ioctl(own_uffd, UFFDIO_API, &api) != 0)
        target_die("UFFDIO_API: %s", strerror(errno));
    struct uffdio_register reg = { .range = { (uintptr_t)own, OWN_SIZE }, .mode = UFFDIO_REGISTER_MODE_WP };
    if (ioctl(own_uffd, UFFDIO_REGISTER, &reg) != 0)
        target_die("UFFDIO_REGISTER: %s", strerror(errno));
    struct uffdio_writeprotect wp = { .range = { (uintptr_t)own, OWN_SIZE }, .mode = UFFDIO_WRITEPROTECT_MODE_WP };
    if (ioctl(own_uffd, UFFDIO_WRITEPROTECT, &wp) != 0)
        target_die("UFFDIO_WRITEPROTECT: %s", strerror(errno));
}

static void own_write(size_t page)
{
    own[page * PAGE] = 1;
    own_written[page] = 1;
}

static void check_own(void)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        target_fail("open pagemap: %s", strerror(errno));
        return;
    }
    struct page_region_v1 r[64];
    struct pm_scan_arg_v1 a = { .size = sizeof a, .start = (uintptr_t)own, .end = (uintptr_t)own + OWN_SIZE,
                                .vec = (uintptr_t)r, .vec_len = 64, .category_mask = PAGE_IS_WRITTEN_BIT,
                                .return_mask = PAGE_IS_WRITTEN_BIT };
    long n = ioctl(fd, PAGEMAP_SCAN_REQ, &a);
    close(fd);
    if (n < 0) {
        target_fail("PAGEMAP_SCAN: %s", strerror(errno));
        return;
    }
    int seen[OWN_SIZE / PAGE] = { 0 };
    for (long i = 0; i < n; i++)
        for (uint64_t p = r[i].start; p < r[i].end; p += PAGE)
            seen[(p - (uintptr_t)own) / PAGE] = 1;
    for (size_t p = 0; p < OWN_SIZE / PAGE; p++)
        if (seen[p] != own_written[p]) {
            target_fail("own userfaultfd: page %zu %s written, the kernel says %s", p,
                        own_written[p] ? "was" : "was not", seen[p] ? "written" : "not written");
            return;
        }
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
    size_t per_ms = argc > 3 ? strtoul(argv[3], NULL, 10) : 2;
    const char *own_env = getenv("REWRITER_OWN_UFFD");
    int with_own = own_env != NULL && strcmp(own_env, "1") == 0;
    setup_area(&big, "big", mib * MIB, MAP_PRIVATE | MAP_ANONYMOUS);
    setup_area(&shared, "shared", SHARED_SIZE, MAP_SHARED | MAP_ANONYMOUS);
    churn.name = "churn";
    churn.addr = map(CHURN_SIZE, MAP_PRIVATE | MAP_ANONYMOUS);
    churn.pages = CHURN_SIZE / PAGE;
    replace_churn();
    if (with_own) {
        setup_own_uffd();
        own_write(3);
    }
    target_ready();
    uint64_t last_churn = target_now_ns();
    size_t own_step = 0;
    for (;;) {
        if (target_check_requested()) {
            check_area(&big, 0);
            check_area(&shared, 0);
            check_area(&churn, churn_gen);
            if (with_own)
                check_own();
            target_report();
        }
        rewrite(&big, per_ms);
        if (++own_step % 8 == 0) {
            rewrite(&shared, 1);
            if (with_own)
                own_write((own_step / 8) % 64 + 10);
        }
        if (target_now_ns() - last_churn > 100 * 1000000ULL) {
            replace_churn();
            last_churn = target_now_ns();
        }
        target_sleep_ms(1);
    }
}
