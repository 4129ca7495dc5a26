package dev.cryo.mem;

import dev.cryo.core.RestoreContext;
import dev.cryo.files.HiddenFds;
import dev.cryo.image.ImageException;
import dev.cryo.image.proto.VmaEntry;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.util.Map;

/**
 * Memory that is one object however many areas and processes map it: shared anonymous memory
 * and memfds. The first to restore it makes it; the others find it through the tree-wide
 * registry of the restore and map the very same object.
 */
final class SharedObjects {
    private static final int O_RDWR = 2, O_CLOEXEC = 0x80000, MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2;

    private SharedObjects() {
    }

    /**
     * Shared anonymous memory is one object however many processes map it. The first process to
     * restore it creates it; the others open it through that process's /proc/PID/map_files and
     * map the very same object (an fd registered under "file:" + path for {@link #map}).
     */
    static void sharedAnon(RestoreContext ctx, VmaEntry vma, Map<String, Integer> files) {
        String key = "shmem:" + vma.getFileInode();
        String[] first = (String[]) ctx.shared().get(key);
        if (first == null) {
            if (vma.getPgoff() != 0) {
                throw new ImageException("shared memory at " + Vmas.describe(vma) + " starts at offset " + vma.getPgoff()
                        + " of its object; only whole objects can be recreated");
            }
            ctx.shared().put(key, new String[] {Integer.toString(ctx.inNamespace(ctx.pid())), Long.toHexString(vma.getStart()) + "-"
                    + Long.toHexString(vma.getEnd())});
            return;
        }
        String path = "/proc/" + first[0] + "/map_files/" + first[1];
        files.put("rw:" + vma.getPath() + "#" + vma.getFileInode(),
                ctx.syscalls().open(path, O_RDWR | O_CLOEXEC, 0));
    }

    /**
     * A memfd is one object for every area that maps it and every fd that holds it, in any
     * process: the first to need it creates it (with its bytes) and leaves it hidden under
     * "memfd:INODE" for the others, and for the files part of whoever also has it as an fd.
     */
    static void memfd(RestoreContext ctx, VmaEntry vma, Map<String, Integer> files) {
        String key = "memfd:" + vma.getFileInode();
        HiddenFds.Place place = HiddenFds.find(ctx, key);
        if (place == null) {
            RemoteSyscalls sys = ctx.syscalls();
            int fd = (int) sys.call("memfd_create", Nr.MEMFD_CREATE, sys.scratch().putString(Vmas.memfdName(vma.getPath())).value(),
                    MFD_CLOEXEC | MFD_ALLOW_SEALING);
            sys.scratch().reset();
            sys.call("ftruncate", Nr.FTRUNCATE, fd, vma.getFileContents().size());
            dev.cryo.files.FileContentsIo.write(ctx.task().pid(), fd, vma.getFileContents());
            HiddenFds.hide(ctx, key, fd);
            place = HiddenFds.find(ctx, key);
        }
        files.put("memfd:" + vma.getFileInode(), HiddenFds.fetch(ctx, place));
    }

}
