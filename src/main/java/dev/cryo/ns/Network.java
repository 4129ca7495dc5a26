package dev.cryo.ns;

import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A container's own network namespace. A new one has a single interface, loopback, and it is
 * down; `--net none` means "loopback only", so it is brought up with an injected SIOCSIFFLAGS on
 * a socket of the namespace (netdevice(7)).
 * <pre>
 * struct ifreq (40 bytes): char ifr_name[16]; short ifr_flags at 16 (a union with other requests)
 * </pre>
 */
public final class Network {
    private static final int AF_INET = 2, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0x80000;
    private static final int SIOCGIFFLAGS = 0x8913, SIOCSIFFLAGS = 0x8914, IFF_UP = 1, IFREQ_SIZE = 40;

    private Network() {
    }

    public static void loopbackUp(RemoteSyscalls sys) {
        int sock = (int) sys.call("socket(AF_INET, SOCK_DGRAM)", Nr.SOCKET, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        try {
            byte[] ifr = new byte[IFREQ_SIZE];
            ifr[0] = 'l';
            ifr[1] = 'o';
            RemoteAddr at = sys.scratch().put(ifr);
            sys.call("ioctl(lo, SIOCGIFFLAGS)", Nr.IOCTL, sock, SIOCGIFFLAGS, at.value());
            ByteBuffer b = ByteBuffer.wrap(sys.scratch().read(at, IFREQ_SIZE)).order(ByteOrder.LITTLE_ENDIAN);
            b.putShort(16, (short) (b.getShort(16) | IFF_UP));
            sys.task().write(at, b.array());
            sys.call("ioctl(lo, SIOCSIFFLAGS)", Nr.IOCTL, sock, SIOCSIFFLAGS, at.value());
        } finally {
            sys.scratch().reset();
            sys.closeFd(sock);
        }
    }
}
