package dev.cryo.core;

import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageWriter;
import dev.cryo.image.proto.PstreeEntry;
import dev.cryo.image.proto.PstreeImage;
import dev.cryo.image.proto.Inventory;
import dev.cryo.mem.Incremental;
import dev.cryo.proc.ProcFiles;
import dev.cryo.proc.ProcMaps;
import dev.cryo.proc.Vma;
import dev.cryo.remote.InjectionException;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteScratch;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.Tracee;
import dev.cryo.sys.Ptrace;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * Orders a checkpoint: check the target, freeze it, let every {@link TaskPart} save its state,
 * write the inventory last, then kill the target or let it run on. Any failure resumes the
 * target exactly as it was and removes the partial image.
 */
public final class Checkpoint {
    private static final Logger LOG = Logger.getLogger("checkpoint");
    private static final long SCRATCH_SIZE = 64 * 1024;
    /**
     * Where the frozen time went, by part, for the log line that follows a checkpoint (nothing is
     * logged while the tree is frozen: formatting log lines is itself slow in a cold JVM).
     * Checkpoints run one at a time in a JVM.
     */
    private static final java.lang.management.ThreadMXBean THREADS = java.lang.management.ManagementFactory.getThreadMXBean();
    private static final java.util.Map<String, Long> frozenTimes = new java.util.LinkedHashMap<>();

    /**
     * @param shellJob the tree may use the terminal it runs in (criu's --shell-job): it will get restore's terminal
     * @param ipcHost  the tree uses IPC objects of the host's namespace, which stay there and are reconnected at restore
     * @param parent   a pre-dump this checkpoint builds on (null: none): only pages written since it are copied
     */
    public record Options(int pid, Path dir, boolean leaveRunning, boolean shellJob, boolean ipcHost, boolean tcpEstablished,
                          boolean extUnixSk, Progress progress, Path parent, Container container) {
        public Options(int pid, Path dir, boolean leaveRunning) {
            this(pid, dir, leaveRunning, false, false, false, false, Progress.NONE, null, null);
        }

        public Options(int pid, Path dir, boolean leaveRunning, boolean shellJob, boolean ipcHost, boolean tcpEstablished,
                       boolean extUnixSk, Progress progress, Path parent) {
            this(pid, dir, leaveRunning, shellJob, ipcHost, tcpEstablished, extUnixSk, progress, parent, null);
        }
    }

    /** What a container adds to the checkpoint of its tree (whose root is {@link Options#pid()}). */
    public interface Container {
        /** Stops the whole tree at once (its cgroup's freezer) before it is seized, so nothing forks meanwhile. */
        void freeze();

        /** Lets the cgroup run again once the tree is held by ptrace, or the seizing failed. */
        void thaw();

        /** The processes (pids as Cryo sees them) of the seized tree: whatever else the container holds would be lost. */
        default void treeSeized(java.util.List<Integer> pids) {
        }

        /** Saves the state of the tree's namespaces into the image, from inside its root (whose session is open). */
        void dumpNamespaces(DumpContext root);

        /** Options for the parts (keys of {@link DumpContext#shared()}), e.g. {@link #SYSV_SHM_IN_IMAGE}. */
        default java.util.Map<String, Object> options() {
            return java.util.Map.of();
        }
    }

    /** Key in the tree-wide map of the dump context: set when --ipc-host was given. */
    public static final String IPC_HOST = "option:ipc-host";

    /**
     * Key in the tree-wide map of the dump context and in the restore options: the SysV shm
     * segments the tree attaches are saved with its IPC namespace (a container's) and recreated
     * with their ids before the tree, so attachments are kept by id like --ipc-host's.
     */
    public static final String SYSV_SHM_IN_IMAGE = "option:sysv-shm-in-image";

    /**
     * Key in the tree-wide map of the dump context: the tree has an IPC namespace of its own (a
     * container's), saved with it, so the POSIX message queues it has open are in the image.
     */
    public static final String IPC_NAMESPACE_IN_IMAGE = "option:ipc-namespace-in-image";

    /** Key in the tree-wide map of the dump context: set when --tcp-established was given. */
    public static final String TCP_ESTABLISHED = "option:tcp-established";

    /** Key in the tree-wide map of the dump context: set when --ext-unix-sk was given. */
    public static final String EXT_UNIX_SK = "option:ext-unix-sk";

    /**
     * Key in the tree-wide maps of dump and restore contexts: the tree is a container's, whose
     * cgroup the container code makes and joins itself.
     */
    public static final String CONTAINER = "tree:container";

    /**
     * Key in the tree-wide map of the dump context: set when the checkpoint kills the tree once
     * it is saved (not left running), so that what cannot be undone may be done to it while it
     * is frozen (accepting connections not yet accepted, to read what waits in them).
     */
    public static final String KILLS_TREE = "option:kills-tree";

