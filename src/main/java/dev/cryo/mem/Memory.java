package dev.cryo.mem;

import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.core.TaskPart;
import dev.cryo.image.ImageException;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.PageFileWriter;
import dev.cryo.image.proto.MmImage;
import dev.cryo.image.proto.PageRun;
import dev.cryo.image.proto.PagemapImage;
import dev.cryo.image.proto.VmaEntry;
import dev.cryo.image.proto.VmaKind;
import dev.cryo.proc.Pagemap;
import dev.cryo.proc.ProcFiles;
import dev.cryo.proc.ProcMaps;
import dev.cryo.proc.Vma;
import dev.cryo.remote.InjectionException;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/**
 * The address space: every mapping at its address with its protection and flags, the pages
 * that hold data of the task's own, the vDSO where it was, and the mm fields (brk, arg/env
 * area, exe) that /proc and the kernel keep per process.
 */
public final class Memory implements TaskPart {
    private static final Logger LOG = Logger.getLogger("mem");
    private static final int PAGE = Pagemap.PAGE_SIZE;
    private static final int O_RDONLY = 0, O_RDWR = 2, O_CLOEXEC = 0x80000;
    private static final int PR_SET_MM = 35, PR_SET_MM_MAP = 14, PRCTL_MM_MAP_SIZE = 104;
    private static final long MAX_MEMFD = 256L << 20;
    private static final int MADV_DONTNEED = 4, MADV_DONTFORK = 10, MADV_DONTDUMP = 16, MADV_WIPEONFORK = 18, MADV_HUGEPAGE = 14,
            MADV_NOHUGEPAGE = 15;

    @Override
    public String name() {
        return "mem";
    }

    @Override
    public boolean beforeFork() {
        return true;
    }

    // ------------------------------------------------------------------ dump

    /** Tree-wide (dump): the page copies started so far, one per process laid out. */
    private static final String COPIES = "mem:page-copies";

    /**
     * Saves the layout now and the pages: written by the task itself where it can
     * ({@link TaskWrittenPages}), else copied by Cryo on another thread while the process's other
     * parts are saved and the next processes laid out, the tree still frozen
     * ({@link #afterTreeDump} waits for every copy).
     */
    @Override
    public void dump(DumpContext ctx) {
        PageCopy copy = layout(ctx, true);
        boolean byTask = copy.writtenByTask(ctx.syscalls());
        copy.finishLayout(); // smaps was read while the task wrote
        if (!byTask) {
            ((PageCopies) ctx.shared().computeIfAbsent(COPIES, k -> new PageCopies())).start(copy, false);
        }
    }

    @Override
    public void afterTreeDump(dev.cryo.image.ImageWriter image, java.util.Map<String, Object> shared) {
        PageCopies copies = (PageCopies) shared.remove(COPIES);
        if (copies != null) {
            copies.awaitAll();
        }
    }

    @Override
    public void afterCheckpoint(java.util.Map<String, Object> shared, boolean killed) {
        PageCopies copies = (PageCopies) shared.remove(COPIES);
        if (copies != null) {
            copies.abandon(); // only left when the checkpoint failed before afterTreeDump
        }
    }

    /**
     * Saves the address space of the frozen process (mm and pagemap images) and returns the
     * copy of its pages, still to be done: at once by a checkpoint, after the process was let
     * go by a pre-dump. With an {@link Incremental} in the context, pages the parent image
     * holds and nobody wrote since are marked in-parent instead of copied.
     */
    public PageCopy layout(DumpContext ctx) {
        PageCopy copy = layout(ctx, false);
        copy.finishLayout();
        return copy;
    }

