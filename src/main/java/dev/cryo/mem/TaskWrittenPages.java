package dev.cryo.mem;

import dev.cryo.CryoException;
import dev.cryo.core.Progress;
import dev.cryo.image.PageFileWriter;
import dev.cryo.image.proto.PageRun;
import dev.cryo.proc.Pagemap;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSysException;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import java.util.logging.Logger;

/**
 * The one-copy dump path: the frozen task writes its own pages into its page file through
 * injected pwritev(2) calls. The bytes go from its memory into the file in one copy, and none
 * of its pages is pinned (process_vm_readv pins each page it reads). The image still needs the
 * file's checksum: another thread reads the file back from the page cache right behind the
 * writes, which costs far less than reading the task's memory a second time. docs/PERFORMANCE.md
 * compares both paths.
 *
 * Taken for copies of {@link #MIN_BYTES} or more (below that, the calls to set it up cost more
 * than they save) when the task can open the file: not from another mount namespace that does
 * not see Cryo's image directory, nor as a user the directory does not let in. Cryo then copies
 * the pages itself.
 */
final class TaskWrittenPages {
    private static final Logger LOG = Logger.getLogger("mem");
    static final long MIN_BYTES = 32L << 20;
    private static final int PAGE = Pagemap.PAGE_SIZE;
    private static final int MAX_IOV = 1024;
    /** Per call: below MAX_RW_COUNT (2 GiB - 4 KiB), the most one write(2) moves. */
    private static final long MAX_CALL = 1L << 30;
    /**
     * Opening in the task: another mount namespace may have anything at the path, so nothing
     * that could block (a FIFO), follow a link, or take a terminal; {@link #sameFile} decides.
     */
    private static final int OPEN_FLAGS = 1 /* O_WRONLY */ | 0x80000 /* O_CLOEXEC */ | 0x800 /* O_NONBLOCK */
            | 0x20000 /* O_NOFOLLOW */ | 0x100 /* O_NOCTTY */;
    private static final int FOLLOW_BUFFER = 8 << 20;

    private TaskWrittenPages() {
    }

    /**
     * Whether to try it for {@code bytes}: CRYO_PAGE_PATH=task always, =read never, else by size
     * (the system property cryo.page-path, if set, wins: tests that run Cryo in their own JVM set it).
     */
    static boolean wanted(long bytes) {
        String path = System.getProperty("cryo.page-path", System.getenv().getOrDefault("CRYO_PAGE_PATH", ""));
        return switch (path) {
            case "task" -> bytes > 0;
            case "read" -> false;
            default -> bytes >= MIN_BYTES;
        };
    }

    /**
     * Has the task write the pages of {@code runs}, in order, into the empty file {@code out}.
     * Returns false, having written nothing, if the task cannot open the file.
     */
    static boolean write(RemoteSyscalls sys, int pid, List<PageRun> runs, PageFileWriter out, Progress progress) {
        if (fileSizeLimited(pid)) {
            // a write past RLIMIT_FSIZE would queue SIGXFSZ for the task, which the image would keep
            LOG.fine(() -> "process " + pid + " has a file size limit: Cryo copies the pages");
            return false;
        }
        int fd;
        try {
            fd = sys.open(out.path().toString(), OPEN_FLAGS, 0);
        } catch (RemoteSysException e) {
            LOG.fine(() -> "process " + pid + " cannot open its page file (" + e.getMessage() + "): Cryo copies the pages");
            return false;
        }
        try {
            if (!sameFile(pid, fd, out.path())) {
                LOG.fine(() -> "process " + pid + " sees another file at " + out.path() + ": Cryo copies the pages");
                return false;
            }
            long total = PageSaver.pages(runs) * PAGE;
            long t0 = System.nanoTime();
            Follower checksum = new Follower(out, total, progress);
            Thread follower = Thread.ofPlatform().daemon().name("cryo-page-checksum").start(checksum);
            try {
                writeAll(sys, pid, fd, runs, out.path());
            } catch (RuntimeException e) {
                checksum.cancel();
                join(follower);
                throw e;
            }
            long written = System.nanoTime() - t0;
            join(follower);
            checksum.rethrow();
            out.writtenElsewhere(total);
            LOG.fine(() -> "pages: process " + pid + " wrote " + total + " bytes itself in " + written / 1000
                    + " us, checksummed behind it in " + (System.nanoTime() - t0) / 1000 + " us");
            return true;
        } finally {
            sys.closeFd(fd);
        }
    }

    /** Whether the task's RLIMIT_FSIZE (resource 1) has a soft limit. */
    private static boolean fileSizeLimited(int pid) {
        return dev.cryo.task.TaskState.limits(pid)[1][0] != -1;
    }

    /** The task's fd {@code fd} is the very file Cryo made (same device and inode), not one of the same name elsewhere. */
    private static boolean sameFile(int pid, int fd, Path file) {
        try {
            Object theirs = Files.readAttributes(ProcFiles.dir(pid).resolve("fd/" + fd), "unix:dev,ino");
            Object mine = Files.readAttributes(file, "unix:dev,ino");
            return theirs.equals(mine);
        } catch (IOException e) {
            return false;
        }
    }

