package dev.cryo.net;

import dev.cryo.sys.Sys;
import dev.cryo.sys.Nr;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * sock_diag for unix sockets (netlink NETLINK_SOCK_DIAG, linux/unix_diag.h): what /proc does not
 * say about a unix socket, above all which socket is its peer.
 * <pre>
 * request:  nlmsghdr (16) | unix_diag_req (24): family u8, protocol u8, pad u16, states u32,
 *                                              ino u32, show u32, cookie u32[2]
 * answer:   nlmsghdr (16) | unix_diag_msg (16): family u8, type u8, state u8, pad u8, ino u32,
 *                                              cookie u32[2] | rtattr { len u16, type u16, data }...
 * </pre>
 */
public final class UnixDiag {
    private static final int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 02000000, NETLINK_SOCK_DIAG = 4;
    private static final int SOCK_DIAG_BY_FAMILY = 20, NLM_F_REQUEST = 1, NLMSG_ERROR = 2, AF_UNIX = 1;
    private static final int UDIAG_SHOW_NAME = 1, UDIAG_SHOW_PEER = 4, UDIAG_SHOW_ICONS = 8, UDIAG_SHOW_RQLEN = 0x10;
    private static final int UNIX_DIAG_NAME = 0, UNIX_DIAG_PEER = 2, UNIX_DIAG_ICONS = 3, UNIX_DIAG_RQLEN = 4, UNIX_DIAG_SHUTDOWN = 7;

    /**
     * @param name     the bound address: a path, "@name" for an abstract one, empty: unnamed
     * @param peer     0: none
     * @param rqueue   bytes to read; for a listener, connections waiting to be accepted
     * @param wqueue   bytes not yet read by the peer; for a listener, its backlog
     * @param pending  a listener's connections not yet accepted
     * @param shutdown RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2
     * @param clients  a listener's connections not yet accepted, in accept order: the inode of
     *                 each one's client (0: closed). The waiting end itself (the embryo) has no
     *                 inode until accept(2) gives it a file, so a client's peer reads 0 meanwhile
     */
    public record Info(long inode, int type, int state, long peer, String name, int rqueue, int wqueue, int pending, int shutdown,
                       java.util.List<Long> clients) {
    }

    private UnixDiag() {
    }

    /** sun_path as the kernel keeps it: a path up to its NUL, or an abstract name (leading NUL) as "@name". */
    private static String name(byte[] sunPath) {
        if (sunPath.length > 0 && sunPath[0] == 0) {
            return "@" + new String(sunPath, 1, sunPath.length - 1, java.nio.charset.StandardCharsets.ISO_8859_1);
        }
        int end = 0;
        while (end < sunPath.length && sunPath[end] != 0) {
            end++;
        }
        return new String(sunPath, 0, end, java.nio.charset.StandardCharsets.ISO_8859_1);
    }

    /** struct sockaddr_un for {@code name} as {@link Info#name} gives it, sized as bind(2) and connect(2) want it. */
    public static byte[] sockaddr(String name) {
        boolean abstractName = name.startsWith("@");
        byte[] path = (abstractName ? "\0" + name.substring(1) : name + "\0").getBytes(java.nio.charset.StandardCharsets.ISO_8859_1);
        byte[] out = new byte[2 + path.length];
        out[0] = 1; // AF_UNIX, little-endian u16
        System.arraycopy(path, 0, out, 2, path.length);
        return out;
    }

    /**
     * What sock_diag says of the unix socket with inode {@code inode}, asked in the network
     * namespace of process {@code pid} (it answers only about its own), or null if it has none.
     */
    public static Info query(int pid, long inode) {
        int fd = NetNamespaces.socket(pid, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment req = arena.allocate(40, 8);
            req.set(JAVA_INT, 0, 40);                                  // nlmsg_len
            req.set(JAVA_SHORT, 4, (short) SOCK_DIAG_BY_FAMILY);       // nlmsg_type
            req.set(JAVA_SHORT, 6, (short) NLM_F_REQUEST);             // nlmsg_flags
            req.set(JAVA_BYTE, 16, (byte) AF_UNIX);                    // sdiag_family
            req.set(JAVA_INT, 20, -1);                                 // udiag_states: all
            req.set(JAVA_INT, 24, (int) inode);                        // udiag_ino
            req.set(JAVA_INT, 28, UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN);
            req.set(JAVA_INT, 32, -1);                                 // cookie: none
            req.set(JAVA_INT, 36, -1);
            Sys.call("sendto(sock_diag)", Nr.SENDTO, fd, req.address(), 40, 0, 0, 0);
            MemorySegment buf = arena.allocate(8192, 8);
            long n = Sys.call("recvfrom(sock_diag)", Nr.RECVFROM, fd, buf.address(), 8192, 0, 0, 0);
            if (n < 32 || buf.get(JAVA_SHORT, 4) == NLMSG_ERROR) {
                return null;
            }
            int len = buf.get(JAVA_INT, 0);
            int type = buf.get(JAVA_BYTE, 17), state = buf.get(JAVA_BYTE, 18);
            long peer = 0;
            String name = "";
            int rq = 0, wq = 0, pending = 0, shutdown = 0;
            java.util.List<Long> clients = new java.util.ArrayList<>();
            for (int at = 32; at + 4 <= Math.min(len, n); ) {
                int alen = Short.toUnsignedInt(buf.get(JAVA_SHORT, at));
                int atype = Short.toUnsignedInt(buf.get(JAVA_SHORT, at + 2));
                if (alen < 4) {
                    break;
                }
                switch (atype) {
                    case UNIX_DIAG_PEER -> peer = Integer.toUnsignedLong(buf.get(JAVA_INT, at + 4));
                    case UNIX_DIAG_RQLEN -> {
                        rq = buf.get(JAVA_INT, at + 4);
                        wq = buf.get(JAVA_INT, at + 8);
                    }
                    case UNIX_DIAG_NAME -> name = name(buf.asSlice(at + 4, alen - 4).toArray(JAVA_BYTE));
                    case UNIX_DIAG_SHUTDOWN -> shutdown = buf.get(JAVA_BYTE, at + 4);
                    case UNIX_DIAG_ICONS -> {
                        pending = (alen - 4) / 4;  // one inode each
                        for (int i = 0; i < pending; i++) {
                            clients.add(Integer.toUnsignedLong(buf.get(JAVA_INT, at + 4 + 4L * i)));
                        }
                    }
                    default -> { }
                }
                at += (alen + 3) & ~3;
            }
            return new Info(inode, type, state, peer, name, rq, wq, pending, shutdown, java.util.List.copyOf(clients));
        } finally {
            Sys.close(fd);
        }
    }
}
