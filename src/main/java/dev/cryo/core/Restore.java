package dev.cryo.core;

import dev.cryo.CryoException;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.PstreeEntry;
import dev.cryo.image.proto.PstreeImage;
import dev.cryo.mem.Memory;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.Clone3;
import dev.cryo.remote.RemoteScratch;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.RestoreStub;
import dev.cryo.remote.TaskGoneException;
import dev.cryo.remote.Tracee;
import dev.cryo.remote.Trampoline;
import dev.cryo.remote.WaitStatus;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

/**
 * Orders a restore: check the whole image and the machine first; grow the root process from the
 * restore stub with its saved PID, fork the rest of the tree from it with theirs (sessions and
 * groups set as each process appears, zombies made to exit with their status), create every
 * thread; let every {@link TaskPart} rebuild its state inside each process, parents first, what
 * needs no ptrace stop (the pages) on other threads while the next processes are built
 * ({@link BackgroundWork}); then release all tasks at once with their saved registers. A failure
 * kills whatever was built.
 */
public final class Restore {
    private static final int CAP_SYS_ADMIN = 21, CAP_CHECKPOINT_RESTORE = 40;
    private static final Logger LOG = Logger.getLogger("restore");
    private static final long CLOSE_RANGE_ALL = 0xffffffffL;
    private static final int SIGCHLD = 17, RLIMIT_CORE = 4, RT_SIGTIMEDWAIT = 128, PR_SET_CHILD_SUBREAPER = 36, WNOHANG = 1;

    /**
     * @param shellJob  the tree goes onto the terminal restore runs in, in restore's session and foreground group
     * @param container the tree is restored as a container, in new namespaces; null for a plain restore
     */
    public record Options(Path dir, boolean shellJob, Container container) {
        public Options(Path dir) {
            this(dir, false, null);
        }

        public Options(Path dir, boolean shellJob) {
            this(dir, shellJob, null);
        }
    }

    /**
     * A tree restored as a container: the restore stub unshares new namespaces, so the root is
     * their first process (pid 1 of a new pid namespace, every process with the pid it had in
     * its own), and the container sets itself up inside the root before any state is restored.
     */
    public interface Container {
        /** CLONE_NEW* flags of the namespaces to create. */
        long namespaces();

        /** The namespaces exist, held by process {@code holder} (the stub), before any task is in them: user ns id maps. */
        void namespacesCreated(int holder);

        /**
         * Options for the parts' checks of the image ({@link TaskPart#verify}): where Cryo finds
         * a file the tree names by path ({@link HostPaths#KEY}), {@link Checkpoint#SYSV_SHM_IN_IMAGE}.
         */
        default Map<String, Object> options() {
            return Map.of();
        }

        /** Runs in the root once the whole tree is rebuilt, just before it is woken: what needs every process in place. */
        default void beforeWakeUp(RemoteSyscalls root) {
        }

        /** Runs in the new root, in its namespaces, before anything of the image is restored: mounts, hostname, cgroup. */
        void setUpRoot(RemoteSyscalls root);
    }

    private static final long CLONE_NEWPID = 0x20000000L;

    /** System property that overrides $CRYO_RESTORE_THREADS, for a JVM that runs Cryo's commands in-process (tests). */
    public static final String THREADS_PROPERTY = "cryo.restore.threads";

    /** A restored, running process tree. Its root is Cryo's child: {@link #waitForExit()} gives its exit code. */
    public record Restored(int pid, int processes, long nanos) {
        public int waitForExit() {
            return new WaitStatus(Sys.wait4(pid, 0)[1]).shellCode();
        }
    }

    /** A process being rebuilt: its threads (leader first) with their sessions; none for a zombie. */
    private record Building(PstreeEntry entry, List<ThreadHandle> threads) {
        RemoteSyscalls leader() {
            return threads.getFirst().syscalls();
        }
    }

