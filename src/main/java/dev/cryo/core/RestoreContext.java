package dev.cryo.core;

import dev.cryo.image.ImageReader;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.Tracee;
import dev.cryo.sys.Regs;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What a {@link TaskPart} gets while restoring: the process being rebuilt and its threads (all
 * created already, held stopped, each with a syscall session), the image; and the state each
 * thread must wake up with, which parts fill in and the orchestrator applies as the very last
 * step (no injected call may run after it).
 */
public final class RestoreContext {
    private final int pid;
    private final List<ThreadHandle> threads;
    private final ImageReader image;
    private final Map<Integer, WakeUp> wakeUps = new HashMap<>();
    private final Map<String, Object> shared;
    private final long[] cryoArea;
    private final java.util.function.IntUnaryOperator inNamespace;
    private final java.util.function.IntUnaryOperator hostPid;
    private final BackgroundWork background;
    /** This process's work on other threads, and what runs here once it is done; null when none is pending. */
    private BackgroundWork.Batch pending;
    private String pendingPart;
    private Runnable afterPending;

    /** Registers, xsave area and signal mask a thread resumes with. */
    public static final class WakeUp {
        Regs regs;
        byte[] xstate;
        long sigmask;

        public Regs regs() { return regs; }
        public byte[] xstate() { return xstate; }
        public long sigmask() { return sigmask; }
    }

    public RestoreContext(int pid, List<ThreadHandle> threads, ImageReader image, Map<String, Object> shared,
                          long[] cryoArea, java.util.function.IntUnaryOperator inNamespace,
                          java.util.function.IntUnaryOperator hostPid, BackgroundWork background) {
        this.hostPid = hostPid;
        this.background = background;
        this.pid = pid;
        this.inNamespace = inNamespace;
        this.cryoArea = cryoArea;
        this.threads = threads;
        this.image = image;
        this.shared = shared;
    }

    /**
     * Objects restored once for the whole tree and found again by the processes restored after
     * (shared memory, say), keyed by each part as it likes. Processes are restored parents first.
     */
    public Map<String, Object> shared() {
        return shared;
    }

    /** The process's id as the image names it: its key in the image, not necessarily its pid now. */
    public int pid() { return pid; }

    /**
     * The pid (or tid) the process with image id {@code imageId} has inside the restored tree's
     * own pid namespace: what injected calls that name a process (pidfd_open, rt_sigqueueinfo,
     * /proc/PID in the task's view) must use. The same id unless the tree is a container's.
     * Cryo's own view of the task is {@link #task()}{@code .pid()}.
     */
    public int inNamespace(int imageId) { return inNamespace.applyAsInt(imageId); }

    /** {start, end} of Cryo's own area in the task (the trampoline), which must stay mapped. */
    public long[] cryoArea() { return cryoArea.clone(); }
    public List<ThreadHandle> threads() { return threads; }


    /** Cryo's pid of the restored process with image id {@code imageId} (for host-side calls such as pidfd_getfd). */
    public int hostPid(int imageId) {
        return hostPid.applyAsInt(imageId);
    }
    public ImageReader image() { return image; }

    /** The thread group leader. */
    public Tracee task() {
        return threads.getFirst().task();
    }

    /** A session in the leader, for calls that act on the whole process. */
    public RemoteSyscalls syscalls() {
        return threads.getFirst().syscalls();
    }

    public ThreadHandle thread(int tid) {
        for (ThreadHandle t : threads) {
            if (t.tid() == tid) {
                return t;
            }
        }
        throw new IllegalArgumentException("process " + pid + " has no thread " + tid + " being restored");
    }

    public void wakeUpCpu(int tid, Regs regs, byte[] xstate) {
        WakeUp w = wakeUp(tid);
        w.regs = regs;
        w.xstate = xstate;
    }

    public void wakeUpSigmask(int tid, long mask) {
        wakeUp(tid).sigmask = mask;
    }

    public WakeUp wakeUp(int tid) {
        return wakeUps.computeIfAbsent(tid, t -> new WakeUp());
    }

    /**
     * Hands {@code pieces}, work of part {@code part} that needs no ptrace stop (writing the
     * task's memory from Cryo), to other threads; {@code then}, which may (injected calls), runs
     * on this thread once they are done: before this process's next part, before its children
     * are forked, at the latest before the tree wakes up. Meanwhile the restore goes on with
     * other processes. With CRYO_RESTORE_THREADS=1 both run at once, before this returns.
     * The pieces must not drive the task: ptrace requests come from its tracer thread only
     * ({@link Tracee} refuses any other).
     */
    public void inBackground(String part, List<Runnable> pieces, Runnable then) {
        awaitBackground();
        pending = background.start(part + " of process " + pid, pieces);
        pendingPart = part;
        afterPending = then;
        if (background.oneProcessAtATime()) {
            awaitBackground();
        }
    }

    boolean backgroundPending() {
        return pending != null;
    }

    /** Waits for this process's work on other threads, then runs what follows it here; nothing when none is pending. */
    void awaitBackground() {
        if (pending == null) {
            return;
        }
        BackgroundWork.Batch batch = pending;
        Runnable then = afterPending;
        pending = null;
        afterPending = null;
        batch.await();
        try {
            then.run();
        } catch (RuntimeException e) {
            throw new BackgroundWork.Failure("restoring " + pendingPart + " of process " + pid + ": " + e.getMessage(), e);
        }
    }
}
