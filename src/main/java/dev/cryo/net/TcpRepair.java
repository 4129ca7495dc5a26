package dev.cryo.net;

import com.google.protobuf.ByteString;
import dev.cryo.CryoException;
import dev.cryo.core.Refusal;
import dev.cryo.image.proto.TcpConnection;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sockets;
import dev.cryo.sys.Structs;
import dev.cryo.sys.Sys;

import java.nio.ByteBuffer;
import java.util.Arrays;

import static dev.cryo.sys.Sockets.SOL_SOCKET;
import static dev.cryo.sys.Sockets.SOL_TCP;

/**
 * An established TCP connection read and rebuilt through TCP_REPAIR (linux/tcp.h), on Cryo's
 * own copy of the socket. In repair mode the kernel lets Cryo read and set the sequence
 * numbers, peek at both queues and put data back into them without anything going on the wire;
 * a socket closed in repair mode goes away silently, so the killed task sends no FIN or RST.
 * <p>
 * Restore order matters: sequence numbers before connect (which then only sets the state),
 * options before any byte is queued, the window after the queues (it is checked against rcv_nxt).
 */
final class TcpRepair {
    static final int TCP_INFO = 11, TCP_MAXSEG = 2, TCP_REPAIR = 19, TCP_REPAIR_QUEUE = 20, TCP_QUEUE_SEQ = 21,
            TCP_REPAIR_OPTIONS = 22, TCP_TIMESTAMP = 24, TCP_REPAIR_WINDOW = 29;
    private static final int NO_QUEUE = 0, RECV_QUEUE = 1, SEND_QUEUE = 2;
    private static final int REPAIR_ON = 1, REPAIR_OFF = 0, REPAIR_OFF_NO_WINDOW_PROBE = -1;
    private static final int SIOCINQ = 0x541B, SIOCOUTQ = 0x5411, SIOCOUTQNSD = 0x894B;
    private static final int TCPOPT_MSS = 2, TCPOPT_WINDOW = 3, TCPOPT_SACK_PERM = 4, TCPOPT_TIMESTAMP = 8;
    private static final int TCPI_OPT_TIMESTAMPS = 1, TCPI_OPT_SACK = 2, TCPI_OPT_WSCALE = 4;
    private static final int SO_SNDBUF = 7, SO_RCVBUF = 8, SO_SNDBUFFORCE = 32, SO_RCVBUFFORCE = 33;
    private static final int SHUT_WR = 1, IPPROTO_TCP = 6, TH_FIN = 0x01, TH_ACK = 0x10;

    private TcpRepair() {
    }