    /**
     * clone3 with set_tid takes CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) over the pid namespace;
     * in the host's, only root has it. A container's new pid namespace belongs to the user
     * namespace its restore makes, where any user has it.
     */
    private static void checkMayChoosePids() {
        long effective = Long.parseUnsignedLong(ProcFiles.status(Sys.getpid()).get("CapEff"), 16);
        if ((effective & (1L << CAP_SYS_ADMIN | 1L << CAP_CHECKPOINT_RESTORE)) == 0) {
            throw new CryoException("restoring processes with their pids in the host's pid namespace needs root"
                    + " (CAP_CHECKPOINT_RESTORE); a user other than root can restore the containers it runs with cryo run --user");
        }
    }

    public static Restored run(Options o) {
        long t0 = System.nanoTime();
        // The image is opened and checked on another thread while this one, which is to be the
        // tracer of every task it makes, starts the restore stub: the two take about as long.
        java.util.concurrent.CompletableFuture<Checked> checking = new java.util.concurrent.CompletableFuture<>();
        Thread.ofPlatform().daemon().name("cryo-image-check").start(() -> {
            try {
                checking.complete(check(o, t0));
            } catch (Throwable e) {
                checking.completeExceptionally(e);
            }
        });
        Checked c = null;
        List<Tracee> created = new ArrayList<>();
        // closed before the catch below kills the tasks: no background work writes into them then
        try (RestoreStub stub = RestoreStub.spawn(); BackgroundWork background = BackgroundWork.fromEnvironment()) {
            LOG.fine(() -> "restore stub " + stub.pid() + " started in " + (System.nanoTime() - t0) / 1000 + " us");
            c = await(checking);
            if (o.container() != null) {
                stub.unshare(o.container().namespaces());
                o.container().namespacesCreated(stub.pid());
            }
            created.add(stub.cloneWithPid(c.ids().get(c.imageRoot())));
            stub.close();
            if (o.container() != null) {
                setUpContainer(created.getFirst(), o.container());
            }
            build(created, c.image(), c.tree(), o.shellJob(), c.ids(), o.container(), background);
        } catch (RuntimeException e) {
            if (c == null) {
                throw e; // the image was refused (or the stub failed): nothing of the tree was made
            }
            kill(created, e);
            LOG.severe("Error: restore of " + c.imageRoot() + " failed, nothing was left running: " + e.getMessage());
            throw e;
        }
        int root = created.getFirst().pid();
        long nanos = System.nanoTime() - t0;
        Checked done = c;
        LOG.info(() -> "process tree of " + done.imageRoot() + " (" + done.tree().getProcessesCount() + " processes) restored and running"
                + (root != done.imageRoot() ? " as " + root : "") + " (" + nanos / 1_000_000 + " ms)");
        return new Restored(root, done.tree().getProcessesCount(), nanos);
    }

    /** What the image check found: the image, its tree, the id each process gets, the root's image pid. */
    private record Checked(ImageReader image, PstreeImage tree, Map<Integer, Integer> ids, int imageRoot) {
    }

    /** Opens the image and checks everything that can be checked before a task exists. */
    private static Checked check(Options o, long t0) {
        ImageReader image = ImageReader.openForRestore(o.dir());
        if (image.inventory().getPreDump()) {
            throw new CryoException(o.dir() + " is a pre-dump: it holds memory only, as the parent of a later dump;"
                    + " restore the image of `cryo checkpoint PID -D DIR --parent " + o.dir() + "` instead");
        }
        PstreeImage tree = image.read(ImageKind.PSTREE, 0, PstreeImage.parser());
        boolean newPidNs = o.container() != null && (o.container().namespaces() & CLONE_NEWPID) != 0;
        Map<Integer, Integer> ids = idsInNamespace(tree, newPidNs);
        if (!newPidNs) {
            checkMayChoosePids();
            checkIdsFree(tree); // a new pid namespace has all of them free
        }
        Map<String, Object> options = new HashMap<>();
        if (o.shellJob()) {
            options.put(Checkpoint.SHELL_JOB, Boolean.TRUE);
        }
        if (o.container() != null) {
            options.putAll(o.container().options());
        }
        for (PstreeEntry p : tree.getProcessesList()) {
            if (!p.getZombie()) {
                for (TaskPart part : TaskParts.ALL) {
                    part.verify(image, p.getPid(), options);
                }
            }
        }
        LOG.fine(() -> "image opened and checked in " + (System.nanoTime() - t0) / 1000 + " us (page files: in the background)");
        return new Checked(image, tree, ids, tree.getProcesses(0).getPid());
    }