    /**
     * Like {@link #layout(DumpContext)}, but with {@code flagsLater} (and no incremental dump)
     * /proc/PID/smaps, which walks every page table for its Rss lines (tens of milliseconds per
     * GiB), is read on another thread: the pages are planned from /proc/PID/maps, and
     * {@link PageCopy#finishLayout} adds the VmFlags and writes the mm and pagemap images, while
     * the task writes its pages meanwhile, say.
     */
    PageCopy layout(DumpContext ctx, boolean flagsLater) {
        int pid = ctx.pid();
        Incremental inc = (Incremental) ctx.shared().get(Incremental.KEY);
        long t0 = System.nanoTime();
        DirtyPages dirty = inc == null ? null : DirtyPages.prepare(ctx, inc);
        long t1 = System.nanoTime();
        int ppid = (int) ProcFiles.statField(ProcFiles.statFields(pid), 4);
        boolean parentDumped = ctx.earlier().contains(ppid);
        List<Vma> parentVmas = parentDumped ? ProcMaps.readWithoutFlags(ppid) : List.of(); // sameArea needs no VmFlags
        boolean deferred = flagsLater && dirty == null;
        java.util.concurrent.CompletableFuture<List<Vma>> smaps = deferred
                ? java.util.concurrent.CompletableFuture.supplyAsync(() -> ProcMaps.read(pid)) : null;
        List<VmaEntry> vmas = new ArrayList<>();
        // areas whose pages PAGEMAP_SCAN may find: none of them shared copy-on-write (shmem pages
        // never are; with smaps read later, finishLayout looks for such pages afterwards), and no
        // userfaultfd write protection, whose pte markers look like swap (scannedPages leaves them
        // out anyway, by reading pagemap where the scan finds no present page)
        java.util.Set<Long> scannable = new java.util.HashSet<>();
        List<Vma> areas = dirty != null ? dirty.currentMaps(ctx.cryoArea()) : deferred ? ProcMaps.readWithoutFlags(pid) : ProcMaps.read(pid);
        for (Vma vma : areas) {
            if (deferred || (vma.sharedKb() == 0 || vma.shared()) && !vma.vmFlags().contains("uw")) {
                scannable.add(vma.start());
            }
            if (vma.start() != ctx.cryoArea()) {
                VmaEntry e = Vmas.entry(pid, vma, ctx.shared().containsKey(dev.cryo.core.Checkpoint.IPC_HOST)
                        || ctx.shared().containsKey(dev.cryo.core.Checkpoint.SYSV_SHM_IN_IMAGE));
                vmas.add(Vmas.inheritable(e) && parentVmas.stream().anyMatch(p -> Vmas.sameArea(p, vma))
                        ? e.toBuilder().setInherited(true).build() : e);
            }
        }
        if (dirty != null) {
            vmas = dirty.annotate(vmas);
        }
        boolean preDump = inc != null && inc.preDump();
        java.util.Set<Long> memfdsSeen = new java.util.HashSet<>();
        for (int i = 0; i < vmas.size() && !preDump; i++) { // a pre-dump is never restored itself: no memfd bytes
            VmaEntry v = vmas.get(i);
            if (v.getKind() == VmaKind.MEMFD_AREA && memfdsSeen.add(v.getFileInode())) {
                vmas.set(i, v.toBuilder().setFileContents(memfdContents(pid, v)).build());
            }
        }
        long t2 = System.nanoTime();
        PageSaver.Plan plan;
        try (Pagemap pagemap = new Pagemap(pid); Pagemap parent = parentDumped ? new Pagemap(ppid) : null) {
            int scanFd = dev.cryo.track.Tracker.openPagemap(pid);
            try {
                plan = PageSaver.plan(vmas, pagemap, parent, dirty != null ? v -> dirty.pagesToSave(v, scanFd, pagemap)
                        : v -> scannable.contains(v.getStart()) ? PageSaver.scannedPages(v, scanFd, pagemap) : null);
            } finally {
                dev.cryo.sys.Sys.close(scanFd);
            }
        }
        long t3 = System.nanoTime();
        List<PageRun> runs = dirty == null ? plan.saved() : dirty.split(vmas, plan.saved());
        long t4 = System.nanoTime();
        LOG.fine(() -> "process " + pid + ": tracking prepared in " + (t1 - t0) / 1000 + " us, areas read in " + (t2 - t1) / 1000
                + " us, pagemap planned in " + (t3 - t2) / 1000 + " us, written pages found in " + (t4 - t3) / 1000 + " us");
        if (dirty != null) {
            dirty.rearm(vmas);
        }
        List<PageRun> toCopy = runs.stream().filter(r -> !r.getInParent() && !r.getEarly()).toList();
        long pages = PageSaver.pages(toCopy);
        long inParent = PageSaver.pages(runs) - pages; // read from the parent chain or the early layer
        List<String> stat = ProcFiles.statFields(pid);
        long brk = ctx.syscalls().call("brk", Nr.BRK, 0);
        MmImage.Builder mm = MmImage.newBuilder()
                .setStartCode(ProcFiles.statField(stat, 26)).setEndCode(ProcFiles.statField(stat, 27))
                .setStartStack(ProcFiles.statField(stat, 28))
                .setStartData(ProcFiles.statField(stat, 45)).setEndData(ProcFiles.statField(stat, 46))
                .setStartBrk(ProcFiles.statField(stat, 47)).setBrk(brk)
                .setArgStart(ProcFiles.statField(stat, 48)).setArgEnd(ProcFiles.statField(stat, 49))
                .setEnvStart(ProcFiles.statField(stat, 50)).setEnvEnd(ProcFiles.statField(stat, 51))
                .setAuxv(com.google.protobuf.ByteString.copyFrom(ProcFiles.readBytes(pid, "auxv")))
                .setExe(ProcFiles.readLink(pid, "exe"))
                .setTotalPages(pages).setPagesInParent(inParent).addAllZap(plan.zap());
        PageCopy copy = new PageCopy(ctx.task(), ctx.image(), pid, toCopy, plan.cowShared(), ctx.progress());
        List<VmaEntry> laidOut = vmas;
        copy.finish = () -> {
            List<VmaEntry> entries = laidOut;
            if (deferred) {
                List<Vma> withFlags;
                try {
                    withFlags = smaps.join();
                } catch (java.util.concurrent.CompletionException e) {
                    throw e.getCause() instanceof RuntimeException r ? r : e;
                }
                entries = withVmFlags(pid, laidOut, withFlags);
                copy.cowShared = withCowShared(pid, plan.cowShared(), entries, withFlags);
            }
            long t5 = System.nanoTime();
            ctx.image().write(ImageKind.MM, pid, mm.clone().clearVmas().addAllVmas(entries).build());
            ctx.image().write(ImageKind.PAGEMAP, pid, PagemapImage.newBuilder().addAllRuns(runs).build());
            LOG.fine(() -> "process " + pid + ": mm and pagemap written in " + (System.nanoTime() - t5) / 1000 + " us");
            ctx.stats().areas.addAndGet(entries.size());
            ctx.stats().pages.addAndGet(pages);
            ctx.stats().bytes.addAndGet(pages * PAGE);
            int count = entries.size();
            LOG.info(() -> "process " + pid + ": " + count + " memory areas, " + pages + " pages to save in "
                    + toCopy.size() + " runs" + (inc != null && inc.parent() != null
                    ? ", " + inParent + " pages unchanged (in the parent image or the copy before the freeze)" : ""));
        };
        return copy;
    }

