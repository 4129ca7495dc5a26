package dev.cryo.signal;

import com.google.protobuf.ByteString;
import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.core.TaskPart;
import dev.cryo.core.ThreadHandle;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.AltStack;
import dev.cryo.image.proto.PendingSignal;
import dev.cryo.image.proto.SigactionEntry;
import dev.cryo.image.proto.SignalsImage;
import dev.cryo.image.proto.ThreadSignals;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Ptrace;

import java.nio.ByteBuffer;

import static dev.cryo.sys.Structs.le;
import java.util.logging.Logger;

/**
 * Signal state: handlers (read inside the task, since only it can ask for its own), the blocked
 * mask, both pending queues with their siginfo (real-time values included) and sigaltstack.
 */
public final class Signals implements TaskPart {
    private static final Logger LOG = Logger.getLogger("signal");
    private static final int SIGKILL = 9, SIGCHLD = 17, SIGSTOP = 19, NSIG = 64;
    /** struct kernel_sigaction: handler, flags, restorer, mask (sigset_t of 8 bytes). */
    private static final int KSIGACTION_SIZE = 32;
    /** stack_t: ss_sp, ss_flags (+4 padding), ss_size. */
    private static final int STACK_T_SIZE = 24;
    private static final int SS_DISABLE = 2, SS_AUTODISARM = 1 << 31;

    @Override
    public String name() {
        return "signal";
    }