    /** The check's result, or what it threw, as it threw it. */
    private static Checked await(java.util.concurrent.CompletableFuture<Checked> checking) {
        try {
            return checking.join();
        } catch (java.util.concurrent.CompletionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw e;
        }
    }

    /**
     * Image id to the id each process and thread gets: its own pid namespace's view when the tree
     * is restored into a new one (and the image has it), else the very same.
     */
    private static Map<Integer, Integer> idsInNamespace(PstreeImage tree, boolean newPidNs) {
        Map<Integer, Integer> ids = new HashMap<>();
        for (PstreeEntry p : tree.getProcessesList()) {
            boolean ns = newPidNs && p.getInOwnPidNs();
            ids.put(p.getPid(), ns ? p.getNsPid() : p.getPid());
            for (int i = 0; i < p.getThreadsCount(); i++) {
                ids.put(p.getThreads(i), ns ? p.getNsThreads(i) : p.getThreads(i));
            }
        }
        if (newPidNs && ids.get(tree.getProcesses(0).getPid()) != 1) {
            throw new CryoException("the image's root process was not pid 1 of its own pid namespace (it was "
                    + ids.get(tree.getProcesses(0).getPid()) + "); only a container's whole tree can be restored as one");
        }
        return ids;
    }

    /**
     * The container's own set-up in its root, through a session with a page of scratch memory of
     * its own. The root first opens the image directory (O_PATH): once it has a root of its own
     * the image is out of its sight, but the processes still read their pages from it, through
     * this fd (inherited by fork, closed once every process's memory is back). Returns the fd.
     */
    private static void setUpContainer(Tracee root, Container container) {
        try (RemoteSyscalls sys = new RemoteSyscalls(root, RestoreStub.SYSCALL_INSN)) {
            RemoteScratch scratch = new RemoteScratch(root, sys.mmap(0, SETUP_SCRATCH, RemoteSyscalls.PROT_READ
                    | RemoteSyscalls.PROT_WRITE, RemoteSyscalls.MAP_PRIVATE | RemoteSyscalls.MAP_ANONYMOUS, -1, 0), SETUP_SCRATCH);
            sys.attachScratch(scratch);
            container.setUpRoot(sys);
            sys.munmap(scratch.base().value(), SETUP_SCRATCH);
        }
    }

    /** Room for a container's set-up: paths, mount options, a SysV message being put back. */
    private static final int SETUP_SCRATCH = 64 * 1024;


    private static void checkIdsFree(PstreeImage tree) {
        for (PstreeEntry p : tree.getProcessesList()) {
            for (int id : p.getZombie() ? List.of(p.getPid()) : p.getThreadsList()) {
                if (ProcFiles.exists(id) && !awaitDying(id)) {
                    throw new CryoException((id == p.getPid() ? "PID " : "thread id ") + id + " is in use by "
                            + Checkpoint.comm(id) + (ProcFiles.state(id) == 'Z' ? " (a zombie its parent has not reaped)" : "")
                            + "; the restored process needs it");
                }
            }
        }
    }

    /**
     * A task killed (SIGKILL pending) or exiting (state X, or a zombie) may hold its id a moment
     * longer: a checkpoint returns while its killed root still frees its memory. Waits up to
     * {@link #DYING} for it to go; true once it is gone.
     */
    private static boolean awaitDying(int id) {
        long deadline = System.nanoTime() + DYING.toNanos();
        while (ProcFiles.exists(id)) {
            if (!ProcFiles.dying(id) || System.nanoTime() > deadline) {
                return false;
            }
            java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
        }
        return true;
    }

    private static final java.time.Duration DYING = java.time.Duration.ofSeconds(2);


