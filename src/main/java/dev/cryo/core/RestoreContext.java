package dev.cryo.core;

import dev.cryo.image.ImageReader;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.Tracee;
import dev.cryo.sys.Regs;

/**
 * What a {@link TaskPart} gets while restoring: the task being rebuilt, a syscall session inside
 * it, the image; and the state the task must wake up with, which parts fill in and the
 * orchestrator applies as the very last step (no injected call may run after it).
 */
public final class RestoreContext {
    private final int pid;
    private final Tracee task;
    private final RemoteSyscalls syscalls;
    private final ImageReader image;
    private Regs finalRegs;
    private byte[] finalXstate;
    private long finalSigmask;

    public RestoreContext(int pid, Tracee task, RemoteSyscalls syscalls, ImageReader image) {
        this.pid = pid;
        this.task = task;
        this.syscalls = syscalls;
        this.image = image;
    }

    public int pid() { return pid; }
    public Tracee task() { return task; }
    public RemoteSyscalls syscalls() { return syscalls; }
    public ImageReader image() { return image; }

    public void finalCpuState(Regs regs, byte[] xstate) {
        this.finalRegs = regs;
        this.finalXstate = xstate;
    }

    public void finalSigmask(long mask) {
        this.finalSigmask = mask;
    }

    public Regs finalRegs() {
        if (finalRegs == null) {
            throw new IllegalStateException("no part set the registers of task " + pid);
        }
        return finalRegs;
    }

    public byte[] finalXstate() { return finalXstate; }
    public long finalSigmask() { return finalSigmask; }
}
