package dev.cryo.remote;

import dev.cryo.sys.Errno;
import dev.cryo.sys.Ptrace;
import dev.cryo.sys.Regs;
import dev.cryo.sys.Sys;
import dev.cryo.sys.SysException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A task held in a ptrace stop. Only the thread that attached it may drive it (ptrace's rule), so
 * every call checks that it comes from that thread.
 */
public final class Tracee {
    /** __WALL: wait for children and threads alike (clone children, tracees that are not ours). */
    public static final int WALL = 0x40000000;
    private static final int SIGSTOP = 19, SIGTSTP = 20, SIGTTIN = 21, SIGTTOU = 22;

    private final int pid;
    private final Thread owner = Thread.currentThread();
    private boolean attached = true;

    private Tracee(int pid) {
        this.pid = pid;
    }

    /**
     * PTRACE_SEIZE then PTRACE_INTERRUPT, and wait for the interrupt stop. A signal that arrives
     * first is delivered as it would have been, then the wait goes on.
     */
    public static Tracee seize(int pid, long options) {
        Ptrace.seize(pid, options);
        Tracee t = new Tracee(pid);
        try {
            Ptrace.interrupt(pid);
            t.awaitInterruptStop();
            return t;
        } catch (RuntimeException e) {
            t.detachQuietly(e);
            throw e;
        }
    }

    /**
     * Seizes every thread of process {@code pid}, the leader first, listing /proc/pid/task again
     * until no new thread shows up: a running thread can create another while the others are
     * being stopped, but once all are stopped none can.
     */
    public static List<Tracee> seizeThreadGroup(int pid, long options) {
        Map<Integer, Tracee> seized = new LinkedHashMap<>();
        try {
            seized.put(pid, seize(pid, options));
            boolean added = true;
            while (added) {
                added = false;
                for (int tid : threadIds(pid)) {
                    if (seized.containsKey(tid)) {
                        continue;
                    }
                    try {
                        seized.put(tid, seize(tid, options));
                        added = true;
                    } catch (SysException e) {
                        if (e.errno() != Errno.ESRCH) {
                            throw e;
                        } // the thread exited between listing and seizing
                    }
                }
            }
            return new ArrayList<>(seized.values());
        } catch (RuntimeException e) {
            seized.values().forEach(t -> t.detachQuietly(e));
            throw e;
        }
    }

    /** The ids of the threads of {@code pid}, as /proc/pid/task lists them. */
    public static List<Integer> threadIds(int pid) {
        try (java.util.stream.Stream<Path> s = java.nio.file.Files.list(Path.of("/proc", Integer.toString(pid), "task"))) {
            return s.map(p -> Integer.parseInt(p.getFileName().toString())).sorted().toList();
        } catch (java.io.IOException e) {
            throw new TaskGoneException(pid, "cannot be listed: " + e.getMessage());
        }
    }

    /**
     * SIGKILL to the whole process, then wait until each of its seized threads is reported gone,
     * in whatever order they go: no single thread can be waited for first. The leader is reported
     * last; and the last thread of a pid namespace's init to exit waits in the kernel
     * (zap_pid_ns_processes) until the other dead threads are reaped, which only their tracer does.
     */
    public static void killGroup(List<Tracee> threads) {
        if (threads.isEmpty()) {
            return;
        }
        Sys.raw(dev.cryo.sys.Nr.KILL, threads.getFirst().pid(), 9);
        List<Tracee> left = new java.util.ArrayList<>(threads);
        while (!left.isEmpty()) {
            if (!left.removeIf(Tracee::reapIfKilled)) {
                java.util.concurrent.locks.LockSupport.parkNanos(200_000);
            }
        }
    }

    /**
     * Kills the thread group and returns at once, without waiting for it to be gone: SIGKILL
     * wakes it from its ptrace stop straight into exit, so it never runs its own code again, but
     * the kernel frees its memory only then (tens of milliseconds for a GiB). A daemon thread of
     * Cryo's reaps its threads meanwhile (any thread of the tracer's process may wait for a
     * tracee), which hands the process to its own parent; when Cryo exits first, the kernel does.
     */
    public static void killGroupInBackground(List<Tracee> threads) {
        if (threads.isEmpty()) {
            return;
        }
        for (Tracee t : threads) {
            t.checkOwner();
            t.closeMem();
            t.attached = false;
        }
        List<Integer> tids = threads.stream().map(Tracee::pid).toList();
        Sys.raw(dev.cryo.sys.Nr.KILL, tids.getFirst(), 9);
        Thread.ofPlatform().daemon().name("cryo-reap-" + tids.getFirst()).start(() -> {
            // in any order: a leader is reapable only after its other threads (see killGroup)
            List<Integer> left = new java.util.ArrayList<>(tids);
            while (!left.isEmpty()) {
                // reaped (its pid back), or ECHILD: gone already
                if (!left.removeIf(tid -> Sys.raw(dev.cryo.sys.Nr.WAIT4, tid, 0, WALL | 1 /* WNOHANG */, 0) != 0)) {
                    java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
                }
            }
        });
    }

    /** One look (WNOHANG) at this killed task: a stop is let go on; true once it is gone. */
    private boolean reapIfKilled() {
        checkOwner();
        if (!attached) {
            return true;
        }
        try {
            int[] r = Sys.wait4(pid, WALL | 1 /* WNOHANG */);
            if (r[0] == 0) {
                return false;
            }
            WaitStatus st = new WaitStatus(r[1]);
            if (st.exited() || st.signaled()) {
                attached = false;
                closeMem();
                return true;
            }
            Sys.raw(dev.cryo.sys.Nr.PTRACE, Ptrace.CONT, pid, 0, 0);
            return false;
        } catch (SysException e) {
            attached = false; // ECHILD: already reaped or no longer ours
            return true;
        }
    }

    /** A task auto-attached through PTRACE_O_TRACEFORK/CLONE; waits for its first stop. */
    public static Tracee adoptNewChild(int pid) {
        Tracee t = new Tracee(pid);
        t.awaitInterruptStop();
        return t;
    }

    private void awaitInterruptStop() {
        while (true) {
            WaitStatus st = waitStatus();
            if (st.stopped() && st.event() == Ptrace.EVENT_STOP) {
                int sig = st.stopSignal();
                if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
                    throw new InjectionException("task " + pid + " is stopped by job control (signal " + sig
                            + "); continue it (kill -CONT " + pid + ") before checkpointing");
                }
                return;
            }
            if (st.stopped() && st.event() == 0) {
                Ptrace.cont(pid, st.stopSignal()); // a signal-delivery stop: let it be delivered
                continue;
            }
            throw new InjectionException("task " + pid + ": unexpected " + st + " while waiting for it to stop");
        }
    }

    public int pid() {
        return pid;
    }

    /** wait4 for this task; a task that exited or was killed becomes a {@link TaskGoneException}. */
    public WaitStatus waitStatus() {
        checkOwner();
        WaitStatus st = new WaitStatus(Sys.wait4(pid, WALL)[1]);
        if (st.exited() || st.signaled()) {
            attached = false;
            closeMem();
            throw new TaskGoneException(pid, st.toString());
        }
        return st;
    }

    public Regs getRegs() {
        checkOwner();
        return Ptrace.getRegs(pid);
    }

    public void setRegs(Regs regs) {
        checkOwner();
        Ptrace.setRegs(pid, regs);
    }

    public byte[] getXstate() {
        checkOwner();
        return Ptrace.getXstate(pid);
    }

    public void setXstate(byte[] xstate) {
        checkOwner();
        Ptrace.setXstate(pid, xstate);
    }

    public long getSigmask() {
        checkOwner();
        return Ptrace.getSigmask(pid);
    }

    public void setSigmask(long mask) {
        checkOwner();
        Ptrace.setSigmask(pid, mask);
    }

    /** Reads tracee memory with process_vm_readv; falls back to /proc/pid/mem for unreadable mappings. */
    public void read(RemoteAddr addr, MemorySegment dst) {
        long n = dst.byteSize();
        long r = 0;
        try {
            r = Sys.processVmRead(pid, dst, addr.value(), n);
        } catch (SysException e) {
            if (e.errno() != Errno.EFAULT) {
                throw e;
            }
        }
        if (r < n) {
            procMem(addr.plus(r), dst.asSlice(r), false);
        }
    }

    /**
     * Reads through /proc/pid/mem only. Unlike process_vm_readv, which pins the pages it reads,
     * this does not make the kernel unshare an anonymous page shared copy-on-write with another
     * process.
     */
    public void readUnpinned(RemoteAddr addr, MemorySegment dst) {
        procMem(addr, dst, false);
    }

    public byte[] read(RemoteAddr addr, int length) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(length);
            read(addr, buf);
            return buf.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        }
    }

    /**
     * Writes tracee memory through /proc/pid/mem, which (unlike process_vm_writev) also writes
     * read-only and code pages, as a debugger does.
     */
    public void write(RemoteAddr addr, MemorySegment src) {
        procMem(addr, src, true);
    }

    public void write(RemoteAddr addr, byte[] data) {
        write(addr, MemorySegment.ofArray(data));
    }

    /** /proc/pid/mem, opened once for reading and writing and kept while the task is held. */
    private FileChannel mem;

    /** Synchronized: a page copy thread may read through it while the tracer thread writes. */
    private synchronized FileChannel mem() throws java.io.IOException {
        if (mem == null) {
            mem = FileChannel.open(Path.of("/proc", Integer.toString(pid), "mem"), StandardOpenOption.READ, StandardOpenOption.WRITE);
        }
        return mem;
    }

    private synchronized void closeMem() {
        if (mem != null) {
            try {
                mem.close();
            } catch (java.io.IOException ignored) {
                // a /proc file: nothing buffered to lose
            }
            mem = null;
        }
    }

    private void procMem(RemoteAddr addr, MemorySegment seg, boolean write) {
        if (!write && !seg.isNative()) {
            throw new IllegalArgumentException("reads need a native segment");
        }
        try {
            FileChannel ch = mem();
            ByteBuffer buf = seg.isNative() ? seg.asByteBuffer() : ByteBuffer.wrap(seg.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
            long pos = addr.value();
            while (buf.hasRemaining()) {
                int n = write ? ch.write(buf, pos) : ch.read(buf, pos);
                if (n <= 0) {
                    throw new InjectionException((write ? "writing " : "reading ") + seg.byteSize() + " bytes at " + addr
                            + " of task " + pid + ": short transfer");
                }
                pos += n;
            }
        } catch (java.io.IOException e) {
            throw new InjectionException((write ? "writing " : "reading ") + "memory at " + addr + " of task " + pid + ": " + e.getMessage(), e);
        }
    }

    /**
     * Lets the task run, still traced, until it is gone, passing on each signal it stops for:
     * for a task that is about to exit or die.
     */
    public void runUntilGone() {
        checkOwner();
        int signal = 0;
        while (true) {
            Ptrace.cont(pid, signal);
            WaitStatus st = waitStatus(); // throws TaskGoneException at the end
            signal = st.stopped() && st.event() == 0 ? st.stopSignal() : 0;
        }
    }

    /** Resumes the task and lets go of it. */
    public void detach() {
        checkOwner();
        closeMem();
        if (attached) {
            attached = false;
            Ptrace.detach(pid, 0);
        }
    }

    /** Best-effort detach on a failure path; a failure of its own rides along as suppressed. */
    public void detachQuietly(Throwable primary) {
        try {
            detach();
        } catch (RuntimeException e) {
            if (primary != null) {
                primary.addSuppressed(e);
            }
        }
    }

    /** SIGKILL, then wait until the kernel reports the task gone to us, its tracer. */
    public void kill() {
        checkOwner();
        Sys.raw(dev.cryo.sys.Nr.KILL, pid, 9);
        while (attached) {
            try {
                waitStatus();
                Sys.raw(dev.cryo.sys.Nr.PTRACE, Ptrace.CONT, pid, 0, 0);
            } catch (TaskGoneException gone) {
                attached = false;
            } catch (SysException e) {
                attached = false; // ECHILD: already reaped or no longer ours
            }
        }
    }

    public void markGone() {
        attached = false;
    }

    private void checkOwner() {
        if (Thread.currentThread() != owner) {
            throw new IllegalStateException("task " + pid + " is traced by thread " + owner.getName()
                    + "; ptrace requests must come from it");
        }
    }
}
