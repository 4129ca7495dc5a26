package dev.cryo.tty;

import dev.cryo.core.Checkpoint;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.files.FdHandler;
import dev.cryo.files.FdSource;
import dev.cryo.files.HiddenFds;
import dev.cryo.files.Terminals;
import dev.cryo.image.ImageException;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageWriter;
import dev.cryo.image.proto.ControllingSession;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.image.proto.PtyEnd;
import dev.cryo.image.proto.PtyPair;
import dev.cryo.image.proto.PtysImage;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;
import dev.cryo.sys.Tty;

import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.logging.Logger;

/**
 * Pseudo-terminal pairs both of whose ends are open in the tree. Restore makes a new pair
 * (/dev/ptmx opened inside the process that restores the first of its ends), unlocks it and
 * keeps one slave open from that moment on, so the master never reads EIO; it gives it the
 * saved window size (before any session owns it, so nobody gets SIGWINCH), termios, the bytes
 * waiting in both directions ({@link PtyQueues}), packet mode, and exclusive mode and the lock
 * last, once every end is open again. Every open
 * file of the slave is a new one (TIOCGPTPEER on the master), with its own flags. The session
 * leader of every session whose controlling terminal the slave was takes it back (TIOCSCTTY)
 * and sets the foreground group (TIOCSPGRP), as /proc/PID/stat (tty_nr, tpgid) said at
 * checkpoint. A slave whose master is outside the tree is the shell-job case ({@link Terminals}).
 */
public final class Ptys implements FdHandler {
    private static final Logger LOG = Logger.getLogger("ptys");
    private static final int O_RDWR = 2, O_NOCTTY = 0400, O_CLOEXEC = 02000000, O_ACCMODE = 3, O_APPEND = 02000,
            O_NONBLOCK = 04000, F_SETFL = 4;
    /** Unix98 pty slaves are char devices of this major; the minor is the pair's index. */
    private static final int PTS_MAJOR = 136;
    private static final String TREE_MASTERS = "ptys:tree-masters", MASTERS = "ptys:masters", SLAVES = "ptys:slaves",
            TAKEN = "ptys:taken", IMAGE = "ptys:image", NEW_MASTERS = "ptys:new-masters";

    /** A master dumped: where it is, and Cryo's copy of it (held until the checkpoint ends). */
    private record Master(int pid, int fd, int copy) {
    }

    private final Terminals shellJob = new Terminals();

    @Override
    public Set<FdKind> kinds() {
        return Set.of(FdKind.PTY);
    }

    @Override
    public boolean handles(FdSource fd) {
        return isMaster(fd.link()) || slaveIndex(fd.link()) >= 0;
    }

    private static boolean isMaster(String link) {
        return link.equals("/dev/ptmx") || link.equals("/dev/pts/ptmx");
    }

    /** N of /dev/pts/N, or -1. */
    private static int slaveIndex(String link) {
        return link.matches("/dev/pts/\\d+") ? Integer.parseInt(link.substring("/dev/pts/".length())) : -1;
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        if (isMaster(fd.link())) {
            int copy = fd.copy();
            int index;
            try {
                index = Tty.getInt(copy, Tty.TIOCGPTN, "TIOCGPTN");
            } catch (RuntimeException ex) {
                Sys.close(copy);
                throw ex;
            }
            Master old = masters(ctx.shared()).putIfAbsent(index, new Master(fd.pid(), fd.fd(), copy));
            if (old != null) {
                Sys.close(copy);
            }
            e.setKind(FdKind.PTY).setPty(PtyEnd.newBuilder().setIndex(index).setMaster(true));
            return;
        }
        int index = slaveIndex(fd.link());
        if (!treeMasters(ctx.shared()).contains(index)) {
            shellJob.dump(fd, e, ctx); // its master is outside: a shell job's terminal, or refused
            return;
        }
        slaves(ctx.shared()).add(index);
        e.setKind(FdKind.PTY).setPty(PtyEnd.newBuilder().setIndex(index).setMaster(false));
    }

