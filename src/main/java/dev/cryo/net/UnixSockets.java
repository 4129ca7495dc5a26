package dev.cryo.net;

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
import dev.cryo.image.proto.UnixQueue;
import dev.cryo.image.proto.UnixQueuesImage;
import dev.cryo.image.proto.UnixSocketEnd;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Connected, unnamed unix sockets: the ends of a socketpair, both in the tree (or one of them
 * closed), of any type, with what waits to be read at each end. sock_diag names each end's
 * peer; the queues are peeked through Cryo's own copy of each end (MSG_PEEK, stepping with
 * SO_PEEK_OFF for datagrams), never consumed, and saved once per end in unix.img. Restore makes
 * the pair where its first end is restored, refills both queues through Cryo's copies, and
 * keeps the other end hidden until its owner takes it. Queued descriptors (SCM_RIGHTS) and
 * named or listening sockets are refused for now.
 */
public final class UnixSockets implements FdHandler {
    private static final int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 02000000, SOL_SOCKET = 1, SO_PEEK_OFF = 42;
    private static final int MSG_PEEK = 2, MSG_DONTWAIT = 0x40, FIONREAD = 0x541B, F_SETFL = 4, TCP_ESTABLISHED = 1;
    private static final String QUEUES = "unix:queues", ENDS = "unix:ends", IMAGE = "unix:image";

    @Override
    public Set<FdKind> kinds() {
        return Set.of(FdKind.UNIX_SOCKET);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.link().startsWith("socket:[") && UnixDiag.query(fd.bracketNumber()) != null;
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        UnixDiag.Info info = UnixDiag.query(fd.bracketNumber());
        if (info == null) {
            throw new Refusal(fd.where() + ": socket fds are not supported yet");
        }
        if (!info.name().isEmpty()) {
            throw new Refusal(fd.where() + ": a unix socket bound to " + info.name() + "; named unix sockets are not supported yet");
        }
        if (info.state() != TCP_ESTABLISHED) {
            throw new Refusal(fd.where() + ": an unconnected unix socket (state " + info.state() + ") is not supported yet");
        }
        e.setKind(FdKind.UNIX_SOCKET).setPath(fd.link()).setUnix(UnixSocketEnd.newBuilder().setInode(info.inode())
                .setPeer(info.peer()).setType(info.type()).setShutdown(info.shutdown()));
        ends(ctx.shared()).put(info.inode(), info.peer());
        queues(ctx.shared()).put(info.inode(), peek(fd, info));
    }

