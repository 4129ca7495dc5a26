package dev.cryo.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Terminal ioctls on Cryo's own fds (tty_ioctl(4), ioctl_tty(2), pty(7)), and struct termios2
 * as the kernel lays it out (include/uapi/asm-generic/termbits.h):
 * <pre>
 *   0 c_iflag  4 c_oflag  8 c_cflag  12 c_lflag  16 c_line  17 c_cc[19]  36 c_ispeed  40 c_ospeed  (44 bytes)
 * </pre>
 */
public final class Tty {
    public static final int TCGETS2 = 0x802C542A, TCSETS2 = 0x402C542B, TIOCGWINSZ = 0x5413, TIOCSWINSZ = 0x5414,
            TIOCSTI = 0x5412, TIOCSCTTY = 0x540E, TIOCSPGRP = 0x5410, TIOCPKT = 0x5420, TIOCGETD = 0x5424,
            TIOCGPTN = 0x80045430, TIOCSPTLCK = 0x40045431, TIOCGPKT = 0x80045438, TIOCGPTLCK = 0x80045439,
            TIOCGPTPEER = 0x5441, FIONREAD = 0x541B, TIOCEXCL = 0x540C, TIOCGEXCL = 0x80045440;
    public static final int TERMIOS2_SIZE = 44, WINSIZE_SIZE = 8, NCCS = 19;
    /** c_lflag bits. */
    public static final int ISIG = 01, ICANON = 02, ECHO = 010, ECHOE = 020, ECHOK = 040, ECHONL = 0100,
            ECHOCTL = 01000, ECHOPRT = 02000, ECHOKE = 04000, FLUSHO = 010000, PENDIN = 040000, IEXTEN = 0100000;
    /** c_iflag bits: the input translations. */
    public static final int PARMRK = 010, INPCK = 020, ISTRIP = 040, INLCR = 0100, IGNCR = 0200, ICRNL = 0400, IUCLC = 01000;
    public static final int OPOST = 01;
    /** c_cc indexes. */
    public static final int VINTR = 0, VERASE = 2, VKILL = 3, VEOF = 4, VEOL = 11, VREPRINT = 12, VWERASE = 14,
            VLNEXT = 15, VEOL2 = 16;

    private Tty() {
    }

    /** struct termios2, field by field. */
    public record Termios(int iflag, int oflag, int cflag, int lflag, byte line, byte[] cc, int ispeed, int ospeed) {
        public static Termios of(byte[] raw) {
            ByteBuffer b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
            byte[] cc = new byte[NCCS];
            b.position(17);
            b.get(cc);
            return new Termios(b.getInt(0), b.getInt(4), b.getInt(8), b.getInt(12), raw[16], cc, b.getInt(36), b.getInt(40));
        }

        public byte[] bytes() {
            ByteBuffer b = ByteBuffer.allocate(TERMIOS2_SIZE).order(ByteOrder.LITTLE_ENDIAN);
            b.putInt(iflag).putInt(oflag).putInt(cflag).putInt(lflag).put(line).put(cc).putInt(ispeed).putInt(ospeed);
            return b.array();
        }

        public int cc(int index) {
            return cc[index] & 0xff;
        }

        public Termios withFlags(int iflag, int oflag, int lflag) {
            return new Termios(iflag, oflag, cflag, lflag, line, cc, ispeed, ospeed);
        }

        public Termios withCc(int index, int value) {
            byte[] c = cc.clone();
            c[index] = (byte) value;
            return new Termios(iflag, oflag, cflag, lflag, line, c, ispeed, ospeed);
        }
    }

    /** An ioctl whose argument is a struct to read back: returns its bytes. */
    public static byte[] getBytes(int fd, int request, int size, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(size, 8);
            Sys.call("ioctl(" + name + ")", Nr.IOCTL, fd, request, v.address());
            return v.toArray(JAVA_BYTE);
        }
    }

    /** An ioctl whose argument points to the given bytes. */
    public static void setBytes(int fd, int request, byte[] value, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(Math.max(1, value.length), 8);
            v.copyFrom(MemorySegment.ofArray(value));
            Sys.call("ioctl(" + name + ")", Nr.IOCTL, fd, request, v.address());
        }
    }

    /** An ioctl that reports an int through its pointer argument. */
    public static int getInt(int fd, int request, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(JAVA_INT);
            Sys.call("ioctl(" + name + ")", Nr.IOCTL, fd, request, v.address());
            return v.get(JAVA_INT, 0);
        }
    }

    /** An ioctl that takes a pointer to an int. */
    public static void setInt(int fd, int request, int value, String name) {
        setBytes(fd, request, ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(value).array(), name);
    }

    public static Termios getTermios(int fd) {
        return Termios.of(getBytes(fd, TCGETS2, TERMIOS2_SIZE, "TCGETS2"));
    }

    /** TCSETS2: takes effect at once, without draining output or flushing input. */
    public static void setTermios(int fd, Termios t) {
        setBytes(fd, TCSETS2, t.bytes(), "TCSETS2");
    }

    /**
     * TIOCSTI, one byte at a time: each goes straight through the line discipline of {@code fd}'s
     * tty into its input queue, synchronously (a write to the other end of a pty goes through a
     * work queue instead). Needs CAP_SYS_ADMIN when the tty is not the caller's controlling one.
     */
    public static void inject(int fd, byte[] data) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment c = arena.allocate(1);
            for (byte b : data) {
                c.set(JAVA_BYTE, 0, b);
                Sys.call("ioctl(TIOCSTI)", Nr.IOCTL, fd, TIOCSTI, c.address());
            }
        }
    }

    /** A new open file of the slave of the pty master {@code master} (TIOCGPTPEER), with these open flags. */
    public static int openPeer(int master, int flags) {
        return (int) Sys.call("ioctl(TIOCGPTPEER)", Nr.IOCTL, master, TIOCGPTPEER, flags);
    }
}
