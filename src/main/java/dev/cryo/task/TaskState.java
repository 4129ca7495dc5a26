package dev.cryo.task;

import dev.cryo.CryoException;
import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.core.TaskPart;
import dev.cryo.core.ThreadHandle;
import dev.cryo.image.ImageException;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.Creds;
import dev.cryo.image.proto.Rlimit;
import dev.cryo.image.proto.Rseq;
import dev.cryo.image.proto.Sched;
import dev.cryo.image.proto.TaskCore;
import dev.cryo.image.proto.ThreadCore;
import dev.cryo.ns.UserNamespace;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSysException;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.SyscallRestart;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Ptrace;
import dev.cryo.sys.Regs;
import dev.cryo.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.Arrays;

import static dev.cryo.sys.Structs.le;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The task itself: registers and xsave state, identity (comm, session), credentials, resource
 * limits, scheduling, personality, rseq, robust futex list and clear_child_tid; the attributes
 * a fresh task would take from its restorer are {@link TaskAttributes}'.
 */
public final class TaskState implements TaskPart {
    private static final Logger LOG = Logger.getLogger("task");
    private static final int RLIMIT_COUNT = 16;
    private static final int PR_SET_NAME = 15, PR_GET_SECUREBITS = 27, PR_SET_SECUREBITS = 28,
            PR_GET_TID_ADDRESS = 40, PR_SET_NO_NEW_PRIVS = 38, PR_CAPBSET_DROP = 24, PR_CAP_AMBIENT = 47,
            PR_CAP_AMBIENT_RAISE = 2;
    private static final int SECBIT_NO_SETUID_FIXUP = 1 << 2;
    private static final int SCHED_RESET_ON_FORK = 0x40000000;
    private static final int LINUX_CAPABILITY_VERSION_3 = 0x20080522;

    @Override
    public String name() {
        return "task";
    }

    // ------------------------------------------------------------------ dump

    @Override
    public void dump(DumpContext ctx) {
        int pid = ctx.pid();
        RemoteSyscalls sys = ctx.syscalls();
        List<String> stat = ProcFiles.statFields(pid);
        TaskCore.Builder core = TaskCore.newBuilder().setPid(pid)
                .setPpid((int) ProcFiles.statField(stat, 4)).setPgid((int) ProcFiles.statField(stat, 5))
                .setSid((int) ProcFiles.statField(stat, 6))
                .setCreds(creds(ctx))
                .setPersonality((int) sys.call("personality", Nr.PERSONALITY, 0xffffffffL));
        long[][] limits = limits(pid);
        for (int r = 0; r < RLIMIT_COUNT; r++) {
            core.addRlimits(Rlimit.newBuilder().setResource(r).setCur(limits[r][0]).setMax(limits[r][1]));
        }
        for (ThreadHandle t : ctx.threads()) {
            core.addThreads(thread(pid, t));
        }
        TaskAttributes.dumpProcess(ctx, core);
        core.setXfeatures(Cpu.xfeatures(core.getThreads(0).getXstate().toByteArray()));
        ctx.inventory().setXfeatures(core.getXfeatures());
        ctx.stats().threads.addAndGet(core.getThreadsCount());
        ctx.image().write(ImageKind.CORE, pid, core.build());
        LOG.info(() -> "process " + pid + " (" + core.getThreads(0).getComm() + "): " + core.getThreadsCount()
                + " thread(s) with registers and " + core.getThreads(0).getXstate().size()
                + " bytes of xsave state each, credentials, " + RLIMIT_COUNT + " rlimits");
    }

    /**
     * The soft and hard limit (-1: unlimited) of each resource, in resource order, from /proc/PID/limits: one
     * read instead of sixteen injected prlimit64 calls, which count while the process is frozen.
     * The file lists the limits in resource order, values as stored, "unlimited" for
     * RLIM_INFINITY.
     */
    public static long[][] limits(int pid) {
        List<String> lines = ProcFiles.readString(pid, "limits").lines().skip(1).toList();
        if (lines.size() < RLIMIT_COUNT) {
            throw new IllegalStateException("/proc/" + pid + "/limits lists " + lines.size() + " limits, expected " + RLIMIT_COUNT);
        }
        long[][] out = new long[RLIMIT_COUNT][];
        for (int r = 0; r < RLIMIT_COUNT; r++) {
            // "Max stack size            8388608              unlimited            bytes": the
            // name is padded to 26 columns, the values to 21
            String[] f = lines.get(r).substring(26).trim().split("\\s+");
            out[r] = new long[] {limit(f[0]), limit(f[1])};
        }
        return out;
    }

