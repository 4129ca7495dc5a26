package dev.cryo.core;

import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.Tracee;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Ptrace;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A process tree held still: every process under the root with all its threads seized, parents
 * before children. A process's children are listed only after all its threads are stopped, when
 * it can no longer fork, so the walk needs one pass. Zombies cannot be seized and hold nothing
 * but their exit status; they are recorded as such.
 */
final class FrozenTree {
    /** One process of the tree; {@code threads} is empty for a zombie. */
    record Proc(int pid, int ppid, int pgid, int sid, List<Tracee> threads, boolean zombie, int exitStatus) {
    }

    private final List<Proc> procs;

    private FrozenTree(List<Proc> procs) {
        this.procs = procs;
    }

    List<Proc> procs() {
        return procs;
    }

    List<Proc> live() {
        return procs.stream().filter(p -> !p.zombie()).toList();
    }

    Proc root() {
        return procs.getFirst();
    }

    static FrozenTree freeze(int root, long options) {
        Map<Integer, Proc> seized = new LinkedHashMap<>();
        Map<Integer, Integer> retries = new java.util.HashMap<>();
        Deque<Integer> todo = new ArrayDeque<>(List.of(root));
        try {
            while (!todo.isEmpty()) {
                int pid = todo.poll();
                if (seized.containsKey(pid)) {
                    continue;
                }
                List<String> stat;
                try {
                    stat = ProcFiles.statFields(pid);
                } catch (java.io.UncheckedIOException gone) {
                    if (pid == root) {
                        throw new dev.cryo.CryoException("process " + root + " exited before it could be frozen");
                    }
                    continue; // exited and reaped since its parent listed it: not part of the tree any more
                }
                int ppid = (int) ProcFiles.statField(stat, 4);
                int pgid = (int) ProcFiles.statField(stat, 5);
                int sid = (int) ProcFiles.statField(stat, 6);
                if (stat.get(0).equals("Z")) {
                    if (pid == root) {
                        throw new dev.cryo.CryoException("PID " + pid + " is a zombie: it has exited and holds no state to save");
                    }
                    seized.put(pid, new Proc(pid, ppid, pgid, sid, List.of(), true, (int) ProcFiles.statField(stat, 52)));
                    continue;
                }
                List<Tracee> threads;
                try {
                    threads = Tracee.seizeThreadGroup(pid, dev.cryo.seccomp.SeccompFilters.seizeOptions(pid, options));
                } catch (dev.cryo.sys.SysException | dev.cryo.remote.TaskGoneException e) {
                    // A child that is exiting (ptrace says EPERM, or ESRCH once gone) or died while
                    // being stopped: look at it again, it is a zombie or no longer there.
                    boolean exiting = !(e instanceof dev.cryo.sys.SysException se)
                            || se.errno() == dev.cryo.sys.Errno.ESRCH || se.errno() == dev.cryo.sys.Errno.EPERM;
                    if (!exiting || pid == root || retries.merge(pid, 1, Integer::sum) > 50) {
                        throw e;
                    }
                    todo.addFirst(pid);
                    Thread.onSpinWait();
                    continue;
                }
                seized.put(pid, new Proc(pid, ppid, pgid, sid, threads, false, 0));
                todo.addAll(children(pid, threads));
            }
            return new FrozenTree(new ArrayList<>(seized.values()));
        } catch (RuntimeException e) {
            new FrozenTree(new ArrayList<>(seized.values())).release(e);
            throw e;
        }
    }

    /** Children of every thread of {@code pid} (a child belongs to the thread that forked it). */
    private static List<Integer> children(int pid, List<Tracee> threads) {
        List<Integer> out = new ArrayList<>();
        for (Tracee t : threads) {
            try {
                out.addAll(ProcFiles.children(pid, t.pid()));
            } catch (java.io.UncheckedIOException e) {
                throw new dev.cryo.CryoException("cannot list the children of " + pid + ": " + e.getCause().getMessage());
            }
        }
        return out;
    }

    private static final int KCMP_SYSVSEM = 6;

    /**
     * Processes that share an address space, filesystem info, signal handlers or SEM_UNDO
     * adjustments without being threads of one another (clone without CLONE_THREAD, vfork)
     * would be saved as separate copies and restored wrong: refused.
     */
    void checkNothingSharedBetweenProcesses() {
        String[] what = {null, "address space (CLONE_VM)", null, "cwd/root/umask (CLONE_FS)", "signal handlers (CLONE_SIGHAND)"};
        List<Proc> live = live();
        Map<Integer, Boolean> undoList = new java.util.HashMap<>();
        for (int i = 0; i < live.size(); i++) {
            for (int j = i + 1; j < live.size(); j++) {
                for (int kind : new int[] {1, 3, 4}) {
                    if (Sys.raw(Nr.KCMP, live.get(i).pid(), live.get(j).pid(), kind, 0, 0) == 0) {
                        throw new Refusal("processes " + live.get(i).pid() + " and " + live.get(j).pid() + " share their "
                                + what[kind] + "; processes sharing that are not supported");
                    }
                }
                // two processes without any undo list compare equal too
                if (Sys.raw(Nr.KCMP, live.get(i).pid(), live.get(j).pid(), KCMP_SYSVSEM, 0, 0) == 0
                        && undoList.computeIfAbsent(live.get(i).pid(), dev.cryo.ipc.SemaphoreUndo::hasUndoList)) {
                    throw new Refusal("processes " + live.get(i).pid() + " and " + live.get(j).pid() + " share their SEM_UNDO"
                            + " adjustments (CLONE_SYSVSEM); processes sharing that are not supported");
                }
            }
        }
    }

    int threadCount() {
        return procs.stream().mapToInt(p -> p.threads().size()).sum();
    }

    /** Lets every process run on, as it was. */
    void release(Throwable primary) {
        for (Proc p : procs) {
            p.threads().forEach(t -> t.detachQuietly(primary));
        }
    }

    void release() {
        for (Proc p : procs) {
            p.threads().forEach(Tracee::detach);
        }
    }

    /**
     * Kills every process of the tree, deepest first, and has each parent reap its dead children
     * (an injected wait4) before it dies itself, so that no zombie is left holding a PID the
     * restore will need: an orphaned zombie would go to init, which may never reap it.
     */
    void kill() {
        kill(false);
    }

    /**
     * @param rootInBackground the root (whose parent, outside the tree, reaps it) is not waited
     *                         for: its memory is freed after the checkpoint returns. Processes of
     *                         the tree are, since their parents must reap them before dying.
     */
    void kill(boolean rootInBackground) {
        Map<Integer, Proc> byPid = new LinkedHashMap<>();
        procs.forEach(p -> byPid.put(p.pid(), p));
        for (Proc p : procs.reversed()) {
            if (p.zombie()) {
                // nothing to kill
            } else if (rootInBackground && p == root()) {
                Tracee.killGroupInBackground(p.threads());
            } else {
                Tracee.killGroup(p.threads());
            }
            Proc parent = p == root() ? null : byPid.get(p.ppid());
            if (parent != null && !parent.zombie()) {
                reap(parent.threads().getFirst(), p.pid());
            }
        }
    }

    private static void reap(Tracee parent, int child) {
        try (RemoteSyscalls sys = new RemoteSyscalls(parent, Checkpoint.findSyscallInstruction(parent))) {
            sys.raw(Nr.WAIT4, child, 0, Tracee.WALL, 0);
        }
    }

    static long options() {
        return Ptrace.O_TRACESYSGOOD;
    }
}
