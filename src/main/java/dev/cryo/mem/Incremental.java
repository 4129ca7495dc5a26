package dev.cryo.mem;

import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.TrackerImage;
import dev.cryo.track.Keeper;
import dev.cryo.track.Tracker;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

/**
 * What a dump builds on: the parent image (a pre-dump) and the dirty tracking that started
 * with it. Put into the dump context's tree-wide map under {@link #KEY}; the memory part then
 * marks pages "in parent" that the parent holds and nobody wrote since, and a pre-dump also
 * starts (or carries on) tracking for the next image.
 *
 * <p>A page may only be taken from the parent when all of these hold: the parent image holds
 * it; its area was marked dirty-tracked in the parent image (write protection armed while the
 * process was frozen, before the parent's pages were copied); the area is still registered with
 * the very userfaultfd the parent's keeper handed over (so it was never unmapped or replaced:
 * a new mapping is not registered, and one of the application's own answers EBUSY); and
 * PAGEMAP_SCAN does not report it written. Anything else is copied.
 */
public final class Incremental implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger("mem");
    /** Key in the dump context's tree-wide map. */
    public static final String KEY = "mem:incremental";

    private final ImageReader parent;
    private final Keeper.Held keeper;
    private final Map<Integer, Tracker> trackers = new LinkedHashMap<>();
    private final boolean preDump;
    /** Areas left alone because the application registered them itself, for the summary: "pid: range". */
    final List<String> applicationAreas = new ArrayList<>();
    /**
     * Per process, the early layer made before the freeze (the pagemap's {@code early} list:
     * pages in pages-early-PID.img, and the parent's unwritten ones); null while (or if) that
     * copy is incomplete.
     */
    final Map<Integer, List<dev.cryo.image.proto.PageRun>> early = new java.util.HashMap<>();
    /** Per process, the pages the early layer holds, as normalized ranges. */
    final Map<Integer, List<long[]>> layerCoverage = new java.util.HashMap<>();
    /** Per process, the saved pages not copied because an earlier image or the early layer holds them. */
    final Map<Integer, List<long[]>> unchanged = new java.util.HashMap<>();
    /** Per process, smaps as read before the freeze (see {@link DirtyPages#areas}). */
    final Map<Integer, List<dev.cryo.proc.Vma>> mapsBeforeFreeze = new java.util.HashMap<>();
    /** Set once a re-protecting scan ran: the parent's keeper no longer knows what was written since the parent. */
    private boolean trackingConsumed;
    private boolean done;

    private Incremental(ImageReader parent, Keeper.Held keeper, boolean preDump) {
        this.parent = parent;
        this.keeper = keeper;
        this.preDump = preDump;
        if (keeper != null) {
            trackers.putAll(keeper.trackers());
        }
    }

    /**
     * Opens the parent image (null: none) and takes the tracking over from its keeper, if alive.
     * A pre-dump ends the old keeper at once: the tracking it held is re-armed for the new
     * image, after which the parent's record of it would be wrong. A final checkpoint ends it
     * only when it succeeds ({@link #succeeded}), so a failed one can be tried again.
     */
    public static Incremental open(Path parentDir, int rootPid, boolean preDump) {
        if (parentDir == null) {
            return new Incremental(null, null, preDump);
        }
        ImageReader parent = ImageReader.open(parentDir, false);
        if (parent.inventory().getRootPid() != rootPid) {
            throw new dev.cryo.CryoException("the parent image " + parentDir + " is of process " + parent.inventory().getRootPid()
                    + ", not of " + rootPid + "; an incremental dump builds on an image of the same process");
        }
        Keeper.Held keeper = null;
        if (!parent.inventory().getPreDump()) {
            LOG.warning(() -> "parent image " + parentDir + " is not a pre-dump: it has no dirty tracking, every page is copied");
        } else if (parent.has(ImageKind.TRACKER, 0)) {
            keeper = Keeper.adopt(parent.read(ImageKind.TRACKER, 0, TrackerImage.parser()), parentDir.toString());
        }
        if (keeper != null && preDump) {
            keeper.end();
        }
        return new Incremental(parent, keeper, preDump);
    }

    /** The parent image, or null. */
    public ImageReader parent() {
        return parent;
    }

    public boolean preDump() {
        return preDump;
    }

    /** The tracker of process {@code pid}, or null when it is not tracked (yet). */
    Tracker tracker(int pid) {
        return trackers.get(pid);
    }

    void startTracking(Tracker t) {
        trackers.put(t.pid(), t);
    }

    /** Every tracker, for the keeper a pre-dump leaves behind. */
    public List<Tracker> trackers() {
        return List.copyOf(trackers.values());
    }

    /**
     * Pages taken unchanged from the parent image (through the early layer or directly), over all
     * processes. Counted after the fact, not while the processes are frozen.
     */
    public long pagesInParent() {
        long pages = 0;
        for (Map.Entry<Integer, List<long[]>> e : unchanged.entrySet()) {
            List<dev.cryo.image.proto.PageRun> layer = early.get(e.getKey());
            List<long[]> fromParent = layer == null ? e.getValue() : Ranges.intersect(e.getValue(), layer.stream()
                    .filter(dev.cryo.image.proto.PageRun::getInParent)
                    .map(r -> new long[] {r.getVaddr(), r.getVaddr() + r.getNrPages() * 4096L}).toList());
            pages += Ranges.bytes(fromParent) / 4096;
        }
        return pages;
    }

    /** Areas the application registered with a userfaultfd of its own ("pid start-end"), left alone. */
    public List<String> applicationAreas() {
        return List.copyOf(applicationAreas);
    }

    /**
     * Before the freeze of an incremental checkpoint: copies, while the processes run, the
     * pages written since the parent image (see {@link DirtyPages#preCopy}), so that the frozen
     * part copies only what is written after this. Skipped for pre-dumps (they copy while the
     * process runs anyway). A failure is logged and leaves that process to be copied whole.
     */
    public void copyBeforeFreeze(dev.cryo.image.ImageWriter image, boolean ipcHost) {
        if (preDump || parent == null) {
            return;
        }
        for (Tracker t : trackers.values()) {
            trackingConsumed = true;
            try {
                DirtyPages.preCopy(t.pid(), this, image, ipcHost);
            } catch (RuntimeException e) {
                LOG.warning(() -> "process " + t.pid() + ": copy before the freeze failed (" + e.getMessage()
                        + "); its pages are copied while frozen");
            }
        }
    }

    /** Pages copied before the freeze, over all processes. */
    public long pagesCopiedEarly() {
        return early.values().stream().filter(java.util.Objects::nonNull)
                .mapToLong(l -> l.stream().filter(r -> !r.getInParent()).mapToLong(dev.cryo.image.proto.PageRun::getNrPages).sum()).sum();
    }

    /** The final dump is written: the keeper it built on has served and ends. */
    public void succeeded() {
        done = true;
        if (keeper != null) {
            keeper.end();
        }
    }

    /**
     * Closes Cryo's copies of the userfaultfds: tracking ends unless a keeper holds them. A
     * checkpoint that failed after its copy before the freeze ends the keeper too: it no longer
     * knows everything written since the parent image, and a later dump must not trust it.
     */
    @Override
    public void close() {
        if (!done && trackingConsumed && keeper != null) {
            LOG.warning(() -> "the failed checkpoint used up the dirty tracking of " + parent.dir()
                    + "; a dump on top of it copies every page");
            keeper.end();
        }
        trackers.values().forEach(Tracker::close);
        if (keeper != null) {
            keeper.close();
        }
    }
}
