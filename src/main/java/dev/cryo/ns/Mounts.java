package dev.cryo.ns;

import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;

import java.nio.file.Path;

/**
 * The mount table of a container's own mount namespace, built by calls injected into its first
 * process: every mount made private (so nothing it mounts shows on the host, nor the other way),
 * an overlay root entered with pivot_root(2), and a /proc of its own pid namespace.
 */
public final class Mounts {
    private static final long MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_REC = 0x4000, MS_PRIVATE = 1L << 18;
    private static final int MNT_DETACH = 2;

    private Mounts() {
    }

    /** mount(NULL, "/", NULL, MS_REC|MS_PRIVATE): the copied mounts stop propagating to and from the host. */
    public static void makePrivate(RemoteSyscalls sys) {
        try {
            sys.call("mount(/, MS_REC|MS_PRIVATE)", Nr.MOUNT, 0, sys.scratch().putString("/").value(), 0, MS_REC | MS_PRIVATE, 0);
        } finally {
            sys.scratch().reset();
        }
    }

    /**
     * Mounts an overlay of {@code lower} (read-only layers, colon-separated, the first on top) under
     * {@code upper} at {@code merged}, and makes it the root: pivot_root(".", ".") from inside it
     * stacks the old root on top, and a lazy unmount drops it, so nothing of the host stays reachable.
     */
    public static void overlayRoot(RemoteSyscalls sys, String lower, Path upper, Path work, Path merged) {
        String options = "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work;
        try {
            long src = sys.scratch().putString("overlay").value();
            long target = sys.scratch().putString(merged.toString()).value();
            long opts = sys.scratch().putString(options).value();
            sys.call("mount(overlay " + options + " on " + merged + ")", Nr.MOUNT, src, target, src, 0, opts);
            sys.call("chdir(" + merged + ")", Nr.CHDIR, target);
            long dot = sys.scratch().putString(".").value();
            sys.call("pivot_root(., .)", Nr.PIVOT_ROOT, dot, dot);
            sys.call("umount2(old root)", Nr.UMOUNT2, dot, MNT_DETACH);
            sys.call("chdir(/)", Nr.CHDIR, sys.scratch().putString("/").value());
        } finally {
            sys.scratch().reset();
        }
    }

    /** A fresh procfs on /proc, showing the caller's pid namespace (created if the root lacks the directory). */
    public static void mountProc(RemoteSyscalls sys) {
        try {
            long proc = sys.scratch().putString("/proc").value();
            long r = sys.raw(Nr.MKDIR, proc, 0555);
            if (r < 0 && r != -Errno.EEXIST) {
                throw new dev.cryo.remote.RemoteSysException(sys.task().pid(), "mkdir(/proc)", (int) -r, proc);
            }
            long fs = sys.scratch().putString("proc").value();
            sys.call("mount(proc on /proc)", Nr.MOUNT, fs, proc, fs, MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
        } finally {
            sys.scratch().reset();
        }
    }
}
