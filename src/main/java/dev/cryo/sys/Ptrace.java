package dev.cryo.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * ptrace(2) requests Cryo uses, as typed calls. All must come from the thread that attached the
 * tracee (see DESIGN.md); the raw system call is used, so PEEK-style requests are not offered.
 */
public final class Ptrace {
    public static final int CONT = 7, KILL = 8, DETACH = 17, SYSCALL = 24, SETOPTIONS = 0x4200,
            GETEVENTMSG = 0x4201, GETSIGINFO = 0x4202, GETREGSET = 0x4204, SETREGSET = 0x4205,
            SEIZE = 0x4206, INTERRUPT = 0x4207, PEEKSIGINFO = 0x4209, GETSIGMASK = 0x420a,
            SETSIGMASK = 0x420b, SECCOMP_GET_FILTER = 0x420c, SECCOMP_GET_METADATA = 0x420d, GET_RSEQ_CONFIGURATION = 0x420f;
    public static final long O_TRACESYSGOOD = 1, O_TRACEFORK = 2, O_TRACEVFORK = 4, O_TRACECLONE = 8,
            O_TRACEEXIT = 0x40, O_EXITKILL = 0x100000,
            /** The tracee's seccomp filters do not apply while traced (needs CAP_SYS_ADMIN): injected calls pass them. */
            O_SUSPEND_SECCOMP = 0x200000;
    public static final int EVENT_FORK = 1, EVENT_CLONE = 3, EVENT_EXIT = 6, EVENT_STOP = 128;
    public static final int NT_PRSTATUS = 1, NT_X86_XSTATE = 0x202;
    public static final int PEEKSIGINFO_SHARED = 1;
    /** Largest xsave area the kernel may hand out; it trims the iovec to the real size. */
    private static final int XSTATE_MAX = 16384;

    private Ptrace() {
    }

    private static long ptrace(String name, int request, int pid, long addr, long data) {
        return Sys.call("ptrace(" + name + ")", Nr.PTRACE, request, pid, addr, data);
    }

    public static void seize(int pid, long options) {
        ptrace("SEIZE", SEIZE, pid, 0, options);
    }

    public static void interrupt(int pid) {
        ptrace("INTERRUPT", INTERRUPT, pid, 0, 0);
    }

    public static void setOptions(int pid, long options) {
        ptrace("SETOPTIONS", SETOPTIONS, pid, 0, options);
    }

    public static void cont(int pid, int signal) {
        ptrace("CONT", CONT, pid, 0, signal);
    }

    public static void syscall(int pid, int signal) {
        ptrace("SYSCALL", SYSCALL, pid, 0, signal);
    }

    public static void detach(int pid, int signal) {
        ptrace("DETACH", DETACH, pid, 0, signal);
    }

