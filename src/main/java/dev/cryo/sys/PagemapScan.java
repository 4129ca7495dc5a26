package dev.cryo.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7, Documentation/admin-guide/mm/pagemap.rst):
 * lists the ranges of pages in a category, here those written since userfaultfd write-protected
 * them. The kernel headers here are older, so the ABI is spelled out:
 * <pre>
 *  struct pm_scan_arg {                       96 bytes
 *    0 u64 size;  8 u64 flags;  16 u64 start;  24 u64 end;  32 u64 walk_end;
 *   40 u64 vec;  48 u64 vec_len;  56 u64 max_pages;  64 u64 category_inverted;
 *   72 u64 category_mask;  80 u64 category_anyof_mask;  88 u64 return_mask; }
 *  struct page_region { u64 start; u64 end; u64 categories; }   24 bytes
 * </pre>
 * The ioctl returns how many regions it filled and sets walk_end where it stopped (before
 * {@code end} when the vector was full).
 */
public final class PagemapScan {
    public static final long REQUEST = 0xc0606610L;
    public static final long PAGE_IS_WPALLOWED = 1L << 0, PAGE_IS_WRITTEN = 1L << 1;
    private static final long PM_SCAN_WP_MATCHING = 1;
    private static final int ARG_SIZE = 96, REGION_SIZE = 24, REGIONS = 512;

    private PagemapScan() {
    }

    /** {@code [start, end)} ranges of pages written in {@code [start, end)}, in address order, adjacent ones merged. */
    public static List<long[]> written(int pagemapFd, long start, long end) {
        return written(pagemapFd, start, end, false);
    }

    /**
     * Like {@link #written(int, long, long)}; with {@code reprotect} (PM_SCAN_WP_MATCHING) the
     * kernel also write-protects every page it reports, atomically with finding it, so a write
     * that follows is seen by the next scan.
     */
    public static List<long[]> written(int pagemapFd, long start, long end, boolean reprotect) {
        List<long[]> out = new ArrayList<>();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment arg = a.allocate(ARG_SIZE, 8);
            MemorySegment vec = a.allocate((long) REGION_SIZE * REGIONS, 8);
            long at = start;
            while (at < end) {
                arg.fill((byte) 0);
                arg.set(JAVA_LONG, 0, ARG_SIZE);
                arg.set(JAVA_LONG, 8, reprotect ? PM_SCAN_WP_MATCHING : 0);
                arg.set(JAVA_LONG, 16, at);
                arg.set(JAVA_LONG, 24, end);
                arg.set(JAVA_LONG, 40, vec.address());
                arg.set(JAVA_LONG, 48, REGIONS);
                arg.set(JAVA_LONG, 72, PAGE_IS_WRITTEN);
                arg.set(JAVA_LONG, 88, PAGE_IS_WRITTEN);
                long n = Sys.ioctl("PAGEMAP_SCAN", pagemapFd, REQUEST, arg);
                for (int i = 0; i < n; i++) {
                    long s = vec.get(JAVA_LONG, (long) i * REGION_SIZE);
                    long e = vec.get(JAVA_LONG, (long) i * REGION_SIZE + 8);
                    if (!out.isEmpty() && out.getLast()[1] == s) {
                        out.getLast()[1] = e;
                    } else {
                        out.add(new long[] {s, e});
                    }
                }
                long walkEnd = arg.get(JAVA_LONG, 32);
                if (walkEnd <= at) {
                    break; // nothing more the kernel would walk
                }
                at = walkEnd;
            }
        }
        return out;
    }
}
