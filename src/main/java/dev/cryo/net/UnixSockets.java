package dev.cryo.net;

import com.google.protobuf.ByteString;
import dev.cryo.core.Checkpoint;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.files.FdHandler;
import dev.cryo.files.FdSource;
import dev.cryo.files.HiddenFds;
import dev.cryo.files.InFlightFiles;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageWriter;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.image.proto.PassedFiles;
import dev.cryo.image.proto.UnixPendingListener;
import dev.cryo.image.proto.UnixQueue;
import dev.cryo.image.proto.UnixQueuesImage;
import dev.cryo.image.proto.UnixSocketEnd;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sockets;
import dev.cryo.sys.Sys;
import dev.cryo.sys.SysException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;


/**
 * Unix sockets of every type: pairs connected inside the tree (socketpair, or connect + accept
 * on a listener), listening sockets, sockets bound by path or abstract name, and datagram
 * sockets connected to a named one of the tree. sock_diag names each socket's peer and name;
 * queues are peeked through Cryo's own copy of each socket (MSG_PEEK, stepping with SO_PEEK_OFF
 * for datagrams), never consumed, and saved once per socket in unix.img.
 * <p>
 * Restore makes a pair where its first end is restored and keeps the other end hidden until
 * its owner takes it. An accepted end has its listener's name, which only accept(2) can give: the
 * pair is made by connecting to the restored listener (or a temporary one bound to that name)
 * and accepting. Sockets bound by path first clear the stale socket file of the killed tree.
 * <p>
 * Connections waiting in a listener's accept queue are {@link PendingConnections}'.
 * <p>
 * Refused for now: descriptors in flight in stream sockets, connections not yet accepted whose
 * client is outside the tree or whose tree runs on, and peers outside the tree.
 */
public final class UnixSockets implements FdHandler {
    private static final int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_CLOEXEC = 02000000;
    private static final int FIONREAD = 0x541B, F_SETFL = 4, TCP_ESTABLISHED = 1, TCP_LISTEN = 10;
    private static final String QUEUES = "unix:queues", ENDS = "unix:ends", IMAGE = "unix:image", CONNECTS = "unix:connects";
    private static final String SAVED_ENDS = "unix:saved-ends";

    /** A datagram socket to connect once every socket of the tree exists. */
    private record Connect(int pid, int fd, String name) {
    }

    @Override
    public Set<FdKind> kinds() {
        return Set.of(FdKind.UNIX_SOCKET);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.link().startsWith("socket:[") && UnixDiag.query(fd.pid(), fd.bracketNumber()) != null;
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        UnixDiag.Info info = UnixDiag.query(fd.pid(), fd.bracketNumber());
        if (info == null) {
            throw new Refusal(fd.where() + ": socket fds are not supported yet");
        }
        String name = info.name();
        if (!name.isEmpty() && !name.startsWith("@") && !name.startsWith("/")) {
            throw new Refusal(fd.where() + ": a unix socket bound to the relative path " + name + "; only absolute paths"
                    + " and abstract names are supported");
        }
        int copy = fd.copy();
        try {
            if (!SocketFilter.read(copy, fd.where()).isEmpty()) {
                throw new Refusal(fd.where() + ": a socket filter is attached to a unix socket; that is not supported yet");
            }
        } finally {
            Sys.close(copy);
        }
        UnixSocketEnd.Builder end = UnixSocketEnd.newBuilder().setInode(info.inode()).setType(info.type())
                .setShutdown(info.shutdown()).setName(name);
        UnixNames.saveFile(fd.pid(), name, end);
        e.setKind(FdKind.UNIX_SOCKET).setPath(fd.link());
        if (info.state() == TCP_LISTEN) {
            // the backlog bounds the accept queue: the waiting connections must fit again
            e.setUnix(end.setListening(true).setBacklog(Math.max(info.wqueue(), info.pending())));
            ends(ctx.shared()).put(info.inode(), 0L);
            if (info.pending() > 0) {
                if (!ctx.shared().containsKey(Checkpoint.KILLS_TREE)) {
                    throw new Refusal(fd.where() + ": listening on " + name + " with " + info.pending() + " connection(s) not yet"
                            + " accepted; what their clients sent can only be read by accepting them, which cannot be undone for"
                            + " processes that run on: a checkpoint that stops the processes can save them (not -R/--leave-running)");
                }
                PendingConnections.add(ctx.shared(), new PendingConnections.Pending(fd.pid(), fd.where(), end.build(), info.clients(), fd.copy()));
            }
            return;
        }
        UnixDiag.Info peer = info.peer() == 0 ? null : UnixDiag.query(fd.pid(), info.peer());
        // a stream end whose peer was closed still counts as connected; a datagram socket with no
        // peer (sock_diag may call a bound one ESTABLISHED too) is on its own
        // a client whose connection waits in a listener's accept queue shows no peer either (the
        // waiting end has no inode until accepted): the listener's dump finds it by its inode
        boolean pair = info.state() == TCP_ESTABLISHED && (peer == null ? info.type() != SOCK_DGRAM : peer.peer() == info.inode());
        if (pair) {
            String peerName = peer == null ? "" : peer.name();
            if (!name.isEmpty() && !peerName.isEmpty()) {
                throw new Refusal(fd.where() + ": both ends of the connection have names (" + name + ", " + peerName
                        + "); that is not supported yet");
            }
            end.setPaired(true).setPeer(info.peer()).setPeerName(peerName);
        } else if (peer != null) {
            if (peer.name().isEmpty()) {
                throw new Refusal(fd.where() + ": connected to an unnamed socket that is not connected back; not supported");
            }
            end.setConnectedTo(peer.name()).setPeer(info.peer());
            connectedTo(ctx.shared()).put(info.inode(), peer.name());
        }
        e.setUnix(end);
        ends(ctx.shared()).put(info.inode(), info.peer());
        savedEnds(ctx.shared()).put(info.inode(), end.build());
        int queueCopy = fd.copy();
        try {
            queues(ctx.shared()).put(info.inode(), peek(queueCopy, fd.where(), info, pair, ctx));
        } finally {
            Sys.close(queueCopy);
        }
    }

