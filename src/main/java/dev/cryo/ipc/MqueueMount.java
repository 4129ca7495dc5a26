package dev.cryo.ipc;

import dev.cryo.CryoException;
import dev.cryo.remote.RemoteSysException;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.lang.foreign.Arena;
import java.nio.file.Path;

/**
 * The mqueue file system of a task's IPC namespace, as Cryo reaches it: a detached mount made
 * inside the task (fsopen(2) of "mqueue" takes the caller's IPC namespace; fsconfig CREATE,
 * fsmount) and taken into Cryo's own fd table with pidfd_getfd, then closed in the task. Attached
 * nowhere, the mount is seen by no one, and goes when Cryo closes its fd. It needs only what the
 * task has (CAP_SYS_ADMIN over its own mount namespace: a container's root, also in a user
 * namespace), not that Cryo may enter the namespace. A task without it (a container whose first
 * process gave up root) is left alone: a short-lived platform thread of Cryo joins the namespace
 * with setns(2), which moves only that thread, and makes the mount itself. Each file of it,
 * open(2)ed, is a queue descriptor; the directory is reached as /proc/self/fd/N.
 */
final class MqueueMount implements AutoCloseable {
    private static final int FSOPEN_CLOEXEC = 1, FSCONFIG_CMD_CREATE = 6, FSMOUNT_CLOEXEC = 1;
    private static final int CLONE_NEWIPC = 0x08000000;

    private final int fd;

    private MqueueMount(int fd) {
        this.fd = fd;
    }

    /** Mounts the mqueue file system of the IPC namespace of the task {@code sys} drives. */
    static MqueueMount of(RemoteSyscalls sys) {
        long fs;
        try {
            fs = sys.raw(Nr.FSOPEN, sys.scratch().putString("mqueue").value(), FSOPEN_CLOEXEC);
        } finally {
            sys.scratch().reset();
        }
        if (fs == -Errno.EPERM) {
            return fromCryo(sys.task().pid());
        }
        if (fs < 0) {
            throw new RemoteSysException(sys.task().pid(), "fsopen(mqueue)", (int) -fs);
        }
        try {
            sys.call("fsconfig(FSCONFIG_CMD_CREATE)", Nr.FSCONFIG, fs, FSCONFIG_CMD_CREATE, 0, 0, 0);
            int mount = (int) sys.call("fsmount", Nr.FSMOUNT, fs, FSMOUNT_CLOEXEC, 0);
            try {
                return new MqueueMount(Sys.fdOf(sys.task().pid(), mount));
            } finally {
                sys.closeFd(mount);
            }
        } finally {
            sys.closeFd((int) fs);
        }
    }

    /** The mount made by a thread of Cryo's that joined the IPC namespace of process {@code pid}. */
    private static MqueueMount fromCryo(int pid) {
        try {
            return new MqueueMount(dev.cryo.ns.NamespaceThread.call(pid, "ipc", CLONE_NEWIPC, () -> {
                try (Arena arena = Arena.ofConfined()) {
                    int fs = (int) Sys.call("fsopen(mqueue)", Nr.FSOPEN, arena.allocateFrom("mqueue").address(), FSOPEN_CLOEXEC);
                    try {
                        Sys.call("fsconfig(FSCONFIG_CMD_CREATE)", Nr.FSCONFIG, fs, FSCONFIG_CMD_CREATE, 0, 0, 0);
                        return (int) Sys.call("fsmount", Nr.FSMOUNT, fs, FSMOUNT_CLOEXEC, 0);
                    } finally {
                        Sys.close(fs);
                    }
                }
            }));
        } catch (RuntimeException e) {
            throw new CryoException("cannot mount the POSIX message queues of the IPC namespace of process " + pid
                    + " (it may not mount, and Cryo may not enter its namespace): " + e.getMessage(), e);
        }
    }

    /** The file system's root directory, as Cryo sees it. */
    Path root() {
        return Path.of("/proc/self/fd/" + fd);
    }

    @Override
    public void close() {
        Sys.close(fd);
    }
}
