package dev.cryo.pipes;

import com.google.protobuf.ByteString;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.files.FdHandler;
import dev.cryo.files.FdSource;
import dev.cryo.files.HiddenFds;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageWriter;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.image.proto.PipeData;
import dev.cryo.image.proto.PipeEnd;
import dev.cryo.image.proto.PipesImage;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.logging.Logger;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Pipes, with the bytes in flight. Dump peeks at the unread bytes without consuming them: Cryo
 * takes its own copy of the read end (pidfd_getfd) and tee()s it into a pipe of its own. The
 * bytes of each pipe are saved once, in pipes.img; each end records only which pipe it belongs
 * to. Restore makes the pipe where its first end is restored, refills it, and keeps the other
 * end hidden in that process until whoever owns it (this process or another) takes it.
 */
public final class Pipes implements FdHandler {
    private static final int POLLHUP = 0x10;
    private static final Logger LOG = Logger.getLogger("pipes");
    private static final int F_SETFL = 4, F_SETPIPE_SZ = 1031, F_GETPIPE_SZ = 1032, FIONREAD = 0x541B,
            SPLICE_F_NONBLOCK = 2, O_CLOEXEC = 02000000;
    private static final String SAVED = "pipes:saved", ENDS = "pipes:ends", IMAGE = "pipes:image";

    @Override
    public java.util.Set<FdKind> kinds() {
        return java.util.Set.of(FdKind.PIPE);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.link().startsWith("pipe:[");
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        long inode = fd.bracketNumber();
        boolean readEnd = (fd.flags() & FdSource.O_ACCMODE) == 0;
        e.setKind(FdKind.PIPE).setPath(fd.link()).setPipe(PipeEnd.newBuilder().setInode(inode).setReadEnd(readEnd));
        ends(ctx.shared()).merge(inode, readEnd ? 1 : 2, (a, b) -> a | b);
        Map<Long, PipeData> saved = saved(ctx.shared());
        if (readEnd && !saved.containsKey(inode)) {
            PipeData data = peek(fd, inode);
            saved.put(inode, data);
            if (data.getWritersGone()) {
                ends(ctx.shared()).merge(inode, 2, (a, b) -> a | b);  // closed by all, not held outside the tree
            }
        }
    }

    /** The unread bytes of the pipe whose read end {@code fd} is, read without taking them. */
    static PipeData peek(FdSource fd, long inode) {
        int copy = fd.copy();
        int[] mine = null;
        try (Arena arena = Arena.ofConfined()) {
            int size = (int) Sys.call("fcntl(F_GETPIPE_SZ)", Nr.FCNTL, copy, F_GETPIPE_SZ);
            MemorySegment count = arena.allocate(JAVA_INT);
            Sys.call("ioctl(FIONREAD)", Nr.IOCTL, copy, FIONREAD, count.address());
            int pending = count.get(JAVA_INT, 0);
            byte[] data = new byte[0];
            if (pending > 0) {
                MemorySegment fds = arena.allocate(JAVA_INT, 2);
                Sys.call("pipe2", Nr.PIPE2, fds.address(), O_CLOEXEC);
                mine = new int[] {fds.getAtIndex(JAVA_INT, 0), fds.getAtIndex(JAVA_INT, 1)};
                Sys.call("fcntl(F_SETPIPE_SZ)", Nr.FCNTL, mine[1], F_SETPIPE_SZ, size);
                long teed = Sys.call("tee", Nr.TEE, copy, mine[1], pending, SPLICE_F_NONBLOCK);
                MemorySegment buf = arena.allocate(Math.max(1, teed));
                long got = 0;
                while (got < teed) {
                    got += Sys.read(mine[0], buf.asSlice(got));
                }
                data = buf.asSlice(0, got).toArray(JAVA_BYTE);
            }
            LOG.fine(() -> fd.where() + ": " + pending + " bytes in flight, pipe size " + size);
            return PipeData.newBuilder().setInode(inode).setSize(size).setData(ByteString.copyFrom(data))
                    .setWritersGone(hungUp(copy)).build();
        } finally {
            Sys.close(copy);
            if (mine != null) {
                Sys.close(mine[0]);
                Sys.close(mine[1]);
            }
        }
    }