    /** The entries (made from /proc/PID/maps) with the VmFlags smaps gives their areas; the same areas or a refusal. */
    private static List<VmaEntry> withVmFlags(int pid, List<VmaEntry> entries, List<Vma> smaps) {
        Map<Long, Vma> byStart = new java.util.HashMap<>();
        smaps.forEach(v -> byStart.put(v.start(), v));
        List<VmaEntry> out = new ArrayList<>(entries.size());
        for (VmaEntry e : entries) {
            Vma v = byStart.get(e.getStart());
            if (v == null || v.end() != e.getEnd()) {
                throw new dev.cryo.CryoException("process " + pid + ": its memory areas changed while it was frozen (at "
                        + Long.toHexString(e.getStart()) + ")");
            }
            out.add(Vmas.withVmFlags(e, v.vmFlags()));
        }
        return out;
    }

    /**
     * The pages to read unpinned (see {@link PageSaver.Plan}): those the plan found, and in the
     * anonymous areas planned by PAGEMAP_SCAN before smaps could tell, the pages another process
     * maps too, from pagemap, for the areas smaps says have any.
     */
    private static List<PageRun> withCowShared(int pid, List<PageRun> found, List<VmaEntry> entries, List<Vma> smaps) {
        java.util.Set<Long> shared = new java.util.HashSet<>();
        smaps.stream().filter(v -> v.sharedKb() > 0 && !v.shared()).forEach(v -> shared.add(v.start()));
        List<VmaEntry> recheck = entries.stream().filter(e -> e.getKind() == VmaKind.PRIVATE_ANON && !e.getInherited()
                && shared.contains(e.getStart())).toList();
        if (recheck.isEmpty()) {
            return found;
        }
        List<PageRun> all = new ArrayList<>(found);
        try (Pagemap pagemap = new Pagemap(pid)) {
            all.addAll(PageSaver.plan(recheck, pagemap, null).cowShared());
        }
        all.sort(java.util.Comparator.comparingLong(PageRun::getVaddr));
        return all;
    }