    /** What waits to be read at this end, in order, read without taking it. */
    private static List<ByteString> peek(FdSource fd, UnixDiag.Info info) {
        List<ByteString> out = new ArrayList<>();
        int copy = fd.copy();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(JAVA_INT);
            Sys.call("ioctl(FIONREAD)", Nr.IOCTL, copy, FIONREAD, count.address());
            int pending = count.get(JAVA_INT, 0);
            if (pending <= 0) {
                return out;
            }
            boolean stream = info.type() == SOCK_STREAM;
            MemorySegment off = arena.allocate(JAVA_INT);
            int before = -1;
            if (!stream) {
                // the socket is the application's too: its own peek offset is put back afterwards
                MemorySegment len = arena.allocate(JAVA_INT);
                len.set(JAVA_INT, 0, 4);
                Sys.call("getsockopt(SO_PEEK_OFF)", Nr.GETSOCKOPT, copy, SOL_SOCKET, SO_PEEK_OFF, off.address(), len.address());
                before = off.get(JAVA_INT, 0);
                setPeekOffset(copy, off, 0);
            }
            try {
                int size = Math.max(pending, 64 * 1024) + 1;
                MemorySegment buf = arena.allocate(size);
                MemorySegment control = arena.allocate(256, 8);
                MemorySegment iov = dev.cryo.sys.Iovec.of(arena, buf.address(), size);
                MemorySegment msg = arena.allocate(56, 8); // struct msghdr
                long total = 0;
                while (stream ? total == 0 : true) {
                    msg.fill((byte) 0);
                    msg.set(JAVA_LONG, 16, iov.address());  // msg_iov
                    msg.set(JAVA_LONG, 24, 1);              // msg_iovlen
                    msg.set(JAVA_LONG, 32, control.address()); // msg_control
                    msg.set(JAVA_LONG, 40, 256);            // msg_controllen
                    long n = Sys.raw(Nr.RECVMSG, copy, msg.address(), MSG_PEEK | MSG_DONTWAIT);
                    if (n == -Errno.EAGAIN || n == 0 && stream) {
                        break;
                    }
                    if (n < 0) {
                        throw new Refusal(fd.where() + ": cannot peek at its queue: " + Errno.name((int) -n));
                    }
                    if (msg.get(JAVA_LONG, 40) != 0) {
                        throw new Refusal(fd.where() + ": descriptors or credentials wait in its queue (SCM_RIGHTS);"
                                + " that is not supported yet");
                    }
                    out.add(ByteString.copyFrom(buf.asSlice(0, n).toArray(JAVA_BYTE)));
                    total += n;
                }
            } finally {
                if (!stream) {
                    setPeekOffset(copy, off, before);
                }
            }
            return out;
        } finally {
            Sys.close(copy);
        }
    }

    private static void setPeekOffset(int fd, MemorySegment value, int offset) {
        value.set(JAVA_INT, 0, offset);
        Sys.call("setsockopt(SO_PEEK_OFF)", Nr.SETSOCKOPT, fd, SOL_SOCKET, SO_PEEK_OFF, value.address(), 4);
    }

    /** Both ends of every pair must be in the tree: the other end would otherwise talk to nobody. */
    @Override
    public void afterTreeDump(ImageWriter image, Map<String, Object> shared) {
        Map<Long, Long> ends = ends(shared);
        for (Map.Entry<Long, Long> end : ends.entrySet()) {
            if (end.getValue() != 0 && !ends.containsKey(end.getValue())) {
                throw new Refusal("unix socket socket:[" + end.getKey() + "] is connected to socket:[" + end.getValue()
                        + "], which is outside the process tree; sockets to processes not checkpointed are not supported yet");
            }
        }
        if (!ends.isEmpty()) {
            UnixQueuesImage.Builder b = UnixQueuesImage.newBuilder();
            queues(shared).forEach((ino, msgs) -> b.addQueues(UnixQueue.newBuilder().setInode(ino).addAllMessages(msgs)));
            image.write(ImageKind.UNIX, 0, b.build());
        }
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        UnixSocketEnd end = e.getUnix();
        HiddenFds.Place waiting = HiddenFds.find(ctx, "unix:" + end.getInode());
        int fd = waiting != null ? HiddenFds.fetch(ctx, waiting) : create(ctx, end);
        RemoteSyscalls sys = ctx.syscalls();
        int how = switch (end.getShutdown() & 3) {
            case 1 -> 0;  // receive side shut: SHUT_RD
            case 2 -> 1;  // send side shut: SHUT_WR
            case 3 -> 2;  // both
            default -> -1;
        };
        if (how >= 0) {
            sys.call("shutdown", Nr.SHUTDOWN, fd, how);
        }
        sys.call("fcntl(F_SETFL)", Nr.FCNTL, fd, F_SETFL, e.getFlags() & FdSource.O_NONBLOCK);
        return fd;
    }

    /** Makes the pair, puts back what each end had to read, and hides (or closes) the other end. */
    private static int create(RestoreContext ctx, UnixSocketEnd end) {
        RemoteSyscalls sys = ctx.syscalls();
        RemoteAddr sv = sys.scratch().alloc(8);
        sys.call("socketpair", Nr.SOCKETPAIR, AF_UNIX, end.getType() | SOCK_CLOEXEC, 0, sv.value());
        ByteBuffer pair = ByteBuffer.wrap(sys.scratch().read(sv, 8)).order(ByteOrder.LITTLE_ENDIAN);
        int mine = pair.getInt();
        int other = pair.getInt();
        sys.scratch().reset();
        Map<Long, List<ByteString>> queues = image(ctx);
        refill(ctx.task().pid(), other, queues.getOrDefault(end.getInode(), List.of()));  // sent by the peer, read here
        refill(ctx.task().pid(), mine, queues.getOrDefault(end.getPeer(), List.of()));    // sent from here, read by the peer
        if (end.getPeer() != 0) {
            HiddenFds.hide(ctx, "unix:" + end.getPeer(), other);
        } else {
            sys.closeFd(other); // the peer was closed before the checkpoint
        }
        return mine;
    }

    /** Sends {@code messages} through Cryo's own copy of the task's socket {@code taskFd}. */
    private static void refill(int pid, int taskFd, List<ByteString> messages) {
        if (messages.isEmpty()) {
            return;
        }
        int copy = Sys.fdOf(pid, taskFd);
        try (Arena arena = Arena.ofConfined()) {
            for (ByteString m : messages) {
                MemorySegment buf = arena.allocate(Math.max(1, m.size()));
                buf.asSlice(0, m.size()).copyFrom(MemorySegment.ofArray(m.toByteArray()));
                long done = 0;
                do {
                    done += Sys.call("sendto", Nr.SENDTO, copy, buf.address() + done, m.size() - done, 0, 0, 0);
                } while (done < m.size());
            }
        } finally {
            Sys.close(copy);
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<Long, List<ByteString>> image(RestoreContext ctx) {
        return (Map<Long, List<ByteString>>) ctx.shared().computeIfAbsent(IMAGE, k -> {
            Map<Long, List<ByteString>> byInode = new HashMap<>();
            if (ctx.image().has(ImageKind.UNIX, 0)) {
                ctx.image().read(ImageKind.UNIX, 0, UnixQueuesImage.parser()).getQueuesList()
                        .forEach(q -> byInode.put(q.getInode(), q.getMessagesList()));
            }
            return byInode;
        });
    }

    @SuppressWarnings("unchecked")
    private static Map<Long, List<ByteString>> queues(Map<String, Object> shared) {
        return (Map<Long, List<ByteString>>) shared.computeIfAbsent(QUEUES, k -> new TreeMap<Long, List<ByteString>>());
    }

    @SuppressWarnings("unchecked")
    private static Map<Long, Long> ends(Map<String, Object> shared) {
        return (Map<Long, Long>) shared.computeIfAbsent(ENDS, k -> new TreeMap<Long, Long>());
    }
}
