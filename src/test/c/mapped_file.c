/*
 * File-mapping target: shared and private mappings of regular files in STATE.
 *
 *   STATE/shared.bin  64 KiB of pattern A, mapped twice:
 *       "shared"     MAP_SHARED  rw, the whole file;
 *       "window"     MAP_SHARED  r-, 3 pages at file offset 16 KiB (pgoff != 0).
 *   STATE/private.bin 64 KiB of pattern B, mapped twice:
 *       "private"    MAP_PRIVATE rw, the whole file; pages 1 and 5 are rewritten with
 *                    pattern C (copy-on-write: the file keeps pattern B);
 *       "private_ro" MAP_PRIVATE r--, the whole file, only ever read.
 *
 * Two 32-byte text slots of shared.bin, at offset 0 and at 16 KiB (the window's first
 * bytes), hold the check counter as "N\n" padded with NULs; both start as "0\n".
 *
 * Check: pages 1 and 5 of "private" hold pattern C and its other pages equal the file;
 * STATE/private.bin, read with read(), is still pattern B; "private_ro" equals the file;
 * "shared" equals STATE/shared.bin as read(), is pattern A outside the slots, and both slots
 * (through "shared" and through "window") hold the previous counter value; /proc/self/maps
 * shows each of the four mappings as one VMA at its address with the same range, permissions,
 * offset, device, inode and path as at start. Then the counter is incremented and written as
 * text into both slots through "shared" and msync(MS_SYNC)ed; "window" must see the new value
 * at once (it is the same page cache page) and so must a pread() of the file; last the value
 * goes to STATE/shared_value (atomically), for the test to compare with the file's first bytes.
 */
#include "target.h"

#include <sys/mman.h>
#include <sys/stat.h>

#define PAGE 4096UL
#define FILE_SIZE (64 * 1024UL)
#define PAGES (FILE_SIZE / PAGE)
#define WINDOW_OFFSET (16 * 1024UL)
#define WINDOW_SIZE (3 * PAGE)
#define SLOT 32

/* Pages of the private rw mapping that are written (copy-on-write) at setup. */
static const size_t modified_pages[] = { 1, 5 };
#define MODIFIED (sizeof modified_pages / sizeof modified_pages[0])

/* Slots holding the counter text, as offsets into shared.bin. */
static const size_t slots[] = { 0, WINDOW_OFFSET };
#define SLOTS (sizeof slots / sizeof slots[0])

struct mapping {
    const char *name;
    const char *file; /* under STATE */
    unsigned char *addr;
    size_t size;
    unsigned long offset;
    int prot, flags;
    /* As /proc/self/maps showed it at start. */
    unsigned long start, end, pgoff, inode;
    char perms[5];
    unsigned dev_major, dev_minor;
    char path[PATH_MAX];
};

enum { SHARED, WINDOW, PRIVATE, PRIVATE_RO, MAPPINGS };
static struct mapping maps[MAPPINGS] = {
    [SHARED] = { "shared", "shared.bin", NULL, FILE_SIZE, 0, PROT_READ | PROT_WRITE, MAP_SHARED },
    [WINDOW] = { "window", "shared.bin", NULL, WINDOW_SIZE, WINDOW_OFFSET, PROT_READ, MAP_SHARED },
    [PRIVATE] = { "private", "private.bin", NULL, FILE_SIZE, 0, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE },
    [PRIVATE_RO] = { "private_ro", "private.bin", NULL, FILE_SIZE, 0, PROT_READ, MAP_PRIVATE },
};

static unsigned long long check_counter; /* value now in the slots */

static char maps_buf[1 << 18];
static unsigned char file_buf[FILE_SIZE];

static unsigned char pattern_a(size_t i)
{
    return (unsigned char)(i * 7 + 3 + (i >> 12) * 29);
}

static unsigned char pattern_b(size_t i)
{
    return (unsigned char)(i * 13 + 101 + (i >> 12) * 17);
}

/* Differs from pattern B in every byte. */
static unsigned char pattern_c(size_t i)
{
    return (unsigned char)(pattern_b(i) ^ 0xc3);
}

