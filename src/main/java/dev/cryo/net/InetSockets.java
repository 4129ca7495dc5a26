package dev.cryo.net;

import com.google.protobuf.ByteString;
import dev.cryo.core.Checkpoint;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.files.FdHandler;
import dev.cryo.files.FdSource;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.image.proto.InetSocket;
import dev.cryo.image.proto.TcpConnection;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sockets;
import dev.cryo.sys.Structs;
import dev.cryo.sys.Sys;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.logging.Logger;

import static dev.cryo.sys.Sockets.SOL_SOCKET;
import static dev.cryo.sys.Sockets.SOL_TCP;

/**
 * TCP and UDP sockets, IPv4 and IPv6: unbound, bound, listening, connected. Everything is read
 * and set through Cryo's own copy of the socket (pidfd_getfd); only socket(2) itself runs in the
 * restored task, so the socket is the task's and lives in its network namespace.
 * <p>
 * An established TCP connection is saved only with --tcp-established: the network lock
 * ({@link NetworkLock}) first drops what the peer sends, then {@link TcpRepair} reads the
 * connection, and the socket stays in repair mode so that killing the task closes it without a
 * word to the peer. Restore rebuilds it and lifts the lock once the whole tree is back.
 */
public final class InetSockets implements FdHandler {
    private static final Logger LOG = Logger.getLogger("net");
    private static final int SO_TYPE = 3, SO_PROTOCOL = 38, SO_DOMAIN = 39;
    private static final int SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_CLOEXEC = 02000000, IPPROTO_TCP = 6, IPPROTO_UDP = 17;
    private static final int F_SETFL = 4;
    static final int TCP_ESTABLISHED = 1, TCP_CLOSE = 7, TCP_LISTEN = 10;
    private static final String[] TCP_STATES = {"?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
            "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"};
    /** Tree-wide (dump): Cryo's copies of the sockets it put into repair mode, and the lock's table. */
    private static final String REPAIRED = "tcp:repaired", LOCK = "tcp:lock";
    /** Tree-wide (restore): lock tables to lift once everything is back. */
    private static final String LOCKS_TO_LIFT = "tcp:locks";

    @Override
    public Set<FdKind> kinds() {
        return Set.of(FdKind.INET_SOCKET);
    }

    @Override
    public boolean handles(FdSource fd) {
        if (!fd.link().startsWith("socket:[")) {
            return false;
        }
        int copy = fd.copy();
        try {
            int domain = Sockets.getInt(copy, SOL_SOCKET, SO_DOMAIN);
            return domain == InetAddress.AF_INET || domain == InetAddress.AF_INET6;
        } finally {
            Sys.close(copy);
        }
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        int copy = fd.copy();
        boolean keepCopy = false;
        try {
            int family = Sockets.getInt(copy, SOL_SOCKET, SO_DOMAIN);
            int type = Sockets.getInt(copy, SOL_SOCKET, SO_TYPE);
            int protocol = Sockets.getInt(copy, SOL_SOCKET, SO_PROTOCOL);
            InetSocket.Builder s = InetSocket.newBuilder().setFamily(family).setType(type).setProtocol(protocol)
                    .setFilter(SocketFilter.read(copy, fd.where()))
                    .setLocal(ByteString.copyFrom(Sockets.name(copy)))
                    .setPeer(ByteString.copyFrom(Sockets.peer(copy)));
            if (type == SOCK_STREAM && protocol == IPPROTO_TCP) {
                keepCopy = dumpTcp(fd, copy, s, ctx);
            } else if (type == SOCK_DGRAM && protocol == IPPROTO_UDP) {
                s.addAllDatagrams(UdpQueue.peek(copy, fd.where()));
            } else {
                throw new Refusal(fd.where() + ": a socket of type " + type + ", protocol " + protocol
                        + "; only TCP and UDP sockets are supported");
            }
            s.addAllOptions(SocketOptions.read(copy, family, type, protocol, s.hasTcp()));
            e.setKind(FdKind.INET_SOCKET).setInet(s);
            LOG.fine(() -> fd.where() + ": " + describe(s.build()));
        } finally {
            if (!keepCopy) {
                Sys.close(copy);
            }
        }
    }