    /**
     * What waits to be read at this end, in order, read without taking it, with the descriptors
     * in flight among it (each saved as the open file it is).
     */
    static UnixQueue peek(int copy, String where, UnixDiag.Info info, boolean pair, DumpContext ctx) {
        UnixQueue.Builder queue = UnixQueue.newBuilder().setInode(info.inode());
        try {
            int pending = Sockets.ioctlInt(copy, FIONREAD, "FIONREAD");
            if (pending <= 0) {
                return queue.build();
            }
            for (Sockets.Message m : Sockets.peekMessages(copy, Math.max(pending, 64 * 1024) + 1, info.type() == SOCK_STREAM)) {
                List<String> others = new ArrayList<>();
                List<Integer> passed = m.passedFds(others);
                try {
                    if (!others.isEmpty()) {
                        throw new Refusal(where + ": " + others.getFirst() + " waits in its queue; only descriptors"
                                + " (SCM_RIGHTS) can be saved with the messages");
                    }
                    if (!pair && m.source().length > 2) {
                        throw new Refusal(where + ": datagrams from a named socket wait in its queue; their sender"
                                + " cannot be restored yet");
                    }
                    if (!passed.isEmpty() && info.type() == SOCK_STREAM) {
                        // a peek returns them with all the bytes before them, but not where their own bytes start
                        throw new Refusal(where + ": descriptors in flight in a stream socket (SCM_RIGHTS); only"
                                + " datagram and seqpacket sockets keep the message boundaries needed to send them again");
                    }
                    if (!passed.isEmpty() && ctx == null) {
                        throw new Refusal(where + ": descriptors in flight (SCM_RIGHTS) in a connection not yet accepted;"
                                + " not supported");
                    }
                    if (!passed.isEmpty()) {
                        PassedFiles.Builder files = PassedFiles.newBuilder().setMessage(queue.getMessagesCount());
                        for (int inFlight : passed) {
                            files.addFiles(InFlightFiles.dump(inFlight, where, ctx));
                        }
                        queue.addPassed(files);
                    }
                    queue.addMessages(ByteString.copyFrom(m.data()));
                } finally {
                    passed.forEach(Sys::close);  // Cryo's copies, made by the peek
                }
            }
            return queue.build();
        } catch (SysException e) {
            throw new Refusal(where + ": cannot peek at its queue: " + e.getMessage());
        }
    }

