package dev.cryo.net;

import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.files.HiddenFds;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.UnixPendingConnection;
import dev.cryo.image.proto.UnixPendingListener;
import dev.cryo.image.proto.UnixQueue;
import dev.cryo.image.proto.UnixQueuesImage;
import dev.cryo.image.proto.UnixSocketEnd;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;
import dev.cryo.sys.SysException;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.logging.Logger;

/**
 * Connections waiting in a unix listener's accept queue, for {@link UnixSockets}. sock_diag
 * lists them by their clients' inodes, in accept order (the waiting end has no inode until
 * accepted, so a client's peer reads 0). What a client sent waits in that end, which only
 * accept(2) reaches, and that cannot be undone: only a checkpoint that kills the tree saves them,
 * and only once the whole tree is dumped, by accepting on Cryo's copy of the listener (a
 * checkpoint failing after that loses them, with a warning). Restore makes the listener and its
 * clients together, connecting them in order without accepting, and sends from each client
 * what it had sent.
 */
final class PendingConnections {
    private static final Logger LOG = Logger.getLogger("net");
    private static final int AF_UNIX = 1, SOCK_CLOEXEC = 02000000, SOCK_NONBLOCK = 04000;
    private static final String PENDING = "unix:pending", ACCEPTED = "unix:accepted", IMAGE = "unix:pending-image";

    private PendingConnections() {
    }

    /**
     * A listener with connections not yet accepted, to be saved once the whole tree is dumped.
     *
     * @param clients each waiting connection's client (inode), in accept order
     * @param copy    Cryo's own fd of the listener, to accept them on
     */
    record Pending(int pid, String where, UnixSocketEnd listener, List<Long> clients, int copy) {
    }

    /** A connection Cryo accepted at checkpoint (its fd) on a listener's behalf. */
    private record Accepted(String listener, int fd) {
    }

    /** Registers a listener whose waiting connections are to be saved once the tree is dumped. */
    static void add(Map<String, Object> shared, Pending p) {
        pending(shared).add(p);
    }

    /**
     * Refuses waiting connections whose client is not a socket of the tree ({@code ends}, by
     * inode): nothing would connect them again. Before anything is accepted.
     */
    static void refuseOutside(Map<String, Object> shared, Map<Long, Long> ends) {
        for (Pending p : pending(shared)) {
            long outside = p.clients().stream().filter(c -> c == 0 || !ends.containsKey(c)).count();
            if (outside > 0) {
                throw new Refusal(p.where() + ": listening on " + p.listener().getName() + " with " + p.clients().size()
                        + " connection(s) not yet accepted, " + outside + " of them from a client outside the process tree (or"
                        + " closed); those cannot be saved (try again when the server has accepted them)");
            }
        }
    }

    /** Accepts and saves the waiting connections of every registered listener: call last, once nothing else can refuse. */
    static List<UnixPendingListener> acceptAll(Map<String, Object> shared) {
        List<UnixPendingListener> out = new ArrayList<>();
        for (Pending p : pending(shared)) {
            out.add(acceptAll(p, shared));
        }
        return out;
    }

    /**
     * Accepts every connection waiting on {@code p}'s listener, in order, and reads what its
     * client sent: the waiting end's queue can be reached by no other way. Each accepted end
     * must be connected to the client sock_diag named at that place in the queue.
     */
    private static UnixPendingListener acceptAll(Pending p, Map<String, Object> shared) {
        UnixPendingListener.Builder out = UnixPendingListener.newBuilder().setListener(p.listener());
        Map<Long, UnixSocketEnd> saved = UnixSockets.savedEnds(shared);
        for (long client : p.clients()) {
            int fd;
            try {
                fd = (int) Sys.call("accept4", Nr.ACCEPT4, p.copy(), 0, 0, SOCK_CLOEXEC | SOCK_NONBLOCK);
            } catch (SysException e) {
                throw new Refusal(p.where() + ": accepting a connection not yet accepted, to save it: " + e.getMessage());
            }
            accepted(shared).add(new Accepted(p.where() + " (" + p.listener().getName() + ")", fd));
            long inode = inodeOf(fd);
            UnixDiag.Info embryo = UnixDiag.query(p.pid(), inode);
            if (embryo == null || embryo.peer() != client) {
                throw new Refusal(p.where() + ": the connection accepted to save it comes from socket:["
                        + (embryo == null ? "?" : embryo.peer()) + "], not from socket:[" + client + "] as sock_diag said");
            }
            UnixQueue sent = UnixSockets.peek(fd, p.where() + ", connection from socket:[" + client + "]", embryo, true, null);
            out.addConnections(UnixPendingConnection.newBuilder().setClient(saved.get(client)).setSent(sent));
        }
        return out.build();
    }

