package dev.cryo.proc;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * /proc/pid/pagemap: one 64-bit entry per virtual page (Documentation/admin-guide/mm/pagemap.rst).
 * Bit 63 present, bit 62 swapped, bit 61 file-page or shared-anon.
 */
public final class Pagemap implements AutoCloseable {
    public static final long PRESENT = 1L << 63, SWAPPED = 1L << 62, FILE_OR_SHARED = 1L << 61, EXCLUSIVE = 1L << 56;
    public static final int PAGE_SIZE = 4096;
    /** Bits 0-54: the page frame number of a present page (zero unless CAP_SYS_ADMIN). */
    private static final long PFN_MASK = (1L << 55) - 1;

    private final FileChannel channel;
    private final ByteBuffer buffer = ByteBuffer.allocateDirect(8 * 8192).order(ByteOrder.nativeOrder());

    public Pagemap(int pid) {
        try {
            channel = FileChannel.open(Path.of("/proc", Integer.toString(pid), "pagemap"), StandardOpenOption.READ);
        } catch (IOException e) {
            throw new UncheckedIOException("opening /proc/" + pid + "/pagemap", e);
        }
    }

    /** Bit 57: the page is write-protected by userfaultfd. */
    public static final long UFFD_WP = 1L << 57;
    /** Swap type of a pte marker (SWP_PTE_MARKER, the last of the 32 types), in bits 0-4 of a swap entry. */
    private static final long SWP_PTE_MARKER = 31;

    /**
     * A swap-looking entry that is no page at all but a pte marker: userfaultfd write protection
     * (WP_UNPOPULATED) puts one on every page never touched, so that a first write is seen too.
     * pagemap reports it as swapped (bit 62) with type 31; the page reads as zeros. The type is
     * only shown with CAP_SYS_ADMIN; without it a write-protected swap entry is taken for a page.
     */
    public static boolean marker(long entry) {
        return (entry & SWAPPED) != 0 && (entry & UFFD_WP) != 0 && (entry & 0x1f) == SWP_PTE_MARKER;
    }

    /** Two present pages with the same (known) frame: one physical page mapped twice, as after fork. */
    public static boolean samePage(long a, long b) {
        return (a & PRESENT) != 0 && (b & PRESENT) != 0 && (a & PFN_MASK) != 0 && (a & PFN_MASK) == (b & PFN_MASK);
    }

    /** The entries for {@code [start, end)}, one long per page. */
    public long[] entries(long start, long end) {
        int pages = (int) ((end - start) / PAGE_SIZE);
        long[] out = new long[pages];
        int done = 0;
        try {
            while (done < pages) {
                buffer.clear();
                buffer.limit(Math.min(buffer.capacity(), (pages - done) * 8));
                int n = channel.read(buffer, (start / PAGE_SIZE + done) * 8L);
                if (n <= 0) {
                    throw new IOException("short read");
                }
                buffer.flip();
                for (int i = 0; i < n / 8; i++) {
                    out[done++] = buffer.getLong();
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("reading pagemap", e);
        }
        return out;
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException ignored) {
            // read-only /proc file: nothing to flush
        }
    }
}