    private static void build(List<Tracee> created, ImageReader image, PstreeImage tree, boolean shellJob,
                              Map<Integer, Integer> ids, Container container, BackgroundWork background) {
        Map<Integer, Building> procs = new LinkedHashMap<>();
        PstreeEntry rootEntry = tree.getProcesses(0);
        Tracee rootTask = created.getFirst();
        RemoteSyscalls rootSys = new RemoteSyscalls(rootTask, RestoreStub.SYSCALL_INSN);
        // whatever the stub inherited from Cryo is not the restored processes'
        rootSys.call("close_range", Nr.CLOSE_RANGE, 0, CLOSE_RANGE_ALL, 0);
        List<long[]> saved = new ArrayList<>();
        for (PstreeEntry p : tree.getProcessesList()) {
            if (!p.getZombie()) {
                saved.addAll(Memory.savedRanges(image, p.getPid()));
            }
        }
        // one place free in every process's saved address space: children inherit it by fork
        Trampoline trampoline = Trampoline.install(rootSys, saved);
        long[] cryoArea = {trampoline.base().value(), trampoline.base().value() + Trampoline.SIZE};
        procs.put(rootEntry.getPid(), new Building(rootEntry, new ArrayList<>(List.of(
                new ThreadHandle(rootEntry.getPid(), rootTask, rootSys)))));
        if (!shellJob) {
            setIds(rootSys, rootEntry, null, ids); // a shell job stays in restore's session and foreground group
        }

        // Parents first: a process gets what a fork passes on (memory) before its children are
        // forked from it, so pages they still share copy-on-write are shared again. A process
        // without children loads its pages in the background (BackgroundWork) while the next
        // ones are built; its other parts wait for them, in the second loop.
        Map<String, Object> shared = new HashMap<>();
        if (shellJob) {
            shared.put(Checkpoint.SHELL_JOB, Boolean.TRUE);
        }
        if (container != null) {
            shared.put(Checkpoint.CONTAINER, Boolean.TRUE);
        }
        List<RestoreContext> contexts = new ArrayList<>();
        for (PstreeEntry entry : tree.getProcessesList()) {
            Building b = procs.get(entry.getPid());
            if (entry.getZombie()) {
                continue;
            }
            createThreads(b, trampoline, created, ids);
            RestoreContext ctx = new RestoreContext(entry.getPid(), b.threads(), image, shared, cryoArea,
                    id -> ids.getOrDefault(id, id), // a process outside the tree keeps its id
                    id -> procs.get(id).threads().getFirst().task().pid(), background);
            restoreParts(ctx, true);
            background.throwIfFailed(); // an earlier process's pages: stop now, not once the rest is built
            List<PstreeEntry> children = tree.getProcessesList().stream()
                    .filter(c -> c.getPpid() == entry.getPid() && c != rootEntry).toList();
            if (!children.isEmpty()) {
                ctx.awaitBackground(); // a child gets by fork what its parent has: all of it, loaded
            }
            for (PstreeEntry child : children) {
                procs.put(child.getPid(), fork(b, child, trampoline, created, ids));
            }
            contexts.add(ctx);
        }
        for (RestoreContext ctx : contexts) {
            ctx.awaitBackground();
            restoreParts(ctx, false);
        }
        for (RestoreContext ctx : contexts) {
            for (TaskPart part : TaskParts.ALL) {
                part.afterTreeRestore(ctx);
            }
        }
        if (container != null) {
            container.beforeWakeUp(contexts.getFirst().syscalls());
        }
        for (RestoreContext ctx : contexts) {
            prepareWakeUp(ctx, trampoline);
        }
        image.awaitChecks(); // the page files, checked while they were loaded: nothing has run yet
        // all at once: nothing runs until every task of the tree is ready
        for (RestoreContext ctx : contexts.reversed()) {
            for (ThreadHandle t : ctx.threads().reversed()) {
                t.task().detach();
            }
        }
    }