    /** Returns true if Cryo keeps {@code copy}: the socket was put into repair mode. */
    private static boolean dumpTcp(FdSource fd, int copy, InetSocket.Builder s, DumpContext ctx) {
        byte[] info = Sockets.get(copy, SOL_TCP, TcpRepair.TCP_INFO, 104);
        int state = info[0];
        s.setTcpState(state);
        switch (state) {
            case TCP_LISTEN -> {
                int waiting = Structs.le(info).getInt(24);  // tcpi_unacked: the accept queue
                if (waiting > 0) {
                    throw new Refusal(fd.where() + ": listening on " + InetAddress.of(Sockets.name(copy)) + " with " + waiting
                            + " connection(s) not yet accepted; those cannot be saved (try again when the server has accepted them)");
                }
                s.setBacklog(Structs.le(info).getInt(28));  // tcpi_sacked: the backlog
                return false;
            }
            case TCP_CLOSE -> {
                return false;
            }
            case TcpRepair.ESTABLISHED, TcpRepair.FIN_WAIT1, TcpRepair.FIN_WAIT2, TcpRepair.CLOSE_WAIT, TcpRepair.LAST_ACK -> {
                InetAddress local = InetAddress.of(s.getLocal().toByteArray()), peer = InetAddress.of(s.getPeer().toByteArray());
                if (NetNamespaces.ownNetwork(fd.pid())) {
                    // a network namespace of the tree's own (a container's): with both ends inside,
                    // frozen together, nobody else can send to them; no flag, no lock needed. A
                    // peer outside is kept away by the container's own lock (its veth is down)
                    if (!ctx.shared().containsKey(Checkpoint.TCP_ESTABLISHED) && !NetNamespaces.isLocal(fd.pid(), peer)) {
                        throw new Refusal(fd.where() + ": an established TCP connection " + local + " -> " + peer
                                + " whose peer is outside the container's network namespace; give --tcp-established to"
                                + " checkpoint it (its peer will only see a pause)");
                    }
                    TcpRepair.enter(copy);
                    repaired(ctx.shared()).add(copy);
                    s.setTcp(TcpRepair.read(copy, state, fd.where()));
                    return true;
                }
                if (!ctx.shared().containsKey(Checkpoint.TCP_ESTABLISHED)) {
                    throw new Refusal(fd.where() + ": an established TCP connection " + local + " -> " + peer
                            + (state == TCP_ESTABLISHED ? "" : " (" + TCP_STATES[state] + ")")
                            + "; give --tcp-established to checkpoint it (its peer will only see a pause)");
                }
                lock(ctx.shared(), new NetworkLock.Flow(local, peer));
                TcpRepair.enter(copy);
                repaired(ctx.shared()).add(copy);
                s.setTcp(TcpRepair.read(copy, state, fd.where()).toBuilder().setNetworkLock((String) ctx.shared().get(LOCK)));
                return true;
            }
            default -> throw new Refusal(fd.where() + ": a TCP socket in state " + TCP_STATES[Math.min(state, 12)]
                    + "; only listening, established (also half closed) and closed ones are supported");
        }
    }

    /** The tree's lock table: made for the first connection, and every other one gets a rule in it. */
    private static void lock(Map<String, Object> shared, NetworkLock.Flow flow) {
        String table = (String) shared.get(LOCK);
        if (table == null) {
            shared.put(LOCK, NetworkLock.lock((Integer) shared.getOrDefault(Checkpoint.ROOT_PID, 0), List.of(flow)));
        } else {
            NetworkLock.add(table, flow);
        }
    }

