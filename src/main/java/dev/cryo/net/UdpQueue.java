package dev.cryo.net;

import com.google.protobuf.ByteString;
import dev.cryo.core.Refusal;
import dev.cryo.image.proto.Datagram;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sockets;
import dev.cryo.sys.Structs;
import dev.cryo.sys.Sys;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Datagrams waiting in a UDP socket. They are peeked with their senders' addresses, and put
 * back as what they were: packets from those senders, written whole (IP header included) through
 * a raw socket of Cryo's, addressed to the restored socket. The application reads the same
 * bytes from the same sources, in the same order.
 */
final class UdpQueue {
    private static final int FIONREAD = 0x541B, SOCK_RAW = 3, IPPROTO_RAW = 255, IPPROTO_UDP = 17;
    private static final int MAX_DATAGRAM = 65536;

    private UdpQueue() {
    }

    static List<Datagram> peek(int fd, String where) {
        if (Sockets.ioctlInt(fd, FIONREAD, "FIONREAD") <= 0) {
            return List.of();
        }
        List<Datagram> out = new ArrayList<>();
        for (Sockets.Message m : Sockets.peekMessages(fd, MAX_DATAGRAM, false)) {
            if (m.source().length == 0) {
                throw new Refusal(where + ": a datagram without a sender address waits in its queue");
            }
            out.add(Datagram.newBuilder().setSource(ByteString.copyFrom(m.source())).setData(ByteString.copyFrom(m.data())).build());
        }
        return out;
    }

    /** Sends each datagram again from its source to {@code local} (raw sockaddr of the restored socket; any address: loopback). */
    static void refill(byte[] local, List<Datagram> datagrams) {
        for (Datagram d : datagrams) {
            InetAddress from = InetAddress.of(d.getSource().toByteArray());
            InetAddress to = destination(InetAddress.of(local), from.ipv4());
            byte[] packet = from.ipv4() ? ipv4(from, to, d.getData().toByteArray()) : ipv6(from, to, d.getData().toByteArray());
            int family = from.ipv4() ? InetAddress.AF_INET : InetAddress.AF_INET6;
            int raw = (int) Sys.call("socket(SOCK_RAW)", Nr.SOCKET, family, SOCK_RAW | 02000000, IPPROTO_RAW);
            try {
                Sockets.send(raw, packet, sockaddr(to));
            } finally {
                Sys.close(raw);
            }
        }
    }

    /** Where the restored socket receives: its own address, or loopback if it listens on any. */
    private static InetAddress destination(InetAddress local, boolean ipv4) {
        byte[] addr = local.ipv4() == ipv4 ? local.address() : new byte[0];
        if (local.v4Mapped()) {
            addr = java.util.Arrays.copyOfRange(addr, 12, 16);
        }
        boolean any = addr.length == 0 || java.util.Arrays.equals(addr, new byte[addr.length]);
        if (any) {
            addr = ipv4 ? new byte[] {127, 0, 0, 1} : new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        }
        return new InetAddress(ipv4 ? InetAddress.AF_INET : InetAddress.AF_INET6, addr, local.port());
    }

    private static byte[] v4(InetAddress a) {
        return a.v4Mapped() ? java.util.Arrays.copyOfRange(a.address(), 12, 16) : a.address();
    }

    /** IPv4 header (length, id and checksum are the kernel's to fill) + UDP header (checksum 0: none) + data. */
    private static byte[] ipv4(InetAddress from, InetAddress to, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(28 + data.length).order(ByteOrder.BIG_ENDIAN);
        b.put((byte) 0x45).put((byte) 0).putShort((short) 0).putShort((short) 0).putShort((short) 0)
                .put((byte) 64).put((byte) IPPROTO_UDP).putShort((short) 0).put(v4(from)).put(v4(to));
        b.putShort((short) from.port()).putShort((short) to.port()).putShort((short) (8 + data.length)).putShort((short) 0);
        return b.put(data).array();
    }

    /** IPv6 header + UDP header with its checksum (mandatory over IPv6) + data. */
    private static byte[] ipv6(InetAddress from, InetAddress to, byte[] data) {
        int udpLength = 8 + data.length;
        ByteBuffer udp = ByteBuffer.allocate(udpLength).order(ByteOrder.BIG_ENDIAN);
        udp.putShort((short) from.port()).putShort((short) to.port()).putShort((short) udpLength).putShort((short) 0).put(data);
        ByteBuffer pseudo = ByteBuffer.allocate(40 + udpLength).order(ByteOrder.BIG_ENDIAN);
        pseudo.put(from.address()).put(to.address()).putInt(udpLength).putInt(IPPROTO_UDP).put(udp.array());
        int sum = checksum(pseudo.array());
        udp.putShort(6, (short) (sum == 0 ? 0xffff : sum));
        ByteBuffer b = ByteBuffer.allocate(40 + udpLength).order(ByteOrder.BIG_ENDIAN);
        b.putInt(0x60000000).putShort((short) udpLength).put((byte) IPPROTO_UDP).put((byte) 64)
                .put(from.address()).put(to.address()).put(udp.array());
        return b.array();
    }

    /** The Internet checksum (RFC 1071): one's complement of the one's complement sum of 16-bit words. */
    static int checksum(byte[] bytes) {
        long sum = 0;
        for (int i = 0; i < bytes.length; i += 2) {
            int hi = bytes[i] & 0xff, lo = i + 1 < bytes.length ? bytes[i + 1] & 0xff : 0;
            sum += hi << 8 | lo;
        }
        while (sum >> 16 != 0) {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        return (int) (~sum & 0xffff);
    }

    private static byte[] sockaddr(InetAddress to) {
        boolean v4 = to.family() == InetAddress.AF_INET;
        ByteBuffer b = Structs.le(new byte[v4 ? 16 : 28]);
        b.putShort((short) to.family());
        if (v4) {
            b.position(4);
            b.put(to.address());
        } else {
            b.position(8);
            b.put(to.address());
        }
        return b.array();
    }
}