    /** The parts restored before forking children ({@code beforeFork}), or all the others; a failure names the part and process. */
    private static void restoreParts(RestoreContext ctx, boolean beforeFork) {
        for (TaskPart part : TaskParts.ALL) {
            if (part.beforeFork() != beforeFork) {
                continue;
            }
            long t = System.nanoTime();
            try {
                ctx.awaitBackground(); // an earlier part's work on other threads comes first
                part.restore(ctx);
            } catch (BackgroundWork.Failure e) {
                throw e; // names its part and process already
            } catch (RuntimeException e) {
                throw new CryoException("restoring " + part.name() + " of process " + ctx.pid() + ": " + e.getMessage(), e);
            }
            long us = (System.nanoTime() - t) / 1000;
            LOG.fine(() -> "process " + ctx.pid() + ": " + part.name() + (ctx.backgroundPending() ? " under way, the rest on other threads, after "
                    : " restored in ") + us + " us");
        }
    }

    /** Forks {@code entry} from its (restored) parent with its PID; a zombie is made to exit with its status. */
    private static Building fork(Building parent, PstreeEntry entry, Trampoline trampoline, List<Tracee> created,
                                 Map<Integer, Integer> ids) {
        if (parent == null || parent.entry().getZombie()) {
            throw new CryoException("process " + entry.getPid() + " has no restorable parent " + entry.getPpid() + " in the image");
        }
        Tracee child = Clone3.withId(parent.leader(), 0, SIGCHLD, ids.get(entry.getPid()));
        created.add(child);
        RemoteSyscalls sys = new RemoteSyscalls(child, trampoline.base());
        // the child has its own copy of the trampoline, scratch area included, at the same address
        sys.attachScratch(new RemoteScratch(child, parent.leader().scratch().base(), parent.leader().scratch().size()));
        // and a copy of its parent's fd table, which holds only what restore keeps hidden there
        sys.call("close_range", Nr.CLOSE_RANGE, 0, CLOSE_RANGE_ALL, 0);
        setIds(sys, entry, parent.entry(), ids);
        if (entry.getZombie()) {
            becomeZombie(parent, entry, sys, child, ids.get(entry.getPid()));
            return new Building(entry, List.of());
        }
        return new Building(entry, new ArrayList<>(List.of(new ThreadHandle(entry.getPid(), child, sys))));
    }

    /** Session and group as saved: a new session, a group of its own, or the group of another process of the tree. */
    private static void setIds(RemoteSyscalls sys, PstreeEntry p, PstreeEntry parent, Map<Integer, Integer> ids) {
        if (p.getSid() == p.getPid()) {
            sys.call("setsid", Nr.SETSID);
        }
        if (p.getPgid() == p.getPid() && p.getSid() != p.getPid()) {
            sys.call("setpgid", Nr.SETPGID, 0, 0);
        } else if (parent != null && p.getPgid() != p.getPid() && p.getPgid() != parent.getPgid()) {
            int pgid = ids.getOrDefault(p.getPgid(), p.getPgid());
            sys.call("setpgid(" + pgid + ")", Nr.SETPGID, 0, pgid);
        }
    }

    /**
     * A zombie is a child that exited and was not waited for: it exits here with its saved status
     * (by signal if it was killed), and its parent's SIGCHLD for it is taken back, as it was
     * delivered before the checkpoint. {@code ownId} is its pid as its own namespace sees it,
     * for the kill it sends itself.
     */
    private static void becomeZombie(Building parent, PstreeEntry entry, RemoteSyscalls sys, Tracee child, int ownId) {
        WaitStatus status = new WaitStatus(entry.getExitStatus());
        try {
            if (status.signaled()) {
                int sig = status.termSignal();
                // default action, unblocked, and no core file: then the signal ends it
                sys.call("prlimit64(RLIMIT_CORE)", Nr.PRLIMIT64, 0, RLIMIT_CORE, sys.scratch().put(new byte[16]).value(), 0);
                sys.call("rt_sigaction(" + sig + ", SIG_DFL)", Nr.RT_SIGACTION, sig, sys.scratch().put(new byte[32]).value(), 0, 8);
                sys.scratch().reset();
                sys.call("kill", Nr.KILL, ownId, sig);
                sys.finish(sys.savedRegs(), 0);
            } else {
                sys.raw(Nr.EXIT_GROUP, status.exitCode());
            }
            child.runUntilGone();
        } catch (TaskGoneException expected) {
            // gone: the tracer's wait let it go to its parent, which has not waited for it
        }
        takeBackSigchld(parent.leader());
    }