    /** poll(2) says POLLHUP on a read end once no write end is open anywhere. */
    private static boolean hungUp(int readEnd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pfd = arena.allocate(8, 4);
            pfd.set(JAVA_INT, 0, readEnd);
            pfd.set(java.lang.foreign.ValueLayout.JAVA_SHORT, 4, (short) 1); // POLLIN
            Sys.call("poll", Nr.POLL, pfd.address(), 1, 0);
            return (pfd.get(java.lang.foreign.ValueLayout.JAVA_SHORT, 6) & POLLHUP) != 0;
        }
    }

    /** Every pipe must have both ends in the tree: the other end would otherwise talk to nobody after restore. */
    @Override
    public void afterTreeDump(ImageWriter image, Map<String, Object> shared) {
        for (Map.Entry<Long, Integer> end : ends(shared).entrySet()) {
            if (end.getValue() != 3) {
                throw new Refusal("pipe:[" + end.getKey() + "] has its " + (end.getValue() == 1 ? "write" : "read")
                        + " end outside the process tree; a pipe to a process that is not checkpointed cannot be restored");
            }
        }
        if (!saved(shared).isEmpty()) {
            image.write(ImageKind.PIPES, 0, PipesImage.newBuilder().addAllPipes(saved(shared).values()).build());
        }
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        long inode = e.getPipe().getInode();
        String mineKey = "pipe:" + inode + (e.getPipe().getReadEnd() ? ":r" : ":w");
        HiddenFds.Place waiting = HiddenFds.find(ctx, mineKey);
        int fd = waiting != null ? HiddenFds.fetch(ctx, waiting) : create(e, ctx, inode);
        ctx.syscalls().call("fcntl(F_SETFL)", Nr.FCNTL, fd, F_SETFL, e.getFlags() & FdSource.O_NONBLOCK);
        return fd;
    }

    /** Makes the pipe, refills it, and hides the end that is not {@code e}'s for its owner. */
    private static int create(FdEntry e, RestoreContext ctx, long inode) {
        RemoteSyscalls sys = ctx.syscalls();
        RemoteAddr fds = sys.scratch().alloc(8);
        sys.call("pipe2", Nr.PIPE2, fds.value(), O_CLOEXEC);
        ByteBuffer pair = ByteBuffer.wrap(sys.scratch().read(fds, 8)).order(ByteOrder.LITTLE_ENDIAN);
        int readFd = pair.getInt();
        int writeFd = pair.getInt();
        sys.scratch().reset();
        PipeData data = image(ctx).get(inode);
        if (data != null) {
            sys.call("fcntl(F_SETPIPE_SZ)", Nr.FCNTL, writeFd, F_SETPIPE_SZ, data.getSize());
            if (!data.getData().isEmpty()) {
                refill(ctx.task().pid(), writeFd, data.getData());
            }
        }
        if (e.getPipe().getReadEnd()) {
            if (data != null && data.getWritersGone()) {
                sys.closeFd(writeFd);
            } else {
                HiddenFds.hide(ctx, "pipe:" + inode + ":w", writeFd);
            }
            return readFd;
        }
        HiddenFds.hide(ctx, "pipe:" + inode + ":r", readFd);
        return writeFd;
    }

    /** Cryo writes the bytes through its own copy of the write end: no injected call per chunk. */
    static void refill(int pid, int taskWriteFd, ByteString data) {
        int copy = Sys.fdOf(pid, taskWriteFd);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(data.size());
            buf.copyFrom(MemorySegment.ofArray(data.toByteArray()));
            long done = 0;
            while (done < data.size()) {
                done += Sys.call("write(pipe)", Nr.WRITE, copy, buf.address() + done, data.size() - done);
            }
        } finally {
            Sys.close(copy);
        }
    }

    @SuppressWarnings("unchecked")
    static Map<Long, PipeData> image(RestoreContext ctx) {
        return (Map<Long, PipeData>) ctx.shared().computeIfAbsent(IMAGE, k -> {
            Map<Long, PipeData> byInode = new HashMap<>();
            if (ctx.image().has(ImageKind.PIPES, 0)) {
                ctx.image().read(ImageKind.PIPES, 0, PipesImage.parser()).getPipesList()
                        .forEach(p -> byInode.put(p.getInode(), p));
            }
            return byInode;
        });
    }

    @SuppressWarnings("unchecked")
    static Map<Long, PipeData> saved(Map<String, Object> shared) {
        return (Map<Long, PipeData>) shared.computeIfAbsent(SAVED, k -> new TreeMap<Long, PipeData>());
    }

    @SuppressWarnings("unchecked")
    private static Map<Long, Integer> ends(Map<String, Object> shared) {
        return (Map<Long, Integer>) shared.computeIfAbsent(ENDS, k -> new TreeMap<Long, Integer>());
    }
}
