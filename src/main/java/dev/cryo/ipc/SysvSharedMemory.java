package dev.cryo.ipc;

import com.google.protobuf.ByteString;
import dev.cryo.CryoException;
import dev.cryo.image.proto.IpcNamespace;
import dev.cryo.image.proto.SysvShmSegment;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.nio.charset.StandardCharsets;
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
    private static final int O_RDONLY = 0, O_WRONLY = 1, O_CLOEXEC = 0x80000;
    private static final int LIST_MAX = 32 * 1024;

    private SysvSharedMemory() {
    }

    /** Every segment of the namespace {@code sys}'s task is in, with its contents. */
    public static IpcNamespace save(RemoteSyscalls sys) {
        IpcNamespace.Builder ns = IpcNamespace.newBuilder();
        String list = readInTask(sys, "/proc/sysvipc/shm");
        for (String line : list.split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length < 4 || f[0].equals("key")) {
                continue;
            }
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
        return ns.build();
    }

    /** Recreates the segments in the (new, empty) namespace of {@code sys}'s task, each with its id and contents. */
    public static void restore(RemoteSyscalls sys, IpcNamespace ns) {
        for (SysvShmSegment s : ns.getShmList()) {
            writeInTask(sys, "/proc/sys/kernel/shm_next_id", Integer.toString(s.getId()));
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
    public static void removeMarked(RemoteSyscalls sys, IpcNamespace ns) {
        for (SysvShmSegment s : ns.getShmList()) {
            if (s.getRemoved()) {
                sys.call("shmctl(" + s.getId() + ", IPC_RMID)", Nr.SHMCTL, s.getId(), IPC_RMID, 0);
            }
        }
    }

    private static String readInTask(RemoteSyscalls sys, String path) {
        int fd = sys.open(path, O_RDONLY | O_CLOEXEC, 0);
        try {
            RemoteAddr buf = sys.scratch().alloc(LIST_MAX);
            StringBuilder out = new StringBuilder();
            while (true) {
                long n = sys.call("read(" + path + ")", Nr.READ, fd, buf.value(), LIST_MAX);
                if (n == 0) {
                    return out.toString();
                }
                out.append(new String(sys.scratch().read(buf, (int) n), StandardCharsets.UTF_8));
            }
        } finally {
            sys.scratch().reset();
            sys.closeFd(fd);
        }
    }

    private static void writeInTask(RemoteSyscalls sys, String path, String value) {
        int fd = sys.open(path, O_WRONLY | O_CLOEXEC, 0);
        try {
            byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
            RemoteAddr at = sys.scratch().put(bytes);
            sys.call("write(" + path + ")", Nr.WRITE, fd, at.value(), bytes.length);
        } finally {
            sys.scratch().reset();
            sys.closeFd(fd);
        }
    }
}
