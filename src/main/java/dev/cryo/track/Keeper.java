package dev.cryo.track;

import dev.cryo.image.proto.TrackedProcess;
import dev.cryo.image.proto.TrackerImage;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.TinyElf;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;
import dev.cryo.sys.SysException;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

/**
 * The process that keeps dirty tracking alive between two Cryo commands. Tracking lasts only
 * while a userfaultfd is open, and `cryo pre-dump` exits: so it spawns this keeper with every
 * tracked process's userfaultfd as its fds 3, 4, ... The keeper is a 60-byte program run from a
 * memfd that starts a session of its own (a closing terminal must not end the tracking), names
 * itself {@code cryo-tracker} and then only waits:
 * <pre>
 *   mov eax, 112 (setsid); syscall
 *   mov eax, 157 (prctl); mov edi, 15 (PR_SET_NAME); lea rsi, [rip + name]; syscall
 *   loop: mov eax, 34 (pause); syscall; jmp loop
 *   name: "cryo-tracker\0"
 * </pre>
 * It is recorded in the pre-dump's tracker.img by pid and start time; the next dump trusts it
 * only if both still match, takes the fds with pidfd_getfd and ends it with pidfd_send_signal
 * (never a signal to a pid that may have been reused).
 */
public final class Keeper {
    private static final Logger LOG = Logger.getLogger("track");
    private static final long BASE = 0x7b000000L;
    private static final int SIGKILL = 9;
    private static final String NAME = "cryo-tracker";

    private Keeper() {
    }

    static byte[] elf() {
        byte[] code = {
                (byte) 0xb8, 112, 0, 0, 0, 0x0f, 0x05,
                (byte) 0xb8, (byte) 157, 0, 0, 0, (byte) 0xbf, 15, 0, 0, 0,
                0x48, (byte) 0x8d, 0x35, 11, 0, 0, 0, 0x0f, 0x05,
                (byte) 0xb8, 34, 0, 0, 0, 0x0f, 0x05, (byte) 0xeb, (byte) 0xf7};
        byte[] name = (NAME + "\0").getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        byte[] all = new byte[code.length + name.length];
        System.arraycopy(code, 0, all, 0, code.length);
        System.arraycopy(name, 0, all, code.length, name.length);
        return TinyElf.of(BASE, all);
    }

    /** Spawns a keeper holding the userfaultfd of every tracker; the trackers keep their own copies. */
    public static TrackerImage spawn(List<Tracker> trackers) {
        List<Integer> dups = new ArrayList<>();
        try {
            for (Tracker t : trackers) {
                dups.add(Sys.dupAbove(t.fd(), 10));
            }
            // the tracked pids as arguments (the keeper ignores them): /proc/PID/cmdline says whom it tracks
            List<String> argv = new ArrayList<>(List.of(NAME));
            trackers.forEach(t -> argv.add(Integer.toString(t.pid())));
            int pid = TinyElf.spawn(elf(), argv.toArray(String[]::new), dups.stream().mapToInt(Integer::intValue).toArray());
            awaitNamed(pid);
            TrackerImage.Builder image = TrackerImage.newBuilder().setKeeperPid(pid).setKeeperStartTime(startTime(pid));
            for (int i = 0; i < trackers.size(); i++) {
                image.addProcesses(TrackedProcess.newBuilder().setPid(trackers.get(i).pid()).setKeeperFd(3 + i));
            }
            LOG.info(() -> "dirty tracking of " + trackers.size() + " process(es) kept alive by " + NAME + " process " + pid);
            return image.build();
        } finally {
            dups.forEach(fd -> Sys.raw(Nr.CLOSE, fd));
        }
    }

    /**
     * Waits until the keeper has named itself. The spawn returns once the exec has replaced the
     * keeper's memory, a moment before the kernel lays out its arguments: until then its
     * cmdline, which says whom it tracks, reads empty.
     */
    private static void awaitNamed(int pid) {
        long deadline = System.nanoTime() + 2_000_000_000L;
        while (!NAME.equals(comm(pid))) {
            if (System.nanoTime() > deadline) {
                char state = ProcFiles.state(pid);
                Sys.kill(pid, SIGKILL); // our own child, not yet waited for: the pid is still its
                throw new dev.cryo.CryoException(NAME + " process " + pid + " did not start within 2 s (its state was "
                        + (state == 0 ? "gone" : String.valueOf(state)) + ")");
            }
            Thread.onSpinWait();
            Thread.yield();
        }
    }

    private static String comm(int pid) {
        try {
            return ProcFiles.readString(pid, "comm").strip();
        } catch (RuntimeException gone) {
            return "";
        }
    }

    /**
     * Ends every keeper that tracks one of {@code pids}: a full checkpoint of a pre-dumped tree
     * does not use the tracking, and nothing else would end it. Returns how many were ended.
     */
    public static int endStrays(java.util.Collection<Integer> pids) {
        int ended = 0;
        try (java.util.stream.Stream<java.nio.file.Path> procs = java.nio.file.Files.list(java.nio.file.Path.of("/proc"))) {
            for (java.nio.file.Path dir : procs.filter(d -> d.getFileName().toString().matches("\\d+")).toList()) {
                try {
                    if (!NAME.equals(java.nio.file.Files.readString(dir.resolve("comm")).strip())) {
                        continue;
                    }
                    String[] args = java.nio.file.Files.readString(dir.resolve("cmdline")).split("\0");
                    boolean ours = java.util.Arrays.stream(args).skip(1).anyMatch(a -> a.matches("\\d+") && pids.contains(Integer.parseInt(a)));
                    if (ours) {
                        int keeper = Integer.parseInt(dir.getFileName().toString());
                        int pidfd = Sys.pidfdOpen(keeper);
                        try {
                            Sys.pidfdSendSignal(pidfd, SIGKILL);
                        } finally {
                            Sys.close(pidfd);
                        }
                        ended++;
                        LOG.info(() -> NAME + " process " + keeper + " ended: a full checkpoint does not use its tracking");
                    }
                } catch (java.io.IOException | RuntimeException gone) {
                    // a process that went away while looked at
                }
            }
        } catch (java.io.IOException e) {
            LOG.fine(() -> "cannot list /proc for stray keepers: " + e.getMessage());
        }
        return ended;
    }

