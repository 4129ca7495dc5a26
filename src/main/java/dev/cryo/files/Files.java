package dev.cryo.files;

import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.core.TaskPart;
import dev.cryo.image.ImageException;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.image.proto.FilesImage;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * The fd table (regular files, directories, harmless character devices, each at its exact
 * number with its flags and offset) and the file-system context: cwd, root and umask.
 */
public final class Files implements TaskPart {
    private static final Logger LOG = Logger.getLogger("files");
    private static final int O_CLOEXEC = 02000000;
    private static final int KCMP_FILE = 0, KCMP_FILES = 2;
    private static final int F_SETFD = 2;
    /** Flags that only matter at open time and must not be replayed. */
    private static final int OPEN_ONLY = 0100 /* O_CREAT */ | 0200 /* O_EXCL */ | 01000 /* O_TRUNC */ | 0400 /* O_NOCTTY */;
    private static final Set<String> SAFE_DEVICES = Set.of("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom");

    @Override
    public String name() {
        return "files";
    }

    @Override
    public void dump(DumpContext ctx) {
        int pid = ctx.pid();
        FilesImage.Builder image = FilesImage.newBuilder()
                .setCwd(ProcFiles.readLink(pid, "cwd")).setRoot(ProcFiles.readLink(pid, "root"))
                .setUmask(Integer.parseInt(ProcFiles.status(pid).get("Umask"), 8));
        for (int other : ctx.earlier()) {
            if (Sys.call("kcmp", Nr.KCMP, other, pid, KCMP_FILES, 0, 0) == 0) {
                throw new Refusal("process " + pid + " shares its fd table with process " + other
                        + " (CLONE_FILES); that is not supported yet");
            }
        }
        List<Integer> numbers = fdNumbers(pid);
        for (int i = 0; i < numbers.size(); i++) {
            int fd = numbers.get(i);
            FdEntry.Builder e = entry(pid, fd).toBuilder();
            for (int j = 0; j < i && !e.hasDupOf(); j++) {
                if (sameOpenFile(pid, numbers.get(j), pid, fd)) {
                    e.setDupOf(numbers.get(j));
                }
            }
            if (!e.hasDupOf()) {
                findInEarlierProcess(ctx.earlier(), pid, fd, e);
            }
            image.addFds(e);
        }
        ctx.image().write(ImageKind.FILES, pid, image.build());
        ctx.stats().fds.addAndGet(image.getFdsCount());
        LOG.info(() -> "process " + pid + ": " + image.getFdsCount() + " fds, cwd " + image.getCwd());
    }

    static List<Integer> fdNumbers(int pid) {
        try (Stream<Path> s = java.nio.file.Files.list(ProcFiles.dir(pid).resolve("fd"))) {
            return s.map(p -> Integer.parseInt(p.getFileName().toString())).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException("listing /proc/" + pid + "/fd", e);
        }
    }

    private static FdEntry entry(int pid, int fd) {
        String link = ProcFiles.readLink(pid, "fd/" + fd);
        Map<String, String> info = ProcFiles.keyValues(ProcFiles.readString(pid, "fdinfo/" + fd));
        int flags = Integer.parseInt(info.get("flags"), 8);
        String where = "fd " + fd + " of process " + pid + " (" + link + ")";
        if (!link.startsWith("/")) {
            String type = link.contains(":") ? link.substring(0, link.indexOf(':')) : link;
            if (link.startsWith("anon_inode:")) {
                type = link.substring("anon_inode:".length());
            }
            throw new Refusal(where + ": " + type + " fds are not supported yet");
        }
        if (link.endsWith(" (deleted)")) {
            throw new Refusal(where + ": the file was deleted; deleted-but-open files are not supported yet");
        }
        PosixFileAttributes a;
        try {
            a = java.nio.file.Files.readAttributes(ProcFiles.dir(pid).resolve("fd/" + fd), PosixFileAttributes.class);
        } catch (IOException e) {
            throw new Refusal(where + ": cannot stat it: " + e.getMessage());
        }
        FdKind kind;
        if (a.isRegularFile()) {
            kind = FdKind.REGULAR;
        } else if (a.isDirectory()) {
            kind = FdKind.DIRECTORY;
        } else if (SAFE_DEVICES.contains(link)) {
            kind = FdKind.CHAR_DEVICE;
        } else {
            throw new Refusal(where + ": " + (link.startsWith("/dev/pts") || link.startsWith("/dev/tty") ? "terminals" : "this kind of file")
                    + " cannot be saved yet");
        }
        return FdEntry.newBuilder().setFd(fd).setKind(kind).setPath(link).setFlags(flags & ~O_CLOEXEC)
                .setCloexec((flags & O_CLOEXEC) != 0).setPos(Long.parseLong(info.get("pos")))
                .setSize(a.size()).setInode(inode(pid, fd)).build();
    }

