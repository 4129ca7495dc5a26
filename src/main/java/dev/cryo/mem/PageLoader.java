package dev.cryo.mem;

import dev.cryo.image.ImageException;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Loads a restoring task's pages from the image's page files on all cores at once: Cryo maps
 * the page files (straight from the page cache) and writes them into the stopped task with
 * process_vm_writev, which needs no ptrace stop, so several threads can each take a slice. It is
 * one copy, like the task's own pread, but the first touch of the task's fresh memory, which
 * costs more than the copy, is spread over the cores instead of done by one.
 */
final class PageLoader {
    /** Each thread writes slices of at most this much: big enough to amortise the call, small enough to share out. */
    private static final long SLICE = 8L << 20;

    private PageLoader() {
    }

    /** Writes every piece into process {@code pid} (its host pid), reading the files as Cryo sees them. */
    static void load(int pid, List<PageSources.Piece> pieces) {
        if (pieces.isEmpty()) {
            return;
        }
        int threads = Math.max(1, Math.min(Runtime.getRuntime().availableProcessors(), 8));
        Map<String, FileChannel> files = new HashMap<>();
        try {
            List<Runnable> slices = new ArrayList<>();
            for (PageSources.Piece piece : pieces) {
                FileChannel file = files.computeIfAbsent(piece.file(), PageLoader::open);
                if (piece.offset() + piece.length() > size(file, piece.file())) {
                    throw new ImageException(piece.file() + ": ends before the pages for 0x" + Long.toHexString(piece.vaddr()));
                }
                for (long at = 0; at < piece.length(); at += SLICE) {
                    long vaddr = piece.vaddr() + at, offset = piece.offset() + at, length = Math.min(SLICE, piece.length() - at);
                    slices.add(() -> write(pid, vaddr, file, piece.file(), offset, length));
                }
            }
            if (threads == 1 || slices.size() == 1) {
                slices.forEach(Runnable::run);
                return;
            }
            ExecutorService pool = Executors.newFixedThreadPool(threads, r -> Thread.ofPlatform().daemon().name("cryo-page-load").unstarted(r));
            try {
                List<Future<?>> done = new ArrayList<>();
                slices.forEach(s -> done.add(pool.submit(s)));
                for (Future<?> f : done) {
                    f.get();
                }
            } catch (java.util.concurrent.ExecutionException e) {
                throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException("loading pages", e.getCause());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while loading pages", e);
            } finally {
                pool.shutdownNow();
            }
        } finally {
            for (FileChannel ch : files.values()) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // read-only
                }
            }
        }
    }

    /**
     * One slice, mapped only while it is written (so Cryo's resident set holds a few slices of
     * the page cache at a time, never the whole file).
     */
    private static void write(int pid, long vaddr, FileChannel file, String name, long offset, long length) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = file.map(FileChannel.MapMode.READ_ONLY, offset, length, arena);
            long done = 0;
            while (done < length) {
                done += Sys.processVmWrite(pid, vaddr + done, src.asSlice(done));
            }
        } catch (IOException e) {
            throw new ImageException(name + ": cannot read: " + e.getMessage(), e);
        }
    }

    private static FileChannel open(String file) {
        try {
            return FileChannel.open(Path.of(file), StandardOpenOption.READ);
        } catch (IOException e) {
            throw new ImageException(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    private static long size(FileChannel ch, String name) {
        try {
            return ch.size();
        } catch (IOException e) {
            throw new ImageException(name + ": cannot read: " + e.getMessage(), e);
        }
    }
}
