package dev.cryo.mem;

import dev.cryo.image.ImageException;
import dev.cryo.image.proto.VmaEntry;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * SysV shared memory of the host's IPC namespace (checkpoint --ipc-host): the segment stays on
 * the host; restore attaches it again at the same address. /proc/PID/maps shows it as
 * "/SYSV&lt;key&gt; (deleted)" with the shm id as inode.
 */
final class SysvShm {
    private static final int SHM_RDONLY = 010000, SHM_REMAP = 040000;

    private SysvShm() {
    }

    static boolean exists(long shmid) {
        try {
            return Files.readAllLines(Path.of("/proc/sysvipc/shm")).stream().skip(1)
                    .map(l -> l.trim().split("\\s+")).anyMatch(f -> f.length > 1 && f[1].equals(Long.toString(shmid)));
        } catch (IOException e) {
            return false;
        }
    }

    static void attach(RemoteSyscalls sys, VmaEntry vma) {
        if (vma.getPgoff() != 0) {
            throw new ImageException("SysV shm segment " + vma.getFileInode() + " was attached from offset " + vma.getPgoff()
                    + "; only whole attachments can be made again");
        }
        int flags = SHM_REMAP | ((vma.getProt() & RemoteSyscalls.PROT_WRITE) == 0 ? SHM_RDONLY : 0);
        long at = sys.call("shmat(" + vma.getFileInode() + ")", Nr.SHMAT, vma.getFileInode(), vma.getStart(), flags);
        if (at != vma.getStart()) {
            throw new ImageException("SysV shm segment " + vma.getFileInode() + " attached at 0x" + Long.toHexString(at)
                    + " instead of " + Vmas.describe(vma));
        }
    }
}
