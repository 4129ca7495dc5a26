package dev.cryo.core;

import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageWriter;
import dev.cryo.image.proto.Inventory;
import dev.cryo.image.proto.PstreeEntry;
import dev.cryo.image.proto.PstreeImage;
import dev.cryo.image.proto.TrackerImage;
import dev.cryo.mem.Incremental;
import dev.cryo.mem.Memory;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.Tracee;
import dev.cryo.track.Keeper;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

/**
 * Orders a pre-dump: a memory-only image that a later dump builds on, made while the processes
 * keep running. The tree is frozen only to read each address space and arm dirty tracking
 * (userfaultfd write protection, see {@link dev.cryo.track.Tracker}); the pages are copied once
 * it runs again, since whatever it writes meanwhile is seen as written by the next dump. A
 * keeper process holds the tracking after Cryo exits.
 *
 * <p>A failure leaves the processes as they were: Cryo's userfaultfd copies close, which ends
 * the tracking (the kernel unregisters every area), no keeper is left, and no image is written.
 */
public final class PreDump {
    private static final Logger LOG = Logger.getLogger("pre-dump");

    /** @param parent an earlier pre-dump to build on (null: none) */
    public record Options(int pid, Path dir, Path parent, Progress progress) {
    }

    /** @param areasLeftAlone areas the application registered with its own userfaultfd ("pid range") */
    public record Result(int pid, int processes, long pages, long bytes, long pagesInParent, long frozenNanos,
                         long totalNanos, int keeperPid, List<String> areasLeftAlone) {
    }

    public static Result run(Options o) {
        long t0 = System.nanoTime();
        Targets.checkCheckpointable(o.pid());
        Checkpoint.checkDir(o.dir());
        Incremental incremental = Incremental.open(o.parent(), o.pid(), true);
        ImageWriter image = null;
        FrozenTree tree = null;
        TrackerImage keeper = null;
        Urgency urgency = null;
        try {
            image = new ImageWriter(o.dir());
            ImageWriter.prepareSchemas(); // not while the processes wait
            urgency = Urgency.raise();
            tree = FrozenTree.freeze(o.pid(), FrozenTree.options());
        } catch (RuntimeException e) {
            if (urgency != null) {
                urgency.close();
            }
            if (image != null) {
                Checkpoint.abortQuietly(image, e);
            }
            Checkpoint.closeQuietly(incremental, e);
            throw e;
        }
        long frozen = System.nanoTime();
        long frozenFor;
        DumpContext.Stats stats = new DumpContext.Stats();
        Inventory.Builder inventory = Inventory.newBuilder().setRootPid(o.pid()).setPreDump(true)
                .setToolVersion(dev.cryo.Version.VERSION).setKernelRelease(Checkpoint.kernelRelease())
                .setHostname(Checkpoint.hostname()).setPageSize(4096);
        try {
            List<Memory.PageCopy> copies;
            try {
                tree.checkNothingSharedBetweenProcesses();
                copies = layout(o, tree, image, inventory, stats, incremental);
            } catch (RuntimeException e) {
                tree.release(e);
                throw e;
            }
            tree.release();
            frozenFor = System.nanoTime() - frozen;
            urgency.close(); // the copy that follows runs beside the processes, at the usual priority
            Memory.PageCopy.copyAll(copies, true);
            keeper = Keeper.spawn(incremental.trackers());
            image.write(ImageKind.TRACKER, 0, keeper);
            if (incremental.parent() != null) {
                Checkpoint.setParent(inventory, o.dir(), incremental);
            }
            image.finish(inventory.setCreatedUnixMs(System.currentTimeMillis()));
        } catch (RuntimeException e) {
            urgency.close();
            if (keeper != null) {
                Keeper.endQuietly(keeper);
            }
            Checkpoint.abortQuietly(image, e);
            Checkpoint.closeQuietly(incremental, e);
            LOG.severe("Error: pre-dump of " + o.pid() + " failed, the processes run on untracked: " + e.getMessage());
            throw e;
        }
        incremental.close(); // the keeper holds the tracking now
        long total = System.nanoTime() - t0;
        int keeperPid = keeper.getKeeperPid();
        LOG.info(() -> "pre-dump of " + o.pid() + " done; tracking kept by process " + keeperPid);
        return new Result(o.pid(), tree.live().size(), stats.pages.get(), stats.bytes.get(), incremental.pagesInParent(),
                frozenFor, total, keeperPid, incremental.applicationAreas());
    }

    /** While frozen: each process's memory layout and its tracking armed; returns the page copies still to do. */
    private static List<Memory.PageCopy> layout(Options o, FrozenTree tree, ImageWriter image, Inventory.Builder inventory,
                                                DumpContext.Stats stats, Incremental incremental) {
        Map<String, Object> shared = new HashMap<>();
        shared.put(Incremental.KEY, incremental);
        PstreeImage.Builder pstree = PstreeImage.newBuilder();
        List<Integer> earlier = new ArrayList<>();
        List<Memory.PageCopy> copies = new ArrayList<>();
        Memory memory = new Memory();
        for (FrozenTree.Proc p : tree.procs()) {
            if (!p.zombie()) {
                Tracee leader = p.threads().getFirst();
                // only the leader runs injected calls (userfaultfd, close, brk): no scratch memory needed
                try (RemoteSyscalls sys = new RemoteSyscalls(leader, Checkpoint.findSyscallInstruction(leader))) {
                    DumpContext ctx = new DumpContext(p.pid(), List.of(new ThreadHandle(p.pid(), leader, sys)),
                            List.copyOf(earlier), image, 0, inventory, stats, o.progress(), shared);
                    copies.add(memory.layout(ctx));
                }
                earlier.add(p.pid());
            }
            pstree.addProcesses(PstreeEntry.newBuilder().setPid(p.pid()).setPpid(p.ppid()).setPgid(p.pgid())
                    .setSid(p.sid()).addAllThreads(p.threads().stream().map(Tracee::pid).toList())
                    .setZombie(p.zombie()).setExitStatus(p.exitStatus()));
        }
        image.write(ImageKind.PSTREE, 0, pstree.build());
        return copies;
    }
}
