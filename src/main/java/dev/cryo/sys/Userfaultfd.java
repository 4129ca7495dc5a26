package dev.cryo.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The userfaultfd ioctls Cryo issues from its own side on a copy of a task's userfaultfd
 * (userfaultfd(2), include/uapi/linux/userfaultfd.h). They act on the address space the
 * userfaultfd was created in, not on the caller's: Cryo registers and write-protects ranges of
 * the task through its copy.
 * <pre>
 *  struct uffdio_api          { u64 api; u64 features; u64 ioctls; }              24 bytes
 *  struct uffdio_range        { u64 start; u64 len; }                             16 bytes
 *  struct uffdio_register     { uffdio_range range; u64 mode; u64 ioctls; }       32 bytes
 *  struct uffdio_writeprotect { uffdio_range range; u64 mode; }                   24 bytes
 * </pre>
 */
public final class Userfaultfd {
    public static final long API = 0xAA;
    /** A write to a write-protected page is resolved by the kernel itself, which only marks the page written. */
    public static final long FEATURE_WP_ASYNC = 1L << 15;
    /** Write protection reaches pages not populated yet (pte markers), so a first write to them is seen too. */
    public static final long FEATURE_WP_UNPOPULATED = 1L << 13;
    /** userfaultfd(2) flag: handle faults from user mode only (needs no privilege). */
    public static final int USER_MODE_ONLY = 1;
    public static final int O_CLOEXEC = 02000000;
    private static final long UFFDIO_API = 0xc018aa3fL, UFFDIO_REGISTER = 0xc020aa00L, UFFDIO_WRITEPROTECT = 0xc018aa06L;
    private static final long REGISTER_MODE_WP = 2, WRITEPROTECT_MODE_WP = 1;

    private Userfaultfd() {
    }

    /** UFFDIO_API with write protection in async mode, unpopulated pages included. */
    public static void enableAsyncWriteProtect(int uffd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment api = a.allocate(24, 8);
            api.set(JAVA_LONG, 0, API);
            api.set(JAVA_LONG, 8, FEATURE_WP_ASYNC | FEATURE_WP_UNPOPULATED);
            Sys.ioctl("UFFDIO_API", uffd, UFFDIO_API, api);
        }
    }

    /**
     * UFFDIO_REGISTER of {@code [start, start+len)} for write protection. Returns 0, or
     * {@code -errno}: EBUSY when the range belongs to another userfaultfd (the application's own),
     * EINVAL/EPERM for mappings that cannot be tracked, ESRCH once the address space is gone.
     */
    public static long registerWriteProtect(int uffd, long start, long len) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment reg = a.allocate(32, 8);
            reg.set(JAVA_LONG, 0, start);
            reg.set(JAVA_LONG, 8, len);
            reg.set(JAVA_LONG, 16, REGISTER_MODE_WP);
            long r = Sys.ioctlRaw(uffd, UFFDIO_REGISTER, reg);
            return Math.min(r, 0);
        }
    }

    /** UFFDIO_WRITEPROTECT: every page of the range (populated or not) is write-protected again. */
    public static void writeProtect(int uffd, long start, long len) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment wp = a.allocate(24, 8);
            wp.set(JAVA_LONG, 0, start);
            wp.set(JAVA_LONG, 8, len);
            wp.set(JAVA_LONG, 16, WRITEPROTECT_MODE_WP);
            Sys.ioctl("UFFDIO_WRITEPROTECT", uffd, UFFDIO_WRITEPROTECT, wp);
        }
    }
}
