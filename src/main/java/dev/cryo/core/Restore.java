package dev.cryo.core;

import dev.cryo.CryoException;
import dev.cryo.image.ImageReader;
import dev.cryo.mem.Memory;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.RestoreStub;
import dev.cryo.remote.Tracee;
import dev.cryo.remote.Trampoline;
import dev.cryo.remote.WaitStatus;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.nio.file.Path;
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
        int pid = image.inventory().getRootPid();
        if (ProcFiles.exists(pid)) {
            throw new CryoException("PID " + pid + " is in use by " + Checkpoint.comm(pid)
                    + (ProcFiles.state(pid) == 'Z' ? " (a zombie its parent has not reaped)" : "")
                    + "; the restored process needs that PID");
        }
        for (TaskPart part : TaskParts.ALL) {
            part.verify(image, pid);
        }
        Tracee task = null;
        try (RestoreStub stub = RestoreStub.spawn()) {
            task = stub.cloneWithPid(pid);
            stub.close();
            build(task, image, pid);
        } catch (RuntimeException e) {
            if (task != null) {
                task.kill();
                Sys.raw(Nr.WAIT4, pid, 0, 1 /* WNOHANG */, 0);
            }
            LOG.severe("Error: restore of " + pid + " failed, nothing was left running: " + e.getMessage());
            throw e;
        }
        long nanos = System.nanoTime() - t0;
        LOG.info(() -> "process " + pid + " restored and running (" + nanos / 1_000_000 + " ms)");
        return new Restored(pid, nanos);
    }

    private static void build(Tracee task, ImageReader image, int pid) {
        RemoteSyscalls sys = new RemoteSyscalls(task, RestoreStub.SYSCALL_INSN);
        // whatever the stub inherited from Cryo is not the restored process's
        sys.call("close_range", Nr.CLOSE_RANGE, 0, CLOSE_RANGE_ALL, 0);
        Trampoline trampoline = Trampoline.install(sys, Memory.savedRanges(image, pid));
        RestoreContext ctx = new RestoreContext(pid, task, sys, image);
        for (TaskPart part : TaskParts.ALL) {
            long t = System.nanoTime();
            part.restore(ctx);
            LOG.fine(() -> part.name() + " restored in " + (System.nanoTime() - t) / 1000 + " us");
        }
        // The last injected call removes the trampoline it runs from; at its syscall-exit stop the
        // task gets its own registers and leaves straight into its own code.
        long r = sys.raw(Nr.MUNMAP, trampoline.base().value(), Trampoline.SIZE);
        if (r != 0) {
            throw new CryoException("removing the restore trampoline from task " + pid + " failed: " + r);
        }
        sys.finish(ctx.finalRegs(), ctx.finalSigmask());
        if (ctx.finalXstate() != null) {
            task.setXstate(ctx.finalXstate());
        }
        task.detach();
    }
}
