package dev.cryo.mem;

import dev.cryo.image.PageFileWriter;
import dev.cryo.image.proto.PageRun;
import dev.cryo.image.proto.VmaEntry;
import dev.cryo.image.proto.VmaKind;
import dev.cryo.proc.Pagemap;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.Tracee;
import dev.cryo.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Copies the pages worth saving out of a frozen task: pagemap says which are present, and
 * process_vm_readv gathers many runs per call into one reusable off-heap buffer that goes
 * straight to the page file. The Java heap never holds page data.
 */
final class PageSaver implements AutoCloseable {
    /** 8 MiB: large enough that the per-call cost vanishes, small enough to stay in cache-friendly sizes. */
    static final int BUFFER_SIZE = 8 << 20;
    private static final int MAX_IOV = 1024; // IOV_MAX
    private static final int PAGE = Pagemap.PAGE_SIZE;

    private final Tracee task;
    private final PageFileWriter out;
    private final Arena arena = Arena.ofConfined();
    private final MemorySegment buffer = arena.allocate(BUFFER_SIZE, PAGE);
    private final long[] addrs = new long[MAX_IOV];
    private final long[] lens = new long[MAX_IOV];
    private int iovs;
    private long filled;
    private final List<PageRun> runs = new ArrayList<>();
    private long pages;

    PageSaver(Tracee task, PageFileWriter out) {
        this.task = task;
        this.out = out;
    }

    /** Which pages of the mapping hold data that is not in a file. */
    static boolean worthSaving(VmaKind kind, long entry) {
        boolean present = (entry & Pagemap.PRESENT) != 0;
        boolean swapped = (entry & Pagemap.SWAPPED) != 0;
        return switch (kind) {
            case PRIVATE_ANON, SHARED_ANON -> present || swapped;
            // a private file page that is no longer the file's own page was written by the task (copy-on-write)
            case PRIVATE_FILE -> swapped || (present && (entry & Pagemap.FILE_OR_SHARED) == 0);
            default -> false;
        };
    }

    void save(VmaEntry vma, Pagemap pagemap) {
        if (!worthSaving(vma.getKind(), Pagemap.PRESENT | Pagemap.SWAPPED)) {
            return; // vDSO and friends: the kernel provides them
        }
        long[] entries = pagemap.entries(vma.getStart(), vma.getEnd());
        int i = 0;
        while (i < entries.length) {
            if (!worthSaving(vma.getKind(), entries[i])) {
                i++;
                continue;
            }
            int j = i;
            while (j < entries.length && worthSaving(vma.getKind(), entries[j])) {
                j++;
            }
            addRun(vma.getStart() + (long) i * PAGE, j - i);
            i = j;
        }
    }

    private void addRun(long vaddr, int nrPages) {
        PageRun last = runs.isEmpty() ? null : runs.getLast();
        if (last != null && last.getVaddr() + (long) last.getNrPages() * PAGE == vaddr) {
            runs.set(runs.size() - 1, last.toBuilder().setNrPages(last.getNrPages() + nrPages).build());
        } else {
            runs.add(PageRun.newBuilder().setVaddr(vaddr).setNrPages(nrPages).build());
        }
        pages += nrPages;
        long addr = vaddr;
        long left = (long) nrPages * PAGE;
        while (left > 0) {
            long take = Math.min(left, BUFFER_SIZE - filled);
            addrs[iovs] = addr;
            lens[iovs] = take;
            iovs++;
            filled += take;
            addr += take;
            left -= take;
            if (filled == BUFFER_SIZE || iovs == MAX_IOV) {
                flush();
            }
        }
    }

    private void flush() {
        if (iovs == 0) {
            return;
        }
        long got = Sys.processVmReadv(task.pid(), buffer.address(), filled, addrs, lens, iovs);
        if (got < filled) {
            // process_vm_readv stops at an unreadable range (PROT_NONE, say): finish through /proc/pid/mem
            long offset = 0;
            for (int k = 0; k < iovs; k++) {
                long end = offset + lens[k];
                if (end > got) {
                    long from = Math.max(offset, got);
                    task.read(new RemoteAddr(addrs[k] + (from - offset)), buffer.asSlice(from, end - from));
                }
                offset = end;
            }
        }
        out.write(buffer.asSlice(0, filled).asByteBuffer());
        iovs = 0;
        filled = 0;
    }

    List<PageRun> runs() {
        flush();
        return runs;
    }

    long pages() {
        return pages;
    }

    @Override
    public void close() {
        arena.close();
    }
}
