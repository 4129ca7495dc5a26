package dev.cryo.files;

import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.image.proto.FileContents;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

/** memfd_create files: name, contents, seals and offset. (A memfd that is also mapped is refused by mem.) */
final class Memfds implements FdHandler {
    private static final String PREFIX = "/memfd:", DELETED = " (deleted)";
    private static final int F_SETFL = 4, F_ADD_SEALS = 1033, F_GET_SEALS = 1034, MFD_ALLOW_SEALING = 2, F_SEAL_SEAL = 1,
            O_APPEND = 02000;

    @Override
    public java.util.Set<FdKind> kinds() {
        return java.util.Set.of(FdKind.MEMFD);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.link().startsWith(PREFIX);
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        String name = fd.link().substring(PREFIX.length());
        if (name.endsWith(DELETED)) {
            name = name.substring(0, name.length() - DELETED.length());
        }
        int copy = fd.copy();
        int seals;
        try {
            seals = (int) Sys.raw(Nr.FCNTL, copy, F_GET_SEALS);
        } finally {
            Sys.close(copy);
        }
        e.setKind(FdKind.MEMFD).setPath(fd.link()).setSize(fd.attrs().size())
                .setContents(FileContents.newBuilder().setName(name).setSeals(Math.max(seals, 0))
                        .setData(FileContentsIo.read(fd, fd.attrs().size()))
                        .setMode(dev.cryo.mem.FileModes.of(fd.attrs().permissions())));
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        FileContents c = e.getContents();
        var sys = ctx.syscalls();
        // Without MFD_ALLOW_SEALING a memfd starts with just F_SEAL_SEAL: that is what seals == 1 means.
        boolean allowSealing = c.getSeals() != F_SEAL_SEAL;
        HiddenFds.Place mapped = HiddenFds.find(ctx, "memfd:" + e.getInode());
        int fd;
        if (mapped != null) {
            fd = HiddenFds.fetch(ctx, mapped); // made by mem for a mapping of it, bytes and all
        } else {
            fd = (int) sys.call("memfd_create", Nr.MEMFD_CREATE, sys.scratch().putString(c.getName()).value(),
                    allowSealing ? MFD_ALLOW_SEALING : 0);
            sys.scratch().reset();
            FileContentsIo.write(ctx.task().pid(), fd, c.getData());
            HiddenFds.register(ctx, "memfd:" + e.getInode(), new HiddenFds.Place(ctx.pid(), e.getFd()));
        }
        if (allowSealing && c.getSeals() != 0) {
            sys.call("fcntl(F_ADD_SEALS)", Nr.FCNTL, fd, F_ADD_SEALS, c.getSeals());
        }
        int statusFlags = e.getFlags() & (O_APPEND | FdSource.O_NONBLOCK);
        if (statusFlags != 0) {
            sys.call("fcntl(F_SETFL)", Nr.FCNTL, fd, F_SETFL, statusFlags);
        }
        if (e.getPos() != 0) {
            sys.call("lseek", Nr.LSEEK, fd, e.getPos(), 0);
        }
        return fd;
    }
}
