package dev.cryo.files;

import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.image.ImageException;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.image.proto.FileContents;
import dev.cryo.sys.Nr;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A regular file unlinked while open. Its bytes go into the image; restore recreates it next to
 * where it was, opens it with the saved flags, and unlinks it again: the fd points to a deleted
 * file with the same contents and offset.
 */
final class DeletedFiles implements FdHandler {
    private static final String DELETED = " (deleted)";

    @Override
    public java.util.Set<FdKind> kinds() {
        return java.util.Set.of(FdKind.DELETED_FILE);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.link().startsWith("/") && !fd.link().startsWith("/memfd:") && fd.link().endsWith(DELETED)
                && fd.attrs() != null && fd.attrs().isRegularFile();
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        e.setKind(FdKind.DELETED_FILE).setPath(fd.link().substring(0, fd.link().length() - DELETED.length()))
                .setSize(fd.attrs().size())
                .setContents(FileContents.newBuilder().setData(FileContentsIo.read(fd, fd.attrs().size()))
                        .setMode(dev.cryo.mem.FileModes.of(fd.attrs().permissions())));
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        Path original = Path.of(e.getPath());
        Path dir = original.getParent() != null && Files.isDirectory(original.getParent()) ? original.getParent() : Path.of("/tmp");
        // under its own name when that is free, so /proc/PID/fd shows the very same "path (deleted)"
        Path ghost = !Files.exists(original, java.nio.file.LinkOption.NOFOLLOW_LINKS) && dir.equals(original.getParent())
                ? original : dir.resolve(".cryo-deleted-" + ctx.pid() + "-" + e.getFd());
        try {
            Files.write(ghost, e.getContents().getData().toByteArray());
            Files.setPosixFilePermissions(ghost, dev.cryo.mem.FileModes.from(e.getContents().getMode()));
        } catch (IOException ex) {
            throw new ImageException("cannot recreate the deleted file " + e.getPath() + " in " + dir + ": " + ex.getMessage(), ex);
        }
        try {
            int fd = ctx.syscalls().open(ghost.toString(), e.getFlags() & ~(0100 | 0200 | 01000), 0);
            if (e.getPos() != 0) {
                ctx.syscalls().call("lseek", Nr.LSEEK, fd, e.getPos(), 0);
            }
            return fd;
        } finally {
            try {
                Files.deleteIfExists(ghost);
            } catch (IOException ignored) {
                // the open fd keeps the file; a leftover name is harmless
            }
        }
    }
}
