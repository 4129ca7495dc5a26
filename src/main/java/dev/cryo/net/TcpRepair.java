package dev.cryo.net;

import com.google.protobuf.ByteString;
import dev.cryo.core.Refusal;
import dev.cryo.image.proto.TcpConnection;
import dev.cryo.sys.Sockets;
import dev.cryo.sys.Structs;

import java.nio.ByteBuffer;

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

    /** Reads the connection of a socket in repair mode. */
    static TcpConnection read(int fd, String where) {
        byte[] info = Sockets.get(fd, SOL_TCP, TCP_INFO, 104);
        TcpConnection.Builder c = TcpConnection.newBuilder()
                .setOptions(info[5]).setSndWscale(info[6] & 0xf).setRcvWscale((info[6] >> 4) & 0xf)
                .setMss(Sockets.getInt(fd, SOL_TCP, TCP_MAXSEG))
                .setTimestamp(Sockets.getInt(fd, SOL_TCP, TCP_TIMESTAMP));
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, SEND_QUEUE);
        c.setSendSeq(Sockets.getInt(fd, SOL_TCP, TCP_QUEUE_SEQ));
        int outq = Sockets.ioctlInt(fd, SIOCOUTQ, "SIOCOUTQ");
        c.setUnsent(Sockets.ioctlInt(fd, SIOCOUTQNSD, "SIOCOUTQNSD"));
        c.setSendQueue(peekAll(fd, outq, "send", where));
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, RECV_QUEUE);
        c.setRecvSeq(Sockets.getInt(fd, SOL_TCP, TCP_QUEUE_SEQ));
        c.setRecvQueue(peekAll(fd, Sockets.ioctlInt(fd, SIOCINQ, "SIOCINQ"), "receive", where));
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, NO_QUEUE);
        c.setWindow(ByteString.copyFrom(Sockets.get(fd, SOL_TCP, TCP_REPAIR_WINDOW, 20)));
        return c.build();
    }

    private static ByteString peekAll(int fd, int length, String queue, String where) {
        if (length == 0) {
            return ByteString.EMPTY;
        }
        byte[] data = Sockets.peek(fd, length);
        if (data.length != length) {
            throw new Refusal(where + ": its " + queue + " queue holds " + length + " bytes, but only " + data.length
                    + " could be read (urgent data?)");
        }
        return ByteString.copyFrom(data);
    }

    /**
     * Rebuilds the connection on a new, unbound socket: {@code local}/{@code peer} are raw
     * sockaddrs. Leaves repair mode at the end, with a window probe so the peer learns at once
     * that the connection is alive again.
     */
    static void restore(int fd, byte[] local, byte[] peer, TcpConnection c) {
        int sendQueued = c.getSendQueue().size(), recvQueued = c.getRecvQueue().size();
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR, REPAIR_ON);
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, SEND_QUEUE);
        Sockets.setInt(fd, SOL_TCP, TCP_QUEUE_SEQ, c.getSendSeq() - sendQueued);
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, RECV_QUEUE);
        Sockets.setInt(fd, SOL_TCP, TCP_QUEUE_SEQ, c.getRecvSeq() - recvQueued);
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
        Sockets.set(fd, SOL_TCP, TCP_REPAIR_WINDOW, c.getWindow().toByteArray());
        Sockets.setInt(fd, SOL_TCP, TCP_REPAIR, REPAIR_OFF);
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
        return java.util.Arrays.copyOf(b.array(), b.position());
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
