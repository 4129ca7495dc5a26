package dev.cryo.net;

import dev.cryo.sys.Sockets;
import dev.cryo.sys.Structs;
import dev.cryo.sys.Sys;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * IP packets from someone else's address, written whole (IP header included) through a raw
 * socket of Cryo's: how a restore puts back what only the network can deliver, such as a
 * datagram from its sender or the FIN a peer sent. The transport checksum is computed here over
 * the pseudo-header; the kernel fills the IPv4 header's length, id and checksum.
 */
final class RawPackets {
    private static final int SOCK_RAW = 3, SOCK_CLOEXEC = 02000000, IPPROTO_RAW = 255, SO_MARK = 36;
    /** Packets Cryo sends carry this mark, so that the network lock lets them through. */
    static final int MARK = 0x43727930;

    private RawPackets() {
    }

    /**
     * Sends {@code transport} (a TCP or UDP header with its payload, checksum field zero at
     * {@code checksumAt}) from {@code from} to {@code to} as protocol {@code protocol}, in the
     * network namespace of process {@code pid} (where the socket it is for lives).
     */
    static void send(int pid, InetAddress from, InetAddress to, int protocol, byte[] transport, int checksumAt) {
        boolean v4 = from.ipv4();
        byte[] src = v4 ? v4(from) : from.address(), dst = v4 ? v4(to) : to.address();
        ByteBuffer pseudo = ByteBuffer.allocate((v4 ? 12 : 40) + transport.length).order(ByteOrder.BIG_ENDIAN);
        if (v4) {
            pseudo.put(src).put(dst).put((byte) 0).put((byte) protocol).putShort((short) transport.length);
        } else {
            pseudo.put(src).put(dst).putInt(transport.length).putInt(protocol);
        }
        pseudo.put(transport);
        int sum = checksum(pseudo.array());
        ByteBuffer t = ByteBuffer.wrap(transport.clone()).order(ByteOrder.BIG_ENDIAN);
        t.putShort(checksumAt, (short) (sum == 0 && protocol == 17 ? 0xffff : sum));
        ByteBuffer packet = ByteBuffer.allocate((v4 ? 20 : 40) + transport.length).order(ByteOrder.BIG_ENDIAN);
        if (v4) {
            packet.put((byte) 0x45).put((byte) 0).putShort((short) 0).putShort((short) 0).putShort((short) 0)
                    .put((byte) 64).put((byte) protocol).putShort((short) 0).put(src).put(dst);
        } else {
            packet.putInt(0x60000000).putShort((short) transport.length).put((byte) protocol).put((byte) 64).put(src).put(dst);
        }
        packet.put(t.array());
        int raw = NetNamespaces.socket(pid, v4 ? InetAddress.AF_INET : InetAddress.AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
        try {
            Sockets.setInt(raw, Sockets.SOL_SOCKET, SO_MARK, MARK);
            Sockets.send(raw, packet.array(), sockaddr(v4 ? InetAddress.AF_INET : InetAddress.AF_INET6, dst));
        } finally {
            Sys.close(raw);
        }
    }

    /** Where a restored socket receives: its own address, or loopback if it listens on any. */
    static InetAddress destination(InetAddress local, boolean ipv4) {
        byte[] addr = local.ipv4() == ipv4 ? (local.v4Mapped() ? v4(local) : local.address()) : new byte[0];
        if (addr.length == 0 || Arrays.equals(addr, new byte[addr.length])) {
            addr = ipv4 ? new byte[] {127, 0, 0, 1} : new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        }
        return new InetAddress(ipv4 ? InetAddress.AF_INET : InetAddress.AF_INET6, addr, local.port());
    }

    private static byte[] v4(InetAddress a) {
        return a.v4Mapped() ? Arrays.copyOfRange(a.address(), 12, 16) : a.address();
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

    private static byte[] sockaddr(int family, byte[] address) {
        ByteBuffer b = Structs.le(new byte[family == InetAddress.AF_INET ? 16 : 28]);
        b.putShort((short) family);
        b.position(family == InetAddress.AF_INET ? 4 : 8);
        b.put(address);
        return b.array();
    }
}