    /** The pages of one process still to be copied into its page file. */
    public static final class PageCopy {
        private final dev.cryo.remote.Tracee task;
        private final dev.cryo.image.ImageWriter image;
        private final int pid;
        private final List<PageRun> runs;
        /** Set again by {@link #finishLayout} when smaps was read later. */
        private List<PageRun> cowShared;
        private final dev.cryo.core.Progress progress;
        /** What of the layout is still to do: the mm and pagemap images (see {@link Memory#layout(DumpContext, boolean)}). */
        private Runnable finish;

        /** Completes the layout: from here on the images describe the process, and the copy may run. */
        void finishLayout() {
            Runnable f = finish;
            finish = null;
            if (f != null) {
                f.run();
            }
        }

        PageCopy(dev.cryo.remote.Tracee task, dev.cryo.image.ImageWriter image, int pid, List<PageRun> runs,
                 List<PageRun> cowShared, dev.cryo.core.Progress progress) {
            this.task = task;
            this.image = image;
            this.pid = pid;
            this.runs = runs;
            this.cowShared = cowShared;
            this.progress = progress;
        }

        /** Copies the pages of several processes, one process per core at a time (see {@link PageCopies}). */
        public static void copyAll(List<PageCopy> copies, boolean taskRunning) {
            PageCopies running = new PageCopies(Math.max(1, Math.min(copies.size(), PageCopies.copyThreads())));
            copies.forEach(c -> running.start(c, taskRunning));
            running.awaitAll();
        }

        /** The page file, when {@link #writtenByTask} made it but the task could not write into it. */
        private PageFileWriter opened;

        /**
         * Has the frozen task write these pages into the page file itself ({@link TaskWrittenPages}),
         * when that path is wanted for their size and open to the task; false if Cryo is to copy them.
         */
        boolean writtenByTask(dev.cryo.remote.RemoteSyscalls sys) {
            if (!TaskWrittenPages.wanted(PageSaver.pages(runs) * PAGE)) {
                return false;
            }
            PageFileWriter out = image.pages(pid);
            boolean written;
            try {
                written = TaskWrittenPages.write(sys, pid, runs, out, progress);
            } catch (RuntimeException e) {
                try {
                    out.close(); // the checkpoint fails, and the file goes with the image
                } catch (RuntimeException closing) {
                    e.addSuppressed(closing);
                }
                throw e;
            }
            if (written) {
                out.close();
            } else {
                opened = out; // still empty: Cryo writes it
            }
            return written;
        }

        /** @param taskRunning the process was let go already (pre-dump): an area it unmapped meanwhile reads as zeros */
        public void copy(boolean taskRunning) {
            try (PageFileWriter out = opened != null ? opened : image.pages(pid);
                 PageSaver saver = new PageSaver(task, out, progress, taskRunning)) {
                saver.save(runs, cowShared);
                LOG.fine(() -> "pages shared copy-on-write, read without pinning: " + PageSaver.pages(cowShared));
                LOG.fine(() -> "pages: process_vm_readv " + saver.readNanos / 1000 + " us, write " + saver.writeNanos / 1000 + " us");
            }
        }
    }

