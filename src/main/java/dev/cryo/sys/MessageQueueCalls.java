package dev.cryo.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * POSIX message queue calls (mq_overview(7)) Cryo makes itself, on queues of its own fd table:
 * any fd of a file of an mqueue file system is a queue descriptor, also one open(2) gave.
 * <pre>
 * struct mq_attr (64 bytes): long mq_flags at 0, mq_maxmsg at 8, mq_msgsize at 16, mq_curmsgs at 24, reserved[4]
 * </pre>
 */
public final class MessageQueueCalls {
    public static final int ATTR_SIZE = 64, ATTR_MAXMSG = 8, ATTR_MSGSIZE = 16;
    private static final long FLAGS = 0, MAXMSG = ATTR_MAXMSG, MSGSIZE = ATTR_MSGSIZE, CURMSGS = 24;

    private MessageQueueCalls() {
    }

    /** mq_getattr(3). */
    public record Attr(long flags, long maxMessages, long messageSize, long currentMessages) {
    }

    /** A message as mq_receive(3) gives it. */
    public record Message(int priority, byte[] data) {
    }

    public static Attr getattr(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment attr = arena.allocate(ATTR_SIZE, 8);
            Sys.call("mq_getattr", Nr.MQ_GETSETATTR, fd, 0, attr.address());
            return new Attr(attr.get(JAVA_LONG, FLAGS), attr.get(JAVA_LONG, MAXMSG), attr.get(JAVA_LONG, MSGSIZE),
                    attr.get(JAVA_LONG, CURMSGS));
        }
    }

    /** open(2) of a file of an mqueue file system: a queue descriptor. */
    public static int open(String path, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            return (int) Sys.call("open(" + path + ")", Nr.OPEN, arena.allocateFrom(path).address(), flags, 0);
        }
    }

    /** mq_receive(3) without waiting, into a buffer of {@code size} bytes; null when the queue is empty (EAGAIN). */
    public static Message receiveNow(int fd, long size) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(Math.max(size, 1));
            MemorySegment priority = arena.allocate(JAVA_INT);
            // the fd is O_NONBLOCK; a timeout already past makes sure of it either way
            MemorySegment past = arena.allocate(16, 8);
            long n = Sys.raw(Nr.MQ_TIMEDRECEIVE, fd, buf.address(), size, priority.address(), past.address());
            if (n == -Errno.EAGAIN || n == -Errno.ETIMEDOUT) {
                return null;
            }
            if (n < 0) {
                throw new SysException("mq_timedreceive", (int) -n, fd, size);
            }
            return new Message(priority.get(JAVA_INT, 0), buf.asSlice(0, n).toArray(JAVA_BYTE));
        }
    }

    /** mq_send(3) without waiting: the queue must have room. */
    public static void sendNow(int fd, Message m) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(Math.max(m.data().length, 1));
            buf.copyFrom(MemorySegment.ofArray(m.data()));
            MemorySegment past = arena.allocate(16, 8);
            Sys.call("mq_timedsend", Nr.MQ_TIMEDSEND, fd, buf.address(), m.data().length, m.priority(), past.address());
        }
    }
}
