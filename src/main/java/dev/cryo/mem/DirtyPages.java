package dev.cryo.mem;

import dev.cryo.core.DumpContext;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.ImageWriter;
import dev.cryo.image.PageFileWriter;
import dev.cryo.image.proto.MmImage;
import dev.cryo.image.proto.PageRun;
import dev.cryo.image.proto.PagemapImage;
import dev.cryo.image.proto.VmaEntry;
import dev.cryo.image.proto.VmaKind;
import dev.cryo.proc.Pagemap;
import dev.cryo.proc.ProcMaps;
import dev.cryo.proc.Vma;
import dev.cryo.sys.Sys;
import dev.cryo.track.Tracker;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.logging.Logger;

/**
 * The incremental side of one process's memory dump (see {@link Incremental} for when a page
 * may come from the parent). {@link #prepare} runs first, while the process is frozen: it
 * finds which areas are still tracked by Cryo's userfaultfd since the parent image and which
 * the application registered itself, and for a pre-dump registers every other area so that
 * tracking covers it from this image on. {@link #split} then marks the saved pages the parent
 * holds, unwritten, as in-parent; {@link #rearm} write-protects the tracked areas again for
 * the next image.
 */
final class DirtyPages {
    private static final Logger LOG = Logger.getLogger("mem");
    private static final Set<String> UFFD_FLAGS = Set.of("um", "uw", "ui");
    private static final long PAGE = dev.cryo.proc.Pagemap.PAGE_SIZE;

    private final int pid;
    private final Incremental inc;
    private final Tracker tracker;
    /** Areas registered with Cryo's userfaultfd before this dump touched anything: tracked since the parent. */
    private final List<long[]> trackedBefore;
    /** Areas the application registered with a userfaultfd of its own. */
    private final List<long[]> application;

    /** The areas as read before anything was registered; still current unless a pre-dump registered more. */
    private final List<Vma> maps;
    private final boolean registeredMore;

    private DirtyPages(int pid, Incremental inc, Tracker tracker, List<long[]> trackedBefore, List<long[]> application,
                       List<Vma> maps, boolean registeredMore) {
        this.maps = maps;
        this.registeredMore = registeredMore;
        this.pid = pid;
        this.inc = inc;
        this.tracker = tracker;
        this.trackedBefore = trackedBefore;
        this.application = application;
    }

    /**
     * The process's areas with their VmFlags. smaps, the only source of VmFlags, walks every page
     * table for its Rss and Pss lines: tens of milliseconds for a GiB, too long for the frozen
     * part of an incremental checkpoint. So smaps is read before the freeze ({@code before}), and
     * once frozen only /proc/PID/maps: when it lists exactly the same areas (range, protection,
     * offset, file), their flags are taken from before. What that can miss is a flag changed
     * without changing the area in the moment before the freeze (an madvise): the image then has
     * the advice of that moment. Dirty tracking does not depend on it: whose an area is, is asked
     * of the userfaultfd itself while frozen, and an area not seen as ours before is copied whole.
     */
    private static List<Vma> areas(int pid, List<Vma> before, long cryoArea) {
        if (before != null) {
            List<Vma> now = ProcMaps.readWithoutFlags(pid).stream().filter(v -> v.start() != cryoArea).toList();
            if (now.size() == before.size()) {
                boolean same = true;
                for (int i = 0; i < now.size() && same; i++) {
                    Vma a = now.get(i), b = before.get(i);
                    same = a.start() == b.start() && a.end() == b.end() && a.perms().equals(b.perms()) && a.offset() == b.offset()
                            && a.dev().equals(b.dev()) && a.inode() == b.inode() && a.path().equals(b.path());
                }
                if (same) {
                    return before;
                }
            }
            LOG.fine(() -> "process " + pid + ": areas changed since before the freeze, smaps read again");
        }
        return ProcMaps.read(pid).stream().filter(v -> v.start() != cryoArea).toList();
    }

    static boolean userfaultfdRegistered(Vma v) {
        return v.vmFlags().stream().anyMatch(UFFD_FLAGS::contains);
    }

    /** Areas whose pages Cryo saves and whose writes can be tracked. */
    private static boolean trackable(int pid, Vma v, boolean ipcHost) {
        if (!v.vmFlags().contains("mw")) {
            return false;
        }
        VmaKind kind = Vmas.kind(pid, v, ipcHost);
        return kind == VmaKind.PRIVATE_ANON || kind == VmaKind.SHARED_ANON || kind == VmaKind.PRIVATE_FILE
                || kind == VmaKind.MEMFD_AREA;
    }