    /** The whole memfd behind a mapping, read through /proc/PID/map_files (the memfd need not be open as an fd). */
    private static com.google.protobuf.ByteString memfdContents(int pid, VmaEntry vma) {
        Path file = ProcFiles.dir(pid).resolve("map_files/" + Long.toHexString(vma.getStart()) + "-" + Long.toHexString(vma.getEnd()));
        try {
            long size = Files.size(file);
            if (size > MAX_MEMFD) {
                throw new dev.cryo.core.Refusal("process " + pid + " maps " + Vmas.describe(vma) + ", a memfd of " + size
                        + " bytes; memfds over " + (MAX_MEMFD >> 20) + " MiB are not saved");
            }
            return com.google.protobuf.ByteString.copyFrom(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new dev.cryo.core.Refusal("process " + pid + " maps " + Vmas.describe(vma) + ": cannot read the memfd: " + e.getMessage());
        }
    }

    // ------------------------------------------------------------------ verify

    @Override
    public void verify(ImageReader image, int pid, Map<String, Object> options) {
        MmImage mm = image.read(ImageKind.MM, pid, MmImage.parser());
        for (VmaEntry vma : mm.getVmasList()) {
            if (Vmas.fileBacked(vma) && !recreatable(vma)) {
                checkUnchanged(vma, dev.cryo.core.HostPaths.of(options, vma.getPath()));
            }
            if (vma.getKind() == VmaKind.SYSV_SHM && !options.containsKey(dev.cryo.core.Checkpoint.SYSV_SHM_IN_IMAGE)
                    && !SysvShm.exists(vma.getFileInode())) {
                throw new ImageException("process " + pid + " had the host's SysV shm segment " + vma.getFileInode()
                        + " attached at " + Vmas.describe(vma) + "; it no longer exists");
            }
        }
        PageSources.of(image, pid); // every page in-parent must be found up the chain of parent images
        if (!Files.isRegularFile(dev.cryo.core.HostPaths.of(options, mm.getExe()))) {
            throw new ImageException("the program " + mm.getExe() + " of process " + pid + " no longer exists");
        }
    }

    /** A small shared file that is gone now and whose saved bytes can stand in for it. */
    private static boolean recreatable(VmaEntry vma) {
        return vma.getKind() == VmaKind.SHARED_FILE && !vma.getFileContents().isEmpty()
                && !Files.exists(Path.of(vma.getPath()));
    }

    /** Puts a gone small shared file back with the bytes, owner and mode it had at checkpoint. */
    private static void recreate(VmaEntry vma) {
        Path file = Path.of(vma.getPath());
        try {
            Files.createDirectories(file.getParent());
            Files.write(file, vma.getFileContents().toByteArray());
            Files.setPosixFilePermissions(file, FileModes.from(vma.getFileMode()));
            Files.setAttribute(file, "unix:uid", vma.getFileUid());
            Files.setAttribute(file, "unix:gid", vma.getFileGid());
            LOG.info(() -> "recreated " + file + " (" + vma.getFileContents().size() + " bytes) from the image");
        } catch (IOException e) {
            throw new ImageException("cannot recreate the mapped file " + file + ": " + e.getMessage(), e);
        }
    }

    private static void checkUnchanged(VmaEntry vma, Path file) {
        BasicFileAttributes a;
        try {
            a = Files.readAttributes(file, BasicFileAttributes.class);
        } catch (IOException e) {
            throw new ImageException("mapped file " + file + " is gone: " + e.getMessage());
        }
        if (a.size() != vma.getFileSize() || a.lastModifiedTime().to(TimeUnit.NANOSECONDS) != vma.getFileMtimeNs()) {
            throw new ImageException("mapped file " + file + " changed since the checkpoint (size " + vma.getFileSize()
                    + " -> " + a.size() + "); restoring over it would corrupt the process");
        }
    }

    // ------------------------------------------------------------------ restore

    @Override
    public void restore(RestoreContext ctx) {
        int pid = ctx.pid();
        RemoteSyscalls sys = ctx.syscalls();
        MmImage mm = ctx.image().read(ImageKind.MM, pid, MmImage.parser());
        PagemapImage pagemap = ctx.image().read(ImageKind.PAGEMAP, pid, PagemapImage.parser());

        boolean vdsoInPlace = AddressSpace.clearSlate(ctx, mm);
        if (!vdsoInPlace) {
            AddressSpace.placeVdso(ctx, mm);
        }
        Map<String, Integer> files = new HashMap<>();
        List<VmaEntry> needProtect = new ArrayList<>();
        try {
            for (VmaEntry vma : mm.getVmasList()) {
                if (Vmas.special(vma)) {
                    continue;
                }
                if (vma.getInherited()) {
                    if (keepInherited(sys, vma, hasPages(vma, pagemap))) {
                        needProtect.add(vma);
                    }
                    continue;
                }
                if (vma.getKind() == VmaKind.SHARED_ANON) {
                    SharedObjects.sharedAnon(ctx, vma, files);
                }
                if (vma.getKind() == VmaKind.MEMFD_AREA) {
                    SharedObjects.memfd(ctx, vma, files);
                }
                if (map(sys, vma, files, hasPages(vma, pagemap))) {
                    needProtect.add(vma);
                }
            }
        } finally {
            for (int fd : files.values()) {
                sys.closeFd(fd);
            }
        }
        for (VmaEntry vma : mm.getVmasList()) {
            if (vma.getKind() == VmaKind.SYSV_SHM && !vma.getInherited()) {
                SysvShm.attach(sys, vma);
            }
        }
        // the pages (those of an incremental dump from up the chain of images: PageSources) on
        // other threads, while the restore goes on with other processes; then the rest here
        List<Runnable> slices = pagemap.getRunsCount() == 0 ? List.of()
                : PageLoader.slices(ctx.task().pid(), PageSources.of(ctx.image(), pid));
        ctx.inBackground(name(), slices, () -> afterPagesLoaded(ctx, mm, needProtect));
    }

    /** Once the pages are in: areas given back their final protection and advice, and the mm fields set. */
    private static void afterPagesLoaded(RestoreContext ctx, MmImage mm, List<VmaEntry> needProtect) {
        RemoteSyscalls sys = ctx.syscalls();
        for (PageRun zap : mm.getZapList()) {
            sys.call("madvise(MADV_DONTNEED)", Nr.MADVISE, zap.getVaddr(), (long) zap.getNrPages() * PAGE, MADV_DONTNEED);
        }
        for (VmaEntry vma : needProtect) {
            sys.call("mprotect", Nr.MPROTECT, vma.getStart(), vma.getEnd() - vma.getStart(), vma.getProt());
        }
        for (VmaEntry vma : mm.getVmasList()) {
            adviseLikeBefore(sys, vma);
        }
        setMmFields(sys, mm);
        LOG.info(() -> "process " + ctx.pid() + ": " + mm.getVmasCount() + " memory areas mapped, " + mm.getTotalPages()
                + " pages loaded");
    }

    /** An area the task already has from its parent: only made writable for loading its own pages. */
    private static boolean keepInherited(RemoteSyscalls sys, VmaEntry vma, boolean hasPages) {
        if (!hasPages || (vma.getProt() & RemoteSyscalls.PROT_WRITE) != 0) {
            return false;
        }
        sys.call("mprotect", Nr.MPROTECT, vma.getStart(), vma.getEnd() - vma.getStart(), vma.getProt() | RemoteSyscalls.PROT_WRITE);
        return true;
    }

    private static boolean hasPages(VmaEntry vma, PagemapImage pagemap) {
        for (PageRun run : pagemap.getRunsList()) {
            long end = run.getVaddr() + (long) run.getNrPages() * PAGE;
            if (run.getVaddr() < vma.getEnd() && end > vma.getStart()) {
                return true;
            }
        }
        return false;
    }

    /** Maps one area; returns true when it was mapped writable for loading and needs its final protection. */
    private static boolean map(RemoteSyscalls sys, VmaEntry vma, Map<String, Integer> files, boolean hasPages) {
        int prot = vma.getProt();
        boolean addWrite = hasPages && (prot & RemoteSyscalls.PROT_WRITE) == 0;
        if (addWrite) {
            prot |= RemoteSyscalls.PROT_WRITE;
        }
        int fd = -1;
        int flags = vma.getFlags();
        long offset = Vmas.fileBacked(vma) ? vma.getPgoff() : 0;
        Integer sharedObject = files.get("rw:" + vma.getPath() + "#" + vma.getFileInode());
        if (vma.getKind() == VmaKind.SHARED_ANON && sharedObject != null) {
            fd = sharedObject;
            flags &= ~RemoteSyscalls.MAP_ANONYMOUS;
            offset = vma.getPgoff();
        }
        if (vma.getKind() == VmaKind.MEMFD_AREA) {
            fd = files.get("memfd:" + vma.getFileInode());
            offset = vma.getPgoff();
        }
        if (recreatable(vma)) {
            recreate(vma);
        }
        if (Vmas.fileBacked(vma)) {
            boolean rw = vma.getKind() == VmaKind.SHARED_FILE && vma.getVmFlagsList().contains("mw");
            String key = (rw ? "rw:" : "ro:") + vma.getPath();
            fd = files.computeIfAbsent(key, k -> sys.open(vma.getPath(), (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0));
        }
        long length = vma.getEnd() - vma.getStart();
        RemoteAddr at = sys.mmap(vma.getStart(), length, prot, flags | RemoteSyscalls.MAP_FIXED, fd, offset);
        if (at.value() != vma.getStart()) {
            throw new InjectionException("mmap of " + Vmas.describe(vma) + " landed at " + at);
        }
        return addWrite;
    }

    private static void adviseLikeBefore(RemoteSyscalls sys, VmaEntry vma) {
        if (Vmas.special(vma)) {
            return;
        }
        Map<String, Integer> advice = Map.of("dd", MADV_DONTDUMP, "dc", MADV_DONTFORK, "wf", MADV_WIPEONFORK,
                "hg", MADV_HUGEPAGE, "nh", MADV_NOHUGEPAGE);
        for (String flag : vma.getVmFlagsList()) {
            Integer advise = advice.get(flag);
            if (advise != null) {
                sys.call("madvise", Nr.MADVISE, vma.getStart(), vma.getEnd() - vma.getStart(), advise);
            }
        }
    }

    /**
     * PR_SET_MM_MAP: code/data/brk/stack/arg/env bounds, auxv and exe in one call (the single-field
     * PR_SET_MM calls need CAP_SYS_RESOURCE, which root lacks on these machines).
     * struct prctl_mm_map: 11 u64 addresses, u64 auxv pointer, u32 auxv_size, u32 exe_fd.
     */
    private static void setMmFields(RemoteSyscalls sys, MmImage mm) {
        // A child forked from its restored parent already runs the right program; the kernel
        // refuses (EBUSY) to swap an exe file that is still mapped, so it is left as it is.
        boolean exeInPlace = mm.getExe().equals(ProcFiles.readLink(sys.task().pid(), "exe"));
        int exeFd = exeInPlace ? -1 : sys.open(mm.getExe(), O_RDONLY | O_CLOEXEC, 0);
        try {
            byte[] auxv = mm.getAuxv().toByteArray();
            RemoteAddr auxvAt = sys.scratch().put(auxv);
            ByteBuffer map = ByteBuffer.allocate(PRCTL_MM_MAP_SIZE).order(ByteOrder.LITTLE_ENDIAN);
            map.putLong(mm.getStartCode()).putLong(mm.getEndCode()).putLong(mm.getStartData()).putLong(mm.getEndData())
                    .putLong(mm.getStartBrk()).putLong(mm.getBrk()).putLong(mm.getStartStack())
                    .putLong(mm.getArgStart()).putLong(mm.getArgEnd()).putLong(mm.getEnvStart()).putLong(mm.getEnvEnd())
                    .putLong(auxvAt.value()).putInt(auxv.length).putInt(exeFd);
            RemoteAddr mapAt = sys.scratch().put(map.array());
            sys.call("prctl(PR_SET_MM_MAP)", Nr.PRCTL, PR_SET_MM, PR_SET_MM_MAP, mapAt.value(), PRCTL_MM_MAP_SIZE, 0);
        } finally {
            sys.scratch().reset();
            if (exeFd >= 0) {
                sys.closeFd(exeFd);
            }
        }
    }

    /** The saved mappings of one process, for the restore trampoline to keep out of their way. */
    public static List<long[]> savedRanges(ImageReader image, int pid) {
        MmImage mm = image.read(ImageKind.MM, pid, MmImage.parser());
        return mm.getVmasList().stream().map(v -> new long[] {v.getStart(), v.getEnd()}).toList();
    }
}
