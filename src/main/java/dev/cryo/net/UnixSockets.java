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
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sockets;
import dev.cryo.sys.Sys;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;


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
    private static final int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 02000000;
    private static final int FIONREAD = 0x541B, F_SETFL = 4, TCP_ESTABLISHED = 1;
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
        int copy = fd.copy();
        try {
            int pending = Sockets.ioctlInt(copy, FIONREAD, "FIONREAD");
            if (pending <= 0) {
                return List.of();
            }
            List<ByteString> out = new ArrayList<>();
            for (Sockets.Message m : Sockets.peekMessages(copy, Math.max(pending, 64 * 1024) + 1, info.type() == SOCK_STREAM)) {
                if (m.control()) {
                    throw new Refusal(fd.where() + ": descriptors or credentials wait in its queue (SCM_RIGHTS);"
                            + " that is not supported yet");
                }
                out.add(ByteString.copyFrom(m.data()));
            }
            return out;
        } catch (dev.cryo.sys.SysException e) {
            throw new Refusal(fd.where() + ": cannot peek at its queue: " + e.getMessage());
        } finally {
            Sys.close(copy);
        }
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
        refill(ctx.pid(), other, queues.getOrDefault(end.getInode(), List.of()));  // sent by the peer, read here
        refill(ctx.pid(), mine, queues.getOrDefault(end.getPeer(), List.of()));    // sent from here, read by the peer
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
        try {
            for (ByteString m : messages) {
                Sockets.send(copy, m.toByteArray(), new byte[0]);
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