    static DirtyPages prepare(DumpContext ctx, Incremental inc) {
        int pid = ctx.pid();
        boolean ipcHost = ctx.shared().containsKey(dev.cryo.core.Checkpoint.IPC_HOST);
        Tracker tracker = inc.tracker(pid);
        List<long[]> trackedBefore = new ArrayList<>();
        List<long[]> application = new ArrayList<>();
        long t0 = System.nanoTime();
        List<Vma> maps = areas(pid, inc.mapsBeforeFreeze.get(pid), ctx.cryoArea());
        long t1 = System.nanoTime();
        LOG.fine(() -> "process " + pid + ": areas read in " + (t1 - t0) / 1000 + " us");
        for (Vma v : maps) {
            if (!userfaultfdRegistered(v)) {
                continue;
            }
            // whose: registering again with our userfaultfd works only for our own areas
            Tracker.Registration whose = tracker == null ? Tracker.Registration.APPLICATION : tracker.register(v.start(), v.end());
            if (whose == Tracker.Registration.OURS) {
                trackedBefore.add(new long[] {v.start(), v.end()});
            } else {
                application.add(new long[] {v.start(), v.end()});
                inc.applicationAreas.add(pid + " " + v);
                LOG.warning(() -> "process " + pid + ": " + v + " is registered with the application's own userfaultfd;"
                        + " dirty tracking leaves it alone and every dump copies it whole");
            }
        }
        int registered = 0;
        if (inc.preDump()) {
            if (tracker == null) {
                tracker = Tracker.create(ctx.syscalls());
                inc.startTracking(tracker);
            }
            for (Vma v : maps) {
                if (!userfaultfdRegistered(v) && trackable(pid, v, ipcHost)
                        && tracker.register(v.start(), v.end()) == Tracker.Registration.OURS) {
                    registered++;
                }
            }
            int n = registered;
            LOG.fine(() -> "process " + pid + ": " + n + " areas registered for dirty tracking");
        }
        return new DirtyPages(pid, inc, tracker, Ranges.normalize(trackedBefore), Ranges.normalize(application), maps,
                registered > 0);
    }

    /**
     * The process's areas now: those read by {@link #prepare} unless it registered more (which
     * may merge areas), else read again. Reading smaps walks every page table (for its Rss
     * and Pss lines), milliseconds for a GiB, so the frozen checkpoint reads it once.
     */
    List<Vma> currentMaps(long cryoArea) {
        return registeredMore ? ProcMaps.read(pid).stream().filter(v -> v.start() != cryoArea).toList() : maps;
    }

    /** The entries with what tracking knows of them: dirty-tracked from this image on, or the application's own. */
    List<VmaEntry> annotate(List<VmaEntry> vmas) {
        List<VmaEntry> out = new ArrayList<>();
        for (VmaEntry e : vmas) {
            boolean app = overlaps(application, e);
            boolean tracked = inc.preDump() && tracker != null && !app && e.getVmFlagsList().contains("uw");
            out.add(app || tracked ? e.toBuilder().setAppUserfaultfd(app).setDirtyTracked(tracked).build() : e);
        }
        return out;
    }

    private static boolean overlaps(List<long[]> ranges, VmaEntry e) {
        for (long[] r : ranges) {
            if (r[0] < e.getEnd() && r[1] > e.getStart()) {
                return true;
            }
        }
        return false;
    }

    /**
     * An incremental checkpoint's first copy, made before the freeze while the process runs:
     * the pages written since the parent image are listed and write-protected again in one
     * step (PAGEMAP_SCAN with PM_SCAN_WP_MATCHING), then copied into pages-early-PID.img. While
     * frozen, only what was written after that step is copied. A page written during this copy
     * is seen as written again, so a torn read of it is never used.
     *
     * <p>From the first re-protecting scan on, the parent's keeper no longer knows what was
     * written since the parent image: {@link Incremental} ends it if the checkpoint fails, and
     * a process whose early copy failed midway has every page copied while frozen.
     */
    static void preCopy(int pid, Incremental inc, ImageWriter image, boolean ipcHost) {
        new DirtyPages(pid, inc, inc.tracker(pid), List.of(), List.of(), List.of(), false).copyEarly(image, ipcHost);
    }

