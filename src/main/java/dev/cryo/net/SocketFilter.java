package dev.cryo.net;

import com.google.protobuf.ByteString;
import dev.cryo.core.Refusal;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;
import dev.cryo.sys.SysException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * A classic BPF socket filter (SO_ATTACH_FILTER), read back with SO_GET_FILTER and attached
 * again. SO_GET_FILTER counts in instructions (struct sock_filter, 8 bytes each), not bytes: its
 * length is asked first, then exactly that much is read. An eBPF program (SO_ATTACH_BPF) cannot
 * be read back and is refused.
 */
final class SocketFilter {
    private static final int SOL_SOCKET = 1, SO_ATTACH_FILTER = 26, SO_GET_FILTER = 26, INSTRUCTION = 8;

    private SocketFilter() {
    }

    /** The filter's instructions, or empty if none is attached. */
    static ByteString read(int fd, String where) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment len = arena.allocate(JAVA_INT);
            len.set(JAVA_INT, 0, 0);
            long r = Sys.raw(Nr.GETSOCKOPT, fd, SOL_SOCKET, SO_GET_FILTER, 0, len.address());
            if (r == -Errno.EACCES || r == -Errno.EPERM) {
                throw new Refusal(where + ": an eBPF socket filter is attached (SO_ATTACH_BPF); it cannot be read back");
            }
            if (r < 0) {
                throw new SysException("getsockopt(SO_GET_FILTER)", (int) -r, fd);
            }
            int count = len.get(JAVA_INT, 0);
            if (count == 0) {
                return ByteString.EMPTY;
            }
            MemorySegment program = arena.allocate((long) count * INSTRUCTION, 8);
            len.set(JAVA_INT, 0, count);
            Sys.call("getsockopt(SO_GET_FILTER)", Nr.GETSOCKOPT, fd, SOL_SOCKET, SO_GET_FILTER, program.address(), len.address());
            return ByteString.copyFrom(program.toArray(JAVA_BYTE));
        }
    }

    /** Attaches {@code program} (struct sock_fprog: u16 count, then a pointer to the instructions). */
    static void attach(int fd, ByteString program) {
        if (program.isEmpty()) {
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment code = arena.allocate(program.size(), 8);
            code.copyFrom(MemorySegment.ofArray(program.toByteArray()));
            MemorySegment fprog = arena.allocate(16, 8);
            fprog.set(JAVA_SHORT, 0, (short) (program.size() / INSTRUCTION));
            fprog.set(JAVA_LONG, 8, code.address());
            Sys.call("setsockopt(SO_ATTACH_FILTER)", Nr.SETSOCKOPT, fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog.address(), 16);
        }
    }
}