    /** Key in the tree-wide map of the dump context: the PID of the tree's root. */
    public static final String ROOT_PID = "tree:root-pid";

    /** Key in the tree-wide maps of dump and restore contexts: set when --shell-job was given. */
    public static final String SHELL_JOB = "option:shell-job";

    /**
     * @param pages         pages copied while the tree was frozen
     * @param pagesInParent pages not copied because the parent image holds them unchanged
     * @param pagesEarly    pages copied before the freeze (incremental), not written since
     * @param frozenCpuNanos CPU time of the dumping thread while the tree was frozen
     */
    public record Result(int pid, int processes, int threads, long areas, long pages, long bytes, long fds, long frozenNanos,
                         long totalNanos, long pagesInParent, long pagesEarly, long frozenCpuNanos) {
    }

    public static Result run(Options o) {
        frozenTimes.clear();
        long t0 = System.nanoTime();
        Targets.checkCheckpointable(o.pid());
        checkDir(o.dir());
        Incremental incremental = o.parent() == null ? null : Incremental.open(o.parent(), o.pid(), false);
        ImageWriter image;
        try {
            image = new ImageWriter(o.dir());
        } catch (RuntimeException e) {
            closeQuietly(incremental, e);
            throw e;
        }
        if (incremental != null) {
            incremental.copyBeforeFreeze(image, o.ipcHost());
        }
        // what needs no frozen process is done before the freeze
        ImageWriter.prepareSchemas();
        Inventory.Builder inventory = Inventory.newBuilder().setRootPid(o.pid())
                .setToolVersion(dev.cryo.Version.VERSION).setKernelRelease(kernelRelease())
                .setHostname(hostname()).setPageSize(4096);
        try (Urgency urgency = Urgency.raise()) {
            return frozenPart(o, t0, image, incremental, inventory);
        }
    }

