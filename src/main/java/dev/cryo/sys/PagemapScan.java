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
    public static final long PAGE_IS_WPALLOWED = 1L << 0, PAGE_IS_WRITTEN = 1L << 1, PAGE_IS_PRESENT = 1L << 3,
            PAGE_IS_SWAPPED = 1L << 4;
    private static final long PM_SCAN_WP_MATCHING = 1;
    private static final int ARG_SIZE = 96, REGION_SIZE = 24, REGIONS = 512;

    private PagemapScan() {
    }

    private static volatile Boolean supported;

    /** Whether this kernel has PAGEMAP_SCAN (6.7 and later): asked once, on the given pagemap fd. */
    public static boolean supported(int pagemapFd) {
        Boolean known = supported;
        if (known == null) {
            try {
                scan(pagemapFd, 0, 4096, 0, 0, PAGE_IS_PRESENT, PAGE_IS_PRESENT); // page 0 is never mapped: an empty walk
                known = true;
            } catch (SysException e) {
                if (e.errno() != Errno.ENOTTY && e.errno() != Errno.EINVAL) {
                    throw e;
                }
                known = false;
            }
            supported = known;
        }
        return known;
    }

    /**
     * {@code {start, end, categories}} of the pages in {@code [start, end)} that are present or
     * swapped, categories being PAGE_IS_PRESENT and/or PAGE_IS_SWAPPED. The kernel walks the page
     * tables without formatting an entry per page: a fraction of a millisecond per GiB, where
     * reading pagemap takes over ten. Note that a userfaultfd pte marker counts as swapped.
     */
    public static List<long[]> presentOrSwapped(int pagemapFd, long start, long end) {
        return scan(pagemapFd, start, end, 0, 0, PAGE_IS_PRESENT | PAGE_IS_SWAPPED, PAGE_IS_PRESENT | PAGE_IS_SWAPPED);
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
        for (long[] r : scan(pagemapFd, start, end, reprotect ? PM_SCAN_WP_MATCHING : 0, PAGE_IS_WRITTEN, 0, PAGE_IS_WRITTEN)) {
            if (!out.isEmpty() && out.getLast()[1] == r[0]) {
                out.getLast()[1] = r[1];
            } else {
                out.add(new long[] {r[0], r[1]});
            }
        }
        return out;
    }

    /** One PAGEMAP_SCAN walk of {@code [start, end)}, repeated until the kernel walked it all: {start, end, categories} regions. */
    private static List<long[]> scan(int pagemapFd, long start, long end, long flags, long mask, long anyOf, long returnMask) {
        List<long[]> out = new ArrayList<>();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment arg = a.allocate(ARG_SIZE, 8);
            MemorySegment vec = a.allocate((long) REGION_SIZE * REGIONS, 8);
            long at = start;
            while (at < end) {
                arg.fill((byte) 0);
                arg.set(JAVA_LONG, 0, ARG_SIZE);
                arg.set(JAVA_LONG, 8, flags);
                arg.set(JAVA_LONG, 16, at);
                arg.set(JAVA_LONG, 24, end);
                arg.set(JAVA_LONG, 40, vec.address());
                arg.set(JAVA_LONG, 48, REGIONS);
                arg.set(JAVA_LONG, 72, mask);
                arg.set(JAVA_LONG, 80, anyOf);
                arg.set(JAVA_LONG, 88, returnMask);
                long n = Sys.ioctl("PAGEMAP_SCAN", pagemapFd, REQUEST, arg);
                for (int i = 0; i < n; i++) {
                    long s = vec.get(JAVA_LONG, (long) i * REGION_SIZE);
                    long e = vec.get(JAVA_LONG, (long) i * REGION_SIZE + 8);
                    out.add(new long[] {s, e, vec.get(JAVA_LONG, (long) i * REGION_SIZE + 16)});
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