    public static long eventMessage(int pid) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment msg = arena.allocate(JAVA_LONG);
            ptrace("GETEVENTMSG", GETEVENTMSG, pid, 0, msg.address());
            return msg.get(JAVA_LONG, 0);
        }
    }

    public static Regs getRegs(int pid) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment regs = arena.allocate(Regs.SIZE, 8);
            MemorySegment iov = Iovec.of(arena, regs.address(), Regs.SIZE);
            ptrace("GETREGSET", GETREGSET, pid, NT_PRSTATUS, iov.address());
            return Regs.from(regs);
        }
    }

    public static void setRegs(int pid, Regs values) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment regs = arena.allocate(Regs.SIZE, 8);
            values.into(regs);
            MemorySegment iov = Iovec.of(arena, regs.address(), Regs.SIZE);
            ptrace("SETREGSET", SETREGSET, pid, NT_PRSTATUS, iov.address());
        }
    }

    /** The whole xsave area (FPU, SSE, AVX, AVX-512 ...) as the kernel lays it out. */
    public static byte[] getXstate(int pid) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment area = arena.allocate(XSTATE_MAX, 64);
            MemorySegment iov = Iovec.of(arena, area.address(), XSTATE_MAX);
            ptrace("GETREGSET", GETREGSET, pid, NT_X86_XSTATE, iov.address());
            return area.asSlice(0, Iovec.length(iov)).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        }
    }

    public static void setXstate(int pid, byte[] xstate) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment area = arena.allocate(xstate.length, 64);
            area.copyFrom(MemorySegment.ofArray(xstate));
            MemorySegment iov = Iovec.of(arena, area.address(), xstate.length);
            ptrace("SETREGSET", SETREGSET, pid, NT_X86_XSTATE, iov.address());
        }
    }

    public static long getSigmask(int pid) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mask = arena.allocate(JAVA_LONG);
            ptrace("GETSIGMASK", GETSIGMASK, pid, 8, mask.address());
            return mask.get(JAVA_LONG, 0);
        }
    }

    public static void setSigmask(int pid, long mask) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = arena.allocate(JAVA_LONG);
            m.set(JAVA_LONG, 0, mask);
            ptrace("SETSIGMASK", SETSIGMASK, pid, 8, m.address());
        }
    }

    /**
     * PTRACE_PEEKSIGINFO: the pending signals of one queue (the thread's own, or the process-wide
     * one when {@code shared}), each as the 128-byte siginfo_t.
     */
    public static java.util.List<byte[]> peekSiginfo(int pid, boolean shared) {
        java.util.List<byte[]> out = new java.util.ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment args = arena.allocate(16, 8); // struct ptrace_peeksiginfo_args { u64 off; u32 flags; s32 nr; }
            MemorySegment buf = arena.allocate(128L * 32, 8);
            while (true) {
                args.set(JAVA_LONG, 0, out.size());
                args.set(JAVA_INT, 8, shared ? PEEKSIGINFO_SHARED : 0);
                args.set(JAVA_INT, 12, 32);
                int n = (int) ptrace("PEEKSIGINFO", PEEKSIGINFO, pid, args.address(), buf.address());
                for (int i = 0; i < n; i++) {
                    out.add(buf.asSlice(128L * i, 128).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
                }
                if (n < 32) {
                    return out;
                }
            }
        }
    }

    /**
     * The thread's seccomp filters as BPF programs (struct sock_filter[]), the most recently
     * installed first, each with its flags (PTRACE_SECCOMP_GET_METADATA). Needs CAP_SYS_ADMIN.
     */
    public static java.util.List<SeccompFilter> seccompFilters(int tid) {
        java.util.List<SeccompFilter> out = new java.util.ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment meta = arena.allocate(16, 8);
            for (int i = 0; ; i++) {
                long n = Sys.raw(Nr.PTRACE, SECCOMP_GET_FILTER, tid, i, 0);
                if (n == -Errno.ENOENT) {
                    return out; // no filter at this index: all seen
                }
                if (n < 0) {
                    throw new SysException("ptrace(SECCOMP_GET_FILTER, " + i + ")", (int) -n, tid);
                }
                MemorySegment prog = arena.allocate(8 * n, 8);
                ptrace("SECCOMP_GET_FILTER", SECCOMP_GET_FILTER, tid, i, prog.address());
                meta.set(JAVA_LONG, 0, i);
                meta.set(JAVA_LONG, 8, 0);
                ptrace("SECCOMP_GET_METADATA", SECCOMP_GET_METADATA, tid, 16, meta.address());
                out.add(new SeccompFilter(prog.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), meta.get(JAVA_LONG, 8)));
            }
        }
    }

    /** One seccomp filter: its struct sock_filter[] and its SECCOMP_FILTER_FLAG_* flags. */
    public record SeccompFilter(byte[] program, long flags) {
    }

    /** struct ptrace_rseq_configuration { u64 rseq_abi_pointer; u32 rseq_abi_size; u32 signature; u32 flags; u32 pad; }. */
    public record RseqConfig(long pointer, int size, int signature, int flags) {
    }

    public static RseqConfig rseqConfiguration(int pid) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment conf = arena.allocate(24, 8);
            ptrace("GET_RSEQ_CONFIGURATION", GET_RSEQ_CONFIGURATION, pid, 24, conf.address());
            return new RseqConfig(conf.get(JAVA_LONG, 0), conf.get(JAVA_INT, 8), conf.get(JAVA_INT, 12), conf.get(JAVA_INT, 16));
        }
    }
}