static int in_slot(size_t i)
{
    for (size_t s = 0; s < SLOTS; s++)
        if (i >= slots[s] && i < slots[s] + SLOT)
            return 1;
    return 0;
}

static int is_modified_page(size_t page)
{
    for (size_t m = 0; m < MODIFIED; m++)
        if (modified_pages[m] == page)
            return 1;
    return 0;
}

/* The slot text for value v: "v\n" padded with NULs to SLOT bytes. */
static void slot_text(unsigned char *out, unsigned long long v)
{
    memset(out, 0, SLOT);
    snprintf((char *)out, SLOT, "%llu\n", v);
}

/* Reads all of STATE/name (must be exactly FILE_SIZE bytes) into file_buf with read(). */
static int read_whole(const char *name)
{
    char path[PATH_MAX];
    target_path(path, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return target_fail("open %s: %s", name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return target_fail("fstat %s: %s", name, strerror(errno));
    }
    if ((size_t)st.st_size != FILE_SIZE) {
        close(fd);
        return target_fail("%s is %lld bytes, expected %lu", name, (long long)st.st_size,
                           FILE_SIZE);
    }
    size_t done = 0;
    while (done < FILE_SIZE) {
        ssize_t n = read(fd, file_buf + done, FILE_SIZE - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return target_fail("read %s: %s", name, n < 0 ? strerror(errno) : "short file");
        }
        done += (size_t)n;
    }
    close(fd);
    return 0;
}

static void create_file(const char *name, unsigned char (*pattern)(size_t))
{
    for (size_t i = 0; i < FILE_SIZE; i++)
        file_buf[i] = pattern(i);
    if (pattern == pattern_a)
        for (size_t s = 0; s < SLOTS; s++)
            slot_text(file_buf + slots[s], 0);
    char path[PATH_MAX];
    target_path(path, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        target_die("create %s: %s", name, strerror(errno));
    size_t done = 0;
    while (done < FILE_SIZE) {
        ssize_t n = write(fd, file_buf + done, FILE_SIZE - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            target_die("write %s: %s", name, strerror(errno));
        done += (size_t)n;
    }
    if (fsync(fd) != 0)
        target_die("fsync %s: %s", name, strerror(errno));
    close(fd);
}

static void map_file(struct mapping *m)
{
    char path[PATH_MAX];
    target_path(path, m->file);
    int fd = open(path, (m->prot & PROT_WRITE) && (m->flags & MAP_SHARED) ? O_RDWR : O_RDONLY);
    if (fd < 0)
        target_die("open %s: %s", m->file, strerror(errno));
    void *p = mmap(NULL, m->size, m->prot, m->flags, fd, (off_t)m->offset);
    if (p == MAP_FAILED)
        target_die("mmap %s (%s): %s", m->name, m->file, strerror(errno));
    /* The mapping must not depend on the fd: only the mapping keeps the file. */
    close(fd);
    m->addr = p;
}

/*
 * Finds the /proc/self/maps line starting at start and parses it. Returns 0, or -1 (with a
 * failure recorded) if there is none or it cannot be parsed.
 */
static int maps_entry(unsigned long start, unsigned long *end, char *perms, unsigned long *pgoff,
                      unsigned *major, unsigned *minor, unsigned long *inode, char *path)
{
    if (target_read_file("/proc/self/maps", maps_buf, sizeof maps_buf) < 0)
        return target_fail("reading /proc/self/maps: %s", strerror(errno));
    for (char *line = maps_buf; *line; ) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        unsigned long s, e;
        int consumed = 0;
        if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu %n", &s, &e, perms, pgoff, major, minor,
                   inode, &consumed) == 7 && s == start) {
            snprintf(path, PATH_MAX, "%s", consumed > 0 ? line + consumed : "");
            *end = e;
            return 0;
        }
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    return target_fail("no mapping starts at %#lx in /proc/self/maps", start);
}

static void setup(void)
{
    create_file("shared.bin", pattern_a);
    create_file("private.bin", pattern_b);
    for (int i = 0; i < MAPPINGS; i++)
        map_file(&maps[i]);

    /* Copy-on-write pages 1 and 5 of the private rw mapping. */
    for (size_t m = 0; m < MODIFIED; m++) {
        unsigned char *page = maps[PRIVATE].addr + modified_pages[m] * PAGE;
        for (size_t j = 0; j < PAGE; j++)
            page[j] = pattern_c(modified_pages[m] * PAGE + j);
    }
    /* Read (fault in) every other mapping, checking what it shows. */
    for (size_t i = 0; i < FILE_SIZE; i++) {
        if (maps[PRIVATE_RO].addr[i] != pattern_b(i))
            target_die("private_ro byte %zu is not pattern B", i);
        if (!in_slot(i) && maps[SHARED].addr[i] != pattern_a(i))
            target_die("shared byte %zu is not pattern A", i);
        if (!is_modified_page(i / PAGE) && maps[PRIVATE].addr[i] != pattern_b(i))
            target_die("private byte %zu is not pattern B", i);
    }
    if (memcmp(maps[WINDOW].addr, maps[SHARED].addr + WINDOW_OFFSET, WINDOW_SIZE) != 0)
        target_die("window differs from the shared mapping");

    for (int i = 0; i < MAPPINGS; i++) {
        struct mapping *m = &maps[i];
        m->start = (unsigned long)m->addr;
        if (maps_entry(m->start, &m->end, m->perms, &m->pgoff, &m->dev_major, &m->dev_minor,
                       &m->inode, m->path) != 0)
            target_die("%s", target_fail_reason);
        if (m->end != m->start + m->size)
            target_die("%s at %p is not a VMA of its own (ends at %#lx, expected %#lx)", m->name,
                       m->addr, m->end, m->start + m->size);
        if (m->pgoff != m->offset)
            target_die("%s shows offset %#lx, expected %#lx", m->name, m->pgoff, m->offset);
    }
    if (target_write_file("shared_value", "0\n") != 0)
        target_die("writing shared_value: %s", strerror(errno));
}

static void check_maps(void)
{
    for (int i = 0; i < MAPPINGS; i++) {
        const struct mapping *m = &maps[i];
        unsigned long end, pgoff, inode;
        unsigned major, minor;
        char perms[5], path[PATH_MAX];
        if (maps_entry(m->start, &end, perms, &pgoff, &major, &minor, &inode, path) != 0)
            return;
        if (end != m->end)
            target_fail("%s: maps shows %#lx-%#lx, expected %#lx-%#lx", m->name, m->start, end,
                        m->start, m->end);
        if (strcmp(perms, m->perms) != 0)
            target_fail("%s at %#lx has perms %s, expected %s", m->name, m->start, perms,
                        m->perms);
        if (pgoff != m->pgoff)
            target_fail("%s at %#lx has offset %#lx, expected %#lx", m->name, m->start, pgoff,
                        m->pgoff);
        if (major != m->dev_major || minor != m->dev_minor || inode != m->inode)
            target_fail("%s at %#lx maps dev %x:%x inode %lu, expected %x:%x inode %lu", m->name,
                        m->start, major, minor, inode, m->dev_major, m->dev_minor, m->inode);
        if (strcmp(path, m->path) != 0)
            target_fail("%s at %#lx maps \"%s\", expected \"%s\"", m->name, m->start, path,
                        m->path);
    }
}

static void check_private(void)
{
    const unsigned char *p = maps[PRIVATE].addr;
    for (size_t m = 0; m < MODIFIED; m++) {
        size_t page = modified_pages[m];
        for (size_t j = 0; j < PAGE; j++)
            if (p[page * PAGE + j] != pattern_c(page * PAGE + j)) {
                target_fail("private page %zu (copy-on-write) byte %zu is %#x, expected %#x",
                            page, j, p[page * PAGE + j], pattern_c(page * PAGE + j));
                break;
            }
    }
    if (read_whole("private.bin") != 0)
        return;
    for (size_t i = 0; i < FILE_SIZE; i++)
        if (file_buf[i] != pattern_b(i)) {
            target_fail("private.bin on disk changed: byte %zu is %#x, expected %#x", i,
                        file_buf[i], pattern_b(i));
            return;
        }
    for (size_t i = 0; i < FILE_SIZE; i++) {
        if (!is_modified_page(i / PAGE) && p[i] != file_buf[i]) {
            target_fail("private page %zu (untouched) byte %zu is %#x, but the file has %#x",
                        i / PAGE, i % PAGE, p[i], file_buf[i]);
            break;
        }
    }
    const unsigned char *ro = maps[PRIVATE_RO].addr;
    for (size_t i = 0; i < FILE_SIZE; i++)
        if (ro[i] != file_buf[i]) {
            target_fail("private_ro page %zu byte %zu is %#x, but the file has %#x", i / PAGE,
                        i % PAGE, ro[i], file_buf[i]);
            break;
        }
}

static void check_shared(void)
{
    const unsigned char *sh = maps[SHARED].addr;
    const unsigned char *win = maps[WINDOW].addr;
    unsigned char expected[SLOT];
    slot_text(expected, check_counter);
    for (size_t s = 0; s < SLOTS; s++)
        if (memcmp(sh + slots[s], expected, SLOT) != 0)
            target_fail("shared slot at %#zx holds \"%.*s\", expected \"%llu\"", slots[s],
                        (int)strcspn((const char *)sh + slots[s], "\n"), sh + slots[s],
                        check_counter);
    if (memcmp(win, expected, SLOT) != 0)
        target_fail("window slot holds \"%.*s\", expected \"%llu\"",
                    (int)strcspn((const char *)win, "\n"), win, check_counter);
    for (size_t i = 0; i < FILE_SIZE; i++)
        if (!in_slot(i) && sh[i] != pattern_a(i)) {
            target_fail("shared page %zu byte %zu is %#x, expected %#x", i / PAGE, i % PAGE,
                        sh[i], pattern_a(i));
            break;
        }
    if (read_whole("shared.bin") == 0) {
        for (size_t i = 0; i < FILE_SIZE; i++)
            if (sh[i] != file_buf[i]) {
                target_fail("shared page %zu byte %zu is %#x, but the file has %#x", i / PAGE,
                            i % PAGE, sh[i], file_buf[i]);
                break;
            }
    }
    if (memcmp(win, sh + WINDOW_OFFSET, WINDOW_SIZE) != 0)
        target_fail("window (shared.bin at 16 KiB) differs from the shared mapping");
}

/* Writes the next counter value through the shared mapping and publishes it. */
static void write_counter(void)
{
    unsigned char *sh = maps[SHARED].addr;
    unsigned char text[SLOT];
    check_counter++;
    slot_text(text, check_counter);
    for (size_t s = 0; s < SLOTS; s++)
        memcpy(sh + slots[s], text, SLOT);
    if (msync(sh, FILE_SIZE, MS_SYNC) != 0) {
        target_fail("msync(MS_SYNC) of the shared mapping: %s", strerror(errno));
        return;
    }
    if (memcmp(maps[WINDOW].addr, text, SLOT) != 0)
        target_fail("window does not see the value %llu just written through the shared mapping",
                    check_counter);
    char path[PATH_MAX];
    target_path(path, "shared.bin");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned char head[SLOT], mid[SLOT];
    if (fd < 0) {
        target_fail("open shared.bin: %s", strerror(errno));
    } else {
        if (pread(fd, head, SLOT, 0) != SLOT || pread(fd, mid, SLOT, WINDOW_OFFSET) != SLOT)
            target_fail("pread shared.bin: %s", strerror(errno));
        else if (memcmp(head, text, SLOT) != 0 || memcmp(mid, text, SLOT) != 0)
            target_fail("value %llu written through the shared mapping is not in shared.bin",
                        check_counter);
        close(fd);
    }
    if (target_write_file("shared_value", (const char *)text) != 0)
        target_fail("writing shared_value: %s", strerror(errno));
}

static void check(void)
{
    check_private();
    check_shared();
    check_maps();
    write_counter();
}

int main(int argc, char **argv)
{
    target_init(argc, argv);
    setup();
    target_serve_checks(check);
}