    /** The indexes of every pty master open in the tree (found once, on the first slave seen). */
    @SuppressWarnings("unchecked")
    private static Set<Integer> treeMasters(Map<String, Object> shared) {
        return (Set<Integer>) shared.computeIfAbsent(TREE_MASTERS, k -> {
            Set<Integer> found = new java.util.HashSet<>();
            for (int pid : treePids((Integer) shared.get(Checkpoint.ROOT_PID))) {
                for (String fd : fdNames(pid)) {
                    String link;
                    try {
                        link = ProcFiles.readLink(pid, "fd/" + fd);
                    } catch (RuntimeException gone) {
                        continue;
                    }
                    if (link != null && isMaster(link)) {
                        int copy = Sys.fdOf(pid, Integer.parseInt(fd));
                        try {
                            found.add(Tty.getInt(copy, Tty.TIOCGPTN, "TIOCGPTN"));
                        } finally {
                            Sys.close(copy);
                        }
                    }
                }
            }
            return found;
        });
    }

    @Override
    public void afterTreeDump(ImageWriter image, Map<String, Object> shared) {
        Map<Integer, Master> masters = masters(shared);
        if (masters.isEmpty()) {
            return;
        }
        for (Map.Entry<Integer, Master> m : masters.entrySet()) {
            if (!slaves(shared).contains(m.getKey())) {
                throw new Refusal("fd " + m.getValue().fd() + " of process " + m.getValue().pid() + " is the master of /dev/pts/"
                        + m.getKey() + ", whose slave is not open in the process tree; only pty pairs with both ends in the tree"
                        + " can be restored");
            }
        }
        Map<Integer, List<ControllingSession>> sessions = controllingSessions(shared, masters.keySet());
        PtysImage.Builder out = PtysImage.newBuilder();
        for (Map.Entry<Integer, Master> m : masters.entrySet()) {
            PtyPair pair = PtyQueues.read(m.getValue().copy(), m.getKey());
            taken(shared).put(m.getKey(), pair);
            if (PtyQueues.inputSize(pair) > PtyQueues.MAX_INPUT) {
                throw new Refusal("/dev/pts/" + m.getKey() + " holds " + PtyQueues.inputSize(pair) + " bytes of unread input, more"
                        + " than its line discipline's buffer (" + PtyQueues.MAX_INPUT + ") can be given back");
            }
            out.addPairs(pair.toBuilder().addAllSessions(sessions.getOrDefault(m.getKey(), List.of())));
        }
        image.write(ImageKind.PTYS, 0, out.build());
    }

    /**
     * The sessions of the tree whose controlling terminal is one of these pairs' slave, with their
     * foreground groups; refused where the session's leader, who alone can take the terminal
     * back, is not in the tree.
     */
    private static Map<Integer, List<ControllingSession>> controllingSessions(Map<String, Object> shared, Set<Integer> indexes) {
        Map<Integer, List<ControllingSession>> out = new HashMap<>();
        List<Integer> pids = treePids((Integer) shared.get(Checkpoint.ROOT_PID));
        for (int pid : pids) {
            List<String> stat;
            try {
                stat = ProcFiles.statFields(pid);
            } catch (RuntimeException gone) {
                continue;
            }
            if (stat.get(0).equals("Z")) {
                continue;
            }
            int sid = (int) ProcFiles.statField(stat, 6);
            long ttyNr = ProcFiles.statField(stat, 7);
            int tpgid = (int) ProcFiles.statField(stat, 8);
            int major = (int) ((ttyNr >> 8) & 0xfff);
            int minor = (int) ((ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00));
            if (ttyNr == 0 || major != PTS_MAJOR || !indexes.contains(minor)) {
                continue;
            }
            if (sid == pid) {
                out.computeIfAbsent(minor, k -> new ArrayList<>())
                        .add(ControllingSession.newBuilder().setSid(sid).setForeground(tpgid).build());
            } else if (!pids.contains(sid)) {
                throw new Refusal("process " + pid + " has /dev/pts/" + minor + " as its controlling terminal, but the leader "
                        + sid + " of its session is not in the process tree and could not give it back");
            }
        }
        return out;
    }