    /**
     * Both ends of every pair must be in the tree: the other end would otherwise talk to nobody.
     * Connections not yet accepted are saved last, once nothing else can refuse the tree: by
     * accepting them on Cryo's copy of their listener, which cannot be undone.
     */
    @Override
    public void afterTreeDump(ImageWriter image, Map<String, Object> shared) {
        Map<Long, Long> ends = ends(shared);
        PendingConnections.refuseOutside(shared, ends);
        for (Map.Entry<Long, Long> end : ends.entrySet()) {
            String name = connectedTo(shared).get(end.getKey());
            if (name != null && !ends.containsKey(end.getValue())) {
                if (!shared.containsKey(Checkpoint.EXT_UNIX_SK)) {
                    throw new Refusal("unix datagram socket socket:[" + end.getKey() + "] is connected to " + name
                            + ", a socket outside the process tree; give --ext-unix-sk to connect it to that name again at restore");
                }
                continue;  // connected by name again at restore: the socket there must exist then
            }
            if (end.getValue() != 0 && !ends.containsKey(end.getValue())) {
                throw new Refusal("unix socket socket:[" + end.getKey() + "] is connected to socket:[" + end.getValue()
                        + "], which is outside the process tree; a connection to a process that is not checkpointed cannot be"
                        + " restored (its peer would not take part)");
            }
        }
        if (!ends.isEmpty()) {
            UnixQueuesImage.Builder b = UnixQueuesImage.newBuilder();
            queues(shared).values().forEach(b::addQueues);
            b.addAllPending(PendingConnections.acceptAll(shared));
            image.write(ImageKind.UNIX, 0, b.build());
        }
    }