    private static long limit(String value) {
        return value.equals("unlimited") ? -1L : Long.parseUnsignedLong(value);
    }

    private static ThreadCore thread(int pid, ThreadHandle t) {
        int tid = t.tid();
        RemoteSyscalls sys = t.syscalls();
        ThreadCore.Builder th = ThreadCore.newBuilder().setTid(tid)
                .setComm(ProcFiles.readString(pid, "task/" + tid + "/comm").strip())
                .setRegs(Cpu.toImage(SyscallRestart.forImage(sys.savedRegs())))
                .setXstate(com.google.protobuf.ByteString.copyFrom(t.task().getXstate()))
                .setSched(sched(tid));
        RemoteAddr out = sys.scratch().alloc(8);
        sys.call("prctl(PR_GET_TID_ADDRESS)", Nr.PRCTL, PR_GET_TID_ADDRESS, out.value());
        th.setClearChildTid(le(sys.scratch().read(out, 8)).getLong());
        sys.scratch().reset();
        Ptrace.RseqConfig rseq = Ptrace.rseqConfiguration(tid);
        if (rseq.pointer() != 0) {
            th.setRseq(Rseq.newBuilder().setPointer(rseq.pointer()).setSize(rseq.size())
                    .setSignature(rseq.signature()).setFlags(rseq.flags()));
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment head = arena.allocate(JAVA_LONG);
            MemorySegment len = arena.allocate(JAVA_LONG);
            Sys.call("get_robust_list", Nr.GET_ROBUST_LIST, tid, head.address(), len.address());
            th.setRobustList(head.get(JAVA_LONG, 0)).setRobustListLen(len.get(JAVA_LONG, 0));
        }
        TaskAttributes.dumpThread(pid, t, th);
        return th.build();
    }


    /** The process's credentials; threads that differ (a raw setuid in one thread) are refused. */
    private static Creds creds(DumpContext ctx) {
        int pid = ctx.pid();
        Creds leader = creds(pid, ProcFiles.status(pid), ctx.syscalls());
        for (ThreadHandle t : ctx.threads().subList(1, ctx.threads().size())) {
            Map<String, String> st = ProcFiles.keyValues(ProcFiles.readString(pid, "task/" + t.tid() + "/status"));
            if (!creds(pid, st, t.syscalls()).equals(leader)) {
                throw new dev.cryo.core.Refusal("thread " + t.tid() + " of process " + pid
                        + " has credentials of its own; per-thread credentials are not supported");
            }
        }
        return leader;
    }

    /**
     * The ids are turned into the ones of the process's own user namespace (status shows them in
     * Cryo's), which restore's setresuid inside it takes; without a user namespace of its own the
     * maps are every id to itself.
     */
    private static Creds creds(int pid, Map<String, String> st, RemoteSyscalls sys) {
        String uidMap = ProcFiles.readString(pid, "uid_map"), gidMap = ProcFiles.readString(pid, "gid_map");
        int[] uid = Arrays.stream(st.get("Uid").split("\\s+")).mapToInt(u -> UserNamespace.inside(uidMap, Long.parseLong(u))).toArray();
        int[] gid = Arrays.stream(st.get("Gid").split("\\s+")).mapToInt(g -> UserNamespace.inside(gidMap, Long.parseLong(g))).toArray();
        Creds.Builder c = Creds.newBuilder()
                .setUid(uid[0]).setEuid(uid[1]).setSuid(uid[2]).setFsuid(uid[3])
                .setGid(gid[0]).setEgid(gid[1]).setSgid(gid[2]).setFsgid(gid[3])
                .setCapInh(Long.parseUnsignedLong(st.get("CapInh"), 16))
                .setCapPrm(Long.parseUnsignedLong(st.get("CapPrm"), 16))
                .setCapEff(Long.parseUnsignedLong(st.get("CapEff"), 16))
                .setCapBnd(Long.parseUnsignedLong(st.get("CapBnd"), 16))
                .setCapAmb(Long.parseUnsignedLong(st.getOrDefault("CapAmb", "0"), 16))
                .setNoNewPrivs("1".equals(st.get("NoNewPrivs")))
                .setSecurebits((int) sys.call("prctl(PR_GET_SECUREBITS)", Nr.PRCTL, PR_GET_SECUREBITS));
        String groups = st.getOrDefault("Groups", "").strip();
        if (!groups.isEmpty()) {
            for (String g : groups.split("\\s+")) {
                c.addGroups(UserNamespace.inside(gidMap, Long.parseLong(g)));
            }
        }
        return c.build();
    }

