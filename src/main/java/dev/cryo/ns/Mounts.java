package dev.cryo.ns;

import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteSysException;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The mount table of a container's own mount namespace, built by calls injected into its first
 * process: every mount made private (so nothing it mounts shows on the host, nor the other way),
 * an overlay root entered with pivot_root(2), and a /proc of its own pid namespace.
 */
public final class Mounts {
    private static final long MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_REC = 0x4000, MS_PRIVATE = 1L << 18;
    private static final int MNT_DETACH = 2, S_IFCHR = 0020000;
    private static final Pattern OCTAL = Pattern.compile("\\\\([0-7]{3})");

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

    /**
     * A small /dev of its own for a container with its own root: a tmpfs with the harmless
     * character devices every program expects (null, zero, full, random, urandom, tty), made with
     * mknod(2), which needs CAP_MKNOD in the initial user namespace (in a user namespace /dev stays empty).
     */
    public static void mountDev(RemoteSyscalls sys) {
        String[] names = {"null", "zero", "full", "random", "urandom", "tty"};
        long[][] numbers = {{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}};
        try {
            long dev = mkdir(sys, "/dev", 0755);
            long fs = sys.scratch().putString("tmpfs").value();
            long opts = sys.scratch().putString("mode=755,size=1m").value();
            sys.call("mount(tmpfs on /dev)", Nr.MOUNT, fs, dev, fs, MS_NOSUID, opts);
            for (int i = 0; i < names.length; i++) {
                long path = sys.scratch().putString("/dev/" + names[i]).value();
                long devt = (numbers[i][0] << 8) | numbers[i][1];
                long r = sys.raw(Nr.MKNOD, path, S_IFCHR | 0666, devt);
                if (r == -Errno.EPERM) {
                    return;
                }
                if (r < 0) {
                    throw new RemoteSysException(sys.task().pid(), "mknod(/dev/" + names[i] + ")", (int) -r, path);
                }
            }
        } finally {
            sys.scratch().reset();
        }
    }

    /** mkdir that is content with an existing directory; returns the path's address in the scratch area. */
    private static long mkdir(RemoteSyscalls sys, String dir, int mode) {
        long path = sys.scratch().putString(dir).value();
        long r = sys.raw(Nr.MKDIR, path, mode);
        if (r < 0 && r != -Errno.EEXIST) {
            throw new RemoteSysException(sys.task().pid(), "mkdir(" + dir + ")", (int) -r, path);
        }
        return path;
    }

    /**
     * The mounts of {@code pid}'s mount namespace as "mount point (fs type)", from its
     * /proc/PID/mountinfo (mount points relative to its own root), in mount order.
     */
    public static List<String> table(int pid) {
        return parseTable(ProcFiles.readString(pid, "mountinfo"));
    }

    /** The lines of a mountinfo file as "mount point (fs type)". */
    static List<String> parseTable(String mountinfo) {
        List<String> out = new ArrayList<>();
        for (String line : mountinfo.split("\n")) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split(" ");
            int dash = Arrays.asList(f).indexOf("-");
            out.add(unescape(f[4]) + " (" + f[dash + 1] + ")");
        }
        return out;
    }

    /** mountinfo writes space, tab, newline and backslash in octal (\040). */
    private static String unescape(String s) {
        Matcher m = OCTAL.matcher(s);
        return m.replaceAll(r -> Matcher.quoteReplacement(String.valueOf((char) Integer.parseInt(r.group(1), 8))));
    }

    /** A fresh procfs on /proc, showing the caller's pid namespace (created if the root lacks the directory). */
    public static void mountProc(RemoteSyscalls sys) {
        try {
            long proc = mkdir(sys, "/proc", 0555);
            long fs = sys.scratch().putString("proc").value();
            sys.call("mount(proc on /proc)", Nr.MOUNT, fs, proc, fs, MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
        } finally {
            sys.scratch().reset();
        }
    }
}