    private static long inodeOf(int fd) {
        try {
            String link = java.nio.file.Files.readSymbolicLink(java.nio.file.Path.of("/proc/self/fd/" + fd)).toString();
            return Long.parseLong(link.substring(link.indexOf('[') + 1, link.indexOf(']')));
        } catch (java.io.IOException | RuntimeException e) {
            throw new Refusal("cannot tell the inode of Cryo's fd " + fd + ": " + e.getMessage());
        }
    }

    /** Closes Cryo's copies; if the tree runs on after connections were accepted to save them, says they are lost. */
    static void afterCheckpoint(Map<String, Object> shared, boolean killed) {
        pending(shared).forEach(p -> Sys.close(p.copy()));
        pending(shared).clear();
        Map<String, Integer> lost = new TreeMap<>();
        for (Accepted a : accepted(shared)) {
            Sys.close(a.fd());
            lost.merge(a.listener(), 1, Integer::sum);
        }
        accepted(shared).clear();
        if (!killed) {
            lost.forEach((listener, n) -> LOG.warning(listener + ": the checkpoint failed after Cryo accepted " + n
                    + " connection(s) not yet accepted, to save them; they are closed now, and their clients see them closed"));
        }
    }


    /** The listener or client of waiting connections that inode {@code inode} was, or null. */
    static UnixPendingListener of(RestoreContext ctx, long inode) {
        return image(ctx).get(inode);
    }

    /**
     * The listener or a client of connections not yet accepted at checkpoint. The first of them
     * to be restored makes them all in its own task (the listener, then each client connected
     * in the saved order, never accepted, sending what it had sent) and hides them for their
     * owners; the kernel puts the waiting ends in the listener's queue in connect order. A
     * client made here for another process has this process's credentials as its SO_PEERCRED.
     */
    static int fetch(RestoreContext ctx, UnixPendingListener pending, long inode) {
        if (HiddenFds.find(ctx, "unix-pending:" + inode) == null) {
            make(ctx, pending);
        }
        return HiddenFds.fetch(ctx, HiddenFds.find(ctx, "unix-pending:" + inode));
    }

    private static void make(RestoreContext ctx, UnixPendingListener pending) {
        RemoteSyscalls sys = ctx.syscalls();
        UnixSocketEnd l = pending.getListener();
        int listener = (int) sys.call("socket(AF_UNIX)", Nr.SOCKET, AF_UNIX, l.getType() | SOCK_CLOEXEC, 0);
        UnixNames.bind(sys, listener, l.getName(), l.getType(), l);
        UnixSockets.listenInTask(ctx, listener, Math.max(l.getBacklog(), pending.getConnectionsCount()));
        int hidden = HiddenFds.hide(ctx, "unix-pending:" + l.getInode(), listener);
        // until its owner has it: accepted ends made meanwhile come from it
        HiddenFds.register(ctx, "unix-listener:" + l.getName(), new HiddenFds.Place(ctx.pid(), hidden));
        for (UnixPendingConnection c : pending.getConnectionsList()) {
            UnixSocketEnd end = c.getClient();
            int client = (int) sys.call("socket(AF_UNIX)", Nr.SOCKET, AF_UNIX, l.getType() | SOCK_CLOEXEC, 0);
            if (!end.getName().isEmpty()) {
                UnixNames.bind(sys, client, end.getName(), end.getType(), end);
            }
            UnixSockets.connectInTask(ctx, client, l.getName());
            UnixSockets.refillThrough(ctx, client, c.getSent());  // sent by the client, waiting for the server
            HiddenFds.hide(ctx, "unix-pending:" + end.getInode(), client);
        }
    }


    /** The listeners with connections not yet accepted, by the inode of the listener and of each client. */
    @SuppressWarnings("unchecked")
    private static Map<Long, UnixPendingListener> image(RestoreContext ctx) {
        return (Map<Long, UnixPendingListener>) ctx.shared().computeIfAbsent(IMAGE, k -> {
            Map<Long, UnixPendingListener> byInode = new HashMap<>();
            if (ctx.image().has(ImageKind.UNIX, 0)) {
                for (UnixPendingListener p : ctx.image().read(ImageKind.UNIX, 0, UnixQueuesImage.parser()).getPendingList()) {
                    byInode.put(p.getListener().getInode(), p);
                    p.getConnectionsList().forEach(c -> byInode.put(c.getClient().getInode(), p));
                }
            }
            return byInode;
        });
    }

    @SuppressWarnings("unchecked")
    private static List<Pending> pending(Map<String, Object> shared) {
        return (List<Pending>) shared.computeIfAbsent(PENDING, k -> new ArrayList<Pending>());
    }

    @SuppressWarnings("unchecked")
    private static List<Accepted> accepted(Map<String, Object> shared) {
        return (List<Accepted>) shared.computeIfAbsent(ACCEPTED, k -> new ArrayList<Accepted>());
    }
}
