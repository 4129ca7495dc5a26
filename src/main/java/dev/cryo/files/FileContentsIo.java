package dev.cryo.files;

import com.google.protobuf.ByteString;
import dev.cryo.core.Refusal;
import dev.cryo.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * Whole-file contents moved between a task's fd and the image through Cryo's own copy of the
 * fd (pidfd_getfd): no syscall injection per chunk, the task is not involved at all.
 */
public final class FileContentsIo {
    /** Files kept in the image are meant to be small; a bigger one is refused rather than bloating it. */
    static final long MAX_BYTES = 256L << 20;

    private FileContentsIo() {
    }

    static ByteString read(FdSource fd, long size) {
        if (size > MAX_BYTES) {
            throw new Refusal(fd.where() + ": " + size + " bytes, more than the " + (MAX_BYTES >> 20)
                    + " MiB Cryo keeps of such a file in the image");
        }
        int copy = fd.copy();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(Math.max(1, size));
            long n = Sys.pread(copy, buf.asSlice(0, size), 0);
            return ByteString.copyFrom(buf.asSlice(0, n).toArray(JAVA_BYTE));
        } finally {
            Sys.close(copy);
        }
    }

    /** Writes {@code data} at offset 0 of the task's fd {@code taskFd}. */
    public static void write(int pid, int taskFd, ByteString data) {
        if (data.isEmpty()) {
            return;
        }
        int copy = Sys.fdOf(pid, taskFd);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(data.size());
            buf.copyFrom(MemorySegment.ofArray(data.toByteArray()));
            Sys.pwrite(copy, buf, 0);
        } finally {
            Sys.close(copy);
        }
    }
}