    @Override
    public void dump(DumpContext ctx) {
        RemoteSyscalls sys = ctx.syscalls();
        SignalsImage.Builder image = SignalsImage.newBuilder();
        RemoteAddr old = sys.scratch().alloc(KSIGACTION_SIZE);
        long notDefault = notDefaultSignals(ctx.pid());
        for (int sig = 1; sig <= NSIG; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP || (notDefault & (1L << (sig - 1))) == 0) {
                continue;
            }
            sys.call("rt_sigaction(" + sig + ")", Nr.RT_SIGACTION, sig, 0, old.value(), 8);
            ByteBuffer act = le(sys.scratch().read(old, KSIGACTION_SIZE));
            long handler = act.getLong();
            if (handler != 0 || sig == SIGCHLD) { // SIGCHLD: its flags count with SIG_DFL too
                image.addActions(SigactionEntry.newBuilder().setSignal(sig).setHandler(handler)
                        .setFlags(act.getLong()).setRestorer(act.getLong()).setMask(act.getLong()));
            }
        }
        sys.scratch().reset();
        image.addAllSharedPending(pending(ctx.pid(), true));
        int pending = image.getSharedPendingCount();
        for (ThreadHandle t : ctx.threads()) {
            ThreadSignals th = thread(t);
            pending += th.getPendingCount();
            image.addThreads(th);
        }
        SignalsImage saved = image.build();
        ctx.image().write(ImageKind.SIGNALS, ctx.pid(), saved);
        int pendingTotal = pending;
        LOG.info(() -> "process " + ctx.pid() + ": " + handled(saved) + " handlers, "
                + pendingTotal + " pending signals, blocked 0x" + Long.toHexString(saved.getThreads(0).getBlocked()));
    }

    private static ThreadSignals thread(ThreadHandle t) {
        RemoteSyscalls sys = t.syscalls();
        RemoteAddr ss = sys.scratch().alloc(STACK_T_SIZE);
        sys.call("sigaltstack", Nr.SIGALTSTACK, 0, ss.value());
        ByteBuffer st = le(sys.scratch().read(ss, STACK_T_SIZE));
        sys.scratch().reset();
        return ThreadSignals.newBuilder().setTid(t.tid()).setBlocked(sys.savedSigmask())
                .setAltstack(AltStack.newBuilder().setSp(st.getLong(0)).setFlags(st.getInt(8)).setSize(st.getLong(16)))
                .addAllPending(pending(t.tid(), false)).build();
    }

    private static java.util.List<PendingSignal> pending(int tid, boolean shared) {
        return Ptrace.peekSiginfo(tid, shared).stream()
                .map(info -> PendingSignal.newBuilder().setSiginfo(ByteString.copyFrom(info)).build()).toList();
    }

    /**
     * Signals whose action may differ from the default: those /proc says are caught or ignored,
     * plus SIGCHLD, whose flags (SA_NOCLDSTOP, SA_NOCLDWAIT) matter even with SIG_DFL. Asking
     * only for these saves an injected call for most of the 64 signals.
     */
    private static long notDefaultSignals(int pid) {
        java.util.Map<String, String> status = dev.cryo.proc.ProcFiles.status(pid);
        return Long.parseUnsignedLong(status.get("SigCgt"), 16) | Long.parseUnsignedLong(status.get("SigIgn"), 16)
                | (1L << (SIGCHLD - 1));
    }

    @Override
    public void restore(RestoreContext ctx) {
        RemoteSyscalls sys = ctx.syscalls();
        SignalsImage image = ctx.image().read(ImageKind.SIGNALS, ctx.pid(), SignalsImage.parser());
        long saved = 0;
        for (SigactionEntry a : image.getActionsList()) {
            setAction(sys, a.getSignal(), a.getHandler(), a.getFlags(), a.getRestorer(), a.getMask());
            saved |= 1L << (a.getSignal() - 1);
        }
        // The task came with the actions of whoever forked it here (Cryo's stub, which has those
        // of Cryo's caller: SIGINT ignored under a non-interactive shell's `&`, or a restored
        // parent's handlers). Every signal the image does not name was at its default.
        long inherited = notDefaultSignals(ctx.hostPid(ctx.pid())) & ~saved;
        for (int sig = 1; sig <= NSIG; sig++) {
            if (sig != SIGKILL && sig != SIGSTOP && (inherited & (1L << (sig - 1))) != 0) {
                setAction(sys, sig, 0, 0, 0, 0);
            }
        }
        // Every signal is blocked in every thread for the session, so these wait in their queues
        // until the threads run.
        for (PendingSignal p : image.getSharedPendingList()) {
            queue(sys, ctx.inNamespace(ctx.pid()), 0, p);
        }
        for (ThreadSignals th : image.getThreadsList()) {
            RemoteSyscalls ts = ctx.thread(th.getTid()).syscalls();
            AltStack alt = th.getAltstack();
            if ((alt.getFlags() & SS_DISABLE) == 0) {
                RemoteAddr ss = ts.scratch().put(le(new byte[STACK_T_SIZE]).putLong(alt.getSp())
                        .putInt(alt.getFlags() & SS_AUTODISARM).putInt(0).putLong(alt.getSize()).array());
                ts.call("sigaltstack", Nr.SIGALTSTACK, ss.value(), 0);
                ts.scratch().reset();
            }
            for (PendingSignal p : th.getPendingList()) {
                // a thread-directed signal with a kernel or tkill si_code may only be queued by the thread itself
                queue(ts, ctx.inNamespace(ctx.pid()), ctx.inNamespace(th.getTid()), p);
            }
            ctx.wakeUpSigmask(th.getTid(), th.getBlocked());
        }
        LOG.info(() -> "process " + ctx.pid() + ": " + handled(image) + " handlers (the other signals at their default), signal state of "
                + image.getThreadsCount() + " thread(s) restored");
    }

    /** How many signals the image gives a handler or SIG_IGN (it also keeps SIGCHLD at SIG_DFL, for its flags). */
    public static long handled(SignalsImage image) {
        return image.getActionsList().stream().filter(a -> a.getHandler() != 0).count();
    }

    /** rt_sigaction(sig, {handler, flags, restorer, mask}, NULL) in the task. */
    private static void setAction(RemoteSyscalls sys, int sig, long handler, long flags, long restorer, long mask) {
        RemoteAddr act = sys.scratch().put(le(new byte[KSIGACTION_SIZE]).putLong(handler)
                .putLong(flags).putLong(restorer).putLong(mask).array());
        sys.call("rt_sigaction(" + sig + ")", Nr.RT_SIGACTION, sig, act.value(), 0, 8);
        sys.scratch().reset();
    }

    /** Queues one saved signal: process-wide when {@code tid} is 0, else for that thread. */
    private static void queue(RemoteSyscalls sys, int pid, int tid, PendingSignal p) {
        byte[] info = p.getSiginfo().toByteArray();
        int sig = le(info).getInt(0);
        RemoteAddr at = sys.scratch().put(info);
        if (tid == 0) {
            sys.call("rt_sigqueueinfo(" + sig + ")", Nr.RT_SIGQUEUEINFO, pid, sig, at.value());
        } else {
            sys.call("rt_tgsigqueueinfo(" + sig + ")", Nr.RT_TGSIGQUEUEINFO, pid, tid, sig, at.value());
        }
        sys.scratch().reset();
    }

}
