package dev.cryo.remote;

import dev.cryo.sys.Ptrace;
import dev.cryo.sys.Regs;

import java.util.function.IntConsumer;
import java.util.logging.Logger;

/**
 * A session of system calls run inside a stopped tracee. Opening it saves the task's registers
 * and signal mask and blocks every signal (so nothing is delivered mid-session); closing puts
 * both back. Each call points rip at a {@code syscall} instruction in the task, loads the
 * arguments, and steps through the syscall-enter and -exit stops.
 */
public final class RemoteSyscalls implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger("remote");
    /** Every signal but SIGKILL and SIGSTOP, which cannot be blocked anyway. */
    private static final long ALL_BLOCKED = ~((1L << 8) | (1L << 18));

    private final Tracee task;
    private final Regs saved;
    private final long savedMask;
    private long syscallInsn;
    private boolean injected;
    private boolean closed;
    private RemoteScratch scratch;
    private IntConsumer newChildListener = pid -> { };

    public RemoteSyscalls(Tracee task, RemoteAddr syscallInsn) {
        this.task = task;
        this.syscallInsn = syscallInsn.value();
        this.saved = task.getRegs();
        this.savedMask = task.getSigmask();
        task.setSigmask(ALL_BLOCKED);
    }

    public Tracee task() {
        return task;
    }

    /** The signal mask the task had when the session opened. */
    public long savedSigmask() {
        return savedMask;
    }

    public Regs savedRegs() {
        return saved.copy();
    }

    /** Moves the injection point, e.g. once the restore trampoline is mapped. */
    public void useSyscallAt(RemoteAddr insn) {
        this.syscallInsn = insn.value();
    }

    /** Called with the pid of each child the task creates during an injected fork/clone. */
    public void onNewChild(IntConsumer listener) {
        this.newChildListener = listener;
    }

    /** Runs the call and returns rax as the kernel left it (a negative errno on failure). */
    private long calls, callNanos;

    public long raw(int nr, long... args) {
        long t0 = System.nanoTime();
        try {
            return rawCall(nr, args);
        } finally {
            calls++;
            callNanos += System.nanoTime() - t0;
        }
    }

    private long rawCall(int nr, long... args) {
        Regs regs = saved.copy();
        regs.loadSyscall(nr, args);
        regs.rip(syscallInsn);
        task.setRegs(regs);
        injected = true;
        step("enter", nr);
        step("exit", nr);
        return task.getRegs().rax();
    }

    /** Runs the call; a negative result becomes a {@link RemoteSysException} named {@code name}. */
    public long call(String name, int nr, long... args) {
        long r = raw(nr, args);
        if (r < 0 && r > -4096) {
            throw new RemoteSysException(task.pid(), name, (int) -r, args);
        }
        return r;
    }

    private void step(String phase, int nr) {
        while (true) {
            Ptrace.syscall(task.pid(), 0);
            WaitStatus st = task.waitStatus();
            if (st.syscallStop()) {
                return;
            }
            if (st.stopped() && (st.event() == Ptrace.EVENT_FORK || st.event() == Ptrace.EVENT_CLONE)) {
                newChildListener.accept((int) Ptrace.eventMessage(task.pid()));
                continue; // the syscall-exit stop follows
            }
            throw new InjectionException("task " + task.pid() + ": " + st + " instead of the syscall-" + phase
                    + " stop of injected syscall " + nr);
        }
    }

    // ---- named helpers for the calls every user needs ----

    public static final int PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
    public static final int MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20,
            MAP_GROWSDOWN = 0x100, MAP_NORESERVE = 0x4000, MAP_FIXED_NOREPLACE = 0x100000;
    private static final long AT_FDCWD = -100;

    /** The scratch area for arguments; attached by whoever owns the session. */
    public RemoteScratch scratch() {
        if (scratch == null) {
            throw new IllegalStateException("no scratch memory attached to the session of task " + task.pid());
        }
        return scratch;
    }

    public void attachScratch(RemoteScratch scratch) {
        this.scratch = scratch;
    }

    public RemoteAddr mmap(long addr, long length, int prot, int flags, int fd, long offset) {
        return new RemoteAddr(call("mmap", dev.cryo.sys.Nr.MMAP, addr, length, prot, flags, fd, offset));
    }

    public void munmap(long addr, long length) {
        call("munmap", dev.cryo.sys.Nr.MUNMAP, addr, length);
    }

    /** openat(AT_FDCWD, path, flags, mode) inside the task; returns the task's new fd. */
    public int open(String path, int flags, int mode) {
        RemoteAddr p = scratch().putString(path);
        try {
            return (int) call("openat[" + path + "]", dev.cryo.sys.Nr.OPENAT, AT_FDCWD, p.value(), flags, mode);
        } finally {
            scratch().reset();
        }
    }

    public void closeFd(int fd) {
        call("close", dev.cryo.sys.Nr.CLOSE, fd);
    }

    /**
     * Ends the session by handing the task its final registers instead of the saved ones (the
     * last step of a restore: the task leaves the injected call straight into its own code).
     */
    public void finish(Regs finalRegs, long finalMask) {
        closed = true;
        task.setRegs(finalRegs);
        task.setSigmask(finalMask);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        // After an injected call the task sits at a syscall-exit stop, where the kernel no longer
        // rewinds an interrupted call: do it here, or the task would see -ERESTART* as a result.
        task.setRegs(injected ? SyscallRestart.fixup(saved) : saved);
        task.setSigmask(savedMask);
        LOG.fine(() -> "task " + task.pid() + ": syscall session closed after " + calls + " injected calls ("
                + (calls == 0 ? 0 : callNanos / calls / 1000) + " us each)");
    }
}
