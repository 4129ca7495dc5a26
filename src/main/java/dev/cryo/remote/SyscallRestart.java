package dev.cryo.remote;

import dev.cryo.sys.Nr;
import dev.cryo.sys.Regs;

/**
 * What the kernel does on the way out of an interrupted system call when no handler runs
 * (arch_do_signal_or_restart): rewind rip over the 2-byte {@code syscall} so it runs again.
 * Cryo does it itself wherever it hands back registers taken inside such a call, since a task
 * resumed after ptrace changed its registers would otherwise see the raw -ERESTART* value.
 */
public final class SyscallRestart {
    private static final long ERESTARTSYS = -512, ERESTARTNOINTR = -513, ERESTARTNOHAND = -514,
            ERESTART_RESTARTBLOCK = -516;

    private SyscallRestart() {
    }

    private static final long EINTR = -4;
    private static final int RDX = Regs.NAMES.indexOf("rdx");

    /**
     * For the task itself, resumed in place (a checkpoint that leaves it running): a call with a
     * restart block (nanosleep, poll or futex with a timeout) resumes through restart_syscall,
     * which finds the task's own restart block.
     */
    public static Regs fixup(Regs regs) {
        Regs out = regs.copy();
        if (regs.origRax() < 0) {
            return out;
        }
        long rax = regs.rax();
        if (rax == ERESTARTSYS || rax == ERESTARTNOINTR || rax == ERESTARTNOHAND) {
            out.rax(regs.origRax());
            out.rip(regs.rip() - 2);
        } else if (rax == ERESTART_RESTARTBLOCK) {
            out.rax(Nr.RESTART_SYSCALL);
            out.rip(regs.rip() - 2);
        }
        return out;
    }

    /**
     * For the image: a restored task has no restart block of its own (what it has was copied
     * from whatever it was forked from, possibly a stale one of a JVM thread, whose function
     * would run with someone else's arguments: seen making a restored poll return 0). So a call
     * interrupted with a restart block returns -EINTR, as after any signal whose handler does
     * not restart it; the others are run again as in {@link #fixup}.
     */
    public static Regs forImage(Regs regs) {
        if (regs.origRax() == Nr.POLL && regs.rax() == ERESTART_RESTARTBLOCK && (int) regs.get(RDX) < 0) {
            // poll(2) always leaves through a restart block, even without a timeout; with none
            // (a negative timeout, its third argument, still in rdx) running it again is exact,
            // and a program that blocks every signal (script(1)) takes EINTR for a fatal error
            Regs out = regs.copy();
            out.rax(regs.origRax());
            out.rip(regs.rip() - 2);
            return out;
        }
        if (regs.origRax() >= 0 && regs.rax() == ERESTART_RESTARTBLOCK) {
            Regs out = regs.copy();
            out.rax(EINTR);
            return out;
        }
        return fixup(regs);
    }
}
