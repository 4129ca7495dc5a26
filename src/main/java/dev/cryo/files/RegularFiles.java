package dev.cryo.files;

import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.image.ImageException;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.sys.Nr;

import java.nio.file.Path;
import java.util.Set;

/**
 * Files reopened by path: regular files (offset, O_APPEND, O_PATH ...), directories, and the
 * character devices that hold no state (/dev/null, /dev/zero, /dev/urandom ...).
 */
final class RegularFiles implements FdHandler {
    private static final Set<String> STATELESS_DEVICES = Set.of("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom");
    /** Flags that only matter at open time and must not be replayed. */
    private static final int OPEN_ONLY = 0100 /* O_CREAT */ | 0200 /* O_EXCL */ | 01000 /* O_TRUNC */ | 0400 /* O_NOCTTY */;

    @Override
    public java.util.Set<FdKind> kinds() {
        return java.util.Set.of(FdKind.REGULAR, FdKind.DIRECTORY, FdKind.CHAR_DEVICE);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.link().startsWith("/") && !fd.link().endsWith(" (deleted)") && fd.attrs() != null
                && (fd.attrs().isRegularFile() || fd.attrs().isDirectory() || STATELESS_DEVICES.contains(fd.link())
                    || (fd.flags() & FdSource.O_PATH) != 0);
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        e.setKind(fd.attrs().isRegularFile() ? FdKind.REGULAR : fd.attrs().isDirectory() ? FdKind.DIRECTORY : FdKind.CHAR_DEVICE)
                .setPath(fd.link()).setSize(fd.attrs().size());
    }

    @Override
    public void verify(FdEntry e, int pid, java.util.Map<String, Object> options) {
        if (!java.nio.file.Files.exists(dev.cryo.core.HostPaths.of(options, e.getPath()))) {
            throw new ImageException("fd " + e.getFd() + " of process " + pid + " was " + e.getPath() + ", which no longer exists");
        }
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        int fd = ctx.syscalls().open(e.getPath(), (e.getFlags() & ~OPEN_ONLY) | FdSource.O_CLOEXEC, 0);
        if (e.getKind() == FdKind.REGULAR && e.getPos() != 0 && (e.getFlags() & FdSource.O_PATH) == 0) {
            ctx.syscalls().call("lseek", Nr.LSEEK, fd, e.getPos(), 0 /* SEEK_SET */);
        }
        return fd;
    }

    /** Why an fd nobody handles is refused, in words a user can act on. */
    static Refusal refuse(FdSource fd) {
        String link = fd.link();
        String type = link.equals("/dev/ptmx") ? "pty master (pty pairs)"
                : link.startsWith("anon_inode:") ? link.substring("anon_inode:".length()).replace("[", "").replace("]", "")
                : link.contains(":[") ? link.substring(0, link.indexOf(':'))
                : link.startsWith("/dev/pts") || link.startsWith("/dev/tty") ? "terminal"
                : fd.attrs() != null && fd.attrs().isOther() ? "special file" : "this kind of file";
        return new Refusal(fd.where() + ": " + type + " fds are not supported yet");
    }
}
