package dev.cryo.seccomp;

import com.google.protobuf.ByteString;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.core.TaskPart;
import dev.cryo.core.ThreadHandle;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.SeccompFilter;
import dev.cryo.image.proto.SeccompImage;
import dev.cryo.image.proto.ThreadSeccomp;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Ptrace;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.logging.Logger;

/**
 * seccomp filters, thread by thread: read with PTRACE_SECCOMP_GET_FILTER, installed again with
 * seccomp(SECCOMP_SET_MODE_FILTER) in the same order, in each restored thread, before its
 * credentials come back (the task part, last): the task is still root then, which installing a
 * filter without no_new_privs needs. While Cryo works in a task that has filters, they are
 * suspended (PTRACE_O_SUSPEND_SECCOMP), so that they neither refuse nor kill an injected call;
 * the option ends with the trace. Strict mode (SECCOMP_MODE_STRICT) is refused.
 */
public final class SeccompFilters implements TaskPart {
    private static final Logger LOG = Logger.getLogger("seccomp");
    private static final int SECCOMP_SET_MODE_FILTER = 1, MODE_STRICT = 1, MODE_FILTER = 2;

    @Override
    public String name() {
        return "seccomp";
    }

    /** The seccomp mode of a thread: 0 none, 1 strict, 2 filter ("Seccomp:" of its status). */
    public static int mode(int pid, int tid) {
        String mode = ProcFiles.status(pid, tid).get("Seccomp");
        return mode == null ? 0 : Integer.parseInt(mode.strip());
    }

    /**
     * The ptrace options to seize process {@code pid} with: its seccomp filters, if any, could
     * refuse or punish the calls Cryo injects, so they are suspended, which needs root.
     */
    public static long seizeOptions(int pid, long options) {
        if (!anyThreadFiltered(pid)) {
            return options;
        }
        if (dev.cryo.sys.Sys.geteuid() != 0) {
            throw new Refusal("process " + pid + " has seccomp filters; suspending them while Cryo works in it"
                    + " needs root (CAP_SYS_ADMIN)");
        }
        return options | Ptrace.O_SUSPEND_SECCOMP;
    }

    /** Whether any thread of the process has seccomp on. */
    private static boolean anyThreadFiltered(int pid) {
        for (int tid : dev.cryo.remote.Tracee.threadIds(pid)) {
            try {
                if (mode(pid, tid) != 0) {
                    return true;
                }
            } catch (RuntimeException gone) {
                // a thread that just ended
            }
        }
        return false;
    }

    @Override
    public void dump(DumpContext ctx) {
        SeccompImage.Builder image = SeccompImage.newBuilder();
        int filters = 0;
        for (ThreadHandle t : ctx.threads()) {
            int mode = mode(ctx.pid(), t.tid());
            if (mode == 0) {
                continue;
            }
            if (mode == MODE_STRICT) {
                throw new Refusal("thread " + t.tid() + " of process " + ctx.pid() + " runs in seccomp strict mode, which Cryo cannot restore");
            }
            ThreadSeccomp.Builder th = ThreadSeccomp.newBuilder().setTid(t.tid());
            for (Ptrace.SeccompFilter f : Ptrace.seccompFilters(t.tid()).reversed()) {
                th.addFilters(SeccompFilter.newBuilder().setProgram(ByteString.copyFrom(f.program())).setFlags(f.flags()));
            }
            filters += th.getFiltersCount();
            image.addThreads(th);
        }
        if (image.getThreadsCount() > 0) {
            ctx.image().write(ImageKind.SECCOMP, ctx.pid(), image.build());
            int total = filters;
            LOG.info(() -> "process " + ctx.pid() + ": " + total + " seccomp filters in " + image.getThreadsCount() + " thread(s)");
        }
    }

    @Override
    public void restore(RestoreContext ctx) {
        if (!ctx.image().has(ImageKind.SECCOMP, ctx.pid())) {
            return;
        }
        SeccompImage image = ctx.image().read(ImageKind.SECCOMP, ctx.pid(), SeccompImage.parser());
        for (ThreadSeccomp th : image.getThreadsList()) {
            RemoteSyscalls sys = ctx.thread(th.getTid()).syscalls();
            // the rest of the restore injects calls the filters may refuse: suspended until Cryo lets go
            Ptrace.setOptions(sys.task().pid(), dev.cryo.remote.RestoreStub.TRACE_OPTIONS | Ptrace.O_SUSPEND_SECCOMP);
            for (SeccompFilter f : th.getFiltersList()) {
                install(sys, f);
            }
        }
        LOG.info(() -> "process " + ctx.pid() + ": seccomp filters installed again in " + image.getThreadsCount() + " thread(s)");
    }

    /** seccomp(SECCOMP_SET_MODE_FILTER, flags, &(struct sock_fprog){len, filter}) in the thread. */
    private static void install(RemoteSyscalls sys, SeccompFilter f) {
        byte[] program = f.getProgram().toByteArray();
        RemoteAddr code = sys.scratch().put(program);
        RemoteAddr fprog = sys.scratch().put(ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN)
                .putShort((short) (program.length / 8)).putShort((short) 0).putInt(0).putLong(code.value()).array());
        sys.call("seccomp(SECCOMP_SET_MODE_FILTER)", Nr.SECCOMP, SECCOMP_SET_MODE_FILTER, f.getFlags(), fprog.value());
        sys.scratch().reset();
    }
}
