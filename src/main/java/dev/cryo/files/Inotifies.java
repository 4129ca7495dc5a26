package dev.cryo.files;

import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.image.ImageException;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.image.proto.InotifyState;
import dev.cryo.image.proto.InotifyWatch;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.Set;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * inotify: every watch with its mask and its watch descriptor. fdinfo gives each watched
 * file as a file handle ("inotify wd:1 ino:3f7e8 sdev:fe00000 mask:300 ... f_handle:e8f7..."),
 * which Cryo opens (open_by_handle_at) to learn its path. Restore adds the watches in wd order;
 * the kernel hands out wds one after the other, so a gap is filled by a throwaway watch on a
 * scratch directory, removed again, and the IN_IGNORED events that leaves are read away.
 * Events not yet read at checkpoint time are not saved.
 */
final class Inotifies implements FdHandler {
    private static final int O_PATH = 010000000, O_DIRECTORY = 0200000, O_RDONLY = 0, IN_NONBLOCK = 04000;

    @Override
    public Set<FdKind> kinds() {
        return Set.of(FdKind.INOTIFY);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.anonInode("inotify");
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        InotifyState.Builder state = InotifyState.newBuilder();
        for (String line : fd.rawInfo().split("\n")) {
            if (!line.startsWith("inotify wd:")) {
                continue;
            }
            java.util.Map<String, String> f = new java.util.HashMap<>();
            for (String kv : line.substring("inotify ".length()).trim().split("\\s+")) {
                int colon = kv.indexOf(':');
                f.put(kv.substring(0, colon), kv.substring(colon + 1));
            }
            String path = pathOf(Long.parseLong(f.get("sdev"), 16), Integer.parseInt(f.get("fhandle-type"), 16),
                    HexFormat.of().parseHex(f.get("f_handle")));
            if (path == null) {
                throw new Refusal(fd.where() + ": watch " + f.get("wd") + " is on a file Cryo cannot find by its handle");
            }
            state.addWatches(InotifyWatch.newBuilder().setWd(Integer.parseInt(f.get("wd"), 16)).setPath(path)
                    .setMask((int) Long.parseLong(f.get("mask"), 16)));
        }
        java.util.List<InotifyWatch> sorted = new java.util.ArrayList<>(state.getWatchesList());
        sorted.sort(java.util.Comparator.comparingInt(InotifyWatch::getWd)); // fdinfo lists the newest first
        e.setKind(FdKind.INOTIFY).setPath(fd.link()).setInotify(InotifyState.newBuilder().addAllWatches(sorted));
    }

    /** The path of the file with this handle on the file system of device {@code sdev} (kernel dev_t: major << 20 | minor). */
    private static String pathOf(long sdev, int type, byte[] handle) {
        String dev = (sdev >>> 20) + ":" + (sdev & 0xfffff);
        String mountPoint = null;
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
                String[] f = line.split(" ");
                if (f[2].equals(dev)) {
                    mountPoint = f[4];
                    break;
                }
            }
        } catch (IOException ex) {
            return null;
        }
        if (mountPoint == null) {
            return null;
        }
        try (Arena arena = Arena.ofConfined()) {
            int mountFd = (int) Sys.call("open", Nr.OPEN, arena.allocateFrom(mountPoint).address(), O_RDONLY | O_DIRECTORY);
            try {
                MemorySegment fh = arena.allocate(8 + handle.length, 8);
                fh.set(JAVA_INT, 0, handle.length);
                fh.set(JAVA_INT, 4, type);
                fh.asSlice(8).copyFrom(MemorySegment.ofArray(handle));
                long fd = Sys.raw(Nr.OPEN_BY_HANDLE_AT, mountFd, fh.address(), O_PATH);
                if (fd < 0) {
                    return null;
                }
                try {
                    return Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd)).toString();
                } catch (IOException ex) {
                    return null;
                } finally {
                    Sys.close((int) fd);
                }
            } finally {
                Sys.close(mountFd);
            }
        }
    }

    @Override
    public void verify(FdEntry e, int pid, java.util.Map<String, Object> options) {
        for (InotifyWatch w : e.getInotify().getWatchesList()) {
            if (!Files.exists(dev.cryo.core.HostPaths.of(options, w.getPath()))) {
                throw new ImageException("inotify fd " + e.getFd() + " of process " + pid + " watched " + w.getPath()
                        + ", which no longer exists");
            }
        }
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        RemoteSyscalls sys = ctx.syscalls();
        int fd = (int) sys.call("inotify_init1", Nr.INOTIFY_INIT1, IN_NONBLOCK);
        int gaps = 0;
        try {
            for (InotifyWatch w : e.getInotify().getWatchesList()) {
                while (true) {
                    long wd = sys.call("inotify_add_watch(" + w.getPath() + ")", Nr.INOTIFY_ADD_WATCH, fd,
                            sys.scratch().putString(w.getPath()).value(), w.getMask() & 0xffffffffL);
                    sys.scratch().reset();
                    if (wd == w.getWd()) {
                        break;
                    }
                    if (wd > w.getWd()) {
                        throw new ImageException("inotify fd " + e.getFd() + ": watch " + w.getPath() + " got wd " + wd
                                + ", not " + w.getWd());
                    }
                    // a wd below the wanted one: that watch was a stand-in (or a duplicate inode); drop it, try on
                    sys.call("inotify_rm_watch", Nr.INOTIFY_RM_WATCH, fd, wd);
                    gaps++;
                    if (gaps > 100_000) {
                        throw new ImageException("inotify fd " + e.getFd() + ": cannot reach wd " + w.getWd());
                    }
                }
            }
        } finally {
            drain(sys, fd);
        }
        sys.call("fcntl(F_SETFL)", Nr.FCNTL, fd, 4, e.getFlags() & FdSource.O_NONBLOCK);
        return fd;
    }

    /** Reads away the IN_IGNORED events the stand-in watches left: the fresh fd has no others. */
    private static void drain(RemoteSyscalls sys, int fd) {
        var buf = sys.scratch().alloc(4096);
        while (sys.raw(Nr.READ, fd, buf.value(), 4096) > 0) {
            // keep reading until EAGAIN
        }
        sys.scratch().reset();
    }
}
