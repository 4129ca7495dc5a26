package dev.cryo.mem;

import dev.cryo.image.ImageException;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Loads a restoring task's pages from the image's page files in slices that any thread may write:
 * Cryo maps a slice of a page file (straight from the page cache) and writes it into the stopped
 * task with process_vm_writev, which needs no ptrace stop. It is one copy, like the task's own
 * pread, but the first touch of the task's fresh memory, which costs more than the copy, is
 * spread over the cores instead of done by one, and goes on while the tracer thread restores
 * other processes (see RestoreContext#inBackground).
 */
final class PageLoader {
    /** Each slice is at most this much: big enough to amortise the call, small enough to share out. */
    private static final long SLICE = 8L << 20;

    private PageLoader() {
    }

    /**
     * The slices that write every piece into process {@code pid} (its host pid), reading the files
     * as Cryo sees them. A page file too short for its pieces is refused here, before any slice.
     * A big piece is cut into slices; small pieces next to each other in one file share one
     * (a process's pages are often many short runs: one mapping of the file for all of them).
     */
    static List<Runnable> slices(int pid, List<PageSources.Piece> pieces) {
        Map<String, Long> sizes = new HashMap<>();
        List<Runnable> slices = new ArrayList<>();
        Slice last = null;
        for (PageSources.Piece piece : pieces) {
            long size = sizes.computeIfAbsent(piece.file(), PageLoader::size);
            if (piece.offset() + piece.length() > size) {
                throw new ImageException(piece.file() + ": ends before the pages for 0x" + Long.toHexString(piece.vaddr()));
            }
            for (long at = 0; at < piece.length(); at += SLICE) {
                Part part = new Part(piece.vaddr() + at, piece.offset() + at, Math.min(SLICE, piece.length() - at));
                if (last == null || !last.takes(piece.file(), part)) {
                    last = new Slice(pid, piece.file());
                    slices.add(last::write);
                }
                last.parts.add(part);
            }
        }
        return slices;
    }

    /** {@code length} bytes for {@code vaddr}, at {@code offset} of a page file. */
    private record Part(long vaddr, long offset, long length) {
    }

    /**
     * Parts that follow each other in one page file, within {@link #SLICE} of it: mapped only
     * while they are written (so Cryo's resident set holds a few slices of the page cache at a
     * time, never the whole file). Each slice opens the file itself, so that no channel outlives
     * a restore that stops half-way.
     */
    private static final class Slice {
        private final int pid;
        private final String file;
        private final List<Part> parts = new ArrayList<>();

        Slice(int pid, String file) {
            this.pid = pid;
            this.file = file;
        }

        boolean takes(String file, Part part) {
            return this.file.equals(file) && part.offset() >= end() && part.offset() + part.length() - start() <= SLICE;
        }

        private long start() {
            return parts.getFirst().offset();
        }

        private long end() {
            return parts.getLast().offset() + parts.getLast().length();
        }

        void write() {
            try (FileChannel ch = FileChannel.open(Path.of(file), StandardOpenOption.READ); Arena arena = Arena.ofConfined()) {
                MemorySegment span = ch.map(FileChannel.MapMode.READ_ONLY, start(), end() - start(), arena);
                for (Part part : parts) {
                    MemorySegment src = span.asSlice(part.offset() - start(), part.length());
                    long done = 0;
                    while (done < part.length()) {
                        done += Sys.processVmWrite(pid, part.vaddr() + done, src.asSlice(done));
                    }
                }
            } catch (IOException e) {
                throw new ImageException(file + ": cannot read: " + e.getMessage(), e);
            }
        }
    }

    private static long size(String file) {
        try {
            return Files.size(Path.of(file));
        } catch (IOException e) {
            throw new ImageException(file + ": cannot read: " + e.getMessage(), e);
        }
    }
}
