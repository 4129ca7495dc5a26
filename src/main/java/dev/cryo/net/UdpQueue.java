package dev.cryo.net;

import com.google.protobuf.ByteString;
import dev.cryo.core.Refusal;
import dev.cryo.image.proto.Datagram;
import dev.cryo.sys.Sockets;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Datagrams waiting in a UDP socket. They are peeked with their senders' addresses, and put
 * back as what they were: packets from those senders ({@link RawPackets}), addressed to the
 * restored socket. The application reads the same
 * bytes from the same sources, in the same order.
 */
final class UdpQueue {
    private static final int FIONREAD = 0x541B, IPPROTO_UDP = 17;
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

    /**
     * Sends each datagram again from its source to {@code local} (raw sockaddr of the restored
     * socket of process {@code pid}; any address: loopback).
     */
    static void refill(int pid, byte[] local, List<Datagram> datagrams) {
        for (Datagram d : datagrams) {
            InetAddress from = InetAddress.of(d.getSource().toByteArray());
            InetAddress to = RawPackets.destination(InetAddress.of(local), from.ipv4());
            byte[] data = d.getData().toByteArray();
            ByteBuffer udp = ByteBuffer.allocate(8 + data.length).order(ByteOrder.BIG_ENDIAN);
            udp.putShort((short) from.port()).putShort((short) to.port()).putShort((short) (8 + data.length)).putShort((short) 0)
                    .put(data);
            RawPackets.send(pid, from, to, IPPROTO_UDP, udp.array(), 6);
        }
    }
}
