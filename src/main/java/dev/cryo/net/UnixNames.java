package dev.cryo.net;

import dev.cryo.CryoException;
import dev.cryo.image.proto.UnixSocketEnd;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sockets;
import dev.cryo.sys.Sys;
import dev.cryo.sys.SysException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;

/**
 * Names of unix sockets: absolute paths (a socket file) and abstract names ("@name"). A path
 * name outlives its socket: after a checkpoint killed the tree, the file is still there, and a
 * restore must remove it before it can bind again, but never while a live socket answers there.
 */
final class UnixNames {
    private static final int AF_UNIX = 1, SOCK_CLOEXEC = 02000000;

    private UnixNames() {
    }

    static boolean isPath(String name) {
        return !name.isEmpty() && !name.startsWith("@");
    }

    /** The socket file's permission bits and owner, for a path name (mode 0: the file was gone). */
    static void saveFile(String name, UnixSocketEnd.Builder end) {
        if (!isPath(name)) {
            return;
        }
        try {
            PosixFileAttributes a = Files.readAttributes(Path.of(name), PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            end.setFileMode(modeBits(a.permissions()) | 0140000)
                    .setFileUid(((Number) Files.getAttribute(Path.of(name), "unix:uid", LinkOption.NOFOLLOW_LINKS)).intValue())
                    .setFileGid(((Number) Files.getAttribute(Path.of(name), "unix:gid", LinkOption.NOFOLLOW_LINKS)).intValue());
        } catch (IOException gone) {
            end.setFileMode(0);
        }
    }

    /**
     * Binds Cryo's copy {@code fd} of a new socket to {@code name}, first removing a socket file
     * nobody listens on any more; gives the file its saved mode and owner (or removes it again if
     * it was gone at checkpoint).
     */
    static void bind(int fd, String name, int type, UnixSocketEnd saved) {
        if (isPath(name)) {
            removeStale(Path.of(name), type);
        }
        Sockets.bind(fd, UnixDiag.sockaddr(name));
        if (isPath(name) && saved != null) {
            Path file = Path.of(name);
            try {
                if (saved.getFileMode() == 0) {
                    Files.deleteIfExists(file);
                } else {
                    Files.setPosixFilePermissions(file, permissions(saved.getFileMode()));
                    Files.setAttribute(file, "unix:uid", saved.getFileUid(), LinkOption.NOFOLLOW_LINKS);
                    Files.setAttribute(file, "unix:gid", saved.getFileGid(), LinkOption.NOFOLLOW_LINKS);
                }
            } catch (IOException e) {
                throw new CryoException("setting up socket file " + name + ": " + e.getMessage(), e);
            }
        }
    }

    /** Removes a socket file left by a socket that no longer exists; refuses to touch a live one or another file. */
    static void removeStale(Path file, int type) {
        if (!Files.exists(file, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        try {
            if (!Files.readAttributes(file, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS).isOther()) {
                throw new CryoException("cannot bind a unix socket to " + file + ": a file that is not a socket is in the way");
            }
            int probe = (int) Sys.call("socket(AF_UNIX)", Nr.SOCKET, AF_UNIX, type | SOCK_CLOEXEC, 0);
            try {
                Sockets.connect(probe, UnixDiag.sockaddr(file.toString()));
                throw new CryoException("cannot bind a unix socket to " + file + ": a running socket answers there");
            } catch (SysException refused) {
                // ECONNREFUSED: a file whose socket is gone
            } finally {
                Sys.close(probe);
            }
            Files.delete(file);
        } catch (IOException e) {
            throw new CryoException("removing stale socket file " + file + ": " + e.getMessage(), e);
        }
    }

    /** Removes the file of a path name, if it has one (after a temporary socket used it). */
    static void unlink(String name) {
        if (isPath(name)) {
            try {
                Files.deleteIfExists(Path.of(name));
            } catch (IOException e) {
                throw new CryoException("removing socket file " + name + ": " + e.getMessage(), e);
            }
        }
    }

    /** accept4(2) on Cryo's copy of a listener: the new socket lands in Cryo's fd table. */
    static int accept(int listener) {
        long r = Sys.raw(Nr.ACCEPT4, listener, 0, 0, SOCK_CLOEXEC);
        if (r < 0) {
            throw new SysException("accept4", (int) -r, listener);
        }
        return (int) r;
    }

    private static int modeBits(Set<PosixFilePermission> p) {
        int mode = 0;
        for (PosixFilePermission x : p) {
            mode |= 1 << (8 - x.ordinal());
        }
        return mode;
    }

    private static Set<PosixFilePermission> permissions(int mode) {
        Set<PosixFilePermission> out = EnumSet.noneOf(PosixFilePermission.class);
        for (PosixFilePermission x : PosixFilePermission.values()) {
            if ((mode & 1 << (8 - x.ordinal())) != 0) {
                out.add(x);
            }
        }
        return out;
    }
}