    private void copyEarly(ImageWriter image, boolean ipcHost) {
        Tracker tracker = inc.tracker(pid);
        ImageReader parent = inc.parent();
        if (tracker == null || parent == null || !parent.has(ImageKind.MM, pid) || !dev.cryo.proc.ProcFiles.exists(pid)) {
            return;
        }
        long t0 = System.nanoTime();
        inc.early.put(pid, null); // unknown until the copy is complete
        List<long[]> ours = new ArrayList<>();
        List<VmaEntry> entries = new ArrayList<>();
        List<Vma> maps = ProcMaps.read(pid);
        inc.mapsBeforeFreeze.put(pid, maps);
        for (Vma v : maps) {
            if (userfaultfdRegistered(v) && tracker.register(v.start(), v.end()) == Tracker.Registration.OURS) {
                ours.add(new long[] {v.start(), v.end()});
                entries.add(Vmas.entry(pid, v, ipcHost));
            }
        }
        List<long[]> eligible = Ranges.intersect(Ranges.normalize(ours),
                sameObjectRanges(parent.read(ImageKind.MM, pid, MmImage.parser()), entries));
        List<long[]> written = new ArrayList<>();
        int pagemap = Tracker.openPagemap(pid);
        try {
            for (long[] e : eligible) {
                written.addAll(Tracker.takeWritten(pagemap, e[0], e[1]));
            }
        } finally {
            Sys.close(pagemap);
        }
        List<long[]> copiedEarly = Ranges.normalize(written);
        List<PageRun> runs = copiedEarly.stream().map(r -> run(r).build()).toList();
        try (PageFileWriter out = image.pages(ImageKind.EARLY_PAGES, pid);
             PageSaver saver = new PageSaver(pid, out, dev.cryo.core.Progress.NONE)) {
            saver.save(runs);
        }
        // The early layer: what this process's memory held at the moment of the scan, as far as
        // tracking vouches for it: the pages just copied, and the parent's pages nobody wrote.
        List<long[]> fromParent = Ranges.subtract(Ranges.intersect(eligible, parentHas(parent)), copiedEarly);
        List<PageRun> layer = new ArrayList<>(fromParent.size() + copiedEarly.size());
        int i = 0, j = 0;
        while (i < fromParent.size() || j < copiedEarly.size()) {
            boolean takeParent = j >= copiedEarly.size() || (i < fromParent.size() && fromParent.get(i)[0] < copiedEarly.get(j)[0]);
            layer.add(takeParent ? run(fromParent.get(i++)).setInParent(true).build() : run(copiedEarly.get(j++)).build());
        }
        List<long[]> all = new ArrayList<>(fromParent);
        all.addAll(copiedEarly);
        inc.layerCoverage.put(pid, Ranges.normalize(all));
        // written now, before the freeze: tens of thousands of runs take a while to encode
        image.write(ImageKind.EARLY_PAGEMAP, pid, PagemapImage.newBuilder().addAllRuns(layer).build());
        inc.early.put(pid, layer);
        long pages = PageSaver.pages(runs);
        LOG.fine(() -> "process " + pid + ": " + pages + " pages written since the parent image copied before the freeze, in "
                + (System.nanoTime() - t0) / 1000 + " us");
    }

    /** The pages the parent image holds for this process (in any of its files), normalized. */
    private List<long[]> parentHas(ImageReader parent) {
        return parentHas(parent, pid);
    }

    private static List<long[]> parentHas(ImageReader parent, int pid) {
        List<long[]> has = new ArrayList<>();
        for (PageRun r : parent.read(ImageKind.PAGEMAP, pid, PagemapImage.parser()).getRunsList()) {
            has.add(new long[] {r.getVaddr(), r.getVaddr() + (long) r.getNrPages() * PAGE});
        }
        return Ranges.normalize(has);
    }

    /** Where the parent's dirty-tracked areas map the same objects as {@code now}: normalized ranges. */
    private static List<long[]> sameObjectRanges(MmImage parent, List<VmaEntry> now) {
        List<long[]> out = new ArrayList<>();
        for (VmaEntry p : parent.getVmasList()) {
            if (!p.getDirtyTracked()) {
                continue;
            }
            for (VmaEntry e : now) {
                long s = Math.max(p.getStart(), e.getStart()), end = Math.min(p.getEnd(), e.getEnd());
                if (s < end && sameObject(p, e)) {
                    out.add(new long[] {s, end});
                }
            }
        }
        return Ranges.normalize(out);
    }

