package dev.cryo.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.VarHandle;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/** struct iovec { void *iov_base; size_t iov_len; } — readv(2). */
public final class Iovec {
    public static final StructLayout LAYOUT = MemoryLayout.structLayout(
            JAVA_LONG.withName("iov_base"), JAVA_LONG.withName("iov_len"));
    private static final VarHandle BASE = LAYOUT.varHandle(groupElement("iov_base"));
    private static final VarHandle LEN = LAYOUT.varHandle(groupElement("iov_len"));

    private Iovec() {
    }

    public static MemorySegment of(Arena arena, long base, long length) {
        MemorySegment iov = arena.allocate(LAYOUT);
        BASE.set(iov, 0L, base);
        LEN.set(iov, 0L, length);
        return iov;
    }

    public static long length(MemorySegment iov) {
        return (long) LEN.get(iov, 0L);
    }
}