    /**
     * The tree is dead (killed) or running on: sockets of a dead tree were closed silently as
     * Cryo lets go of them, and the lock stays for restore; sockets of a running tree leave repair
     * mode and the lock goes.
     */
    @Override
    public void afterCheckpoint(Map<String, Object> shared, boolean killed) {
        RuntimeException failure = null;
        for (int copy : repaired(shared)) {
            try {
                if (!killed) {
                    TcpRepair.leaveQuietly(copy);
                }
                Sys.close(copy);
            } catch (RuntimeException e) {
                failure = failure == null ? e : failure;
            }
        }
        repaired(shared).clear();
        String table = (String) shared.get(LOCK);
        if (table != null && !killed) {
            NetworkLock.unlock(table);
        }
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        InetSocket s = e.getInet();
        int fd = (int) ctx.syscalls().call("socket", Nr.SOCKET, s.getFamily(), s.getType() | SOCK_CLOEXEC, s.getProtocol());
        int copy = Sys.fdOf(ctx.task().pid(), fd);
        try {
            byte[] local = s.getLocal().toByteArray();
            boolean bound = InetAddress.of(local).port() != 0;
            SocketOptions.applyBeforeBind(copy, s.getOptionsList());
            if (s.hasTcp()) {
                TcpRepair.restore(copy, local, s.getPeer().toByteArray(), s.getTcp(), s.getTcpState());
                if (!s.getTcp().getNetworkLock().isEmpty()) {
                    lifts(ctx.shared()).add(s.getTcp().getNetworkLock());
                }
                unfinished(ctx.shared()).add(new Unfinished(ctx.task().pid(), Sys.fdOf(ctx.task().pid(), fd), s));
            } else {
                if (bound) {
                    Sockets.bind(copy, local);
                }
                if (s.getTcpState() == TCP_LISTEN) {
                    Sockets.listen(copy, s.getBacklog());
                } else if (!s.getPeer().isEmpty()) {
                    Sockets.connect(copy, s.getPeer().toByteArray());  // UDP: just sets the default destination
                }
                SocketOptions.applyAfterBind(copy, s.getOptionsList(), false);
                UdpQueue.refill(ctx.task().pid(), local, s.getDatagramsList());
            }
            SocketFilter.attach(copy, s.getFilter());
            Sys.call("fcntl(F_SETFL)", Nr.FCNTL, copy, F_SETFL, e.getFlags() & FdSource.O_NONBLOCK);
        } finally {
            Sys.close(copy);
        }
        return fd;
    }

    /** An established connection restored in repair mode, held by Cryo's copy until the whole tree is back. */
    private record Unfinished(int pid, int copy, InetSocket socket) {
    }

    /**
     * Once every socket of the tree is back: connections leave repair mode (together, so none
     * talks to a peer not made yet), then the peers' packets are let through again.
     */
    @Override
    public void afterTreeRestore(RestoreContext ctx) {
        List<Unfinished> connections = unfinished(ctx.shared());
        try {
            for (Unfinished u : connections) {
                InetSocket s = u.socket();
                TcpRepair.finish(u.pid(), u.copy(), s.getLocal().toByteArray(), s.getPeer().toByteArray(), s.getTcp(), s.getTcpState());
                // repair mode forced address reuse while it lasted, and leaving it reset that
                SocketOptions.applyAfterBind(u.copy(), s.getOptionsList(), true);
            }
        } finally {
            connections.forEach(u -> Sys.close(u.copy()));
            connections.clear();
        }
        Set<String> tables = lifts(ctx.shared());
        tables.forEach(NetworkLock::unlock);
        tables.clear();
    }

    @SuppressWarnings("unchecked")
    private static List<Unfinished> unfinished(Map<String, Object> shared) {
        return (List<Unfinished>) shared.computeIfAbsent("tcp:unfinished", k -> new ArrayList<Unfinished>());
    }

    /** "TCP listening on 0.0.0.0:6379", for logs and inspect. */
    public static String describe(InetSocket s) {
        String proto = s.getProtocol() == IPPROTO_TCP ? "TCP" : "UDP";
        String local = s.getLocal().isEmpty() ? "?" : InetAddress.of(s.getLocal().toByteArray()).toString();
        if (s.getTcpState() == TCP_LISTEN) {
            return proto + " listening on " + local;
        }
        if (!s.getPeer().isEmpty()) {
            TcpConnection c = s.getTcp();
            return proto + " " + local + " -> " + InetAddress.of(s.getPeer().toByteArray())
                    + (s.hasTcp() && s.getTcpState() != TCP_ESTABLISHED ? " " + TCP_STATES[s.getTcpState()] : "")
                    + (s.hasTcp() ? " (" + c.getSendQueue().size() + " bytes to send, " + c.getRecvQueue().size() + " to read)" : "")
                    + (s.getDatagramsCount() > 0 ? " (" + s.getDatagramsCount() + " datagrams waiting)" : "");
        }
        return proto + (local.endsWith(":0") ? " unbound" : " bound to " + local)
                + (s.getDatagramsCount() > 0 ? " (" + s.getDatagramsCount() + " datagrams waiting)" : "");
    }

    @SuppressWarnings("unchecked")
    private static List<Integer> repaired(Map<String, Object> shared) {
        return (List<Integer>) shared.computeIfAbsent(REPAIRED, k -> new ArrayList<Integer>());
    }

    @SuppressWarnings("unchecked")
    private static Set<String> lifts(Map<String, Object> shared) {
        return (Set<String>) shared.computeIfAbsent(LOCKS_TO_LIFT, k -> new TreeSet<String>());
    }
}
