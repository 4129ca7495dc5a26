package dev.cryo.task;

import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.core.ThreadHandle;
import dev.cryo.image.proto.TaskCore;
import dev.cryo.image.proto.ThreadCore;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;
import dev.cryo.sys.SysException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.logging.Logger;

import static dev.cryo.sys.Structs.le;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * What a task would otherwise take from whoever restores it: a fresh task inherits these from
 * the restore stub, which has them from Cryo's caller. Per thread: CPU affinity, I/O priority,
 * timer slack and parent-death signal; per process: oom_score_adj, the child-subreaper flag,
 * the THP opt-out and dumpable.
 *
 * <p>Dump reads from outside where the kernel lets it (sched_getaffinity, ioprio_get, /proc), as
 * injected calls count while the process is frozen; only the prctl getters that have no outside
 * view are injected. Restore sets the per-thread ones once the thread's scheduling policy is back
 * (a policy change resets timer slack) and before its credentials (an unprivileged task may
 * neither raise its I/O priority nor lower oom_score_adj); the parent-death signal and
 * dumpable come after the credentials, as the kernel clears both when credentials change.
 */
final class TaskAttributes {
    private static final Logger LOG = Logger.getLogger("task.attributes");
    private static final int PR_SET_PDEATHSIG = 1, PR_GET_PDEATHSIG = 2, PR_GET_DUMPABLE = 3,
            PR_SET_DUMPABLE = 4, PR_SET_TIMERSLACK = 29, PR_GET_TIMERSLACK = 30,
            PR_SET_CHILD_SUBREAPER = 36, PR_GET_CHILD_SUBREAPER = 37, PR_SET_THP_DISABLE = 41,
            PR_GET_THP_DISABLE = 42;
    private static final int IOPRIO_WHO_PROCESS = 1;
    /** Room for 8192 CPUs: sched_getaffinity refuses a buffer smaller than the kernel's mask. */
    private static final int AFFINITY_BYTES = 1024;

    private TaskAttributes() {
    }

    // ------------------------------------------------------------------ dump

    /** Thread {@code t} of process {@code pid}: affinity, I/O priority and timer slack from outside, the parent-death signal injected. */
    static void dumpThread(int pid, ThreadHandle t, ThreadCore.Builder th) {
        int tid = t.tid();
        RemoteSyscalls sys = t.syscalls();
        th.addAllAffinity(Arrays.stream(affinity(tid)).boxed().toList())
                .setIoprio((int) Sys.call("ioprio_get", Nr.IOPRIO_GET, IOPRIO_WHO_PROCESS, tid))
                .setTimerSlackNs(timerSlack(pid, tid, sys));
        RemoteAddr sig = sys.scratch().alloc(4);
        sys.call("prctl(PR_GET_PDEATHSIG)", Nr.PRCTL, PR_GET_PDEATHSIG, sig.value());
        th.setPdeathSignal(le(sys.scratch().read(sig, 4)).getInt());
        sys.scratch().reset();
    }

    /** The process's own: oom_score_adj from /proc, the rest by prctl getters injected in the leader. */
    static void dumpProcess(DumpContext ctx, TaskCore.Builder core) {
        RemoteSyscalls sys = ctx.syscalls();
        core.setOomScoreAdj(Integer.parseInt(ProcFiles.readString(ctx.pid(), "oom_score_adj").strip()));
        RemoteAddr subreaper = sys.scratch().alloc(4);
        sys.call("prctl(PR_GET_CHILD_SUBREAPER)", Nr.PRCTL, PR_GET_CHILD_SUBREAPER, subreaper.value());
        core.setChildSubreaper(le(sys.scratch().read(subreaper, 4)).getInt() != 0);
        sys.scratch().reset();
        core.setThpDisable((int) sys.call("prctl(PR_GET_THP_DISABLE)", Nr.PRCTL, PR_GET_THP_DISABLE, 0, 0, 0, 0));
        core.setDumpable((int) sys.call("prctl(PR_GET_DUMPABLE)", Nr.PRCTL, PR_GET_DUMPABLE, 0, 0, 0, 0));
    }

