package dev.cryo.net;

import dev.cryo.sys.Structs;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A struct sockaddr_in or sockaddr_in6 as the kernel gives it, read for what Cryo needs from
 * it: the family, the address and the port.
 * <pre>
 * sockaddr_in:  family u16 | port u16 (big-endian) | addr[4]  | zero[8]
 * sockaddr_in6: family u16 | port u16 (big-endian) | flowinfo u32 | addr[16] | scope_id u32
 * </pre>
 */
public record InetAddress(int family, byte[] address, int port) {
    public static final int AF_INET = 2, AF_INET6 = 10;
    private static final byte[] V4_MAPPED = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte) 0xff, (byte) 0xff};

    public static InetAddress of(byte[] sockaddr) {
        ByteBuffer b = Structs.le(sockaddr);
        int family = Short.toUnsignedInt(b.getShort(0));
        int port = Short.toUnsignedInt(b.order(ByteOrder.BIG_ENDIAN).getShort(2));
        byte[] addr = family == AF_INET6 ? Arrays.copyOfRange(sockaddr, 8, 24) : Arrays.copyOfRange(sockaddr, 4, 8);
        return new InetAddress(family, addr, port);
    }

    /** An IPv4 address seen through an IPv6 socket (::ffff:a.b.c.d) travels as IPv4 on the wire. */
    public boolean v4Mapped() {
        return family == AF_INET6 && Arrays.equals(Arrays.copyOf(address, 12), V4_MAPPED);
    }

    /** The address as nftables and people write it: 127.0.0.1, ::1, fe80::1 (a v4-mapped one as IPv4). */
    public String host() {
        if (ipv4()) {
            byte[] a = v4Mapped() ? Arrays.copyOfRange(address, 12, 16) : address;
            return (a[0] & 0xff) + "." + (a[1] & 0xff) + "." + (a[2] & 0xff) + "." + (a[3] & 0xff);
        }
        int[] groups = new int[8];
        for (int i = 0; i < 8; i++) {
            groups[i] = (address[2 * i] & 0xff) << 8 | address[2 * i + 1] & 0xff;
        }
        int bestStart = -1, bestLength = 1;  // the longest run of zero groups (two or more) becomes "::"
        for (int i = 0; i < 8; ) {
            int j = i;
            while (j < 8 && groups[j] == 0) {
                j++;
            }
            if (j - i > bestLength) {
                bestStart = i;
                bestLength = j - i;
            }
            i = Math.max(j, i + 1);
        }
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < 8; i++) {
            if (i == bestStart) {
                b.append(i == 0 ? "::" : ":");
                i += bestLength - 1;
                continue;
            }
            b.append(Integer.toHexString(groups[i])).append(i < 7 ? ":" : "");
        }
        return b.toString();
    }

    /** True if the packets of this address are IPv4 ones. */
    public boolean ipv4() {
        return family == AF_INET || v4Mapped();
    }

    @Override
    public String toString() {
        return ipv4() ? host() + ":" + port : "[" + host() + "]:" + port;
    }
}
