package dev.cryo.net;

import com.google.protobuf.ByteString;
import dev.cryo.image.proto.SocketOption;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sockets;
import dev.cryo.sys.Structs;
import dev.cryo.sys.Sys;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static dev.cryo.sys.Sockets.SOL_IP;
import static dev.cryo.sys.Sockets.SOL_IPV6;
import static dev.cryo.sys.Sockets.SOL_SOCKET;
import static dev.cryo.sys.Sockets.SOL_TCP;

/**
 * The options a program may have set on an IP socket. Saved are those whose value differs from
 * what a new socket of the same family, type and protocol has here, so a restore sets only what
 * the program set (and a kernel default that changed between hosts stays the new host's).
 */
final class SocketOptions {
    private static final int SO_SNDBUF = 7, SO_RCVBUF = 8, SO_SNDBUFFORCE = 32, SO_RCVBUFFORCE = 33, SO_REUSEADDR = 2;

    /** level, name, and for which protocol (0: any). */
    private record Known(int level, int name, int protocol) {
    }

    private static final List<Known> KNOWN = List.of(
            new Known(SOL_SOCKET, SO_REUSEADDR, 0), new Known(SOL_SOCKET, 15, 0) /* SO_REUSEPORT */,
            new Known(SOL_SOCKET, 6, 0) /* SO_BROADCAST */, new Known(SOL_SOCKET, SO_SNDBUF, 0),
            new Known(SOL_SOCKET, SO_RCVBUF, 0), new Known(SOL_SOCKET, 9, 0) /* SO_KEEPALIVE */,
            new Known(SOL_SOCKET, 10, 0) /* SO_OOBINLINE */, new Known(SOL_SOCKET, 12, 0) /* SO_PRIORITY */,
            new Known(SOL_SOCKET, 13, 0) /* SO_LINGER */, new Known(SOL_SOCKET, 18, 0) /* SO_RCVLOWAT */,
            new Known(SOL_SOCKET, 25, 0) /* SO_BINDTODEVICE */, new Known(SOL_SOCKET, 36, 0) /* SO_MARK */,
            new Known(SOL_SOCKET, 29, 0) /* SO_TIMESTAMP */,
            new Known(SOL_TCP, 1, 6) /* TCP_NODELAY */, new Known(SOL_TCP, 3, 6) /* TCP_CORK */,
            new Known(SOL_TCP, 4, 6) /* TCP_KEEPIDLE */, new Known(SOL_TCP, 5, 6) /* TCP_KEEPINTVL */,
            new Known(SOL_TCP, 6, 6) /* TCP_KEEPCNT */, new Known(SOL_TCP, 8, 6) /* TCP_LINGER2 */,
            new Known(SOL_TCP, 9, 6) /* TCP_DEFER_ACCEPT */, new Known(SOL_TCP, 13, 6) /* TCP_CONGESTION */,
            new Known(SOL_TCP, 18, 6) /* TCP_USER_TIMEOUT */, new Known(SOL_TCP, 25, 6) /* TCP_NOTSENT_LOWAT */,
            new Known(SOL_IP, 1, 0) /* IP_TOS */, new Known(SOL_IP, 2, 0) /* IP_TTL */,
            new Known(SOL_IP, 8, 0) /* IP_PKTINFO */, new Known(SOL_IP, 10, 0) /* IP_MTU_DISCOVER */,
            new Known(SOL_IP, 15, 0) /* IP_FREEBIND */, new Known(SOL_IP, 19, 0) /* IP_TRANSPARENT */,
            new Known(SOL_IPV6, 26, 0) /* IPV6_V6ONLY */, new Known(SOL_IPV6, 16, 0) /* IPV6_UNICAST_HOPS */,
            new Known(SOL_IPV6, 67, 0) /* IPV6_TCLASS */, new Known(SOL_IPV6, 49, 0) /* IPV6_RECVPKTINFO */);

    private SocketOptions() {
    }

    /**
     * The options of socket {@code fd} that differ from a new socket's. Buffer sizes of a
     * connected TCP socket are left out: the kernel tunes them as the connection runs.
     */
    static List<SocketOption> read(int fd, int family, int type, int protocol, boolean connectedTcp) {
        int fresh = (int) Sys.call("socket", Nr.SOCKET, family, type | 02000000, protocol);
        try {
            List<SocketOption> out = new ArrayList<>();
            for (Known k : KNOWN) {
                if (k.protocol() != 0 && k.protocol() != protocol
                        || k.level() == SOL_IPV6 && family != InetAddress.AF_INET6
                        || k.level() == SOL_IP && family != InetAddress.AF_INET
                        || connectedTcp && (k.name() == SO_SNDBUF || k.name() == SO_RCVBUF) && k.level() == SOL_SOCKET) {
                    continue;
                }
                byte[] value = Sockets.tryGet(fd, k.level(), k.name());
                byte[] usual = Sockets.tryGet(fresh, k.level(), k.name());
                if (value != null && !Arrays.equals(value, usual)) {
                    out.add(SocketOption.newBuilder().setLevel(k.level()).setName(k.name()).setValue(ByteString.copyFrom(value)).build());
                }
            }
            return out;
        } finally {
            Sys.close(fresh);
        }
    }

    /** Options that decide how the socket binds: they must be set before bind(2), and some (IPV6_V6ONLY) only then. */
    private static boolean forBind(SocketOption o) {
        return o.getLevel() == SOL_SOCKET && (o.getName() == SO_REUSEADDR || o.getName() == 15 || o.getName() == 25)
                || o.getLevel() == SOL_IP && (o.getName() == 15 || o.getName() == 19)
                || o.getLevel() == SOL_IPV6 && o.getName() == 26;
    }

    /** Sets the options that decide how the socket binds. */
    static void applyBeforeBind(int fd, List<SocketOption> options) {
        apply(fd, options.stream().filter(SocketOptions::forBind).toList());
    }

    /**
     * Sets the other options, once the socket is bound; with {@code reuseAgain} also the address
     * reuse ones, which leaving TCP repair mode resets.
     */
    static void applyAfterBind(int fd, List<SocketOption> options, boolean reuseAgain) {
        apply(fd, options.stream().filter(o -> !forBind(o) || reuseAgain && o.getLevel() == SOL_SOCKET
                && (o.getName() == SO_REUSEADDR || o.getName() == 15)).toList());
    }

    /** Sets {@code options} on socket {@code fd}: buffer sizes through the FORCE variants, halved (the kernel doubles them). */
    private static void apply(int fd, List<SocketOption> options) {
        for (SocketOption o : options) {
            byte[] value = o.getValue().toByteArray();
            if (o.getLevel() == SOL_SOCKET && (o.getName() == SO_SNDBUF || o.getName() == SO_RCVBUF)) {
                int size = Structs.le(value).getInt() / 2;
                Sockets.setInt(fd, SOL_SOCKET, o.getName() == SO_SNDBUF ? SO_SNDBUFFORCE : SO_RCVBUFFORCE, size);
            } else {
                Sockets.set(fd, o.getLevel(), o.getName(), value);
            }
        }
    }

    /** A name for logs: "SOL_TCP/1". */
    static String describe(SocketOption o) {
        return o.getLevel() + "/" + o.getName();
    }
}
