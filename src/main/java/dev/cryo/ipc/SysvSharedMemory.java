package dev.cryo.ipc;

import com.google.protobuf.ByteString;
import dev.cryo.CryoException;
import dev.cryo.image.proto.IpcNamespace;
import dev.cryo.image.proto.SysvShmSegment;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.util.logging.Logger;

/**
 * The SysV shared memory segments of a container's own IPC namespace, saved and recreated
 * through calls injected into a process of that namespace (its /proc/sysvipc/shm lists the
 * namespace of the reader; shmat lets Cryo read and write a segment in the process's memory).
 * A segment comes back with its id: the namespace's shm_next_id sysctl, written just before
 * shmget, picks it. Attachments are the processes' memory's business (by id).
 */
public final class SysvSharedMemory {
    private static final Logger LOG = Logger.getLogger("ipc");
    private static final int IPC_CREAT = 01000, IPC_EXCL = 02000, IPC_RMID = 0, SHM_RDONLY = 010000, SHM_DEST = 01000;

    private SysvSharedMemory() {
    }

    /** Every segment of the namespace {@code sys}'s task is in, with its contents. */
    static void save(RemoteSyscalls sys, IpcNamespace.Builder ns) {
        for (String[] f : NamespaceFiles.table(sys, "shm")) {
            int key = (int) Long.parseLong(f[0]);
            int id = Integer.parseInt(f[1]);
            int mode = Integer.parseInt(f[2], 8);
            long size = Long.parseLong(f[3]);
            if (size > Integer.MAX_VALUE - 8) {
                throw new dev.cryo.core.Refusal("SysV shm segment " + id + " is " + size + " bytes; segments over 2 GiB are not supported");
            }
            long at = sys.call("shmat(" + id + ", SHM_RDONLY)", Nr.SHMAT, id, 0, SHM_RDONLY);
            byte[] data;
            try {
                data = sys.task().read(new RemoteAddr(at), (int) size);
            } finally {
                sys.call("shmdt", Nr.SHMDT, at);
            }
            int end = data.length;
            while (end > 0 && data[end - 1] == 0) {
                end--;
            }
            ns.addShm(SysvShmSegment.newBuilder().setKey(key).setId(id).setMode(mode & 0777).setSize(size)
                    .setRemoved((mode & SHM_DEST) != 0).setData(ByteString.copyFrom(data, 0, end)));
        }
        LOG.info(() -> ns.getShmCount() + " SysV shm segment(s) of the IPC namespace saved");
    }

    /** Recreates the segments in the (new, empty) namespace of {@code sys}'s task, each with its id and contents. */
    static void restore(RemoteSyscalls sys, IpcNamespace ns) {
        for (SysvShmSegment s : ns.getShmList()) {
            NamespaceFiles.nextId(sys, "shm", s.getId());
            long id = sys.call("shmget(" + s.getKey() + ", " + s.getSize() + ")", Nr.SHMGET, s.getKey(), s.getSize(),
                    IPC_CREAT | IPC_EXCL | s.getMode());
            if (id != s.getId()) {
                throw new CryoException("SysV shm segment " + s.getId() + " came back as " + id);
            }
            if (!s.getData().isEmpty()) {
                long at = sys.call("shmat(" + id + ")", Nr.SHMAT, id, 0, 0);
                try {
                    sys.task().write(new RemoteAddr(at), s.getData().toByteArray());
                } finally {
                    sys.call("shmdt", Nr.SHMDT, at);
                }
            }
        }
        LOG.info(() -> ns.getShmCount() + " SysV shm segment(s) of the IPC namespace recreated");
    }

    /**
     * Marks again for destruction the segments that were (it takes effect once the last process
     * detaches); to be called once the processes are attached again.
     */
    static void removeMarked(RemoteSyscalls sys, IpcNamespace ns) {
        for (SysvShmSegment s : ns.getShmList()) {
            if (s.getRemoved()) {
                sys.call("shmctl(" + s.getId() + ", IPC_RMID)", Nr.SHMCTL, s.getId(), IPC_RMID, 0);
            }
        }
    }
}
