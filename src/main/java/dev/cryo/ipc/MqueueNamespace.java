package dev.cryo.ipc;

import dev.cryo.CryoException;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Cryo's way into the POSIX message queues of another IPC namespace (a container's): a
 * short-lived platform thread joins it with setns(2), which moves only that thread, so mq_open
 * by name finds that namespace's queues and /proc/sys/fs/mqueue shows its limits. To list the
 * queues the thread also takes a mount namespace of its own (unshare(CLONE_NEWNS) implies
 * CLONE_FS, which gives only this thread a new fs_struct) and mounts the namespace's mqueue file
 * system (the kernel gives the mounter's IPC namespace) on an empty directory: nobody else sees
 * that mount, which ends with the thread. Any file of it, open(2)ed, is a queue descriptor.
 */
final class MqueueNamespace {
    private static final int CLONE_NEWNS = 0x20000, CLONE_NEWIPC = 0x08000000, O_RDONLY_CLOEXEC = 02000000;
    private static final long MS_REC = 0x4000, MS_PRIVATE = 1 << 18, MNT_DETACH = 2;

    /** Work done inside the namespace; {@code mount} is where its mqueue file system is, null when none was asked for. */
    interface Work<T> {
        T run(Path mount) throws IOException;
    }

    private MqueueNamespace() {
    }

    /** Runs {@code work} on a thread in the IPC namespace of process {@code pid}, with its queues mounted if {@code mount}. */
    static <T> T enter(int pid, boolean mount, Work<T> work) {
        Path dir;
        try {
            dir = mount ? Files.createTempDirectory("cryo-mqueue-") : null;
        } catch (IOException e) {
            throw new CryoException("cannot make a directory to mount an mqueue file system on: " + e.getMessage(), e);
        }
        AtomicReference<Object> result = new AtomicReference<>();
        Thread t = Thread.ofPlatform().name("cryo-ipcns").start(() -> {
            try (Arena arena = Arena.ofConfined()) {
                int ns = (int) Sys.call("open(ns/ipc)", Nr.OPEN, arena.allocateFrom("/proc/" + pid + "/ns/ipc").address(),
                        O_RDONLY_CLOEXEC);
                try {
                    Sys.call("setns(CLONE_NEWIPC)", Nr.SETNS, ns, CLONE_NEWIPC);
                } finally {
                    Sys.close(ns);
                }
                if (dir != null) {
                    Sys.call("unshare(CLONE_NEWNS)", Nr.UNSHARE, CLONE_NEWNS);
                    // a private tree: the mount below must not propagate back to the host's
                    Sys.call("mount(/, MS_REC|MS_PRIVATE)", Nr.MOUNT, arena.allocateFrom("none").address(),
                            arena.allocateFrom("/").address(), 0, MS_REC | MS_PRIVATE, 0);
                    Sys.call("mount(mqueue)", Nr.MOUNT, arena.allocateFrom("mqueue").address(),
                            arena.allocateFrom(dir.toString()).address(), arena.allocateFrom("mqueue").address(), 0, 0);
                }
                try {
                    result.set(work.run(dir));
                } finally {
                    if (dir != null) {
                        Sys.raw(Nr.UMOUNT2, arena.allocateFrom(dir.toString()).address(), MNT_DETACH);
                    }
                }
            } catch (IOException | RuntimeException e) {
                result.set(e);
            }
        });
        try {
            t.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CryoException("interrupted in the IPC namespace of process " + pid, e);
        } finally {
            if (dir != null) {
                try {
                    Files.deleteIfExists(dir);
                } catch (IOException ignored) {
                    // an empty directory in the temporary directory
                }
            }
        }
        if (result.get() instanceof CryoException e) {
            throw e;
        }
        if (result.get() instanceof Exception e) {
            throw new CryoException("in the IPC namespace of process " + pid + ": " + e.getMessage(), e);
        }
        @SuppressWarnings("unchecked")
        T value = (T) result.get();
        return value;
    }
}
