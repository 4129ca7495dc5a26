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
 * an overlay root entered with pivot_root(2), a /proc of its own pid namespace, and the binds and
 * file systems a restore makes again; and /proc/PID/mountinfo read back ({@link Mount}).
 */
public final class Mounts {
    public static final long MS_RDONLY = 1;
    private static final long MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_REMOUNT = 32, MS_NOATIME = 1024,
            MS_NODIRATIME = 2048, MS_BIND = 4096, MS_REC = 0x4000, MS_UNBINDABLE = 1L << 17, MS_PRIVATE = 1L << 18,
            MS_STRICTATIME = 1L << 24;
    private static final int MNT_DETACH = 2, S_IFCHR = 0020000, S_IFREG = 0100000;
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
     * {@code upper} at {@code merged}, with a small /dev and (with {@code proc}) a fresh /proc in it,
     * and makes it the root: pivot_root(".", ".") from inside it stacks the old root on top, and a
     * lazy unmount drops it, so nothing of the host stays reachable. /dev and /proc are mounted
     * before the host's root goes: in a user namespace, proc may only be mounted while a proc is
     * fully visible in the mount namespace, and /dev's devices are bind mounts of the host's.
     *
     * @param beforePivot what is mounted into the overlay while the host is still in sight (volumes)
     */
    public static void overlayRoot(RemoteSyscalls sys, String lower, Path upper, Path work, Path merged, boolean proc,
                                   Runnable beforePivot) {
        String options = "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work;
        try {
            long src = sys.scratch().putString("overlay").value();
            long target = sys.scratch().putString(merged.toString()).value();
            long opts = sys.scratch().putString(options).value();
            sys.call("mount(overlay " + options + " on " + merged + ")", Nr.MOUNT, src, target, src, 0, opts);
            sys.scratch().reset();
            beforePivot.run();
            target = sys.scratch().putString(merged.toString()).value();
            sys.call("chdir(" + merged + ")", Nr.CHDIR, target);
        } finally {
            sys.scratch().reset();
        }
        mountDev(sys);
        if (proc) {
            mountProc(sys, "proc");
        }
        try {
            long dot = sys.scratch().putString(".").value();
            sys.call("pivot_root(., .)", Nr.PIVOT_ROOT, dot, dot);
            sys.call("umount2(old root)", Nr.UMOUNT2, dot, MNT_DETACH);
            sys.call("chdir(/)", Nr.CHDIR, sys.scratch().putString("/").value());
        } finally {
            sys.scratch().reset();
        }
    }

    /** The character devices of a container's /dev, with their numbers. */
    private static final String[] DEVICES = {"null", "zero", "full", "random", "urandom", "tty"};
    private static final long[][] DEVICE_NUMBERS = {{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}};

    /** Whether {@code m} is one of the device bind mounts {@link #mountDev} makes in a user namespace. */
    public static boolean isDeviceBind(Mount m) {
        return Arrays.stream(DEVICES).anyMatch(d -> m.point().equals("/dev/" + d));
    }