    private static Sched sched(int pid) {
        int policy = (int) Sys.call("sched_getscheduler", Nr.SCHED_GETSCHEDULER, pid);
        int priority;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment param = arena.allocate(JAVA_INT);
            Sys.call("sched_getparam", Nr.SCHED_GETPARAM, pid, param.address());
            priority = param.get(JAVA_INT, 0);
        }
        // the raw getpriority returns 20 - nice, so that it is never negative
        int nice = 20 - (int) Sys.call("getpriority", Nr.GETPRIORITY, 0 /* PRIO_PROCESS */, pid);
        return Sched.newBuilder().setPolicy(policy & ~SCHED_RESET_ON_FORK)
                .setResetOnFork((policy & SCHED_RESET_ON_FORK) != 0).setPriority(priority).setNice(nice).build();
    }

    // ------------------------------------------------------------------ verify

    @Override
    public void verify(ImageReader image, int pid, java.util.Map<String, Object> options) {
        TaskCore core = image.read(ImageKind.CORE, pid, TaskCore.parser());
        long here = image.inventory().getXfeatures();
        long cpu = HostCpu.xfeatures();
        long missing = core.getXfeatures() & ~cpu;
        if (cpu != 0 && missing != 0) {
            throw new ImageException("this CPU lacks xsave features 0x" + Long.toHexString(missing)
                    + " that process " + pid + " was using (saved XCR0 0x" + Long.toHexString(here)
                    + ", this CPU 0x" + Long.toHexString(cpu) + ")");
        }
        verifyRestorerPrivileges(pid, core.getCreds(), ownUserNamespace(image));
    }

    /** Whether the image is a container's that had a user namespace of its own. */
    private static boolean ownUserNamespace(ImageReader image) {
        return image.has(ImageKind.CONTAINER, 0) && (image.read(ImageKind.CONTAINER, 0,
                dev.cryo.image.proto.ContainerImage.parser()).getNamespaces() & dev.cryo.ns.Namespaces.NEWUSER) != 0;
    }

    /**
     * A restored task starts from Cryo's own no_new_privs and capability bounding set, and can
     * only narrow them: a restore from a caller that set no_new_privs (setpriv, systemd's
     * NoNewPrivileges=, a container runtime) or dropped capabilities from its bounding set would
     * hand the process restrictions it did not have. Refused before anything is made. (In a
     * user namespace of its own the bounding set starts full again, whatever Cryo's.)
     */
    private static void verifyRestorerPrivileges(int pid, Creds saved, boolean ownUserNamespace) {
        Map<String, String> self = ProcFiles.status(Sys.getpid());
        if (!saved.getNoNewPrivs() && "1".equals(self.get("NoNewPrivs"))) {
            throw new CryoException("process " + pid + " did not have no_new_privs, but cryo restore runs with it set (by its"
                    + " caller: setpriv --no-new-privs, systemd's NoNewPrivileges=, a container runtime); the restored process"
                    + " would inherit it and could never drop it. Run the restore without it");
        }
        long lacking = ownUserNamespace ? 0 : saved.getCapBnd() & ~HostCpu.boundingSet();
        if (lacking != 0) {
            throw new CryoException("process " + pid + " had " + Capabilities.names(lacking) + " in its capability bounding set,"
                    + " which cryo restore's own lacks (dropped by its caller); a restored process cannot get them back."
                    + " Run the restore with them");
        }
    }

    // ------------------------------------------------------------------ restore

    @Override
    public void restore(RestoreContext ctx) {
        int pid = ctx.pid();
        RemoteSyscalls sys = ctx.syscalls();
        TaskCore core = ctx.image().read(ImageKind.CORE, pid, TaskCore.parser());
        restoreLimits(ctx.task().pid(), core.getRlimitsList());
        sys.call("personality", Nr.PERSONALITY, core.getPersonality() & 0xffffffffL);
        List<String> attributes = new java.util.ArrayList<>();
        for (ThreadCore th : core.getThreadsList()) {
            restoreThread(ctx.thread(th.getTid()).syscalls(), th);
            TaskAttributes.restoreThread(ctx.thread(th.getTid()), th, attributes);
            ctx.wakeUpCpu(th.getTid(), Cpu.fromImage(th.getRegs()), th.getXstate().toByteArray());
        }
        TaskAttributes.restoreProcess(ctx, core, attributes);
        // credentials last, in every thread: once a thread is no longer root it may not do the rest
        for (ThreadCore th : core.getThreadsList()) {
            restoreCreds(ctx.thread(th.getTid()).syscalls(), core.getCreds());
        }
        TaskAttributes.restoreAfterCredentials(ctx, core, attributes);
        LOG.info(() -> "process " + pid + " (" + core.getThreads(0).getComm() + "): " + core.getThreadsCount()
                + " thread(s), credentials, limits restored");
    }

    /**
     * The limits that differ from those the task came with, set by Cryo with prlimit64 on the
     * task (the kernel lets whoever shares its ids, or holds CAP_SYS_RESOURCE, do what the task
     * itself could): not sixteen injected calls of ~0.2 ms each.
     */
    private static void restoreLimits(int hostPid, List<Rlimit> saved) {
        long[][] now = limits(hostPid);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment lim = arena.allocate(16, 8);
            for (Rlimit r : saved) {
                if (now[r.getResource()][0] == r.getCur() && now[r.getResource()][1] == r.getMax()) {
                    continue;
                }
                lim.set(JAVA_LONG, 0, r.getCur());
                lim.set(JAVA_LONG, 8, r.getMax());
                try {
                    Sys.call("prlimit64(" + r.getResource() + ")", Nr.PRLIMIT64, hostPid, r.getResource(), lim.address(), 0);
                } catch (dev.cryo.sys.SysException e) {
                    throw new CryoException("cannot set resource limit " + r.getResource() + " to " + r.getCur() + "/"
                            + r.getMax() + " (above what Cryo itself may grant?): " + e.getMessage(), e);
                }
            }
        }
    }

    private static void restoreThread(RemoteSyscalls sys, ThreadCore th) {
        restoreSched(sys, th.getSched());
        if (th.hasRseq()) {
            Rseq r = th.getRseq();
            sys.call("rseq", Nr.RSEQ, r.getPointer(), r.getSize(), 0, r.getSignature() & 0xffffffffL);
        }
        if (th.getRobustList() != 0) {
            sys.call("set_robust_list", Nr.SET_ROBUST_LIST, th.getRobustList(), th.getRobustListLen());
        }
        sys.call("set_tid_address", Nr.SET_TID_ADDRESS, th.getClearChildTid());
        RemoteAddr name = sys.scratch().putString(th.getComm());
        sys.call("prctl(PR_SET_NAME)", Nr.PRCTL, PR_SET_NAME, name.value());
        sys.scratch().reset();
    }

    private static void restoreSched(RemoteSyscalls sys, Sched s) {
        RemoteAddr param = sys.scratch().alloc(4);
        sys.task().write(param, le(new byte[4]).putInt(s.getPriority()).array());
        sys.call("sched_setscheduler", Nr.SCHED_SETSCHEDULER, 0,
                s.getPolicy() | (s.getResetOnFork() ? SCHED_RESET_ON_FORK : 0), param.value());
        sys.scratch().reset();
        sys.call("setpriority", Nr.SETPRIORITY, 0, 0, s.getNice());
    }

    /** Whether the task's supplementary groups (injected getgroups) are the saved ones, in any order. */
    private static boolean sameGroups(RemoteSyscalls sys, Creds c) {
        int n = (int) sys.call("getgroups(0)", Nr.GETGROUPS, 0, 0);
        RemoteAddr buf = sys.scratch().alloc(4L * Math.max(1, n));
        sys.call("getgroups", Nr.GETGROUPS, n, buf.value());
        ByteBuffer now = le(sys.scratch().read(buf, 4 * n));
        java.util.Set<Integer> have = new java.util.HashSet<>();
        for (int i = 0; i < n; i++) {
            have.add(now.getInt());
        }
        return have.equals(new java.util.HashSet<>(c.getGroupsList()));
    }

    /**
     * Credentials last: once the task is no longer root, it may not do the rest. The bounding set
     * shrinks first (needs CAP_SETPCAP); SECBIT_NO_SETUID_FIXUP keeps the capabilities across the
     * uid change so that capset can then set exactly the saved ones.
     */
    private static void restoreCreds(RemoteSyscalls sys, Creds c) {
        for (int cap = 0; cap < 64; cap++) {
            if ((c.getCapBnd() & (1L << cap)) == 0 && (HostCpu.boundingSet() & (1L << cap)) != 0) {
                sys.call("prctl(PR_CAPBSET_DROP)", Nr.PRCTL, PR_CAPBSET_DROP, cap);
            }
        }
        sys.call("prctl(PR_SET_SECUREBITS)", Nr.PRCTL, PR_SET_SECUREBITS, c.getSecurebits() | SECBIT_NO_SETUID_FIXUP);
        ByteBuffer groups = le(new byte[Math.max(4, 4 * c.getGroupsCount())]);
        c.getGroupsList().forEach(groups::putInt);
        RemoteAddr g = sys.scratch().put(groups.array());
        long r = sys.raw(Nr.SETGROUPS, c.getGroupsCount(), g.value());
        if (r == -Errno.EPERM && sameGroups(sys, c)) {
            // a user namespace whose setgroups is denied (one a user other than root made) keeps the
            // groups its first task came with, which are the saved ones
        } else if (r < 0) {
            throw new RemoteSysException(sys.task().pid(), "setgroups(" + c.getGroupsList() + ")", (int) -r, c.getGroupsCount());
        }
        sys.call("setresgid", Nr.SETRESGID, c.getGid(), c.getEgid(), c.getSgid());
        sys.call("setresuid", Nr.SETRESUID, c.getUid(), c.getEuid(), c.getSuid());
        sys.call("prctl(PR_SET_SECUREBITS)", Nr.PRCTL, PR_SET_SECUREBITS, c.getSecurebits());
        // struct __user_cap_header_struct { u32 version; int pid; } + two __user_cap_data_struct
        ByteBuffer header = le(new byte[8]).putInt(LINUX_CAPABILITY_VERSION_3).putInt(0);
        ByteBuffer data = le(new byte[24]);
        data.putInt((int) c.getCapEff()).putInt((int) c.getCapPrm()).putInt((int) c.getCapInh());
        data.putInt((int) (c.getCapEff() >>> 32)).putInt((int) (c.getCapPrm() >>> 32)).putInt((int) (c.getCapInh() >>> 32));
        RemoteAddr h = sys.scratch().put(header.array());
        RemoteAddr d = sys.scratch().put(data.array());
        sys.call("capset", Nr.CAPSET, h.value(), d.value());
        for (int cap = 0; cap < 64; cap++) {
            if ((c.getCapAmb() & (1L << cap)) != 0) {
                sys.call("prctl(PR_CAP_AMBIENT_RAISE)", Nr.PRCTL, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
            }
        }
        if (c.getNoNewPrivs()) {
            sys.call("prctl(PR_SET_NO_NEW_PRIVS)", Nr.PRCTL, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        }
        sys.scratch().reset();
    }
}