    /** Ends a keeper just spawned (a pre-dump that failed after spawning it). */
    public static void endQuietly(TrackerImage image) {
        Held held = adopt(image, "a failed pre-dump");
        if (held != null) {
            held.end();
            held.close();
        }
    }

    /** A keeper found alive and verified: its tracking, taken over into Cryo, and a pidfd to end it by. */
    public static final class Held implements AutoCloseable {
        private final int pid;
        private int pidfd;
        private final Map<Integer, Tracker> trackers;

        private Held(int pid, int pidfd, Map<Integer, Tracker> trackers) {
            this.pid = pid;
            this.pidfd = pidfd;
            this.trackers = trackers;
        }

        /** The trackers by process id. */
        public Map<Integer, Tracker> trackers() {
            return trackers;
        }

        /**
         * Ends the keeper. Tracking goes on as long as Cryo's copies are open; once those close,
         * it ends too.
         */
        public void end() {
            if (pidfd < 0) {
                return;
            }
            try {
                Sys.pidfdSendSignal(pidfd, SIGKILL);
            } catch (SysException e) {
                LOG.fine(() -> "keeper " + pid + " already gone: " + e.getMessage());
            }
            Sys.raw(Nr.CLOSE, pidfd);
            pidfd = -1;
            // the keeper may be this JVM's child (a pre-dump run in the same JVM): reap it then
            if (ProcFiles.exists(pid) && ppid(pid) == Sys.getpid()) {
                Sys.raw(Nr.WAIT4, pid, 0, 0x40000000, 0);
            }
            LOG.info(() -> "keeper process " + pid + " ended");
        }

        /** Closes Cryo's copies of the userfaultfds and the pidfd; the keeper, if not ended, keeps the tracking. */
        @Override
        public void close() {
            trackers.values().forEach(Tracker::close);
            if (pidfd >= 0) {
                Sys.raw(Nr.CLOSE, pidfd);
                pidfd = -1;
            }
        }
    }

    /**
     * Takes the tracking over from the keeper {@code image} names, or returns null (and says why
     * in the log) when it is gone or is not that keeper any more: the dump then copies all.
     */
    public static Held adopt(TrackerImage image, String imageName) {
        int pid = image.getKeeperPid();
        if (pid <= 0 || !ProcFiles.exists(pid)) {
            LOG.warning(() -> "the dirty-tracking keeper of " + imageName + " (process " + pid
                    + ") is gone: tracking ended, every page is copied again");
            return null;
        }
        int pidfd;
        try {
            pidfd = Sys.pidfdOpen(pid);
        } catch (SysException e) {
            LOG.warning(() -> "the dirty-tracking keeper of " + imageName + " (process " + pid + ") is gone: every page is copied again");
            return null;
        }
        // checked after the pidfd is open: from here on the pidfd names this very process
        if (startTime(pid) != image.getKeeperStartTime()) {
            Sys.raw(Nr.CLOSE, pidfd);
            LOG.warning(() -> "process " + pid + " is no longer the dirty-tracking keeper of " + imageName
                    + " (another process took its PID): every page is copied again");
            return null;
        }
        Map<Integer, Tracker> trackers = new LinkedHashMap<>();
        try {
            for (TrackedProcess p : image.getProcessesList()) {
                int fd = Sys.pidfdGetfd(pidfd, p.getKeeperFd());
                String what = ProcFiles.readLink(Sys.getpid(), "fd/" + fd);
                if (!"anon_inode:[userfaultfd]".equals(what)) {
                    Sys.close(fd);
                    throw new IllegalStateException("fd " + p.getKeeperFd() + " of keeper " + pid + " is " + what);
                }
                trackers.put(p.getPid(), Tracker.adopt(p.getPid(), fd));
            }
        } catch (RuntimeException e) {
            trackers.values().forEach(Tracker::close);
            Sys.raw(Nr.CLOSE, pidfd);
            LOG.warning(() -> "cannot take the dirty tracking from keeper " + pid + " of " + imageName + ": "
                    + e.getMessage() + "; every page is copied again");
            return null;
        }
        LOG.fine(() -> "took the dirty tracking of " + trackers.size() + " process(es) from keeper " + pid);
        return new Held(pid, pidfd, trackers);
    }

    /** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot; 0 if gone. */
    static long startTime(int pid) {
        try {
            return ProcFiles.statField(ProcFiles.statFields(pid), 22);
        } catch (RuntimeException e) {
            return 0;
        }
    }

    private static int ppid(int pid) {
        try {
            return (int) ProcFiles.statField(ProcFiles.statFields(pid), 4);
        } catch (RuntimeException e) {
            return 0;
        }
    }
}
