package dev.cryo.pipes;

import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.files.FdHandler;
import dev.cryo.files.FdSource;
import dev.cryo.files.HiddenFds;
import dev.cryo.image.ImageException;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.image.proto.PipeData;
import dev.cryo.image.proto.PipeEnd;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;

/**
 * Named pipes (FIFOs), reopened by path, with their bytes in flight saved like a pipe's. The
 * first process to restore a FIFO opens it read-write first (a holder, so that opening either
 * end never blocks and the buffer outlives the moment), refills it, and keeps the holder until
 * the tree is rebuilt.
 */
public final class Fifos implements FdHandler {
    private static final int S_IFMT = 0170000, S_IFIFO = 0010000, F_SETFL = 4;

    @Override
    public Set<FdKind> kinds() {
        return Set.of(FdKind.FIFO);
    }

    @Override
    public boolean handles(FdSource fd) {
        if (!fd.link().startsWith("/") || fd.attrs() == null || !fd.attrs().isOther()) {
            return false;
        }
        try {
            int mode = (Integer) Files.getAttribute(ProcFiles.dir(fd.pid()).resolve("fd/" + fd.fd()), "unix:mode");
            return (mode & S_IFMT) == S_IFIFO;
        } catch (IOException e) {
            return false;
        }
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        long inode = 0;
        try {
            inode = ((Number) Files.getAttribute(ProcFiles.dir(fd.pid()).resolve("fd/" + fd.fd()), "unix:ino")).longValue();
        } catch (IOException ignored) {
            // keep what we have
        }
        boolean readable = (fd.flags() & FdSource.O_ACCMODE) != FdSource.O_WRONLY;
        e.setKind(FdKind.FIFO).setPath(fd.link()).setPipe(PipeEnd.newBuilder().setInode(inode).setReadEnd(readable));
        if (readable && !Pipes.saved(ctx.shared()).containsKey(inode)) {
            Pipes.saved(ctx.shared()).put(inode, Pipes.peek(fd, inode));
        }
    }

    @Override
    public void verify(FdEntry e, int pid, java.util.Map<String, Object> options) {
        if (!Files.exists(dev.cryo.core.HostPaths.of(options, e.getPath()))) {
            throw new ImageException("fd " + e.getFd() + " of process " + pid + " was the FIFO " + e.getPath()
                    + ", which no longer exists");
        }
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        RemoteSyscalls sys = ctx.syscalls();
        String key = "fifo:" + e.getPipe().getInode();
        if (HiddenFds.find(ctx, key) == null) {
            int holder = sys.open(e.getPath(), FdSource.O_RDWR | FdSource.O_NONBLOCK | FdSource.O_CLOEXEC, 0);
            PipeData data = Pipes.image(ctx).get(e.getPipe().getInode());
            if (data != null && !data.getData().isEmpty()) {
                Pipes.refill(ctx.task().pid(), holder, data.getData());
            }
            HiddenFds.hide(ctx, key, holder);
        }
        int fd = sys.open(e.getPath(), (e.getFlags() & ~(0100 | 0200 | 01000)) | FdSource.O_NONBLOCK | FdSource.O_CLOEXEC, 0);
        sys.call("fcntl(F_SETFL)", Nr.FCNTL, fd, F_SETFL, e.getFlags() & FdSource.O_NONBLOCK);
        return fd;
    }
}