    /** kcmp(KCMP_FILE): do the two fds refer to one open file description (shared offset and flags)? */
    private static boolean sameOpenFile(int pidA, int a, int pidB, int b) {
        return Sys.call("kcmp", Nr.KCMP, pidA, pidB, KCMP_FILE, a, b) == 0;
    }

    /** An open file this process shares with one dumped before it (inherited through fork, say). */
    private static void findInEarlierProcess(List<Integer> earlier, int pid, int fd, FdEntry.Builder e) {
        for (int other : earlier) {
            for (int otherFd : fdNumbers(other)) {
                if (sameOpenFile(other, otherFd, pid, fd)) {
                    e.setSharedPid(other).setSharedFd(otherFd);
                    return;
                }
            }
        }
    }

    private static long inode(int pid, int fd) {
        try {
            return ((Number) java.nio.file.Files.getAttribute(ProcFiles.dir(pid).resolve("fd/" + fd), "unix:ino")).longValue();
        } catch (IOException e) {
            return 0;
        }
    }

    /** Puts a freshly made fd at its saved number; dup3 gives it its saved FD_CLOEXEC on the way. */
    private static void moveTo(RemoteSyscalls sys, int fd, FdEntry e) {
        if (fd != e.getFd()) {
            sys.call("dup3", Nr.DUP3, fd, e.getFd(), e.getCloexec() ? O_CLOEXEC : 0);
            sys.closeFd(fd);
        }
    }

    @Override
    public void verify(ImageReader image, int pid) {
        FilesImage files = image.read(ImageKind.FILES, pid, FilesImage.parser());
        for (FdEntry fd : files.getFdsList()) {
            if (!java.nio.file.Files.exists(Path.of(fd.getPath()))) {
                throw new ImageException("fd " + fd.getFd() + " of process " + pid + " was " + fd.getPath()
                        + ", which no longer exists");
            }
        }
        if (!java.nio.file.Files.isDirectory(Path.of(files.getCwd()))) {
            throw new ImageException("the working directory " + files.getCwd() + " of process " + pid + " is gone");
        }
    }

    @Override
    public void restore(RestoreContext ctx) {
        RemoteSyscalls sys = ctx.syscalls();
        FilesImage image = ctx.image().read(ImageKind.FILES, ctx.pid(), FilesImage.parser());
        for (FdEntry e : image.getFdsList()) {
            if (e.hasDupOf()) {
                sys.call("dup3", Nr.DUP3, e.getDupOf(), e.getFd(), e.getCloexec() ? O_CLOEXEC : 0);
                continue;
            }
            if (e.getSharedPid() != 0) {
                // the very open file of the other (already restored) process, fetched by this one
                int pidfd = (int) sys.call("pidfd_open(" + e.getSharedPid() + ")", Nr.PIDFD_OPEN, e.getSharedPid(), 0);
                int fd = (int) sys.call("pidfd_getfd", Nr.PIDFD_GETFD, pidfd, e.getSharedFd(), 0);
                sys.closeFd(pidfd);
                if (fd == e.getFd() && !e.getCloexec()) {
                    sys.call("fcntl(F_SETFD)", Nr.FCNTL, fd, F_SETFD, 0); // pidfd_getfd always sets FD_CLOEXEC
                }
                moveTo(sys, fd, e);
                continue;
            }
            int flags = (e.getFlags() & ~OPEN_ONLY) | (e.getCloexec() ? O_CLOEXEC : 0);
            moveTo(sys, sys.open(e.getPath(), flags, 0), e);
            if (e.getKind() == FdKind.REGULAR && e.getPos() != 0) {
                sys.call("lseek", Nr.LSEEK, e.getFd(), e.getPos(), 0 /* SEEK_SET */);
            }
        }
        sys.call("chdir", Nr.CHDIR, sys.scratch().putString(image.getCwd()).value());
        sys.scratch().reset();
        sys.call("umask", Nr.UMASK, image.getUmask());
        if (!image.getRoot().equals("/")) {
            sys.call("chroot", Nr.CHROOT, sys.scratch().putString(image.getRoot()).value());
            sys.scratch().reset();
        }
        LOG.info(() -> "process " + ctx.pid() + ": " + image.getFdsCount() + " fds reopened");
    }
}
