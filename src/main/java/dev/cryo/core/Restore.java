package dev.cryo.core;

import dev.cryo.CryoException;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.PstreeEntry;
import dev.cryo.image.proto.PstreeImage;
import dev.cryo.mem.Memory;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.Clone3;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.RestoreStub;
import dev.cryo.remote.Tracee;
import dev.cryo.remote.Trampoline;
import dev.cryo.remote.WaitStatus;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Logger;

/**
 * Orders a restore: check the whole image and the machine first, then grow the process from the
 * restore stub with its saved PID, let every {@link TaskPart} rebuild its state inside it, and
 * release it with its saved registers. A failure kills the half-built process: nothing is left.
 */
public final class Restore {
    private static final Logger LOG = Logger.getLogger("restore");
    private static final long CLOSE_RANGE_ALL = 0xffffffffL;

    public record Options(Path dir) {
    }

    /** A restored, running process. It is Cryo's child: {@link #waitForExit()} gives its exit code. */
    public record Restored(int pid, long nanos) {
        public int waitForExit() {
            return new WaitStatus(Sys.wait4(pid, 0)[1]).shellCode();
        }
    }

    public static Restored run(Options o) {
        long t0 = System.nanoTime();
        ImageReader image = ImageReader.open(o.dir(), true);
        PstreeImage tree = image.read(ImageKind.PSTREE, 0, PstreeImage.parser());
        PstreeEntry proc = tree.getProcesses(0);
        int pid = proc.getPid();
        for (int id : proc.getThreadsList()) {
            if (ProcFiles.exists(id)) {
                throw new CryoException((id == pid ? "PID " : "thread id ") + id + " is in use by " + Checkpoint.comm(id)
                        + (ProcFiles.state(id) == 'Z' ? " (a zombie its parent has not reaped)" : "")
                        + "; the restored process needs it");
            }
        }
        for (TaskPart part : TaskParts.ALL) {
            part.verify(image, pid);
        }
        List<Tracee> created = new ArrayList<>();
        try (RestoreStub stub = RestoreStub.spawn()) {
            created.add(stub.cloneWithPid(pid));
            stub.close();
            build(created, image, proc);
        } catch (RuntimeException e) {
            if (!created.isEmpty()) {
                Tracee.killGroup(created);
                Sys.raw(Nr.WAIT4, pid, 0, 1 /* WNOHANG */, 0);
            }
            LOG.severe("Error: restore of " + pid + " failed, nothing was left running: " + e.getMessage());
            throw e;
        }
        long nanos = System.nanoTime() - t0;
        LOG.info(() -> "process " + pid + " restored and running (" + nanos / 1_000_000 + " ms)");
        return new Restored(pid, nanos);
    }

    /**
     * Rebuilds the process inside the task grown from the stub ({@code created} holds it, and
     * gets every thread made here, so a failure can kill them all).
     */
    private static void build(List<Tracee> created, ImageReader image, PstreeEntry proc) {
        int pid = proc.getPid();
        Tracee leader = created.getFirst();
        RemoteSyscalls sys = new RemoteSyscalls(leader, RestoreStub.SYSCALL_INSN);
        // whatever the stub inherited from Cryo is not the restored process's
        sys.call("close_range", Nr.CLOSE_RANGE, 0, CLOSE_RANGE_ALL, 0);
        Trampoline trampoline = Trampoline.install(sys, Memory.savedRanges(image, pid));
        List<ThreadHandle> threads = new ArrayList<>();
        threads.add(new ThreadHandle(pid, leader, sys));
        for (int tid : proc.getThreadsList().subList(1, proc.getThreadsCount())) {
            Tracee thread = Clone3.withId(sys, Clone3.THREAD_FLAGS, tid);
            created.add(thread);
            RemoteSyscalls ts = new RemoteSyscalls(thread, trampoline.base());
            ts.attachScratch(sys.scratch());
            threads.add(new ThreadHandle(tid, thread, ts));
        }
        RestoreContext ctx = new RestoreContext(pid, threads, image);
        for (TaskPart part : TaskParts.ALL) {
            long t = System.nanoTime();
            part.restore(ctx);
            LOG.fine(() -> part.name() + " restored in " + (System.nanoTime() - t) / 1000 + " us");
        }
        wakeUp(ctx, trampoline);
    }

    /**
     * Hands every thread its own registers, xsave area and signal mask. The leader's last
     * injected call removes the trampoline it runs from; at its syscall-exit stop the leader gets
     * its registers too. Then all threads are let go, one right after the other.
     */
    private static void wakeUp(RestoreContext ctx, Trampoline trampoline) {
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
        for (ThreadHandle t : ctx.threads().reversed()) {
            t.task().detach();
        }
    }
}