    /** rt_sigtimedwait({SIGCHLD}, NULL, {0, 0}) in the parent: consumes the SIGCHLD a made-up zombie sent. */
    private static void takeBackSigchld(RemoteSyscalls parent) {
        java.nio.ByteBuffer mask = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN)
                .putLong(1L << (SIGCHLD - 1));
        long set = parent.scratch().put(mask.array()).value();
        long timeout = parent.scratch().put(new byte[16]).value();
        parent.raw(RT_SIGTIMEDWAIT, set, 0, timeout, 8);
        parent.scratch().reset();
    }

    private static void createThreads(Building b, Trampoline trampoline, List<Tracee> created, Map<Integer, Integer> ids) {
        RemoteSyscalls sys = b.leader();
        for (int tid : b.entry().getThreadsList().subList(1, b.entry().getThreadsCount())) {
            Tracee thread = Clone3.withId(sys, Clone3.THREAD_FLAGS, ids.get(tid));
            created.add(thread);
            RemoteSyscalls ts = new RemoteSyscalls(thread, trampoline.base());
            ts.attachScratch(sys.scratch());
            b.threads().add(new ThreadHandle(tid, thread, ts));
        }
    }

    /**
     * Hands every thread its own registers, xsave area and signal mask. The leader's last
     * injected call removes the trampoline it runs from; at its syscall-exit stop the leader gets
     * its registers too. Nothing runs until the tasks are detached.
     */
    private static void prepareWakeUp(RestoreContext ctx, Trampoline trampoline) {
        for (ThreadHandle t : ctx.threads().subList(1, ctx.threads().size())) {
            RestoreContext.WakeUp w = ctx.wakeUp(t.tid());
            t.syscalls().finish(w.regs(), w.sigmask());
            t.task().setXstate(w.xstate());
        }
        RemoteSyscalls sys = ctx.syscalls();
        long r = sys.raw(Nr.MUNMAP, trampoline.base().value(), Trampoline.SIZE);
        if (r != 0) {
            throw new CryoException("removing the restore trampoline from process " + ctx.pid() + " failed: " + r);
        }
        RestoreContext.WakeUp w = ctx.wakeUp(ctx.pid());
        sys.finish(w.regs(), w.sigmask());
        ctx.task().setXstate(w.xstate());
    }

    /**
     * Kills every task made so far, children before parents, and reaps them; the first failure
     * stays the reported one. A killed child is its parent's zombie, and once that parent dies too
     * it would go to PID 1, which on some machines never reaps it: its pid would stay taken. So
     * Cryo is a child subreaper meanwhile: such zombies come to Cryo, which reaps them.
     */
    private static void kill(List<Tracee> created, Throwable primary) {
        subreaper(1, primary);
        try {
            for (Tracee t : created.reversed()) {
                try {
                    Sys.raw(Nr.KILL, t.pid(), 9);
                    t.kill();
                } catch (RuntimeException e) {
                    primary.addSuppressed(e);
                }
            }
            for (Tracee t : created) {
                Sys.raw(Nr.WAIT4, t.pid(), 0, WNOHANG | Tracee.WALL, 0); // ECHILD for what its tracer's wait reaped already
            }
        } finally {
            subreaper(0, primary);
        }
    }

    /** Sets whether Cryo is a child subreaper; a failure rides along with {@code primary}, the killing goes on. */
    private static void subreaper(int on, Throwable primary) {
        try {
            Sys.prctl(PR_SET_CHILD_SUBREAPER, on, 0, 0, 0);
        } catch (RuntimeException e) {
            primary.addSuppressed(e);
        }
    }
}
