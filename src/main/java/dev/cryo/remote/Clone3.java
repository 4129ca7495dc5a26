package dev.cryo.remote;

import dev.cryo.CryoException;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * clone3 injected into a tracee, asking for an exact pid or tid (set_tid). The new task is
 * auto-attached (PTRACE_O_TRACECLONE/FORK on the caller) and returned in its first stop.
 * <pre>
 * struct clone_args (88 bytes)        offset
 *   flags, pidfd, child_tid, parent_tid   0, 8, 16, 24
 *   exit_signal, stack, stack_size, tls   32, 40, 48, 56
 *   set_tid, set_tid_size, cgroup         64, 72, 80
 * </pre>
 */
public final class Clone3 {
    public static final long CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800,
            CLONE_PARENT = 0x8000, CLONE_THREAD = 0x10000, CLONE_SYSVSEM = 0x40000;
    /** The flags pthread_create uses: a thread sharing everything. */
    public static final long THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    private static final int ARGS_SIZE = 88;

    private Clone3() {
    }

    /** Creates the task {@code id} with {@code flags}; the child shares the caller's stack pointer and never runs on it. */
    public static Tracee withId(RemoteSyscalls sys, long flags, int id) {
        return withId(sys, flags, 0, id);
    }

    /** A child process signalling its parent with {@code exitSignal} (SIGCHLD, as fork) when it ends. */
    public static Tracee withId(RemoteSyscalls sys, long flags, int exitSignal, int id) {
        int[] child = {0};
        ByteBuffer args = ByteBuffer.allocate(ARGS_SIZE + 8).order(ByteOrder.LITTLE_ENDIAN);
        RemoteAddr at = sys.scratch().alloc(ARGS_SIZE + 8);
        args.putLong(flags).putLong(0).putLong(0).putLong(0) // flags, pidfd, child_tid, parent_tid
                .putLong(exitSignal).putLong(0).putLong(0).putLong(0) // exit_signal (0 for CLONE_PARENT/THREAD), stack, stack_size, tls
                .putLong(at.value() + ARGS_SIZE).putLong(1).putLong(0) // set_tid, set_tid_size, cgroup
                .putLong(id);                                  // set_tid[0]
        sys.task().write(at, args.array());
        sys.onNewChild(p -> child[0] = p);
        long r;
        try {
            r = sys.raw(Nr.CLONE3, at.value(), ARGS_SIZE);
        } finally {
            sys.onNewChild(p -> { });
            sys.scratch().reset();
        }
        if (r == -Errno.EEXIST) {
            throw new CryoException((flags & CLONE_THREAD) != 0 ? "thread id " + id + " is already in use by another task"
                    : "PID " + id + " is already in use; the restored process needs it");
        }
        if (r < 0) {
            throw new RemoteSysException(sys.task().pid(), "clone3(set_tid=" + id + ")", (int) -r, flags);
        }
        // r and the event name the child as the caller and Cryo see it; set_tid as its own pid
        // namespace does, which differs inside a container
        if (child[0] <= 0 || innermostId(child[0]) != id) {
            throw new InjectionException("clone3(set_tid=" + id + ") created " + r + " (event for " + child[0] + ")");
        }
        return Tracee.adoptNewChild(child[0]);
    }

    /** The id of a task (as Cryo sees it) inside its own pid namespace: the last of its NSpid line. */
    public static int innermostId(int hostId) {
        String nspid = dev.cryo.proc.ProcFiles.status(hostId).get("NSpid");
        if (nspid == null) {
            return hostId;
        }
        String[] ids = nspid.strip().split("\\s+");
        return Integer.parseInt(ids[ids.length - 1]);
    }
}
