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
    private final int pid;
    /** /proc/PID/mem when there is no tracee to read through. */
    private java.nio.channels.FileChannel mem;
    private final PageFileWriter out;
    /** Shared: the writer thread reads what the reading thread filled. */
    private final Arena arena = Arena.ofShared();
    /**
     * Two buffers: one is written to the image while the next is read from the task. Made when
     * the copy starts, no larger than what it copies: an incremental checkpoint copies a few
     * hundred pages while the process is frozen, and zeroing 16 MiB of buffers for them would
     * take longer than the copy.
     */
    private MemorySegment[] buffers;
    private long bufferSize = BUFFER_SIZE;
    @SuppressWarnings("unchecked")
    private final java.util.concurrent.Future<?>[] writing = new java.util.concurrent.Future<?>[2];
    private final java.util.concurrent.ExecutorService writer = java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "cryo-page-writer");
        t.setDaemon(true);
        return t;
    });
    private int current;
    private MemorySegment buffer;
    private final long[] addrs = new long[MAX_IOV];
    private final long[] lens = new long[MAX_IOV];
    private int iovs;
    private long filled;
    private final dev.cryo.core.Progress progress;
    private long done;
    private long total;

    /**
     * True when the task runs on while its pages are copied (a pre-dump): a range it unmapped
     * meanwhile is saved as zeros. That is safe because such an area is no longer registered
     * with the tracker, so the next dump copies whatever is there then.
     */
    private final boolean taskRunning;

    PageSaver(Tracee task, PageFileWriter out, dev.cryo.core.Progress progress) {
        this(task, out, progress, false);
    }

    PageSaver(Tracee task, PageFileWriter out, dev.cryo.core.Progress progress, boolean taskRunning) {
        this(task, task.pid(), out, progress, taskRunning);
    }

    /** For a process that is not held (an incremental checkpoint's copy before the freeze): reads it by pid. */
    PageSaver(int pid, PageFileWriter out, dev.cryo.core.Progress progress) {
        this(null, pid, out, progress, true);
    }

    private PageSaver(Tracee task, int pid, PageFileWriter out, dev.cryo.core.Progress progress, boolean taskRunning) {
        this.task = task;
        this.pid = pid;
        this.out = out;
        this.progress = progress;
        this.taskRunning = taskRunning;
    }

    /** Which pages of the mapping hold data that is not in a file. */
    static boolean worthSaving(VmaKind kind, long entry) {
        boolean present = (entry & Pagemap.PRESENT) != 0;
        boolean swapped = (entry & Pagemap.SWAPPED) != 0 && !Pagemap.marker(entry);
        return switch (kind) {
            case PRIVATE_ANON, SHARED_ANON -> present || swapped;
            // a private file page that is no longer the file's own page was written by the task (copy-on-write)
            case PRIVATE_FILE -> swapped || (present && (entry & Pagemap.FILE_OR_SHARED) == 0);
            // a memfd's bytes are saved whole with the area; a private mapping's own copies are anonymous
            case MEMFD_AREA -> (present && (entry & Pagemap.FILE_OR_SHARED) == 0) || (swapped && (entry & Pagemap.FILE_OR_SHARED) == 0);
            default -> false;
        };
    }

    /**
     * The runs of pages worth saving in {@code vmas}, from pagemap, merged where they touch, in
     * address order: the pagemap image and the order of the page file.
     */
    static List<PageRun> plan(List<VmaEntry> vmas, Pagemap pagemap) {
        return plan(vmas, pagemap, null).saved();
    }

    /**
     * Pages to save; pages of inherited areas the process must not see from its parent; and,
     * among the saved ones, those not exclusively mapped (shared copy-on-write with another
     * process), which must be read without pinning them: a read-only pin of a shared anonymous
     * page makes the kernel unshare it (give this process its own copy), so process_vm_readv
     * would quietly undo the sharing a fork gave, in the very tree being saved.
     */
    record Plan(List<PageRun> saved, List<PageRun> zap, List<PageRun> cowShared) {
    }

    /**
     * Like {@link #plan(List, Pagemap)}, against the parent's pagemap for the areas marked
     * inherited: a page still shared with the parent (same physical frame) is left to the fork
     * that will restore it; a page the parent has and this process does not is to be zapped.
     */
    static Plan plan(List<VmaEntry> vmas, Pagemap pagemap, Pagemap parent) {
        return plan(vmas, pagemap, parent, v -> null);
    }

    /**
     * Like {@link #plan(List, Pagemap, Pagemap)}; {@code pagesToSave} may answer for an area
     * with the ranges of its pages to save (found another way, see
     * {@link DirtyPages#pagesToSave}), or null to have pagemap read for it page by page.
     */
    static Plan plan(List<VmaEntry> vmas, Pagemap pagemap, Pagemap parent,
                     java.util.function.Function<VmaEntry, List<long[]>> pagesToSave) {
        RunBuilder saved = new RunBuilder();
        RunBuilder zap = new RunBuilder();
        RunBuilder cowShared = new RunBuilder();
        for (VmaEntry vma : vmas) {
            if (!worthSaving(vma.getKind(), Pagemap.PRESENT | Pagemap.SWAPPED)) {
                continue; // vDSO and friends: the kernel provides them
            }
            List<long[]> known = vma.getInherited() ? null : pagesToSave.apply(vma);
            if (known != null) {
                known.forEach(r -> saved.addRange(r[0], r[1]));
                continue;
            }
            long[] entries = pagemap.entries(vma.getStart(), vma.getEnd());
            long[] theirs = vma.getInherited() && parent != null ? parent.entries(vma.getStart(), vma.getEnd()) : null;
            for (int i = 0; i < entries.length; i++) {
                long page = vma.getStart() + (long) i * PAGE;
                boolean mine = worthSaving(vma.getKind(), entries[i]);
                if (theirs != null) {
                    boolean parentHas = worthSaving(vma.getKind(), theirs[i]);
                    if (mine && parentHas && Pagemap.samePage(entries[i], theirs[i])) {
                        continue; // still the parent's page, copy-on-write
                    }
                    if (!mine && parentHas) {
                        zap.add(page);
                    }
                }
                if (mine) {
                    saved.add(page);
                    if ((entries[i] & Pagemap.PRESENT) != 0 && (entries[i] & Pagemap.EXCLUSIVE) == 0
                            && (entries[i] & Pagemap.FILE_OR_SHARED) == 0) {
                        cowShared.add(page);
                    }
                }
            }
        }
        return new Plan(saved.runs(), zap.runs(), cowShared.runs());
    }

    /**
     * The pages worth saving of an anonymous area, or null for other kinds (and kernels without
     * PAGEMAP_SCAN, for which pagemap serves): PAGEMAP_SCAN returns
     * present ranges whole (a fraction of a millisecond per GiB, where pagemap takes tens); only
     * ranges that look swapped are read from pagemap page by page, to leave userfaultfd pte
     * markers out. It cannot tell pages shared copy-on-write with another process: for areas
     * that have none (see {@link Plan}).
     */
    static List<long[]> scannedPages(VmaEntry v, int pagemapFd, Pagemap pagemap) {
        if (v.getKind() != VmaKind.PRIVATE_ANON && v.getKind() != VmaKind.SHARED_ANON
                || !dev.cryo.sys.PagemapScan.supported(pagemapFd)) {
            return null;
        }
        List<long[]> out = new ArrayList<>();
        for (long[] r : dev.cryo.sys.PagemapScan.presentOrSwapped(pagemapFd, v.getStart(), v.getEnd())) {
            if ((r[2] & dev.cryo.sys.PagemapScan.PAGE_IS_PRESENT) != 0) {
                out.add(new long[] {r[0], r[1]});
                continue;
            }
            long[] entries = pagemap.entries(r[0], r[1]);
            for (int i = 0; i < entries.length; i++) {
                if (worthSaving(v.getKind(), entries[i])) {
                    out.add(new long[] {r[0] + (long) i * PAGE, r[0] + (long) (i + 1) * PAGE});
                }
            }
        }
        return Ranges.normalize(out);
    }

    /** Collects page addresses, in increasing order, into runs. */
    private static final class RunBuilder {
        private final List<PageRun> runs = new ArrayList<>();
        private long start = -1;
        private long end = -1;

        void add(long page) {
            addRange(page, page + PAGE);
        }

        void addRange(long from, long to) {
            if (from != end) {
                flush();
                start = from;
            }
            end = to;
        }

        private void flush() {
            if (start >= 0) {
                runs.add(PageRun.newBuilder().setVaddr(start).setNrPages((int) ((end - start) / PAGE)).build());
            }
            start = -1;
        }

        List<PageRun> runs() {
            flush();
            return runs;
        }
    }

    static long pages(List<PageRun> runs) {
        return runs.stream().mapToLong(PageRun::getNrPages).sum();
    }

    /** Copies the pages of {@code runs} into the page file, in order. */
    void save(List<PageRun> runs) {
        save(runs, List.of());
    }

    /** Copies the pages of {@code runs} in order; those in {@code cowShared} through /proc/pid/mem (see {@link Plan}). */
    void save(List<PageRun> runs, List<PageRun> cowShared) {
        total = pages(runs) * PAGE;
        if (buffers == null) {
            // an eighth of the copy, at least 256 KiB (per-call costs vanish from there on), so that
            // a small copy neither zeroes megabytes of buffers nor loses the overlap of reading and writing
            bufferSize = Math.min(BUFFER_SIZE, Math.max(PAGE, Math.max(Math.min(total, 256 << 10), (total / 8 + PAGE - 1) / PAGE * PAGE)));
            buffers = new MemorySegment[] {arena.allocate(bufferSize, PAGE), arena.allocate(bufferSize, PAGE)};
        }
        int s = 0;
        for (PageRun run : runs) {
            long addr = run.getVaddr();
            long end = addr + (long) run.getNrPages() * PAGE;
            while (addr < end) {
                while (s < cowShared.size() && runEnd(cowShared.get(s)) <= addr) {
                    s++;
                }
                PageRun shared = s < cowShared.size() ? cowShared.get(s) : null;
                if (shared != null && shared.getVaddr() <= addr) {
                    long to = Math.min(end, runEnd(shared));
                    copy(addr, to, true);
                    addr = to;
                } else {
                    long to = shared == null ? end : Math.min(end, shared.getVaddr());
                    copy(addr, to, false);
                    addr = to;
                }
            }
        }
        flush();
        drain();
    }

    private static long runEnd(PageRun r) {
        return r.getVaddr() + (long) r.getNrPages() * PAGE;
    }

    private boolean batchViaMem;

    private void copy(long from, long to, boolean viaMem) {
        if (iovs > 0 && viaMem != batchViaMem) {
            flush();
        }
        batchViaMem = viaMem;
        long addr = from;
        long left = to - from;
        while (left > 0) {
            long take = Math.min(left, bufferSize - filled);
            addrs[iovs] = addr;
            lens[iovs] = take;
            iovs++;
            filled += take;
            addr += take;
            left -= take;
            if (filled == bufferSize || iovs == MAX_IOV) {
                flush();
            }
        }
    }

    long readNanos;
    volatile long writeNanos;

    private void flush() {
        if (iovs == 0) {
            return;
        }
        awaitWrite(current); // this buffer's previous contents must be in the file before it is reused
        buffer = buffers[current];
        long t0 = System.nanoTime();
        long got = batchViaMem ? 0 : Sys.processVmReadv(pid, buffer.address(), filled, addrs, lens, iovs);
        if (got < filled) {
            // process_vm_readv stops at an unreadable range (PROT_NONE, say), and is not used at
            // all for pages shared copy-on-write: the rest goes through /proc/pid/mem
            long offset = 0;
            for (int k = 0; k < iovs; k++) {
                long end = offset + lens[k];
                if (end > got) {
                    long from = Math.max(offset, got);
                    MemorySegment dst = buffer.asSlice(from, end - from);
                    try {
                        readUnpinned(new RemoteAddr(addrs[k] + (from - offset)), dst);
                    } catch (dev.cryo.remote.InjectionException gone) {
                        if (!taskRunning) {
                            throw gone;
                        }
                        dst.fill((byte) 0);
                    }
                }
                offset = end;
            }
        }
        long t1 = System.nanoTime();
        java.nio.ByteBuffer data = buffer.asSlice(0, filled).asByteBuffer();
        // the checksum here, the write on the writer thread: reading and checksumming one buffer
        // take about as long as writing the other, so neither thread waits much for the other
        out.checksum(data);
        // one writer thread, so the file gets the buffers in the order they were filled
        writing[current] = writer.submit(() -> {
            long w = System.nanoTime();
            out.writeChecksummed(data);
            writeNanos += System.nanoTime() - w;
        });
        current ^= 1;
        readNanos += t1 - t0;
        done += filled;
        progress.update("memory", done, total);
        iovs = 0;
        filled = 0;
    }

    private void readUnpinned(RemoteAddr addr, MemorySegment dst) {
        if (task != null) {
            task.readUnpinned(addr, dst);
            return;
        }
        try {
            if (mem == null) {
                mem = java.nio.channels.FileChannel.open(java.nio.file.Path.of("/proc", Integer.toString(pid), "mem"));
            }
            java.nio.ByteBuffer buf = dst.asByteBuffer();
            long pos = addr.value();
            while (buf.hasRemaining()) {
                int n = mem.read(buf, pos);
                if (n <= 0) {
                    throw new dev.cryo.remote.InjectionException("reading memory at " + addr + " of process " + pid + ": short read");
                }
                pos += n;
            }
        } catch (java.io.IOException e) {
            throw new dev.cryo.remote.InjectionException("reading memory at " + addr + " of process " + pid + ": " + e.getMessage(), e);
        }
    }

    private void awaitWrite(int slot) {
        java.util.concurrent.Future<?> f = writing[slot];
        if (f == null) {
            return;
        }
        writing[slot] = null;
        try {
            f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while writing page data", e);
        } catch (java.util.concurrent.ExecutionException e) {
            throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException("writing page data", e.getCause());
        }
    }

    /** Waits until every page read so far is in the file. */
    private void drain() {
        awaitWrite(current ^ 1);
        awaitWrite(current);
    }

    @Override
    public void close() {
        try {
            drain();
        } finally {
            writer.shutdownNow();
            arena.close();
            if (mem != null) {
                try {
                    mem.close();
                } catch (java.io.IOException ignored) {
                    // read-only /proc file
                }
            }
        }
    }
}