    /** The thread's CPU mask as 64-bit words, trailing empty words dropped. */
    private static long[] affinity(int tid) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mask = arena.allocate(AFFINITY_BYTES, 8);
            long bytes = Sys.call("sched_getaffinity", Nr.SCHED_GETAFFINITY, tid, AFFINITY_BYTES, mask.address());
            int words = (int) (bytes / 8);
            while (words > 0 && mask.getAtIndex(JAVA_LONG, words - 1) == 0) {
                words--;
            }
            long[] out = new long[words];
            for (int i = 0; i < words; i++) {
                out[i] = mask.getAtIndex(JAVA_LONG, i);
            }
            return out;
        }
    }

    /**
     * From /proc, which only a reader with CAP_SYS_NICE may open for another process's thread;
     * otherwise asked of the thread itself.
     */
    private static long timerSlack(int pid, int tid, RemoteSyscalls sys) {
        try {
            return Long.parseLong(ProcFiles.readString(pid, "task/" + tid + "/timerslack_ns").strip());
        } catch (UncheckedIOException e) {
            return sys.call("prctl(PR_GET_TIMERSLACK)", Nr.PRCTL, PR_GET_TIMERSLACK, 0, 0, 0, 0);
        }
    }

    // ------------------------------------------------------------------ restore

    /**
     * Affinity and I/O priority set from Cryo (the thread still has Cryo's credentials, so Cryo
     * may), each only when the thread does not have it already; timer slack injected. Call after
     * its scheduling policy is restored and before its credentials. Adds what it set to {@code done}.
     */
    static void restoreThread(ThreadHandle t, ThreadCore th, List<String> done) {
        int hostTid = t.task().pid();
        String who = "thread " + th.getTid();
        if (th.getAffinityCount() > 0) {
            long[] want = th.getAffinityList().stream().mapToLong(Long::longValue).toArray();
            long[] have = affinity(hostTid);
            if (!Arrays.equals(want, have)) {
                setAffinity(hostTid, who, want, have, done);
            }
        }
        if (th.hasIoprio()) {
            long have = Sys.call("ioprio_get", Nr.IOPRIO_GET, IOPRIO_WHO_PROCESS, hostTid);
            if (have != th.getIoprio()) {
                Sys.call("ioprio_set", Nr.IOPRIO_SET, IOPRIO_WHO_PROCESS, hostTid, th.getIoprio());
                done.add(who + " I/O priority class " + (th.getIoprio() >> 13) + " level " + (th.getIoprio() & 0xff));
            }
        }
        // 0 would mean "the default", which is the restorer's slack: a saved 0 is a real-time
        // thread's, kept at 0 by the kernel. The same slack as the thread has (the usual 50 us) is not set again
        if (th.getTimerSlackNs() != 0 && th.getTimerSlackNs() != currentSlack(hostTid)) {
            t.syscalls().call("prctl(PR_SET_TIMERSLACK)", Nr.PRCTL, PR_SET_TIMERSLACK, th.getTimerSlackNs(), 0, 0, 0);
            done.add(who + " timer slack " + th.getTimerSlackNs() + " ns");
        }
    }

    /**
     * A mask naming no CPU of this machine (or none its cpuset allows) is EINVAL: a job moved to a
     * smaller machine must still restore, so it keeps the CPUs it has, with a warning.
     */
    private static void setAffinity(int hostTid, String who, long[] want, long[] have, List<String> done) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mask = arena.allocate(Math.max(8L, 8L * want.length), 8);
            for (int i = 0; i < want.length; i++) {
                mask.setAtIndex(JAVA_LONG, i, want[i]);
            }
            long r = Sys.raw(Nr.SCHED_SETAFFINITY, hostTid, mask.byteSize(), mask.address());
            if (r == -Errno.EINVAL) {
                LOG.warning(() -> who + " ran on CPUs " + cpuList(want) + ", none of which exists here or is allowed"
                        + " to it; it keeps CPUs " + cpuList(have));
            } else if (r < 0) {
                throw new SysException("sched_setaffinity", (int) -r, hostTid, mask.byteSize(), mask.address());
            } else {
                done.add(who + " CPUs " + cpuList(want));
            }
        }
    }

    /**
     * oom_score_adj written from Cryo (lowering it below what the task inherited needs Cryo's
     * CAP_SYS_RESOURCE; without it the task keeps the higher value, with a warning); the
     * subreaper flag and THP opt-out injected in the leader. Call before the credentials.
     */
    static void restoreProcess(RestoreContext ctx, TaskCore core, List<String> done) {
        int hostPid = ctx.task().pid();
        RemoteSyscalls sys = ctx.syscalls();
        if (core.hasOomScoreAdj()) {
            int have = Integer.parseInt(ProcFiles.readString(hostPid, "oom_score_adj").strip());
            if (have != core.getOomScoreAdj()) {
                try {
                    Files.writeString(ProcFiles.dir(hostPid).resolve("oom_score_adj"), core.getOomScoreAdj() + "\n");
                    done.add("oom_score_adj " + core.getOomScoreAdj());
                } catch (java.nio.file.AccessDeniedException e) {
                    LOG.warning(() -> "process " + ctx.pid() + ": cannot lower oom_score_adj to " + core.getOomScoreAdj()
                            + " without CAP_SYS_RESOURCE; it keeps " + have);
                } catch (IOException e) {
                    throw new UncheckedIOException("writing /proc/" + hostPid + "/oom_score_adj", e);
                }
            }
        }
        if (core.getChildSubreaper()) {
            // a fresh task is never a subreaper: the flag is not inherited
            sys.call("prctl(PR_SET_CHILD_SUBREAPER)", Nr.PRCTL, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
            done.add("child subreaper");
        }
        // set either way: the stub inherits the opt-out of Cryo's caller, across exec too.
        // Bit 0 says disabled; the higher bits are the flags (PR_THP_DISABLE_EXCEPT_ADVISED)
        int thp = core.getThpDisable();
        // status shows THP_enabled 1 only when nothing is disabled: then a saved 0 needs no call
        if (thp != 0 || !"1".equals(ProcFiles.status(hostPid).get("THP_enabled"))) {
            sys.call("prctl(PR_SET_THP_DISABLE)", Nr.PRCTL, PR_SET_THP_DISABLE, thp & 1, thp & ~1, 0, 0);
        }
        if (thp != 0) {
            done.add("THP disabled (" + thp + ")");
        }
    }

    /**
     * The parent-death signal of each thread and dumpable, which a change of credentials clears:
     * call after them. The tree's root is Cryo's child here (its own parent was not
     * checkpointed): its signal would come as soon as the Cryo thread that forked it ends, so it
     * is left unset, with a note in the log.
     */
    static void restoreAfterCredentials(RestoreContext ctx, TaskCore core, List<String> done) {
        boolean parentIsCryo = ProcFiles.statField(ProcFiles.statFields(ctx.task().pid()), 4) == Sys.getpid();
        for (ThreadCore th : core.getThreadsList()) {
            if (th.getPdeathSignal() != 0 && parentIsCryo) {
                LOG.info(() -> "process " + ctx.pid() + ": thread " + th.getTid() + "'s parent-death signal "
                        + th.getPdeathSignal() + " not set: its parent was not checkpointed with it, and the signal"
                        + " would come when Cryo exits");
            } else if (th.getPdeathSignal() != 0) {
                ctx.thread(th.getTid()).syscalls().call("prctl(PR_SET_PDEATHSIG)", Nr.PRCTL, PR_SET_PDEATHSIG,
                        th.getPdeathSignal(), 0, 0, 0);
                done.add("thread " + th.getTid() + " parent-death signal " + th.getPdeathSignal());
            }
        }
        // a task that kept Cryo's ids (root's) kept its dumpable 1 too: only a change of ids resets it
        boolean idsChanged = !rootIds(core.getCreds());
        if (core.hasDumpable() && core.getDumpable() <= 1 && (core.getDumpable() == 0 || idsChanged)) {
            ctx.syscalls().call("prctl(PR_SET_DUMPABLE)", Nr.PRCTL, PR_SET_DUMPABLE, core.getDumpable(), 0, 0, 0);
            if (core.getDumpable() == 0) {
                done.add("not dumpable");
            }
        } else if (core.hasDumpable()) {
            // 2 (SUID_DUMP_ROOT) comes only from the fs.suid_dumpable sysctl on a change of credentials
            done.add("dumpable left as the credentials made it (saved " + core.getDumpable() + ")");
        }
        LOG.info(() -> "process " + ctx.pid() + ": " + (done.isEmpty() ? "no attribute differed from a fresh task's"
                : String.join(", ", done)));
    }

    /** The thread's timer slack from /proc (readable by root), or -1 when Cryo may not read it. */
    private static long currentSlack(int hostTid) {
        try {
            return Long.parseLong(ProcFiles.readString(hostTid, "timerslack_ns").strip());
        } catch (RuntimeException e) {
            return -1;
        }
    }

    /** Whether every id of {@code c} is 0, as the restore stub's are when Cryo runs as root. */
    private static boolean rootIds(dev.cryo.image.proto.Creds c) {
        return c.getUid() == 0 && c.getEuid() == 0 && c.getSuid() == 0 && c.getFsuid() == 0
                && c.getGid() == 0 && c.getEgid() == 0 && c.getSgid() == 0 && c.getFsgid() == 0 && Sys.geteuid() == 0;
    }

    /** "0-3,8" for a mask of 64-bit words. */
    static String cpuList(long[] words) {
        List<String> ranges = new ArrayList<>();
        int bits = 64 * words.length;
        for (int cpu = 0; cpu < bits; cpu++) {
            if ((words[cpu / 64] & (1L << (cpu % 64))) == 0) {
                continue;
            }
            int last = cpu;
            while (last + 1 < bits && (words[(last + 1) / 64] & (1L << ((last + 1) % 64))) != 0) {
                last++;
            }
            ranges.add(last == cpu ? Integer.toString(cpu) : cpu + "-" + last);
            cpu = last;
        }
        return ranges.isEmpty() ? "{}" : String.join(",", ranges);
    }
}
