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
    private final dev.cryo.core.Progress progress;
    private long done;
    private long total;

    PageSaver(Tracee task, PageFileWriter out, dev.cryo.core.Progress progress) {
        this.task = task;
        this.out = out;
        this.progress = progress;
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

    /**
     * The runs of pages worth saving in {@code vmas}, from pagemap, merged where they touch, in
     * address order: the pagemap image and the order of the page file.
     */
    static List<PageRun> plan(List<VmaEntry> vmas, Pagemap pagemap) {
        List<PageRun> runs = new ArrayList<>();
        long runStart = -1;
        long runEnd = -1;
        for (VmaEntry vma : vmas) {
            if (!worthSaving(vma.getKind(), Pagemap.PRESENT | Pagemap.SWAPPED)) {
                continue; // vDSO and friends: the kernel provides them
            }
            long[] entries = pagemap.entries(vma.getStart(), vma.getEnd());
            for (int i = 0; i < entries.length; i++) {
                if (!worthSaving(vma.getKind(), entries[i])) {
                    continue;
                }
                long page = vma.getStart() + (long) i * PAGE;
                if (page != runEnd) {
                    addRun(runs, runStart, runEnd);
                    runStart = page;
                }
                runEnd = page + PAGE;
            }
        }
        addRun(runs, runStart, runEnd);
        return runs;
    }

    private static void addRun(List<PageRun> runs, long start, long end) {
        if (start >= 0) {
            runs.add(PageRun.newBuilder().setVaddr(start).setNrPages((int) ((end - start) / PAGE)).build());
        }
    }

    static long pages(List<PageRun> runs) {
        return runs.stream().mapToLong(PageRun::getNrPages).sum();
    }

    /** Copies the pages of {@code runs} into the page file, in order. */
    void save(List<PageRun> runs) {
        total = pages(runs) * PAGE;
        for (PageRun run : runs) {
            copy(run.getVaddr(), run.getNrPages());
        }
        flush();
    }

    private void copy(long vaddr, int nrPages) {
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

    long readNanos, writeNanos;

    private void flush() {
        if (iovs == 0) {
            return;
        }
        long t0 = System.nanoTime();
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
        long t1 = System.nanoTime();
        out.write(buffer.asSlice(0, filled).asByteBuffer());
        writeNanos += System.nanoTime() - t1;
        readNanos += t1 - t0;
        done += filled;
        progress.update("memory", done, total);
        iovs = 0;
        filled = 0;
    }

    @Override
    public void close() {
        arena.close();
    }
}
