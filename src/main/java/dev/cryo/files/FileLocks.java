package dev.cryo.files;

import dev.cryo.core.RestoreContext;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FileLock;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * File locks held at checkpoint time are held again after restore: POSIX (fcntl) locks by the
 * process, OFD locks and flock()s by the open file. fdinfo lists them per fd, in the format of
 * /proc/locks ("lock:\t1: POSIX  ADVISORY  WRITE 123 fe:00:456 0 99"); restore takes them again,
 * without waiting, once every fd of the process is in place.
 */
final class FileLocks {
    private static final int F_SETLK = 6, F_OFD_SETLK = 37, F_RDLCK = 0, F_WRLCK = 1;
    private static final int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, FLOCK = 73;

    private FileLocks() {
    }

    /** The locks fdinfo shows for this fd; POSIX ones only the first time they are seen in the process. */
    static List<FileLock> parse(String fdinfo, Set<String> posixSeen) {
        List<FileLock> out = new ArrayList<>();
        for (String line : fdinfo.split("\n")) {
            if (!line.startsWith("lock:")) {
                continue;
            }
            // lock:	1: POSIX  ADVISORY  WRITE 1234 fe:00:2147147 0 99
            String[] f = line.substring(line.indexOf(':') + 1).trim().split("\\s+");
            String kind = f[1];
            FileLock.Builder lock = FileLock.newBuilder().setWrite(f[3].equals("WRITE"));
            switch (kind) {
                case "POSIX" -> lock.setKind(FileLock.Kind.POSIX);
                case "OFDLCK" -> lock.setKind(FileLock.Kind.OFD);
                case "FLOCK" -> lock.setKind(FileLock.Kind.FLOCK);
                default -> {
                    continue; // leases and the like: not restored
                }
            }
            if (!kind.equals("FLOCK")) {
                lock.setStart(Long.parseLong(f[6])).setEnd(f[7].equals("EOF") ? -1 : Long.parseLong(f[7]));
            }
            if (kind.equals("POSIX") && !posixSeen.add(f[5] + " " + f[6] + " " + f[7])) {
                continue;
            }
            out.add(lock.build());
        }
        return out;
    }

    static void restore(FdEntry e, RestoreContext ctx) {
        RemoteSyscalls sys = ctx.syscalls();
        for (FileLock lock : e.getLocksList()) {
            if (lock.getKind() == FileLock.Kind.FLOCK) {
                sys.call("flock", FLOCK, e.getFd(), (lock.getWrite() ? LOCK_EX : LOCK_SH) | LOCK_NB);
                continue;
            }
            // struct flock: short l_type, short l_whence, (pad), off_t l_start, off_t l_len, pid_t l_pid
            ByteBuffer fl = ByteBuffer.allocate(32).order(ByteOrder.LITTLE_ENDIAN);
            fl.putShort((short) (lock.getWrite() ? F_WRLCK : F_RDLCK)).putShort((short) 0).putInt(0)
                    .putLong(lock.getStart()).putLong(lock.getEnd() < 0 ? 0 : lock.getEnd() - lock.getStart() + 1).putInt(0);
            RemoteAddr at = sys.scratch().put(fl.array());
            int cmd = lock.getKind() == FileLock.Kind.OFD ? F_OFD_SETLK : F_SETLK;
            sys.call(lock.getKind() == FileLock.Kind.OFD ? "fcntl(F_OFD_SETLK)" : "fcntl(F_SETLK)", Nr.FCNTL, e.getFd(), cmd, at.value());
            sys.scratch().reset();
        }
    }
}
