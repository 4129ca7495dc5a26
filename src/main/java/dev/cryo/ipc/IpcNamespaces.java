package dev.cryo.ipc;

import dev.cryo.image.proto.IpcNamespace;
import dev.cryo.remote.RemoteSyscalls;

/**
 * A container's own IPC namespace: its SysV shared memory segments, semaphore sets and message
 * queues, each saved from and recreated in a task of the namespace with its id, and its POSIX
 * message queues (by name, with their messages), all before any process of the tree, whose
 * attachments and open queues refer to them by id or name.
 */
public final class IpcNamespaces {
    private IpcNamespaces() {
    }

    public static IpcNamespace save(RemoteSyscalls sys) {
        IpcNamespace.Builder ns = IpcNamespace.newBuilder();
        SysvSharedMemory.save(sys, ns);
        SysvSemaphores.save(sys, ns);
        SysvMessageQueues.save(sys, ns);
        PosixMessageQueues.save(sys, ns);
        return ns.build();
    }

    /** In a new, empty namespace. */
    public static void restore(RemoteSyscalls sys, IpcNamespace ns) {
        SysvSharedMemory.restore(sys, ns);
        SysvSemaphores.restore(sys, ns);
        SysvMessageQueues.restore(sys, ns);
        PosixMessageQueues.restore(sys, ns);
    }

    /** Once every process is attached again, just before they run: segments marked for destruction are marked again. */
    public static void afterTreeRestore(RemoteSyscalls sys, IpcNamespace ns) {
        SysvSharedMemory.removeMarked(sys, ns);
    }
}
