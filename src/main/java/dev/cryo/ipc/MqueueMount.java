package dev.cryo.ipc;

import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.nio.file.Path;

/**
 * The mqueue file system of a task's IPC namespace, as Cryo reaches it: a detached mount made
 * inside the task (fsopen(2) of "mqueue" takes the caller's IPC namespace; fsconfig CREATE,
 * fsmount) and taken into Cryo's own fd table with pidfd_getfd, then closed in the task. Attached
 * nowhere, the mount is seen by no one, and goes when Cryo closes its fd. It needs only what the
 * task has (CAP_SYS_ADMIN over its own mount namespace: a container's root, also in a user
 * namespace), not that Cryo may enter the namespace. Each file of it, open(2)ed, is a queue
 * descriptor; the directory is reached as /proc/self/fd/N.
 */
final class MqueueMount implements AutoCloseable {
    private static final int FSOPEN_CLOEXEC = 1, FSCONFIG_CMD_CREATE = 6, FSMOUNT_CLOEXEC = 1;

    private final int fd;

    private MqueueMount(int fd) {
        this.fd = fd;
    }

    /** Mounts the mqueue file system of the IPC namespace of the task {@code sys} drives. */
    static MqueueMount of(RemoteSyscalls sys) {
        int fs;
        try {
            fs = (int) sys.call("fsopen(mqueue)", Nr.FSOPEN, sys.scratch().putString("mqueue").value(), FSOPEN_CLOEXEC);
        } finally {
            sys.scratch().reset();
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
            sys.closeFd(fs);
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