    @Override
    public void afterCheckpoint(Map<String, Object> shared, boolean killed) {
        PendingConnections.afterCheckpoint(shared, killed);
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        UnixSocketEnd end = e.getUnix();
        int fd;
        UnixPendingListener pending = PendingConnections.of(ctx, end.getInode());
        if (pending != null) {
            fd = PendingConnections.fetch(ctx, pending, end.getInode());
            if (end.getListening()) {
                HiddenFds.register(ctx, "unix-listener:" + end.getName(), new HiddenFds.Place(ctx.pid(), e.getFd()));
            }
        } else if (end.getPaired()) {
            HiddenFds.Place waiting = HiddenFds.find(ctx, "unix:" + end.getInode());
            fd = waiting != null ? HiddenFds.fetch(ctx, waiting) : createPair(ctx, end);
        } else {
            fd = createAlone(ctx, e.getFd(), end);
        }
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

    /**
     * A socket that is not one end of a pair: bound, listening (registered so that accepted ends
     * can be made from it), or a datagram socket to connect once its peer exists.
     */
    private static int createAlone(RestoreContext ctx, int finalFd, UnixSocketEnd end) {
        RemoteSyscalls sys = ctx.syscalls();
        int fd = (int) sys.call("socket(AF_UNIX)", Nr.SOCKET, AF_UNIX, end.getType() | SOCK_CLOEXEC, 0);
        if (!end.getName().isEmpty()) {
            UnixNames.bind(sys, fd, end.getName(), end.getType(), end);
        }
        if (end.getListening()) {
            listenInTask(ctx, fd, end.getBacklog());
            HiddenFds.register(ctx, "unix-listener:" + end.getName(), new HiddenFds.Place(ctx.pid(), finalFd));
        } else if (!end.getConnectedTo().isEmpty()) {
            connects(ctx.shared()).add(new Connect(ctx.pid(), finalFd, end.getConnectedTo()));
        }
        UnixQueue queued = image(ctx).get(end.getInode());
        if (queued != null && queued.getMessagesCount() > 0) {
            // unnamed senders at checkpoint: a new unnamed socket, connected to the name inside
            // the task (its namespaces resolve the name), sends them through Cryo's copy of it
            int sender = (int) sys.call("socket(AF_UNIX)", Nr.SOCKET, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            try {
                connect(sys, sender, end.getName());
                refillThrough(ctx, sender, queued);
            } finally {
                sys.closeFd(sender);
            }
        }
        return fd;
    }

    /** Makes the pair, puts back what each end had to read, and hides (or closes) the other end. */
    private static int createPair(RestoreContext ctx, UnixSocketEnd end) {
        RemoteSyscalls sys = ctx.syscalls();
        int[] ends = end.getName().isEmpty() && end.getPeerName().isEmpty() ? socketpair(ctx, end.getType()) : acceptedPair(ctx, end);
        int mine = ends[0], other = ends[1];
        Map<Long, UnixQueue> queues = image(ctx);
        refillThrough(ctx, other, queues.get(end.getInode()));  // sent by the peer, read here
        refillThrough(ctx, mine, queues.get(end.getPeer()));    // sent from here, read by the peer
        if (end.getPeer() != 0) {
            HiddenFds.hide(ctx, "unix:" + end.getPeer(), other);
        } else {
            sys.closeFd(other); // the peer was closed before the checkpoint
        }
        return mine;
    }

    private static int[] socketpair(RestoreContext ctx, int type) {
        RemoteSyscalls sys = ctx.syscalls();
        RemoteAddr sv = sys.scratch().alloc(8);
        PeerCredentials.asSavedUser(ctx, () -> sys.call("socketpair", Nr.SOCKETPAIR, AF_UNIX, type | SOCK_CLOEXEC, 0, sv.value()));
        ByteBuffer pair = ByteBuffer.wrap(sys.scratch().read(sv, 8)).order(ByteOrder.LITTLE_ENDIAN);
        sys.scratch().reset();
        return new int[] {pair.getInt(), pair.getInt()};
    }

    /**
     * A pair one of whose ends was accepted from a listener, and so has the listener's name:
     * connect a new socket to that name and accept, from the restored listener if it is back
     * already, else from a temporary one bound to the name for the moment. Returns {this end, other end}.
     */
    private static int[] acceptedPair(RestoreContext ctx, UnixSocketEnd end) {
        RemoteSyscalls sys = ctx.syscalls();
        boolean acceptedHere = !end.getName().isEmpty();
        String name = acceptedHere ? end.getName() : end.getPeerName();
        HiddenFds.Place restored = HiddenFds.find(ctx, "unix-listener:" + name);
        boolean temporary = restored == null;
        int listener;
        if (temporary) {
            listener = (int) sys.call("socket(AF_UNIX)", Nr.SOCKET, AF_UNIX, end.getType() | SOCK_CLOEXEC, 0);
            UnixNames.bind(sys, listener, name, end.getType(), null);
            listenInTask(ctx, listener, 1);
        } else {
            listener = HiddenFds.fetch(ctx, restored);  // the same listening socket, for a moment in this task too
        }
        try {
            int client = (int) sys.call("socket(AF_UNIX)", Nr.SOCKET, AF_UNIX, end.getType() | SOCK_CLOEXEC, 0);
            connectInTask(ctx, client, name);
            int accepted = (int) sys.call("accept4", Nr.ACCEPT4, listener, 0, 0, SOCK_CLOEXEC);
            return acceptedHere ? new int[] {accepted, client} : new int[] {client, accepted};
        } finally {
            sys.closeFd(listener);
            if (temporary) {
                UnixNames.unlink(sys, name);
            }
        }
    }

    /**
     * listen(2) and connect(2) run in the task itself, not on Cryo's copy, as the task's saved
     * user: the kernel records the caller as the credentials (SO_PEERCRED) the other end of each
     * connection sees.
     */
    static void listenInTask(RestoreContext ctx, int fd, int backlog) {
        PeerCredentials.asSavedUser(ctx, () -> ctx.syscalls().call("listen", Nr.LISTEN, fd, backlog));
    }

    static void connectInTask(RestoreContext ctx, int fd, String name) {
        PeerCredentials.asSavedUser(ctx, () -> connect(ctx.syscalls(), fd, name));
    }

    /** connect(2) in the task as it is: a datagram socket's connect records no credentials. */
    private static long connect(RemoteSyscalls sys, int fd, String name) {
        byte[] address = UnixDiag.sockaddr(name);
        long r = sys.call("connect(" + name + ")", Nr.CONNECT, fd, sys.scratch().put(address).value(), address.length);
        sys.scratch().reset();
        return r;
    }

    /** Datagram sockets connect to their named peers once every socket of the tree exists. */
    @Override
    public void afterTreeRestore(RestoreContext ctx) {
        List<Connect> all = connects(ctx.shared());
        for (Connect c : all) {
            if (c.pid() == ctx.pid()) {
                try {
                    connect(ctx.syscalls(), c.fd(), c.name());
                } catch (dev.cryo.remote.RemoteSysException e) {
                    throw new dev.cryo.CryoException("fd " + c.fd() + " of process " + c.pid() + " was connected to " + c.name()
                            + ", and nothing answers there now: " + e.getMessage(), e);
                }
            }
        }
        all.removeIf(c -> c.pid() == ctx.pid());
    }

    /** Sends the messages of {@code queue} through Cryo's own copy of the task's socket {@code taskFd}. */
    static void refillThrough(RestoreContext ctx, int taskFd, UnixQueue queue) {
        if (queue == null || queue.getMessagesCount() == 0) {
            return;
        }
        int copy = Sys.fdOf(ctx.task().pid(), taskFd);
        try {
            refill(ctx, copy, queue);
        } finally {
            Sys.close(copy);
        }
    }

    /**
     * Sends every message of {@code queue} from Cryo's socket {@code sender} to its peer; descriptors in flight are made again inside the restoring task, passed
     * along with their message, and closed there.
     */
    private static void refill(RestoreContext ctx, int sender, UnixQueue queue) {
        Map<Integer, PassedFiles> passed = new HashMap<>();
        queue.getPassedList().forEach(p -> passed.put(p.getMessage(), p));
        for (int i = 0; i < queue.getMessagesCount(); i++) {
            byte[] data = queue.getMessages(i).toByteArray();
            PassedFiles files = passed.get(i);
            if (files == null) {
                Sockets.send(sender, data, new byte[0]);
                continue;
            }
            int[] inTask = new int[files.getFilesCount()], inCryo = new int[files.getFilesCount()];
            try {
                for (int f = 0; f < inTask.length; f++) {
                    inTask[f] = InFlightFiles.open(files.getFiles(f), ctx);
                    inCryo[f] = Sys.fdOf(ctx.task().pid(), inTask[f]);
                }
                Sockets.sendWithFds(sender, data, inCryo, new byte[0]);
            } finally {
                for (int f = 0; f < inTask.length; f++) {
                    if (inCryo[f] > 0) {
                        Sys.close(inCryo[f]);
                    }
                    if (inTask[f] > 0) {
                        ctx.syscalls().closeFd(inTask[f]);
                    }
                }
            }
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<Long, UnixQueue> image(RestoreContext ctx) {
        return (Map<Long, UnixQueue>) ctx.shared().computeIfAbsent(IMAGE, k -> {
            Map<Long, UnixQueue> byInode = new HashMap<>();
            if (ctx.image().has(ImageKind.UNIX, 0)) {
                ctx.image().read(ImageKind.UNIX, 0, UnixQueuesImage.parser()).getQueuesList().forEach(q -> byInode.put(q.getInode(), q));
            }
            return byInode;
        });
    }

    @SuppressWarnings("unchecked")
    private static Map<Long, UnixQueue> queues(Map<String, Object> shared) {
        return (Map<Long, UnixQueue>) shared.computeIfAbsent(QUEUES, k -> new TreeMap<Long, UnixQueue>());
    }

    @SuppressWarnings("unchecked")
    private static Map<Long, String> connectedTo(Map<String, Object> shared) {
        return (Map<Long, String>) shared.computeIfAbsent("unix:connected-to", k -> new HashMap<Long, String>());
    }

    @SuppressWarnings("unchecked")
    private static List<Connect> connects(Map<String, Object> shared) {
        return (List<Connect>) shared.computeIfAbsent(CONNECTS, k -> new ArrayList<Connect>());
    }

    @SuppressWarnings("unchecked")
    static Map<Long, UnixSocketEnd> savedEnds(Map<String, Object> shared) {
        return (Map<Long, UnixSocketEnd>) shared.computeIfAbsent(SAVED_ENDS, k -> new HashMap<Long, UnixSocketEnd>());
    }

    @SuppressWarnings("unchecked")
    private static Map<Long, Long> ends(Map<String, Object> shared) {
        return (Map<Long, Long>) shared.computeIfAbsent(ENDS, k -> new TreeMap<Long, Long>());
    }
}
