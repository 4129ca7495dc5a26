package dev.cryo.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Socket calls on sockets in Cryo's own fd table (copies of a task's sockets, taken with
 * pidfd_getfd): options, names, queues. Addresses and option values travel as the kernel's
 * raw bytes (struct sockaddr_in/in6, struct linger, ...), decoded by the caller that knows them.
 */
public final class Sockets {
    public static final int SOL_SOCKET = 1, SOL_IP = 0, SOL_TCP = 6, SOL_IPV6 = 41;
    public static final int MSG_PEEK = 2, MSG_DONTWAIT = 0x40;
    private static final int SO_PEEK_OFF = 42, SCM_RIGHTS = 1, SCM_CREDENTIALS = 2, CMSG_HEADER = 16, MAX_CONTROL = 4096;
    private static final int MSG_CTRUNC = 8, MSG_TRUNC = 0x20, MSG_CMSG_CLOEXEC = 0x40000000;
    private static final int MAX_OPTION = 256, MAX_ADDRESS = 128;

    private Sockets() {
    }

    public static int getInt(int fd, int level, int option) {
        byte[] v = get(fd, level, option, 4);
        return Structs.le(v).getInt();
    }

    public static void setInt(int fd, int level, int option, int value) {
        set(fd, level, option, Structs.le(new byte[4]).putInt(value).array());
    }