    /**
     * A small /dev for the overlay root being set up (relative to the working directory, the
     * merged directory): a tmpfs with the harmless character devices every program expects
     * (null, zero, full, random, urandom, tty), made with mknod(2). mknod of a device needs
     * CAP_MKNOD in the initial user namespace; in a user namespace each is instead an empty file
     * with the host's device bind-mounted on it (a bind mount of a device is allowed there, and
     * the host's /dev is still in sight).
     */
    private static void mountDev(RemoteSyscalls sys) {
        try {
            long dev = mkdir(sys, "dev", 0755);
            long fs = sys.scratch().putString("tmpfs").value();
            long opts = sys.scratch().putString("mode=755,size=1m").value();
            sys.call("mount(tmpfs on /dev)", Nr.MOUNT, fs, dev, fs, MS_NOSUID, opts);
            for (int i = 0; i < DEVICES.length; i++) {
                long path = sys.scratch().putString("dev/" + DEVICES[i]).value();
                long devt = (DEVICE_NUMBERS[i][0] << 8) | DEVICE_NUMBERS[i][1];
                long r = sys.raw(Nr.MKNOD, path, S_IFCHR | 0666, devt);
                if (r == -Errno.EPERM) {
                    sys.call("mknod(/dev/" + DEVICES[i] + ", S_IFREG)", Nr.MKNOD, path, S_IFREG | 0666, 0);
                    long host = sys.scratch().putString("/dev/" + DEVICES[i]).value();
                    sys.call("mount(/dev/" + DEVICES[i] + ", MS_BIND)", Nr.MOUNT, host, path, 0, MS_BIND, 0);
                } else if (r < 0) {
                    throw new RemoteSysException(sys.task().pid(), "mknod(/dev/" + DEVICES[i] + ")", (int) -r, path);
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
     * One line of /proc/PID/mountinfo (proc(5)).
     *
     * @param id           this mount's id
     * @param parentId     the id of the mount it sits on (itself or outside the table for the root)
     * @param device       major:minor of its file system: two mounts with the same one show the same files
     * @param root         the directory of that file system seen at the mount point ("/" unless a bind);
     *                     ends in "//deleted" once that directory is gone
     * @param options      per-mount options (rw, nosuid, ...)
     * @param propagation  the optional fields: shared:N, master:N, propagate_from:N, unbindable
     * @param source       the file system's source (a device, "tmpfs", "none" ...)
     * @param superOptions the file system's own (size=, mode=, ...)
     */
    public record Mount(int id, int parentId, String device, String root, String point, String options,
                        List<String> propagation, String type, String source, String superOptions) {
        /** "mount point (fs type)". */
        public String describe() {
            return point + " (" + type + ")";
        }

        /** The per-mount flags as mount(2) takes them ({@link Mounts#flags(String)}). */
        public long flags() {
            return Mounts.flags(options);
        }

        /** The super options mount(2) takes back as data for a tmpfs: size, inodes, mode and owner. */
        public String tmpfsData() {
            return String.join(",", Arrays.stream(superOptions.split(","))
                    .filter(o -> o.matches("(size|nr_inodes|mode|uid|gid)=.*")).toList());
        }

        /** The super options as mount(2) data, without rw/ro, which the per-mount flags carry. */
        public String data() {
            return String.join(",", Arrays.stream(superOptions.split(","))
                    .filter(o -> !o.isEmpty() && !o.equals("rw") && !o.equals("ro")).toList());
        }

        /** The peer group of a shared mount (shared:N), or 0. */
        public int sharedGroup() {
            return group("shared:");
        }

        /** The peer group a slave mount receives from (master:N), or 0. */
        public int masterGroup() {
            return group("master:");
        }

        private int group(String prefix) {
            return propagation.stream().filter(f -> f.startsWith(prefix)).mapToInt(f -> Integer.parseInt(f.substring(prefix.length())))
                    .findFirst().orElse(0);
        }

        public boolean unbindable() {
            return propagation.contains("unbindable");
        }
    }

    /** Per-mount options of mountinfo (rw,nosuid,relatime ...) as mount(2) flags: MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC and the atime ones. */
    public static long flags(String options) {
        long flags = 0;
        for (String o : options.split(",")) {
            flags |= switch (o) {
                case "ro" -> MS_RDONLY;
                case "nosuid" -> MS_NOSUID;
                case "nodev" -> MS_NODEV;
                case "noexec" -> MS_NOEXEC;
                case "noatime" -> MS_NOATIME;
                case "nodiratime" -> MS_NODIRATIME;
                case "strictatime" -> MS_STRICTATIME;
                default -> 0; // relatime is what mount(2) gives unless told otherwise
            };
        }
        return flags;
    }

    /**
     * The mounts of {@code pid}'s mount namespace, from its /proc/PID/mountinfo (mount points
     * relative to its own root), in mount order.
     */
    public static List<Mount> of(int pid) {
        return parse(ProcFiles.readString(pid, "mountinfo"));
    }

    /** The mounts of {@code pid}'s mount namespace as "mount point (fs type)". */
    public static List<String> table(int pid) {
        return of(pid).stream().map(Mount::describe).toList();
    }

    /** The lines of a mountinfo file, in its order (mount order). */
    public static List<Mount> parse(String mountinfo) {
        List<Mount> out = new ArrayList<>();
        for (String line : mountinfo.split("\n")) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split(" ");
            int dash = Arrays.asList(f).indexOf("-");
            out.add(new Mount(Integer.parseInt(f[0]), Integer.parseInt(f[1]), f[2], unescape(f[3]), unescape(f[4]), f[5],
                    List.of(f).subList(6, dash), f[dash + 1], unescape(f[dash + 2]), dash + 3 < f.length ? f[dash + 3] : ""));
        }
        return out;
    }

    /**
     * Mounts a file system of {@code type} (tmpfs, proc, sysfs, devpts, mqueue) at {@code point}
     * (made if missing) with {@code flags} and {@code data}, read-write: a read-only one is
     * filled first and made read-only by {@link #remount}. A sysfs shows the network namespace
     * of the caller, a proc its pid namespace: both are mounted from inside the container.
     */
    public static void mount(RemoteSyscalls sys, String type, String point, long flags, String data) {
        try {
            long at = makePoint(sys, point, false);
            long fs = sys.scratch().putString(type).value();
            // a tmpfs's uid= and gid= as the container sees them (see idsInside)
            long options = data.isEmpty() ? 0 : sys.scratch().putString(type.equals("tmpfs") ? idsInside(sys.task().pid(), data) : data).value();
            sys.call("mount(" + type + " on " + point + (data.isEmpty() ? "" : ", " + data) + ")", Nr.MOUNT, fs, at, fs,
                    flags & ~MS_RDONLY, options);
        } finally {
            sys.scratch().reset();
        }
    }

    /**
     * Binds {@code source} (a path the caller sees) at {@code point}, made if missing: a directory,
     * or an empty file for the bind of a file. Not recursive: mounts under the source stay behind.
     */
    public static void bind(RemoteSyscalls sys, String source, String point, boolean file) {
        try {
            long from = sys.scratch().putString(source).value();
            long at = makePoint(sys, point, file);
            sys.call("mount(" + source + ", " + point + ", MS_BIND)", Nr.MOUNT, from, at, 0, MS_BIND, 0);
        } finally {
            sys.scratch().reset();
        }
    }

    /**
     * Sets the per-mount flags of the mount at {@code point} to exactly {@code flags}
     * (MS_REMOUNT|MS_BIND touches only the mount, never the file system it shows).
     */
    public static void remount(RemoteSyscalls sys, String point, long flags) {
        try {
            long at = sys.scratch().putString(point).value();
            sys.call("mount(" + point + ", MS_REMOUNT|MS_BIND" + (flags != 0 ? ", flags " + Long.toHexString(flags) : "") + ")",
                    Nr.MOUNT, 0, at, 0, MS_REMOUNT | MS_BIND | flags, 0);
        } finally {
            sys.scratch().reset();
        }
    }

    /**
     * mountinfo shows a tmpfs's uid= and gid= as the host sees them; mount(2) inside a user
     * namespace takes them as that namespace sees them (an unmapped one is EINVAL).
     */
    static String idsInside(int pid, String data) {
        return String.join(",", Arrays.stream(data.split(",")).map(o -> o.startsWith("uid=")
                ? "uid=" + UserNamespace.uidInside(pid, Long.parseLong(o.substring(4)))
                : o.startsWith("gid=") ? "gid=" + UserNamespace.gidInside(pid, Long.parseLong(o.substring(4))) : o).toList());
    }

    /** mount(NULL, point, NULL, MS_UNBINDABLE): no bind can be made of it. */
    public static void makeUnbindable(RemoteSyscalls sys, String point) {
        try {
            long at = sys.scratch().putString(point).value();
            sys.call("mount(" + point + ", MS_UNBINDABLE)", Nr.MOUNT, 0, at, 0, MS_UNBINDABLE, 0);
        } finally {
            sys.scratch().reset();
        }
    }

    /**
     * Makes {@code point} and its missing parents (directories; the last an empty file when
     * {@code file}), content with what exists; returns the path's address in the scratch area.
     */
    private static long makePoint(RemoteSyscalls sys, String point, boolean file) {
        int slash = point.lastIndexOf('/');
        if (slash > 0) {
            makePoint(sys, point.substring(0, slash), false);
        }
        if (!file) {
            return mkdir(sys, point, 0755);
        }
        long path = sys.scratch().putString(point).value();
        long r = sys.raw(Nr.MKNOD, path, S_IFREG | 0644, 0);
        if (r < 0 && r != -Errno.EEXIST) {
            throw new RemoteSysException(sys.task().pid(), "mknod(" + point + ", S_IFREG)", (int) -r, path);
        }
        return path;
    }

    /** mountinfo writes space, tab, newline and backslash in octal (\040). */
    private static String unescape(String s) {
        Matcher m = OCTAL.matcher(s);
        return m.replaceAll(r -> Matcher.quoteReplacement(String.valueOf((char) Integer.parseInt(r.group(1), 8))));
    }

    /** A fresh procfs on {@code dir} (made if missing), showing the caller's pid namespace. */
    public static void mountProc(RemoteSyscalls sys, String dir) {
        try {
            long proc = mkdir(sys, dir, 0555);
            long fs = sys.scratch().putString("proc").value();
            sys.call("mount(proc on " + dir + ")", Nr.MOUNT, fs, proc, fs, MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
        } finally {
            sys.scratch().reset();
        }
    }
}
