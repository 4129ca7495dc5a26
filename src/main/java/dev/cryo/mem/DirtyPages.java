package dev.cryo.mem;

import dev.cryo.core.DumpContext;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.MmImage;
import dev.cryo.image.proto.PageRun;
import dev.cryo.image.proto.PagemapImage;
import dev.cryo.image.proto.VmaEntry;
import dev.cryo.image.proto.VmaKind;
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

    private DirtyPages(int pid, Incremental inc, Tracker tracker, List<long[]> trackedBefore, List<long[]> application) {
        this.pid = pid;
        this.inc = inc;
        this.tracker = tracker;
        this.trackedBefore = trackedBefore;
        this.application = application;
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
        List<Vma> maps = ProcMaps.read(pid).stream().filter(v -> v.start() != ctx.cryoArea()).toList();
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
        if (inc.preDump()) {
            if (tracker == null) {
                tracker = Tracker.create(ctx.syscalls());
                inc.startTracking(tracker);
            }
            int registered = 0;
            for (Vma v : maps) {
                if (!userfaultfdRegistered(v) && trackable(pid, v, ipcHost)
                        && tracker.register(v.start(), v.end()) == Tracker.Registration.OURS) {
                    registered++;
                }
            }
            int n = registered;
            LOG.fine(() -> "process " + pid + ": " + n + " areas registered for dirty tracking");
        }
        return new DirtyPages(pid, inc, tracker, Ranges.normalize(trackedBefore), Ranges.normalize(application));
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
        return ranges.stream().anyMatch(r -> r[0] < e.getEnd() && r[1] > e.getStart());
    }

    /**
     * {@code saved} (address order) with every page that may come from the parent marked
     * in_parent: held by the parent image, in an area tracked since then that maps the same
     * object at the same offset, and not written since.
     */
    List<PageRun> split(List<VmaEntry> vmas, List<PageRun> saved) {
        ImageReader parent = inc.parent();
        if (parent == null || tracker == null || trackedBefore.isEmpty() || !parent.has(ImageKind.MM, pid)) {
            return saved;
        }
        MmImage theirs = parent.read(ImageKind.MM, pid, MmImage.parser());
        List<long[]> sameObject = new ArrayList<>();
        for (VmaEntry p : theirs.getVmasList()) {
            if (!p.getDirtyTracked()) {
                continue;
            }
            for (VmaEntry e : vmas) {
                long s = Math.max(p.getStart(), e.getStart()), end = Math.min(p.getEnd(), e.getEnd());
                if (s < end && sameObject(p, e)) {
                    sameObject.add(new long[] {s, end});
                }
            }
        }
        List<long[]> parentHas = new ArrayList<>();
        for (PageRun r : parent.read(ImageKind.PAGEMAP, pid, PagemapImage.parser()).getRunsList()) {
            parentHas.add(new long[] {r.getVaddr(), r.getVaddr() + (long) r.getNrPages() * PAGE});
        }
        List<long[]> candidates = Ranges.intersect(Ranges.intersect(trackedBefore, Ranges.normalize(sameObject)),
                Ranges.normalize(parentHas));
        List<long[]> written = new ArrayList<>();
        int pagemap = Tracker.openPagemap(pid);
        try {
            for (long[] c : candidates) {
                written.addAll(Tracker.written(pagemap, c[0], c[1]));
            }
        } finally {
            Sys.close(pagemap);
        }
        List<long[]> inParent = Ranges.subtract(candidates, Ranges.normalize(written));
        List<long[]> savedRanges = saved.stream()
                .map(r -> new long[] {r.getVaddr(), r.getVaddr() + (long) r.getNrPages() * PAGE}).toList();
        List<PageRun> out = new ArrayList<>();
        List<long[]> fromParent = Ranges.intersect(savedRanges, inParent);
        List<long[]> copied = Ranges.subtract(savedRanges, inParent);
        int i = 0, j = 0;
        while (i < fromParent.size() || j < copied.size()) {
            boolean takeParent = j >= copied.size() || (i < fromParent.size() && fromParent.get(i)[0] < copied.get(j)[0]);
            long[] r = takeParent ? fromParent.get(i++) : copied.get(j++);
            out.add(PageRun.newBuilder().setVaddr(r[0]).setNrPages((int) ((r[1] - r[0]) / PAGE)).setInParent(takeParent).build());
        }
        long bytes = Ranges.bytes(fromParent);
        LOG.fine(() -> "process " + pid + ": " + Ranges.bytes(written) / PAGE + " pages written since the parent image, "
                + bytes / PAGE + " taken from it");
        return out;
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
