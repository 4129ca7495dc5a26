package dev.cryo.net;

import dev.cryo.CryoException;
import dev.cryo.image.proto.UnixSocketEnd;
import dev.cryo.ns.UserNamespace;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Structs;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Set;

/**
 * Names of unix sockets: absolute paths (a socket file) and abstract names ("@name"). A path
 * name outlives its socket: after a checkpoint killed the tree, the file is still there, and a
 * restore must remove it before it can bind again, but never while a live socket answers there.
 * Everything at restore runs inside the task, so that paths and abstract names are looked up in
 * its own mount and network namespaces (a container's), not Cryo's.
 */
final class UnixNames {
    private static final int AF_UNIX = 1, SOCK_CLOEXEC = 02000000, AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
    private static final int S_IFMT = 0170000, S_IFSOCK = 0140000, ECONNREFUSED = 111;

    private UnixNames() {
    }

    static boolean isPath(String name) {
        return !name.isEmpty() && !name.startsWith("@");
    }

    /**
     * The socket file's permission bits and owner, for a path name (mode 0: the file was gone),
     * looked up under the root of process {@code pid} (a container's is not Cryo's).
     */
    static void saveFile(int pid, String name, UnixSocketEnd.Builder end) {
        if (!isPath(name)) {
            return;
        }
        Path file = Path.of("/proc/" + pid + "/root" + name);
        try {
            PosixFileAttributes a = Files.readAttributes(file, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            end.setFileMode(modeBits(a.permissions()) | S_IFSOCK)
                    .setFileUid(((Number) Files.getAttribute(file, "unix:uid", LinkOption.NOFOLLOW_LINKS)).intValue())
                    .setFileGid(((Number) Files.getAttribute(file, "unix:gid", LinkOption.NOFOLLOW_LINKS)).intValue());
        } catch (IOException gone) {
            end.setFileMode(0);
        }
    }

    /**
     * Binds the task's socket {@code fd} to {@code name}, first removing a socket file nobody
     * listens on any more; gives the file its saved mode and owner (or removes it again if it
     * was gone at checkpoint). {@code saved} null: a temporary name, left as bind makes it.
     */
    static void bind(RemoteSyscalls sys, int fd, String name, int type, UnixSocketEnd saved) {
        if (isPath(name)) {
            removeStale(sys, name, type);
        }
        byte[] address = UnixDiag.sockaddr(name);
        sys.call("bind(" + name + ")", Nr.BIND, fd, sys.scratch().put(address).value(), address.length);
        sys.scratch().reset();
        if (isPath(name) && saved != null) {
            if (saved.getFileMode() == 0) {
                unlink(sys, name);
            } else {
                long path = sys.scratch().putString(name).value();
                sys.call("fchmodat(" + name + ")", Nr.FCHMODAT, AT_FDCWD, path, saved.getFileMode() & 07777);
                int pid = sys.task().pid(); // the ids saved as the host sees them; the task's user namespace may map them
                sys.call("fchownat(" + name + ")", Nr.FCHOWNAT, AT_FDCWD, path, UserNamespace.uidInside(pid, saved.getFileUid()),
                        UserNamespace.gidInside(pid, saved.getFileGid()), AT_SYMLINK_NOFOLLOW);
                sys.scratch().reset();
            }
        }
    }

    /** Removes a socket file left by a socket that no longer exists; refuses to touch a live one or another file. */
    private static void removeStale(RemoteSyscalls sys, String name, int type) {
        long path = sys.scratch().putString(name).value();
        long stat = sys.scratch().alloc(144).value();  // struct stat; st_mode at offset 24
        long r = sys.raw(Nr.NEWFSTATAT, AT_FDCWD, path, stat, AT_SYMLINK_NOFOLLOW);
        int mode = r == 0 ? Structs.le(sys.scratch().read(new RemoteAddr(stat), 144)).getInt(24) : 0;
        sys.scratch().reset();
        if (r == -Errno.ENOENT) {
            return;
        }
        if (r < 0) {
            throw new CryoException("cannot bind a unix socket to " + name + ": " + Errno.name((int) -r));
        }
        if ((mode & S_IFMT) != S_IFSOCK) {
            throw new CryoException("cannot bind a unix socket to " + name + ": a file that is not a socket is in the way");
        }
        int probe = (int) sys.call("socket(AF_UNIX)", Nr.SOCKET, AF_UNIX, type | SOCK_CLOEXEC, 0);
        byte[] address = UnixDiag.sockaddr(name);
        long answered = sys.raw(Nr.CONNECT, probe, sys.scratch().put(address).value(), address.length);
        sys.scratch().reset();
        sys.closeFd(probe);
        if (answered != -ECONNREFUSED) {
            throw new CryoException("cannot bind a unix socket to " + name + ": a running socket answers there");
        }
        unlink(sys, name);
    }

    /** Removes the file of a path name, if it has one (after a temporary socket used it). */
    static void unlink(RemoteSyscalls sys, String name) {
        if (isPath(name)) {
            sys.raw(Nr.UNLINK, sys.scratch().putString(name).value());
            sys.scratch().reset();
        }
    }

    private static int modeBits(Set<PosixFilePermission> p) {
        int mode = 0;
        for (PosixFilePermission x : p) {
            mode |= 1 << (8 - x.ordinal());
        }
        return mode;
    }
}