    /** The bytes taken out of the pairs go back in if the tree runs on; Cryo's copies of the masters are closed. */
    @Override
    public void afterCheckpoint(Map<String, Object> shared, boolean killed) {
        RuntimeException failure = null;
        for (Map.Entry<Integer, Master> m : masters(shared).entrySet()) {
            PtyPair pair = taken(shared).get(m.getKey());
            try {
                if (!killed && pair != null) {
                    PtyQueues.putBack(m.getValue().copy(), pair);
                }
            } catch (RuntimeException e) {
                LOG.severe("/dev/pts/" + m.getKey() + ": putting its waiting bytes back failed: " + e.getMessage());
                failure = failure == null ? e : failure;
            } finally {
                Sys.close(m.getValue().copy());
            }
        }
        masters(shared).clear();
        taken(shared).clear();
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        int index = e.getPty().getIndex();
        RemoteSyscalls sys = ctx.syscalls();
        int master = ensurePair(ctx, index);
        if (e.getPty().getMaster()) {
            sys.call("fcntl(F_SETFL)", Nr.FCNTL, master, F_SETFL, e.getFlags() & (O_NONBLOCK | O_APPEND));
            return master;
        }
        try {
            int flags = e.getFlags() & (O_ACCMODE | O_NONBLOCK | O_APPEND) | O_NOCTTY | O_CLOEXEC;
            return (int) sys.call("ioctl(TIOCGPTPEER)", Nr.IOCTL, master, Tty.TIOCGPTPEER, flags);
        } finally {
            sys.closeFd(master);
        }
    }

    /** A session leader takes its controlling terminal back, and gives its foreground to the saved group. */
    @Override
    public void afterFds(RestoreContext ctx) {
        for (PtyPair pair : image(ctx).values()) {
            for (ControllingSession s : pair.getSessionsList()) {
                if (s.getSid() == ctx.pid()) {
                    takeControllingTerminal(ctx, pair.getIndex(), s);
                }
            }
        }
    }