    /** getsockopt(2) with room for {@code size} bytes; returns as many as the kernel gave. */
    public static byte[] get(int fd, int level, int option, int size) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(Math.max(size, 1), 8);
            MemorySegment len = arena.allocate(JAVA_INT);
            len.set(JAVA_INT, 0, size);
            Sys.call("getsockopt(" + level + ", " + option + ")", Nr.GETSOCKOPT, fd, level, option, value.address(), len.address());
            return value.asSlice(0, Math.min(size, len.get(JAVA_INT, 0))).toArray(JAVA_BYTE);
        }
    }

    /** getsockopt(2) of a value of up to 256 bytes, or null if the kernel refuses the option (errno in the log). */
    public static byte[] tryGet(int fd, int level, int option) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(MAX_OPTION, 8);
            MemorySegment len = arena.allocate(JAVA_INT);
            len.set(JAVA_INT, 0, MAX_OPTION);
            long r = Sys.raw(Nr.GETSOCKOPT, fd, level, option, value.address(), len.address());
            return r < 0 ? null : value.asSlice(0, len.get(JAVA_INT, 0)).toArray(JAVA_BYTE);
        }
    }

    public static void set(int fd, int level, int option, byte[] value) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(Math.max(value.length, 1), 8);
            v.copyFrom(MemorySegment.ofArray(value));
            Sys.call("setsockopt(" + level + ", " + option + ")", Nr.SETSOCKOPT, fd, level, option, v.address(), value.length);
        }
    }

    /** getsockname(2): the raw sockaddr. */
    public static byte[] name(int fd) {
        return address(fd, Nr.GETSOCKNAME, "getsockname");
    }

    /** getpeername(2): the raw sockaddr, or an empty array if the socket is not connected. */
    public static byte[] peer(int fd) {
        return address(fd, Nr.GETPEERNAME, "getpeername");
    }

    private static byte[] address(int fd, int nr, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment addr = arena.allocate(MAX_ADDRESS, 8);
            MemorySegment len = arena.allocate(JAVA_INT);
            len.set(JAVA_INT, 0, MAX_ADDRESS);
            long r = Sys.raw(nr, fd, addr.address(), len.address());
            if (r == -Errno.ENOTCONN) {
                return new byte[0];
            }
            if (r < 0) {
                throw new SysException(name, (int) -r, fd);
            }
            return addr.asSlice(0, len.get(JAVA_INT, 0)).toArray(JAVA_BYTE);
        }
    }

    public static void bind(int fd, byte[] sockaddr) {
        withAddress("bind", Nr.BIND, fd, sockaddr);
    }

    public static void connect(int fd, byte[] sockaddr) {
        withAddress("connect", Nr.CONNECT, fd, sockaddr);
    }

    private static void withAddress(String name, int nr, int fd, byte[] sockaddr) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment addr = arena.allocate(Math.max(sockaddr.length, 1), 8);
            addr.copyFrom(MemorySegment.ofArray(sockaddr));
            Sys.call(name, nr, fd, addr.address(), sockaddr.length);
        }
    }

    public static void listen(int fd, int backlog) {
        Sys.call("listen", Nr.LISTEN, fd, backlog);
    }

    /** An ioctl(2) that reports an int (FIONREAD, SIOCOUTQ, ...). */
    public static int ioctlInt(int fd, int request, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(JAVA_INT);
            Sys.ioctl(name, fd, request, v);
            return v.get(JAVA_INT, 0);
        }
    }

    /** recv(2) with MSG_PEEK|MSG_DONTWAIT into a buffer of {@code size} bytes; returns what was peeked (maybe less). */
    public static byte[] peek(int fd, int size) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(Math.max(size, 1));
            long n = Sys.raw(Nr.RECVFROM, fd, buf.address(), size, MSG_PEEK | MSG_DONTWAIT, 0, 0);
            if (n == -Errno.EAGAIN) {
                return new byte[0];
            }
            if (n < 0) {
                throw new SysException("recv(MSG_PEEK)", (int) -n, fd, size);
            }
            return buf.asSlice(0, Math.min(n, size)).toArray(JAVA_BYTE);
        }
    }

    /**
     * One message as recvmsg(2) peeked it: who sent it (raw sockaddr, maybe empty), its bytes,
     * and its control messages (raw cmsghdr buffer, empty if none). Descriptors passed with it
     * (SCM_RIGHTS) are now open in Cryo's table too: {@link #passedFds} lists them, and the
     * caller closes them.
     */
    public record Message(byte[] source, byte[] data, byte[] control) {
        /** The fds of its SCM_RIGHTS control messages, in order; other control messages in {@code others}. */
        public java.util.List<Integer> passedFds(java.util.List<String> others) {
            java.util.List<Integer> fds = new java.util.ArrayList<>();
            java.nio.ByteBuffer b = Structs.le(control);
            for (int at = 0; at + CMSG_HEADER <= control.length; ) {
                long len = b.getLong(at);
                int level = b.getInt(at + 8), type = b.getInt(at + 12);
                if (len < CMSG_HEADER) {
                    break;
                }
                if (level == SOL_SOCKET && type == SCM_RIGHTS) {
                    for (int i = at + CMSG_HEADER; i + 4 <= at + len; i += 4) {
                        fds.add(b.getInt(i));
                    }
                } else {
                    others.add(level == SOL_SOCKET && type == SCM_CREDENTIALS ? "SCM_CREDENTIALS" : "control message " + level + "/" + type);
                }
                at += (int) ((len + 7) & ~7L);
            }
            return fds;
        }
    }

    /**
     * Everything waiting in the receive queue, in order, without taking it, stepping from message
     * to message with SO_PEEK_OFF (a stream socket's bytes come in pieces; one that ends with
     * passed descriptors carries them, but where their bytes start within it a peek does not
     * tell). The socket is the application's too: its own peek offset is put back afterwards.
     * {@code bufferSize} must hold the largest message.
     */
    public static java.util.List<Message> peekMessages(int fd, int bufferSize, boolean stream) {
        java.util.List<Message> out = new java.util.ArrayList<>();
        int before = getInt(fd, SOL_SOCKET, SO_PEEK_OFF);
        try (Arena arena = Arena.ofConfined()) {
            setInt(fd, SOL_SOCKET, SO_PEEK_OFF, 0);
            MemorySegment buf = arena.allocate(Math.max(bufferSize, 1));
            MemorySegment name = arena.allocate(MAX_ADDRESS, 8);
            MemorySegment control = arena.allocate(MAX_CONTROL, 8);
            MemorySegment iov = Iovec.of(arena, buf.address(), bufferSize);
            MemorySegment msg = arena.allocate(56, 8); // struct msghdr
            int offset = 0;
            while (true) {
                Message m = peekAt(fd, offset, bufferSize, buf, name, control, iov, msg, stream);
                if (m == null) {
                    break;
                }
                out.add(m);
                offset += m.data().length;
                if (stream) {
                    setInt(fd, SOL_SOCKET, SO_PEEK_OFF, offset);
                }
            }
        } finally {
            setInt(fd, SOL_SOCKET, SO_PEEK_OFF, before);
        }
        return out;
    }

    /** One peek at the socket's peek offset (which the kernel moves past what it returns); null when nothing is left. */
    private static Message peekAt(int fd, int offset, int bufferSize, MemorySegment buf, MemorySegment name,
                                  MemorySegment control, MemorySegment iov, MemorySegment msg, boolean stream) {
        msg.fill((byte) 0);
        msg.set(JAVA_LONG, 0, name.address());     // msg_name
        msg.set(JAVA_INT, 8, MAX_ADDRESS);         // msg_namelen
        msg.set(JAVA_LONG, 16, iov.address());     // msg_iov
        msg.set(JAVA_LONG, 24, 1);                 // msg_iovlen
        msg.set(JAVA_LONG, 32, control.address()); // msg_control
        msg.set(JAVA_LONG, 40, MAX_CONTROL);       // msg_controllen
        iov.set(JAVA_LONG, 8, bufferSize);         // iov_len
        long n = Sys.raw(Nr.RECVMSG, fd, msg.address(), MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n == -Errno.EAGAIN || n == 0 && stream) {
            return null;
        }
        if (n < 0) {
            throw new SysException("recvmsg(MSG_PEEK) at offset " + offset, (int) -n, fd);
        }
        if ((msg.get(JAVA_INT, 48) & (MSG_CTRUNC | MSG_TRUNC)) != 0) {
            throw new SysException("recvmsg(MSG_PEEK): message or control data larger than the buffer", Errno.ENOMEM, fd);
        }
        return new Message(name.asSlice(0, msg.get(JAVA_INT, 8)).toArray(JAVA_BYTE),
                buf.asSlice(0, Math.min(n, bufferSize)).toArray(JAVA_BYTE),
                control.asSlice(0, msg.get(JAVA_LONG, 40)).toArray(JAVA_BYTE));
    }

    /**
     * sendmsg(2) of {@code data} with {@code fds} attached (SCM_RIGHTS), to {@code sockaddr} (empty:
     * the peer); a stream socket takes the rest in further sends.
     */
    public static void sendWithFds(int fd, byte[] data, int[] fds, byte[] sockaddr) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(Math.max(data.length, 1));
            buf.asSlice(0, data.length).copyFrom(MemorySegment.ofArray(data));
            int controlLength = CMSG_HEADER + 4 * fds.length;
            MemorySegment control = arena.allocate((controlLength + 7) & ~7, 8);
            control.set(JAVA_LONG, 0, controlLength);
            control.set(JAVA_INT, 8, SOL_SOCKET);
            control.set(JAVA_INT, 12, SCM_RIGHTS);
            for (int i = 0; i < fds.length; i++) {
                control.set(JAVA_INT, CMSG_HEADER + 4L * i, fds[i]);
            }
            MemorySegment iov = Iovec.of(arena, buf.address(), data.length);
            MemorySegment msg = arena.allocate(56, 8);
            MemorySegment to = arena.allocate(Math.max(sockaddr.length, 1), 8);
            to.copyFrom(MemorySegment.ofArray(sockaddr));
            if (sockaddr.length > 0) {
                msg.set(JAVA_LONG, 0, to.address());
                msg.set(JAVA_INT, 8, sockaddr.length);
            }
            msg.set(JAVA_LONG, 16, iov.address());
            msg.set(JAVA_LONG, 24, 1);
            msg.set(JAVA_LONG, 32, control.address());
            msg.set(JAVA_LONG, 40, control.byteSize());
            long sent = Sys.call("sendmsg(SCM_RIGHTS)", Nr.SENDMSG, fd, msg.address(), 0);
            if (sent < data.length) {
                send(fd, java.util.Arrays.copyOfRange(data, (int) sent, data.length), sockaddr);
            }
        }
    }

    /** Sends all of {@code data} (a stream socket may take it in several pieces), or to {@code sockaddr} if not empty. */
    public static void send(int fd, byte[] data, byte[] sockaddr) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(Math.max(data.length, 1));
            buf.asSlice(0, data.length).copyFrom(MemorySegment.ofArray(data));
            MemorySegment to = arena.allocate(Math.max(sockaddr.length, 1), 8);
            to.copyFrom(MemorySegment.ofArray(sockaddr));
            long done = 0;
            do {
                done += Sys.call("sendto", Nr.SENDTO, fd, buf.address() + done, data.length - done, 0,
                        sockaddr.length == 0 ? 0 : to.address(), sockaddr.length);
            } while (done < data.length);
        }
    }
}