    /** From the freeze to the end: the part the processes wait for. */
    private static Result frozenPart(Options o, long t0, ImageWriter image, Incremental incremental, Inventory.Builder inventory) {
        FrozenTree tree;
        try {
            tree = freeze(o);
        } catch (RuntimeException e) {
            abortQuietly(image, e);
            closeQuietly(incremental, e);
            throw e;
        }
        long frozen = System.nanoTime();
        long frozenCpu = THREADS.getCurrentThreadCpuTime();
        LOG.fine(() -> "tree of " + o.pid() + " frozen (" + tree.threadCount() + " threads)");
        DumpContext.Stats stats = new DumpContext.Stats();
        java.util.Map<String, Object> shared = new java.util.HashMap<>();
        shared.put(ROOT_PID, o.pid());
        try {
            tree.checkNothingSharedBetweenProcesses();
            if (o.container() != null) {
                o.container().treeSeized(tree.procs().stream().map(FrozenTree.Proc::pid).toList());
            }
            PstreeImage.Builder pstree = PstreeImage.newBuilder();
            List<Integer> earlier = new ArrayList<>();
            if (o.tcpEstablished()) {
                shared.put(TCP_ESTABLISHED, Boolean.TRUE);
            }
            if (!o.leaveRunning()) {
                shared.put(KILLS_TREE, Boolean.TRUE);
            }
            if (o.extUnixSk()) {
                shared.put(EXT_UNIX_SK, Boolean.TRUE);
            }
            if (o.shellJob()) {
                shared.put(SHELL_JOB, Boolean.TRUE);
            }
            if (o.ipcHost()) {
                shared.put(IPC_HOST, Boolean.TRUE);
            }
            if (o.container() != null) {
                shared.put(CONTAINER, Boolean.TRUE);
                shared.putAll(o.container().options());
            }
            String rootPidNs = PidNamespaceView.of(o.pid());
            boolean ownPidNs = !rootPidNs.equals(PidNamespaceView.of(dev.cryo.sys.Sys.getpid()));
            if (incremental != null) {
                shared.put(Incremental.KEY, incremental);
                setParent(inventory, o.dir(), incremental);
            }
            for (FrozenTree.Proc p : tree.procs()) {
                if (!p.zombie()) {
                    dump(o, p, List.copyOf(earlier), image, inventory, stats, shared);
                    earlier.add(p.pid());
                }
                PstreeEntry.Builder entry = PstreeEntry.newBuilder().setPid(p.pid()).setPpid(p.ppid()).setPgid(p.pgid())
                        .setSid(p.sid()).addAllThreads(p.threads().stream().map(Tracee::pid).toList())
                        .setZombie(p.zombie()).setExitStatus(p.exitStatus());
                if (ownPidNs) {
                    PidNamespaceView.describe(p, rootPidNs, entry);
                }
                pstree.addProcesses(entry);
            }
            Targets.checkTreeIds(pstree.build());
            for (TaskPart part : TaskParts.ALL) {
                long t = System.nanoTime();
                part.afterTreeDump(image, shared);
                long took = System.nanoTime() - t;
                if (took > 100_000) { // the page copies' wait, a tree's pipes...: only what shows
                    frozenTimes.merge(part.name() + " (tree)", took, Long::sum);
                }
            }
            image.write(ImageKind.PSTREE, 0, pstree.build());
            long f = System.nanoTime();
            image.finish(inventory.setCreatedUnixMs(System.currentTimeMillis()));
            frozenTimes.put("image", System.nanoTime() - f);
        } catch (RuntimeException e) {
            ended(shared, false, e);
            tree.release(e);
            abortQuietly(image, e);
            closeQuietly(incremental, e); // the keeper, untouched, goes on tracking for another try
            LOG.severe("Error: checkpoint of " + o.pid() + " failed, the processes were left running: " + e.getMessage());
            throw e;
        }
        long frozenFor = System.nanoTime() - frozen;
        long cpu = THREADS.getCurrentThreadCpuTime() - frozenCpu;
        long accounted = frozenTimes.values().stream().mapToLong(Long::longValue).sum();
        StringBuilder where = new StringBuilder();
        frozenTimes.forEach((k, v) -> where.append(", ").append(k).append(' ').append(v / 100_000 / 10.0));
        LOG.info(() -> "frozen " + frozenFor / 100_000 / 10.0 + " ms (this thread's CPU time " + cpu / 100_000 / 10.0
                + " ms: on a busy machine the rest is waiting for a CPU)" + where + ", the rest (freeze, sessions) "
                + (frozenFor - accounted) / 100_000 / 10.0);
        if (o.leaveRunning()) {
            ended(shared, false, null);
            tree.release();
        } else {
            // a container's cgroup and namespaces must be empty once the checkpoint ends; a plain
            // tree's root may finish dying (freeing its memory) after it
            tree.kill(o.container() == null);
            ended(shared, true, null);
        }
        long inParent = 0;
        long early = 0;
        if (incremental != null) {
            inParent = incremental.pagesInParent();
            early = incremental.pagesCopiedEarly();
            incremental.succeeded();
            incremental.close();
        } else {
            // a pre-dump's tracking, if any, is of no use to a full image: its keeper would linger
            dev.cryo.track.Keeper.endStrays(tree.procs().stream().map(FrozenTree.Proc::pid).toList());
        }
        LOG.info(() -> "checkpoint of " + o.pid() + " done" + (o.leaveRunning() ? ", left running" : ", killed"));
        return new Result(o.pid(), tree.procs().size(), tree.threadCount(), stats.areas.get(), stats.pages.get(),
                stats.bytes.get(), stats.fds.get(), frozenFor, System.nanoTime() - t0, inParent, early, cpu);
    }

    /** Records the parent image: its path relative to this image's directory, and its id. */
    static void setParent(Inventory.Builder inventory, Path dir, Incremental incremental) {
        Path parent = incremental.parent().dir().toAbsolutePath().normalize();
        inventory.setParentImage(dir.toAbsolutePath().normalize().relativize(parent).toString())
                .setParentImageId(incremental.parent().inventory().getImageId());
    }