    /** pwritev calls of up to {@link #MAX_IOV} pieces and {@link #MAX_CALL} bytes each, going on after a short write. */
    private static void writeAll(RemoteSyscalls sys, int pid, int fd, List<PageRun> runs, Path file) {
        List<long[]> batch = new ArrayList<>();
        long batchBytes = 0;
        long offset = 0;
        for (PageRun run : runs) {
            long addr = run.getVaddr();
            long left = (long) run.getNrPages() * PAGE;
            while (left > 0) {
                long take = Math.min(left, MAX_CALL - batchBytes);
                batch.add(new long[] {addr, take});
                batchBytes += take;
                addr += take;
                left -= take;
                if (batch.size() == MAX_IOV || batchBytes == MAX_CALL) {
                    offset = pwritev(sys, pid, fd, batch, offset, file);
                    batch.clear();
                    batchBytes = 0;
                }
            }
        }
        if (!batch.isEmpty()) {
            pwritev(sys, pid, fd, batch, offset, file);
        }
    }

    /** Writes every piece at {@code offset}; returns the offset after them. */
    private static long pwritev(RemoteSyscalls sys, int pid, int fd, List<long[]> pieces, long offset, Path file) {
        int first = 0;
        long skip = 0; // bytes of pieces[first] already written
        while (first < pieces.size()) {
            int n = pieces.size() - first;
            ByteBuffer iov = ByteBuffer.allocate(16 * n).order(ByteOrder.LITTLE_ENDIAN);
            long asked = 0;
            for (int i = first; i < pieces.size(); i++) {
                long from = i == first ? skip : 0;
                iov.putLong(pieces.get(i)[0] + from).putLong(pieces.get(i)[1] - from);
                asked += pieces.get(i)[1] - from;
            }
            RemoteAddr at = sys.scratch().put(iov.array());
            long r;
            try {
                r = sys.raw(Nr.PWRITEV, fd, at.value(), n, offset, 0);
            } finally {
                sys.scratch().reset();
            }
            if (r == -Errno.EFAULT) {
                // the task may not read this piece itself (present pages of a PROT_NONE area, as a
                // JVM's heap has): Cryo copies it, through /proc/PID/mem, and the task goes on after it
                long[] piece = pieces.get(first);
                offset = cryoCopies(sys, piece[0] + skip, piece[1] - skip, offset, file);
                first++;
                skip = 0;
                continue;
            }
            if (r <= 0) {
                int errno = r == 0 ? Errno.EIO : (int) -r;
                throw new CryoException("process " + pid + " could not write its pages into " + file + ": "
                        + Errno.name(errno) + " (" + Errno.describe(errno) + ")");
            }
            offset += r;
            if (r == asked) {
                break;
            }
            for (long done = r; done > 0; ) { // a short write: on from where it stopped
                long rest = pieces.get(first)[1] - skip;
                if (done >= rest) {
                    done -= rest;
                    first++;
                    skip = 0;
                } else {
                    skip += done;
                    done = 0;
                }
            }
        }
        return offset;
    }

    /** Copies {@code [addr, addr + len)} of the task into the file at {@code offset} itself; returns the offset after it. */
    private static long cryoCopies(RemoteSyscalls sys, long addr, long len, long offset, Path file) {
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined();
             FileChannel out = FileChannel.open(file, java.nio.file.StandardOpenOption.WRITE)) {
            java.lang.foreign.MemorySegment buffer = arena.allocate(Math.min(len, FOLLOW_BUFFER), PAGE);
            for (long done = 0; done < len; ) {
                long n = Math.min(buffer.byteSize(), len - done);
                java.lang.foreign.MemorySegment chunk = buffer.asSlice(0, n);
                sys.task().readUnpinned(new RemoteAddr(addr + done), chunk);
                ByteBuffer data = chunk.asByteBuffer();
                while (data.hasRemaining()) {
                    out.write(data, offset + done + (n - data.remaining()));
                }
                done += n;
            }
            return offset + len;
        } catch (IOException e) {
            throw new UncheckedIOException("writing page data into " + file, e);
        }
    }

    private static void join(Thread t) {
        try {
            t.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while checksumming page data", e);
        }
    }

    /** Reads the file as it grows and adds it to the checksum, in order, until {@code total} bytes. */
    private static final class Follower implements Runnable {
        private final PageFileWriter out;
        private final long total;
        private final Progress progress;
        private volatile boolean cancelled;
        private volatile RuntimeException failure;

        Follower(PageFileWriter out, long total, Progress progress) {
            this.out = out;
            this.total = total;
            this.progress = progress;
        }

        void cancel() {
            cancelled = true;
        }

        void rethrow() {
            if (failure != null) {
                throw failure;
            }
        }

        @Override
        public void run() {
            try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined();
                 FileChannel in = FileChannel.open(out.path())) {
                ByteBuffer buffer = arena.allocate(FOLLOW_BUFFER, PAGE).asByteBuffer();
                long at = 0;
                while (at < total && !cancelled) {
                    buffer.clear().limit((int) Math.min(FOLLOW_BUFFER, total - at));
                    int n = in.read(buffer, at);
                    if (n <= 0) {
                        LockSupport.parkNanos(50_000); // not written yet
                        continue;
                    }
                    out.checksum(buffer.flip());
                    at += n;
                    progress.update("memory", at, total);
                }
            } catch (IOException e) {
                failure = new UncheckedIOException("reading back " + out.path() + " for its checksum", e);
            } catch (RuntimeException e) {
                failure = e;
            }
        }
    }
}
