package dev.cryo.ipc;

import dev.cryo.CryoException;
import dev.cryo.image.proto.IpcNamespace;
import dev.cryo.image.proto.SysvSemaphoreSet;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.logging.Logger;

/**
 * The SysV semaphore sets of a container's own IPC namespace: values read with an injected
 * semctl(GETALL), the set made again with its id (sem_next_id) and values (SETALL).
 */
final class SysvSemaphores {
    private static final Logger LOG = Logger.getLogger("ipc");
    private static final int IPC_CREAT = 01000, IPC_EXCL = 02000, GETALL = 13, SETALL = 17;

    private SysvSemaphores() {
    }

    static void save(RemoteSyscalls sys, IpcNamespace.Builder ns) {
        for (String[] f : NamespaceFiles.table(sys, "sem")) {
            int id = Integer.parseInt(f[1]);
            SysvSemaphoreSet.Builder set = SysvSemaphoreSet.newBuilder().setKey((int) Long.parseLong(f[0])).setId(id)
                    .setMode(Integer.parseInt(f[2], 8) & 0777);
            for (int v : values(sys, id, Integer.parseInt(f[3]))) {
                set.addValues(v);
            }
            ns.addSem(set);
        }
        LOG.info(() -> ns.getSemCount() + " SysV semaphore set(s) of the IPC namespace saved");
    }

    /** The values of every semaphore set of the namespace of the task {@code sys} drives, by id. */
    static java.util.Map<Integer, int[]> allValues(RemoteSyscalls sys) {
        java.util.Map<Integer, int[]> all = new java.util.TreeMap<>();
        for (String[] f : NamespaceFiles.table(sys, "sem")) {
            int id = Integer.parseInt(f[1]);
            all.put(id, values(sys, id, Integer.parseInt(f[3])));
        }
        return all;
    }

    /** semctl(GETALL) of set {@code id}, which has {@code nsems} semaphores. */
    static int[] values(RemoteSyscalls sys, int id, int nsems) {
        RemoteAddr values = sys.scratch().alloc(2L * nsems);
        try {
            sys.call("semctl(" + id + ", GETALL)", Nr.SEMCTL, id, 0, GETALL, values.value());
            ByteBuffer b = ByteBuffer.wrap(sys.scratch().read(values, 2 * nsems)).order(ByteOrder.LITTLE_ENDIAN);
            int[] out = new int[nsems];
            for (int i = 0; i < nsems; i++) {
                out[i] = Short.toUnsignedInt(b.getShort());
            }
            return out;
        } finally {
            sys.scratch().reset();
        }
    }

    static void restore(RemoteSyscalls sys, IpcNamespace ns) {
        for (SysvSemaphoreSet s : ns.getSemList()) {
            NamespaceFiles.nextId(sys, "sem", s.getId());
            long id = sys.call("semget(" + s.getKey() + ")", Nr.SEMGET, s.getKey(), s.getValuesCount(),
                    IPC_CREAT | IPC_EXCL | s.getMode());
            if (id != s.getId()) {
                throw new CryoException("SysV semaphore set " + s.getId() + " came back as " + id);
            }
            ByteBuffer b = ByteBuffer.allocate(2 * s.getValuesCount()).order(ByteOrder.LITTLE_ENDIAN);
            s.getValuesList().forEach(v -> b.putShort((short) (int) v));
            try {
                RemoteAddr values = sys.scratch().put(b.array());
                sys.call("semctl(" + id + ", SETALL)", Nr.SEMCTL, id, 0, SETALL, values.value());
            } finally {
                sys.scratch().reset();
            }
        }
        LOG.info(() -> ns.getSemCount() + " SysV semaphore set(s) of the IPC namespace recreated");
    }
}