    /** Puts the socket into repair mode: from now on it sends nothing, and closing it is silent. */
    static void enter(int fd) {
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR, REPAIR_ON);
    }

    /** Leaves repair mode as if nothing happened (no window probe): a checkpoint that lets the task run on. */
    static void leaveQuietly(int fd) {
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR, REPAIR_OFF_NO_WINDOW_PROBE);
    }

    static final int ESTABLISHED = 1, FIN_WAIT1 = 4, FIN_WAIT2 = 5, CLOSE_WAIT = 8, LAST_ACK = 9;

    /** States TCP_REPAIR can rebuild: established, and half closed in either direction (or both, waiting for the last ACK). */
    static boolean restorable(int state) {
        return state == ESTABLISHED || state == FIN_WAIT1 || state == FIN_WAIT2 || state == CLOSE_WAIT || state == LAST_ACK;
    }

    /** This end sent its FIN (shutdown for writing, or close). */
    private static boolean finSent(int state) {
        return state == FIN_WAIT1 || state == FIN_WAIT2 || state == LAST_ACK;
    }

    /** The peer's FIN arrived: it counts in rcv_nxt. */
    private static boolean finReceived(int state) {
        return state == CLOSE_WAIT || state == LAST_ACK;
    }

    /** Reads the connection of a socket in repair mode (in TCP state {@code state}). */
    static TcpConnection read(int fd, int state, String where) {
        byte[] info = Sockets.get(fd, SOL_TCP, TCP_INFO, 104);
        TcpConnection.Builder c = TcpConnection.newBuilder()
                .setOptions(info[5]).setSndWscale(info[6] & 0xf).setRcvWscale((info[6] >> 4) & 0xf)
                .setMss(Sockets.getInt(fd, SOL_TCP, TCP_MAXSEG))
                .setTimestamp(Sockets.getInt(fd, SOL_TCP, TCP_TIMESTAMP));
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, SEND_QUEUE);
        c.setSendSeq(Sockets.getInt(fd, SOL_TCP, TCP_QUEUE_SEQ));
        int outq = Sockets.ioctlInt(fd, SIOCOUTQ, "SIOCOUTQ");
        c.setUnsent(Sockets.ioctlInt(fd, SIOCOUTQNSD, "SIOCOUTQNSD"));
        // a FIN not yet acknowledged counts in SIOCOUTQ, but it is no byte to peek
        c.setSendQueue(peekAll(fd, outq, finSent(state) ? 1 : 0, "send", where));
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, RECV_QUEUE);
        c.setRecvSeq(Sockets.getInt(fd, SOL_TCP, TCP_QUEUE_SEQ));
        c.setRecvQueue(peekAll(fd, Sockets.ioctlInt(fd, SIOCINQ, "SIOCINQ"), 0, "receive", where));
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, NO_QUEUE);
        c.setWindow(ByteString.copyFrom(Sockets.get(fd, SOL_TCP, TCP_REPAIR_WINDOW, 20)));
        return c.build();
    }

    /** The whole queue: {@code length} bytes, of which up to {@code notData} may be a FIN rather than data. */
    private static ByteString peekAll(int fd, int length, int notData, String queue, String where) {
        if (length <= 0) {
            return ByteString.EMPTY;
        }
        byte[] data = Sockets.peek(fd, length);
        if (data.length != length && data.length < length - notData) {
            throw new Refusal(where + ": its " + queue + " queue holds " + length + " bytes, but only " + data.length
                    + " could be read (urgent data?)");
        }
        return ByteString.copyFrom(data);
    }

    /**
     * Rebuilds the connection on a new, unbound socket: {@code local}/{@code peer} are raw
     * sockaddrs. The socket stays in repair mode, silent, until {@link #finish}.
     */
    static void restore(int fd, byte[] local, byte[] peer, TcpConnection c, int state) {
        int sendQueued = c.getSendQueue().size(), recvQueued = c.getRecvQueue().size();
        // a FIN has a sequence number of its own: the data ends one before it
        int sendStart = c.getSendSeq() - (finSent(state) ? 1 : 0) - sendQueued;
        int recvStart = c.getRecvSeq() - (finReceived(state) ? 1 : 0) - recvQueued;
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR, REPAIR_ON);
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, SEND_QUEUE);
        Sockets.setInt(fd, SOL_TCP, TCP_QUEUE_SEQ, sendStart);
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, RECV_QUEUE);
        Sockets.setInt(fd, SOL_TCP, TCP_QUEUE_SEQ, recvStart);
        Sockets.bind(fd, local);      // repair mode forces address reuse: a restored listener may hold the port
        Sockets.connect(fd, peer);    // in repair mode: no handshake, just ESTABLISHED
        Sockets.set(fd, SOL_TCP, TCP_REPAIR_OPTIONS, options(c));
        Sockets.setInt(fd, SOL_TCP, TCP_TIMESTAMP, c.getTimestamp());
        fitBuffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, sendQueued);
        fitBuffer(fd, SO_RCVBUF, SO_RCVBUFFORCE, recvQueued);
        if (recvQueued > 0) {
            Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, RECV_QUEUE);
            Sockets.send(fd, c.getRecvQueue().toByteArray(), new byte[0]);
        }
        if (sendQueued > 0) {
            // queued in repair mode counts as sent: the retransmit timer sends it, unsent part included
            Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, SEND_QUEUE);
            Sockets.send(fd, c.getSendQueue().toByteArray(), new byte[0]);
        }
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, NO_QUEUE);
        Sockets.set(fd, SOL_TCP, TCP_REPAIR_WINDOW, window(c, recvStart + recvQueued));
        if (finSent(state) && !finReceived(state)) {
            // in repair mode the FIN is queued as sent, after the data: FIN_WAIT1 (and FIN_WAIT2 once acked again)
            Sys.call("shutdown(SHUT_WR)", Nr.SHUTDOWN, fd, SHUT_WR);
        }
    }

    /**
     * Leaves repair mode, once every connection of the tree is back: earlier, the window probe
     * or a retransmission could reach a peer socket not made yet, and the kernel would answer
     * with a reset. A peer's FIN is received again here.
     */
    static void finish(int pid, int fd, byte[] local, byte[] peer, TcpConnection c, int state) {
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR, REPAIR_OFF);
        if (finReceived(state)) {
            int sendStart = c.getSendSeq() - (finSent(state) ? 1 : 0) - c.getSendQueue().size();
            receiveFin(pid, fd, local, peer, c, sendStart, c.getRecvSeq() - 1);
            if (finSent(state)) {
                Sys.call("shutdown(SHUT_WR)", Nr.SHUTDOWN, fd, SHUT_WR);  // CLOSE_WAIT -> LAST_ACK, our FIN goes again
            }
        }
    }

    /**
     * The peer's FIN cannot be put into a queue: it is sent again in the peer's name, as a raw
     * packet (FIN|ACK at the sequence number it had, acknowledging nothing new), which the
     * network lock lets through by its mark. The socket moves to CLOSE_WAIT as it receives it.
     */
    private static void receiveFin(int pid, int fd, byte[] local, byte[] peer, TcpConnection c, int ack, int finSeq) {
        InetAddress from = InetAddress.of(peer), to = InetAddress.of(local);
        int window = Structs.le(c.getWindow().toByteArray()).getInt(4) >>> c.getSndWscale(); // the peer's, as it advertises it
        ByteBuffer tcp = ByteBuffer.allocate(20).order(java.nio.ByteOrder.BIG_ENDIAN);
        tcp.putShort((short) from.port()).putShort((short) to.port()).putInt(finSeq).putInt(ack)
                .putShort((short) (5 << 12 | TH_ACK | TH_FIN)).putShort((short) Math.min(window, 0xffff)).putShort((short) 0)
                .putShort((short) 0);
        RawPackets.send(pid, from, to, IPPROTO_TCP, tcp.array(), 16);
        long deadline = System.nanoTime() + 2_000_000_000L;
        while (Sockets.get(fd, SOL_TCP, TCP_INFO, 104)[0] != CLOSE_WAIT) {
            if (System.nanoTime() > deadline) {
                throw new CryoException("the restored connection " + to + " -> " + from
                        + " did not take the peer's FIN again (state " + Sockets.get(fd, SOL_TCP, TCP_INFO, 104)[0] + ")");
            }
            Thread.onSpinWait();
        }
    }

    /**
     * struct tcp_repair_window as saved, but with rcv_wup no later than {@code rcvNxt}: the kernel
     * refuses one past rcv_nxt, and before the peer's FIN is received again rcv_nxt is one short.
     */
    private static byte[] window(TcpConnection c, int rcvNxt) {
        ByteBuffer w = Structs.le(c.getWindow().toByteArray());
        if (w.getInt(16) - rcvNxt > 0) {
            w.putInt(16, rcvNxt);
        }
        return w.array();
    }

    /** struct tcp_repair_opt[]: the options both ends agreed on in the handshake. */
    private static byte[] options(TcpConnection c) {
        ByteBuffer b = Structs.le(new byte[4 * 8]);
        b.putInt(TCPOPT_MSS).putInt(c.getMss());
        if ((c.getOptions() & TCPI_OPT_WSCALE) != 0) {
            b.putInt(TCPOPT_WINDOW).putInt(c.getSndWscale() | c.getRcvWscale() << 16);
        }
        if ((c.getOptions() & TCPI_OPT_SACK) != 0) {
            b.putInt(TCPOPT_SACK_PERM).putInt(0);
        }
        if ((c.getOptions() & TCPI_OPT_TIMESTAMPS) != 0) {
            b.putInt(TCPOPT_TIMESTAMP).putInt(0);
        }
        return Arrays.copyOf(b.array(), b.position());
    }

    /**
     * A new socket's buffer may be smaller than what the connection had queued (the kernel had
     * grown it); nothing drains it in repair mode, so it is made big enough first.
     */
    private static void fitBuffer(int fd, int option, int force, int queued) {
        if (queued > 0 && Sockets.getInt(fd, SOL_SOCKET, option) / 2 < queued) {
            Sockets.setInt(fd, SOL_SOCKET, force, queued * 2);
        }
    }
}