    /**
     * {@code saved} (address order) with every page that need not be copied now marked: early
     * when the early layer of the copy before the freeze holds it (that layer itself points into
     * the parent for what was not written since), else in_parent when the parent image holds it;
     * in either case only in an area tracked since the parent that maps the same object at the
     * same offset, and not written since. The layer covers the areas in a few large ranges, so
     * what is done while frozen grows with the pages written since the copy, not with the
     * pages written since the parent.
     */
    List<PageRun> split(List<VmaEntry> vmas, List<PageRun> saved) {
        ImageReader parent = inc.parent();
        if (parent == null || tracker == null || trackedBefore.isEmpty() || !parent.has(ImageKind.MM, pid)) {
            return saved;
        }
        if (inc.early.containsKey(pid) && inc.early.get(pid) == null) {
            LOG.warning(() -> "process " + pid + ": the copy before the freeze failed; every page is copied now");
            return saved;
        }
        long t0 = System.nanoTime();
        boolean viaLayer = inc.early.containsKey(pid);
        List<long[]> eligible = Ranges.intersect(trackedBefore, sameObjectRanges(parent.read(ImageKind.MM, pid, MmImage.parser()), vmas));
        List<long[]> coverage = viaLayer ? inc.layerCoverage.get(pid) : parentHas(parent);
        List<long[]> candidates = Ranges.intersect(eligible, coverage);
        long t1 = System.nanoTime();
        List<long[]> written = new ArrayList<>();
        int pagemap = Tracker.openPagemap(pid);
        try {
            for (long[] c : candidates) {
                written.addAll(Tracker.written(pagemap, c[0], c[1]));
            }
        } finally {
            Sys.close(pagemap);
        }
        long t2 = System.nanoTime();
        List<long[]> unchanged = Ranges.subtract(candidates, Ranges.normalize(written));
        List<long[]> savedRanges = saved.stream()
                .map(r -> new long[] {r.getVaddr(), r.getVaddr() + (long) r.getNrPages() * PAGE}).toList();
        List<long[]> elsewhere = Ranges.intersect(savedRanges, unchanged);
        List<long[]> copied = Ranges.subtract(savedRanges, unchanged);
        List<PageRun> out = new ArrayList<>(elsewhere.size() + copied.size());
        int i = 0, j = 0;
        while (i < elsewhere.size() || j < copied.size()) {
            if (j >= copied.size() || (i < elsewhere.size() && elsewhere.get(i)[0] < copied.get(j)[0])) {
                PageRun.Builder r = run(elsewhere.get(i++));
                out.add((viaLayer ? r.setEarly(true) : r.setInParent(true)).build());
            } else {
                out.add(run(copied.get(j++)).build());
            }
        }
        inc.unchanged.put(pid, elsewhere);
        long t3 = System.nanoTime();
        LOG.fine(() -> "process " + pid + ": " + Ranges.bytes(written) / PAGE + " pages written since the "
                + (viaLayer ? "copy before the freeze" : "parent image") + ", " + Ranges.bytes(elsewhere) / PAGE
                + " unchanged; areas " + (t1 - t0) / 1000 + " us, scan " + (t2 - t1) / 1000 + " us, ranges "
                + (t3 - t2) / 1000 + " us");
        return out;
    }

    private static PageRun.Builder run(long[] r) {
        return PageRun.newBuilder().setVaddr(r[0]).setNrPages((int) ((r[1] - r[0]) / PAGE));
    }

    /** The same object at the same offset: the same anonymous kind, or the same file/shmem object mapped alike. */
    private static boolean sameObject(VmaEntry parent, VmaEntry now) {
        if (parent.getKind() != now.getKind() || !parent.getPath().equals(now.getPath())
                || parent.getFileInode() != now.getFileInode()) {
            return false;
        }
        return parent.getKind() == VmaKind.PRIVATE_ANON
                || parent.getPgoff() - parent.getStart() == now.getPgoff() - now.getStart();
    }

    /**
     * For an anonymous area of a process being dumped incrementally, the ranges of pages to save,
     * from one PAGEMAP_SCAN walk instead of a pagemap read (over ten milliseconds per GiB while the
     * process is frozen). Pages listed as swapped are looked up in pagemap, as the scan also lists
     * userfaultfd markers that way. Null for any other area: pagemap decides page by page. What
     * this does not tell is whether an anonymous page is shared copy-on-write with another
     * process, so such a page is read with process_vm_readv like any other (which may unshare it;
     * the contents are right either way).
     */
    List<long[]> pagesToSave(VmaEntry v, int pagemapFd, Pagemap pagemap) {
        return PageSaver.scannedPages(v, pagemapFd, pagemap);
    }

    /** Pre-dump: write-protects every tracked area again, so the next image sees what is written from now on. */
    void rearm(List<VmaEntry> vmas) {
        if (!inc.preDump() || tracker == null) {
            return;
        }
        for (VmaEntry e : vmas) {
            if (e.getDirtyTracked()) {
                tracker.protect(e.getStart(), e.getEnd());
            }
        }
    }
}
