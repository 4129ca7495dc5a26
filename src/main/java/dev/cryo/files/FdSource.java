package dev.cryo.files;

import dev.cryo.proc.ProcFiles;
import dev.cryo.sys.Sys;

import java.nio.file.attribute.PosixFileAttributes;
import java.util.Map;

/**
 * One fd of a frozen process as a {@link FdHandler} sees it at dump time.
 *
 * @param link   readlink of /proc/PID/fd/N: a path, or "pipe:[ino]", "anon_inode:[eventfd]", ...
 * @param info   /proc/PID/fdinfo/N as key/value pairs (the first of repeated keys)
 * @param attrs  stat of the open file, or null where it cannot be had
 */
public record FdSource(int pid, int fd, String link, Map<String, String> info, String rawInfo, int flags,
                       PosixFileAttributes attrs) {
    public static final int O_ACCMODE = 3, O_WRONLY = 1, O_RDWR = 2, O_NONBLOCK = 04000, O_CLOEXEC = 02000000,
            O_PATH = 010000000;

    /** "fd 5 of process 42 (pipe:[1234])", for messages. */
    public String where() {
        return "fd " + fd + " of process " + pid + " (" + link + ")";
    }

    public boolean anonInode(String name) {
        return link.equals("anon_inode:[" + name + "]") || link.equals("anon_inode:" + name);
    }

    /** The number inside "type:[number]". */
    public long bracketNumber() {
        return Long.parseLong(link.substring(link.indexOf('[') + 1, link.indexOf(']')));
    }

    /** A copy of this fd in Cryo's own table (pidfd_getfd): the same open file. Close it after use. */
    public int copy() {
        int pidfd = Sys.pidfdOpen(pid);
        try {
            return Sys.pidfdGetfd(pidfd, fd);
        } finally {
            Sys.close(pidfd);
        }
    }

    static FdSource of(int pid, int fd) {
        String link = ProcFiles.readLink(pid, "fd/" + fd);
        String raw = ProcFiles.readString(pid, "fdinfo/" + fd);
        Map<String, String> info = ProcFiles.keyValues(raw);
        PosixFileAttributes attrs;
        try {
            attrs = java.nio.file.Files.readAttributes(ProcFiles.dir(pid).resolve("fd/" + fd), PosixFileAttributes.class);
        } catch (java.io.IOException | UnsupportedOperationException e) {
            attrs = null;
        }
        return new FdSource(pid, fd, link, info, raw, Integer.parseInt(info.get("flags"), 8), attrs);
    }
}