    private static void takeControllingTerminal(RestoreContext ctx, int index, ControllingSession s) {
        RemoteSyscalls sys = ctx.syscalls();
        int master = ensurePair(ctx, index);
        int slave;
        try {
            slave = (int) sys.call("ioctl(TIOCGPTPEER)", Nr.IOCTL, master, Tty.TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        } finally {
            sys.closeFd(master);
        }
        try {
            sys.call("ioctl(TIOCSCTTY)", Nr.IOCTL, slave, Tty.TIOCSCTTY, 0);
            if (s.getForeground() > 0) {
                // right after TIOCSCTTY the leader's own group is the foreground: no SIGTTOU for asking
                long r = sys.raw(Nr.IOCTL, slave, Tty.TIOCSPGRP, sys.scratch().put(intBytes(ctx.inNamespace(s.getForeground()))).value());
                sys.scratch().reset();
                if (r < 0) {
                    LOG.warning("process " + ctx.pid() + ": the foreground group " + s.getForeground() + " of /dev/pts/" + index
                            + " could not be set again (errno " + -r + "); the session leader's group has it");
                }
            }
        } finally {
            sys.closeFd(slave);
        }
        LOG.fine(() -> "process " + ctx.pid() + ": /dev/pts/" + index + " is its session's terminal again, foreground "
                + s.getForeground());
    }

    /**
     * The new pair for saved pair {@code index}, made in this process if no process made it yet;
     * returns a new fd of its master in this process.
     */
    private static int ensurePair(RestoreContext ctx, int index) {
        String masterKey = "pty:" + index + ":master";
        HiddenFds.Place place = HiddenFds.find(ctx, masterKey);
        if (place == null) {
            PtyPair pair = image(ctx).get(index);
            if (pair == null) {
                throw new ImageException("pty /dev/pts/" + index + " is not in ptys.img");
            }
            RemoteSyscalls sys = ctx.syscalls();
            int master = sys.open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC, 0);
            sys.call("ioctl(TIOCSPTLCK)", Nr.IOCTL, master, Tty.TIOCSPTLCK, sys.scratch().put(intBytes(0)).value());
            sys.scratch().reset();
            int slave = (int) sys.call("ioctl(TIOCGPTPEER)", Nr.IOCTL, master, Tty.TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
            // the slave stays open (hidden) until the whole tree is restored: the master never sees it closed
            int hiddenMaster = HiddenFds.hide(ctx, masterKey, master);
            int hiddenSlave = HiddenFds.hide(ctx, "pty:" + index + ":slave", slave);
            int cryoMaster = Sys.fdOf(ctx.task().pid(), hiddenMaster);
            newMasters(ctx).put(index, cryoMaster);
            int cryoSlave = Sys.fdOf(ctx.task().pid(), hiddenSlave);
            try {
                PtyQueues.fill(cryoMaster, cryoSlave, pair);
            } finally {
                Sys.close(cryoSlave);
            }
            LOG.fine(() -> "process " + ctx.pid() + ": pty /dev/pts/" + index + " made again as /dev/pts/"
                    + Tty.getInt(cryoMaster, Tty.TIOCGPTN, "TIOCGPTN"));
            place = HiddenFds.find(ctx, masterKey);
        }
        return HiddenFds.fetch(ctx, place);
    }

    /** Every end is open again: pairs saved locked are locked now, and Cryo lets go of its copies. */
    @Override
    public void afterTreeRestore(RestoreContext ctx) {
        Map<Integer, Integer> mine = newMasters(ctx);
        RuntimeException failure = null;
        for (Map.Entry<Integer, Integer> m : mine.entrySet()) {
            try {
                PtyPair pair = image(ctx).get(m.getKey());
                if (pair.getExclusive()) {
                    int slave = Tty.openPeer(m.getValue(), O_RDWR | O_NOCTTY | O_CLOEXEC);
                    try {
                        Sys.call("ioctl(TIOCEXCL)", Nr.IOCTL, slave, Tty.TIOCEXCL);
                    } finally {
                        Sys.close(slave);
                    }
                }
                if (pair.getLocked()) {
                    Tty.setInt(m.getValue(), Tty.TIOCSPTLCK, 1, "TIOCSPTLCK");
                }
            } catch (RuntimeException e) {
                failure = failure == null ? e : failure;
            } finally {
                Sys.close(m.getValue());
            }
        }
        mine.clear();
        if (failure != null) {
            throw failure;
        }
    }

    private static byte[] intBytes(int v) {
        return java.nio.ByteBuffer.allocate(4).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }

    /** The processes of the tree under {@code root}, parents first (the tree is frozen: it holds still). */
    private static List<Integer> treePids(int root) {
        List<Integer> out = new ArrayList<>();
        Set<Integer> seen = new LinkedHashSet<>();
        Deque<Integer> todo = new ArrayDeque<>(List.of(root));
        while (!todo.isEmpty()) {
            int pid = todo.poll();
            if (!seen.add(pid)) {
                continue;
            }
            out.add(pid);
            for (String task : list(ProcFiles.dir(pid).resolve("task"))) {
                try {
                    String children = Files.readString(ProcFiles.dir(pid).resolve("task/" + task + "/children")).strip();
                    for (String c : children.isEmpty() ? new String[0] : children.split("\\s+")) {
                        todo.add(Integer.parseInt(c));
                    }
                } catch (IOException gone) {
                    // a thread that ended
                }
            }
        }
        return out;
    }

    private static List<String> fdNames(int pid) {
        return list(ProcFiles.dir(pid).resolve("fd"));
    }

    private static List<String> list(java.nio.file.Path dir) {
        try (var s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).toList();
        } catch (IOException e) {
            return List.of();
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<Integer, Master> masters(Map<String, Object> shared) {
        return (Map<Integer, Master>) shared.computeIfAbsent(MASTERS, k -> new TreeMap<Integer, Master>());
    }

    @SuppressWarnings("unchecked")
    private static Set<Integer> slaves(Map<String, Object> shared) {
        return (Set<Integer>) shared.computeIfAbsent(SLAVES, k -> new java.util.HashSet<Integer>());
    }

    /** Pairs whose bytes were taken out at checkpoint: to put back if the tree runs on. */
    @SuppressWarnings("unchecked")
    private static Map<Integer, PtyPair> taken(Map<String, Object> shared) {
        return (Map<Integer, PtyPair>) shared.computeIfAbsent(TAKEN, k -> new TreeMap<Integer, PtyPair>());
    }

    @SuppressWarnings("unchecked")
    private static Map<Integer, PtyPair> image(RestoreContext ctx) {
        return (Map<Integer, PtyPair>) ctx.shared().computeIfAbsent(IMAGE, k -> {
            Map<Integer, PtyPair> byIndex = new HashMap<>();
            if (ctx.image().has(ImageKind.PTYS, 0)) {
                ctx.image().read(ImageKind.PTYS, 0, PtysImage.parser()).getPairsList().forEach(p -> byIndex.put(p.getIndex(), p));
            }
            return byIndex;
        });
    }

    /** Cryo's copies of the masters of the new pairs, until the tree is restored. */
    @SuppressWarnings("unchecked")
    private static Map<Integer, Integer> newMasters(RestoreContext ctx) {
        return (Map<Integer, Integer>) ctx.shared().computeIfAbsent(NEW_MASTERS, k -> new TreeMap<Integer, Integer>());
    }
}
