package dev.cryo.tty;

import com.google.protobuf.ByteString;
import dev.cryo.image.proto.InputLine;
import dev.cryo.image.proto.PtyPair;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;
import dev.cryo.sys.Tty;
import dev.cryo.sys.Tty.Termios;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.logging.Logger;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * The state of a pty pair and the bytes waiting in it, read out of a pair and written into one.
 *
 * <p>Tty queues cannot be peeked: reading takes the bytes, so whatever is read must be written
 * back (into the new pair at restore, into the old one when the tree runs on). Both directions
 * have been through a line discipline already, and must not be processed again:
 * <ul>
 * <li>bytes for the master (the slave's output, echoes included) are written through the slave
 *     with OPOST (and FLUSHO) off: the slave's write then hands them on untouched, and the
 *     master's own line discipline is raw, fixed so by the kernel;</li>
 * <li>bytes for the slave (input) are pushed with TIOCSTI straight into the slave's line
 *     discipline, synchronously, with echo, signals, input translations and the editing
 *     characters off, but ICANON and the line ends (newline, VEOL, VEOL2, VEOF) as they were,
 *     so complete lines stay lines and a partial line stays partial. A write to the master
 *     would reach the slave later, through a work queue, possibly after the termios is back.</li>
 * </ul>
 * In canonical mode a read gives one complete line (FIONREAD counts only those); the line
 * being typed is had by switching ICANON off and reading again, which is also how the kernel
 * behaves when a program does so, and switching it back on an empty queue changes nothing.
 */
final class PtyQueues {
    private static final Logger LOG = Logger.getLogger("ptys");
    private static final int O_RDWR = 2, O_NOCTTY = 0400, O_NONBLOCK = 04000, O_CLOEXEC = 02000000, F_GETFL = 3, F_SETFL = 4;
    /** The line discipline's input buffer (N_TTY_BUF_SIZE) holds one byte less than 4096: what TIOCSTI can put back. */
    static final int MAX_INPUT = 4095;
    private static final int MAX_READS = 100_000;

    private PtyQueues() {
    }

    /** Reads the pair's state and takes every waiting byte out of it, through Cryo's copy of its master. */
    static PtyPair read(int master, int index) {
        int ldisc = Tty.getInt(master, Tty.TIOCGETD, "TIOCGETD");
        if (ldisc != 0) {
            throw new dev.cryo.core.Refusal("pty /dev/pts/" + index + " uses line discipline " + ldisc + ", not N_TTY");
        }
        boolean locked = Tty.getInt(master, Tty.TIOCGPTLCK, "TIOCGPTLCK") != 0;
        boolean packet = Tty.getInt(master, Tty.TIOCGPKT, "TIOCGPKT") != 0;
        byte[] ws = Tty.getBytes(master, Tty.TIOCGWINSZ, Tty.WINSIZE_SIZE, "TIOCGWINSZ");
        java.nio.ByteBuffer w = java.nio.ByteBuffer.wrap(ws).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        int slave = openSlave(master, locked);
        try {
            Termios t = Tty.getTermios(slave);
            boolean exclusive = Tty.getInt(slave, Tty.TIOCGEXCL, "TIOCGEXCL") != 0;
            PtyPair.Builder p = PtyPair.newBuilder().setIndex(index).setTermios(toProto(t)).setRows(w.getShort(0) & 0xffff)
                    .setCols(w.getShort(2) & 0xffff).setXpixel(w.getShort(4) & 0xffff).setYpixel(w.getShort(6) & 0xffff)
                    .setPacket(packet).setLocked(locked).setExclusive(exclusive);
            readInput(slave, t, p);
            p.setToMaster(ByteString.copyFrom(readOutput(master, packet, index)));
            PtyPair pair = p.build();
            LOG.fine(() -> "/dev/pts/" + index + ": " + pair.getToMaster().size() + " bytes for the master, "
                    + inputSize(pair) + " for the slave (" + pair.getToSlaveCount() + " lines), packet " + packet + ", locked " + locked);
            return pair;
        } finally {
            Sys.close(slave);
        }
    }

    /** Puts what {@link #read} took back into the same pair. */
    static void putBack(int master, PtyPair p) {
        int slave = openSlave(master, p.getLocked());
        try {
            write(master, slave, p);
        } finally {
            Sys.close(slave);
        }
    }

    /** Gives a new pair (both ends Cryo's copies) the saved window size, termios, waiting bytes and packet mode. */
    static void fill(int master, int slave, PtyPair p) {
        java.nio.ByteBuffer w = java.nio.ByteBuffer.allocate(Tty.WINSIZE_SIZE).order(java.nio.ByteOrder.LITTLE_ENDIAN)
                .putShort((short) p.getRows()).putShort((short) p.getCols()).putShort((short) p.getXpixel())
                .putShort((short) p.getYpixel());
        Tty.setBytes(slave, Tty.TIOCSWINSZ, w.array(), "TIOCSWINSZ");
        Tty.setTermios(slave, fromProto(p.getTermios()));
        write(master, slave, p);
        Tty.setInt(master, Tty.TIOCPKT, p.getPacket() ? 1 : 0, "TIOCPKT");
    }

    static int inputSize(PtyPair p) {
        int n = p.getToSlaveRest().size();
        for (InputLine l : p.getToSlaveList()) {
            n += l.getData().size() + (l.getEof() ? 1 : 0);
        }
        return n;
    }

    /** A slave open file of Cryo's own, non-blocking, that never becomes anyone's controlling terminal. */
    private static int openSlave(int master, boolean locked) {
        if (locked) {
            Tty.setInt(master, Tty.TIOCSPTLCK, 0, "TIOCSPTLCK");
        }
        try {
            return Tty.openPeer(master, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        } finally {
            if (locked) {
                Tty.setInt(master, Tty.TIOCSPTLCK, 1, "TIOCSPTLCK");
            }
        }
    }

    private static void readInput(int slave, Termios t, PtyPair.Builder p) {
        if ((t.lflag() & Tty.ICANON) == 0) {
            p.setToSlaveRest(ByteString.copyFrom(readAll(slave)));
            return;
        }
        boolean iexten = (t.lflag() & Tty.IEXTEN) != 0;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(8192);
            // at most one line per byte of the buffer: a read giving 0 forever (a hangup) ends here too
            for (int i = 0; i <= MAX_INPUT; i++) {
                long n = Sys.raw(Nr.READ, slave, buf.address(), buf.byteSize());
                if (n == -Errno.EAGAIN) {
                    break;
                }
                if (n < 0) {
                    throw new dev.cryo.sys.SysException("read(pty slave)", (int) -n, slave);
                }
                byte[] line = buf.asSlice(0, n).toArray(JAVA_BYTE);
                int last = n == 0 ? -1 : line[(int) n - 1] & 0xff;
                boolean ended = last == '\n' || last != 0 && last == t.cc(Tty.VEOL) || iexten && last != 0 && last == t.cc(Tty.VEOL2);
                p.addToSlave(InputLine.newBuilder().setData(ByteString.copyFrom(line)).setEof(!ended));
            }
        }
        // the line being typed: readable only outside canonical mode
        Tty.setTermios(slave, t.withFlags(t.iflag(), t.oflag(), t.lflag() & ~Tty.ICANON));
        try {
            p.setToSlaveRest(ByteString.copyFrom(readAll(slave)));
        } finally {
            Tty.setTermios(slave, t);
        }
    }

    /** Bytes for the master, read until none is left (a non-blocking read waits for the pty's work queue first). */
    private static byte[] readOutput(int master, boolean packet, int index) {
        int flags = (int) Sys.call("fcntl(F_GETFL)", Nr.FCNTL, master, F_GETFL);
        Sys.call("fcntl(F_SETFL)", Nr.FCNTL, master, F_SETFL, flags | O_NONBLOCK);
        try {
            return readAllPackets(master, packet, index);
        } finally {
            Sys.call("fcntl(F_SETFL)", Nr.FCNTL, master, F_SETFL, flags);
        }
    }

    private static byte[] readAllPackets(int fd, boolean packet, int index) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(16384);
            for (int i = 0; i < MAX_READS; i++) {
                long n = Sys.raw(Nr.READ, fd, buf.address(), buf.byteSize());
                if (n == -Errno.EAGAIN || n == 0) {
                    break;
                }
                if (n < 0) {
                    throw new dev.cryo.sys.SysException("read(pty master)", (int) -n, fd);
                }
                byte[] chunk = buf.asSlice(0, n).toArray(JAVA_BYTE);
                if (packet && chunk[0] != 0) {
                    // a packet-mode status byte (TIOCPKT_FLUSHREAD, _STOP, ...): not data, and not rebuilt
                    LOG.warning("/dev/pts/" + index + ": a pending packet-mode status 0x" + Integer.toHexString(chunk[0] & 0xff)
                            + " for the master is dropped");
                    continue;
                }
                out.write(chunk, packet ? 1 : 0, chunk.length - (packet ? 1 : 0));
            }
        }
        return out.toByteArray();
    }

    private static byte[] readAll(int fd) {
        return readAllPackets(fd, false, -1);
    }

    /** Writes the waiting bytes into a pair whose slave has (and gets back) the saved termios. */
    private static void write(int master, int slave, PtyPair p) {
        Termios t = fromProto(p.getTermios());
        try {
            if (inputSize(p) > 0) {
                Tty.setTermios(slave, quiet(t));
                for (InputLine l : p.getToSlaveList()) {
                    Tty.inject(slave, l.getData().toByteArray());
                    if (l.getEof()) {
                        Tty.inject(slave, new byte[] {(byte) t.cc(Tty.VEOF)});
                    }
                }
                Tty.inject(slave, p.getToSlaveRest().toByteArray());
            }
            if (!p.getToMaster().isEmpty()) {
                Tty.setTermios(slave, t.withFlags(t.iflag(), t.oflag() & ~Tty.OPOST, t.lflag() & ~Tty.FLUSHO));
                writeAll(slave, p.getToMaster().toByteArray());
            }
        } finally {
            Tty.setTermios(slave, t);
        }
    }

    /**
     * The termios under which input already processed once goes through the line discipline
     * again unchanged: no echo, no signals, no translations, no editing characters (0 disables
     * one: the kernel never treats NUL as special); ICANON and the line ends stay. IXON stays too:
     * changing it would queue a packet-mode status for the master.
     */
    static Termios quiet(Termios t) {
        int iflag = t.iflag() & ~(Tty.PARMRK | Tty.INPCK | Tty.ISTRIP | Tty.INLCR | Tty.IGNCR | Tty.ICRNL | Tty.IUCLC);
        int lflag = t.lflag() & ~(Tty.ISIG | Tty.ECHO | Tty.ECHOE | Tty.ECHOK | Tty.ECHONL | Tty.ECHOCTL | Tty.ECHOPRT
                | Tty.ECHOKE | Tty.PENDIN);
        return t.withFlags(iflag, t.oflag(), lflag).withCc(Tty.VERASE, 0).withCc(Tty.VKILL, 0).withCc(Tty.VWERASE, 0)
                .withCc(Tty.VLNEXT, 0).withCc(Tty.VREPRINT, 0);
    }

    private static void writeAll(int fd, byte[] data) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(data.length);
            buf.copyFrom(MemorySegment.ofArray(data));
            long done = 0;
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (done < data.length) {
                long n = Sys.raw(Nr.WRITE, fd, buf.address() + done, data.length - done);
                if (n == -Errno.EAGAIN && System.nanoTime() < deadline) {
                    Thread.onSpinWait();
                    continue;
                }
                if (n < 0) {
                    throw new dev.cryo.sys.SysException("write(pty slave)", (int) -n, fd);
                }
                done += n;
            }
        }
    }

    static dev.cryo.image.proto.Termios toProto(Termios t) {
        return dev.cryo.image.proto.Termios.newBuilder().setIflag(t.iflag()).setOflag(t.oflag()).setCflag(t.cflag())
                .setLflag(t.lflag()).setLine(t.line() & 0xff).setCc(ByteString.copyFrom(t.cc())).setIspeed(t.ispeed())
                .setOspeed(t.ospeed()).build();
    }

    static Termios fromProto(dev.cryo.image.proto.Termios t) {
        byte[] cc = java.util.Arrays.copyOf(t.getCc().toByteArray(), Tty.NCCS);
        return new Termios(t.getIflag(), t.getOflag(), t.getCflag(), t.getLflag(), (byte) t.getLine(), cc, t.getIspeed(),
                t.getOspeed());
    }
}