    static void closeQuietly(AutoCloseable c, Throwable primary) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (Exception e) {
            primary.addSuppressed(e);
        }
    }

    /** Tells every part the checkpoint is over; a failure rides along with {@code primary}, or is thrown. */
    private static void ended(java.util.Map<String, Object> shared, boolean killed, RuntimeException primary) {
        for (TaskPart part : TaskParts.ALL) {
            try {
                part.afterCheckpoint(shared, killed);
            } catch (RuntimeException e) {
                if (primary == null) {
                    throw e;
                }
                primary.addSuppressed(e);
            }
        }
    }

    /** Seizes the tree; a container's is frozen by its cgroup meanwhile. */
    private static FrozenTree freeze(Options o) {
        if (o.container() == null) {
            return FrozenTree.freeze(o.pid(), FrozenTree.options());
        }
        o.container().freeze();
        try {
            return FrozenTree.freeze(o.pid(), FrozenTree.options());
        } finally {
            o.container().thaw();
        }
    }

    /** Opens a syscall session in every thread of one process, lets every part save its state, and closes them all again. */
    private static void dump(Options o, FrozenTree.Proc proc, List<Integer> earlier, ImageWriter image,
                             Inventory.Builder inventory, DumpContext.Stats stats, java.util.Map<String, Object> shared) {
        List<Tracee> tasks = proc.threads();
        RemoteAddr insn = findSyscallInstruction(tasks.getFirst());
        List<ThreadHandle> threads = new ArrayList<>();
        try {
            for (Tracee t : tasks) {
                threads.add(new ThreadHandle(t.pid(), t, new RemoteSyscalls(t, insn)));
            }
            RemoteSyscalls leader = threads.getFirst().syscalls();
            RemoteAddr scratch = leader.mmap(0, SCRATCH_SIZE, RemoteSyscalls.PROT_READ | RemoteSyscalls.PROT_WRITE,
                    RemoteSyscalls.MAP_SHARED | RemoteSyscalls.MAP_ANONYMOUS, -1, 0);
            try {
                // one scratch area serves every thread: they share the address space, and Cryo
                // drives them one at a time
                RemoteScratch scratchArea = new RemoteScratch(tasks.getFirst(), scratch, SCRATCH_SIZE);
                threads.forEach(t -> t.syscalls().attachScratch(scratchArea));
                // MAP_SHARED scratch never merges with the process's own mappings, so the memory
                // dump can leave it out by its start address alone.
                DumpContext ctx = new DumpContext(proc.pid(), threads, earlier, image, scratch.value(), inventory, stats,
                        o.progress(), shared);
                for (TaskPart part : TaskParts.ALL) {
                    long t = System.nanoTime();
                    part.dump(ctx);
                    long took = System.nanoTime() - t;
                    frozenTimes.merge(part.name(), took, Long::sum);
                    LOG.fine(() -> "process " + proc.pid() + ": " + part.name() + " saved in " + took / 1000 + " us");
                }
                if (o.container() != null && earlier.isEmpty()) {
                    o.container().dumpNamespaces(ctx);
                }
            } finally {
                leader.munmap(scratch.value(), SCRATCH_SIZE);
            }
        } finally {
            RuntimeException failure = null;
            for (ThreadHandle t : threads.reversed()) {
                try {
                    t.syscalls().close();
                } catch (RuntimeException e) {
                    failure = failure == null ? e : failure;
                }
            }
            if (failure != null) {
                throw failure;
            }
        }
    }

    /**
     * A {@code syscall} instruction to inject through. The vDSO always has some (its fallback
     * paths), and using it leaves the task's own code untouched; else the instruction the task
     * is stopped right after, if it stopped in a system call.
     */
    static RemoteAddr findSyscallInstruction(Tracee task) {
        for (Vma v : ProcMaps.readWithoutFlags(task.pid())) {
            if (v.path().equals("[vdso]")) {
                byte[] code = task.read(new RemoteAddr(v.start()), (int) v.length());
                for (int i = 0; i + 1 < code.length; i++) {
                    if (code[i] == 0x0f && code[i + 1] == 0x05) {
                        return new RemoteAddr(v.start() + i);
                    }
                }
            }
        }
        long rip = task.getRegs().rip();
        byte[] before = task.read(new RemoteAddr(rip - 2), 2);
        if (before[0] == 0x0f && before[1] == 0x05) {
            return new RemoteAddr(rip - 2);
        }
        throw new InjectionException("no syscall instruction found in task " + task.pid() + " to inject through");
    }

    /**
     * The image directory may be new, or hold an earlier image (replaced only once the new one is
     * complete) and log files (criu's habit: -o dump.log inside it). Anything else is someone's
     * data, and Cryo will not write next to it.
     */
    static void checkDir(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        if (!Files.isDirectory(dir)) {
            throw new dev.cryo.CryoException(dir + " exists and is not a directory");
        }
        try (Stream<Path> s = Files.list(dir)) {
            List<String> foreign = s.map(p -> p.getFileName().toString())
                    .filter(n -> !n.endsWith(".img") && !n.endsWith(".log") && !n.startsWith(".cryo-partial-")).toList();
            if (!foreign.isEmpty()) {
                throw new dev.cryo.CryoException("image directory " + dir + " holds files that are not part of an image ("
                        + String.join(", ", foreign.subList(0, Math.min(3, foreign.size())))
                        + (foreign.size() > 3 ? ", ..." : "") + "); refusing to write into it");
            }
        } catch (IOException e) {
            throw new dev.cryo.CryoException("cannot use image directory " + dir + ": " + e.getMessage(), e);
        }
    }

    static void abortQuietly(ImageWriter image, Throwable primary) {
        try {
            image.abort();
        } catch (RuntimeException e) {
            primary.addSuppressed(e);
        }
    }

    static String kernelRelease() {
        return ProcFiles.sysctl("kernel/osrelease");
    }

    static String hostname() {
        return ProcFiles.sysctl("kernel/hostname");
    }

    static String comm(int pid) {
        try {
            return ProcFiles.readString(pid, "comm").strip();
        } catch (RuntimeException e) {
            return "?";
        }
    }
}
