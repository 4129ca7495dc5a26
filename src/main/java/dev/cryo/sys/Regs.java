package dev.cryo.sys;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * x86_64 {@code struct user_regs_struct} (sys/user.h), as PTRACE_GETREGSET NT_PRSTATUS returns it:
 * 27 unsigned longs in the order of {@link #NAMES}.
 */
public final class Regs {
    /** Field names in kernel order; the image schema uses the same names. */
    public static final List<String> NAMES = List.of("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10",
            "r9", "r8", "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss",
            "fs_base", "gs_base", "ds", "es", "fs", "gs");
    public static final int SIZE = 27 * 8;
    private static final int R10 = 7, R9 = 8, R8 = 9, RAX = 10, RDX = 12, RSI = 13, RDI = 14, ORIG_RAX = 15, RIP = 16, RSP = 19;

    private final long[] values;

    public Regs(long[] values) {
        if (values.length != 27) {
            throw new IllegalArgumentException("user_regs_struct has 27 fields, got " + values.length);
        }
        this.values = values.clone();
    }

    public static Regs from(MemorySegment segment) {
        return new Regs(segment.asSlice(0, SIZE).toArray(JAVA_LONG));
    }

    public void into(MemorySegment segment) {
        MemorySegment.copy(MemorySegment.ofArray(values), 0, segment, 0, SIZE);
    }

    public long get(int index) {
        return values[index];
    }

    public long[] values() {
        return values.clone();
    }

    public Regs copy() {
        return new Regs(values);
    }

    public long rax() { return values[RAX]; }
    public long origRax() { return values[ORIG_RAX]; }
    public long rip() { return values[RIP]; }
    public long rsp() { return values[RSP]; }
    public void rax(long v) { values[RAX] = v; }
    public void origRax(long v) { values[ORIG_RAX] = v; }
    public void rip(long v) { values[RIP] = v; }

    /** Loads a system call: number in rax, arguments in rdi, rsi, rdx, r10, r8, r9 (the syscall ABI). */
    public void loadSyscall(int nr, long[] args) {
        int[] slots = {RDI, RSI, RDX, R10, R8, R9};
        values[RAX] = nr;
        values[ORIG_RAX] = -1; // not inside a syscall: the kernel must not apply restart fix-ups to it
        for (int i = 0; i < slots.length; i++) {
            values[slots[i]] = i < args.length ? args[i] : 0;
        }
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < values.length; i++) {
            sb.append(NAMES.get(i)).append('=').append(Long.toHexString(values[i])).append(i < 26 ? " " : "");
        }
        return sb.toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Regs r && Arrays.equals(values, r.values);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(values);
    }
}
