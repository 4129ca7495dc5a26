package dev.cryo.files;

import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.core.TaskPart;
import dev.cryo.image.ImageException;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FilesImage;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * The fd table and the file-system context (cwd, root, umask). Every fd comes back at its
 * number with its FD_CLOEXEC; an fd that is a dup of a lower one, or the same open file as an fd
 * of a process restored earlier (inherited through fork), is rebuilt as such (dup3, pidfd_getfd),
 * so offsets and flags stay shared; every other fd is an open file of its own, saved and rebuilt
 * by the {@link FdHandler} of its kind ({@link FdHandlers}). File locks ride along.
 */
public final class Files implements TaskPart {
    private static final Logger LOG = Logger.getLogger("files");
    private static final int O_CLOEXEC = 02000000;
    private static final int KCMP_FILE = 0, KCMP_FILES = 2;
    private static final int F_SETFD = 2;

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
        Set<String> posixLocks = new java.util.HashSet<>();
        for (int i = 0; i < numbers.size(); i++) {
            int fd = numbers.get(i);
            FdSource src = FdSource.of(pid, fd);
            FdEntry.Builder e = FdEntry.newBuilder().setFd(fd).setFlags(src.flags() & ~O_CLOEXEC)
                    .setCloexec((src.flags() & O_CLOEXEC) != 0).setPos(Long.parseLong(src.info().get("pos")))
                    .setInode(inode(pid, fd)).setPath(src.link());
            for (int j = 0; j < i && !e.hasDupOf(); j++) {
                if (sameOpenFile(pid, numbers.get(j), pid, fd)) {
                    e.setDupOf(numbers.get(j));
                }
            }
            if (!e.hasDupOf()) {
                findInEarlierProcess(ctx.earlier(), pid, fd, e);
            }
            if (!e.hasDupOf() && e.getSharedPid() == 0) {
                FdHandlers.find(src).dump(src, e, ctx); // an open file of its own: its kind says how to save it
                e.addAllLocks(FileLocks.parse(src.rawInfo(), posixLocks));
                SignalOwner.dump(src, e);
            } else {
                // the open file's own locks (OFD, flock) come with it; POSIX ones are this process's
                e.addAllLocks(FileLocks.parse(src.rawInfo(), posixLocks).stream()
                        .filter(l -> l.getKind() == dev.cryo.image.proto.FileLock.Kind.POSIX).toList());
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
    public void verify(ImageReader image, int pid, Map<String, Object> options) {
        FilesImage files = image.read(ImageKind.FILES, pid, FilesImage.parser());
        for (FdEntry fd : files.getFdsList()) {
            if (!fd.hasDupOf() && fd.getSharedPid() == 0) {
                FdHandlers.of(fd).verify(fd, pid, options);
            }
        }
        if (!java.nio.file.Files.isDirectory(Path.of(files.getCwd()))) {
            throw new ImageException("the working directory " + files.getCwd() + " of process " + pid + " is gone");
        }
    }

    @Override
    public void afterTreeDump(dev.cryo.image.ImageWriter image, Map<String, Object> shared) {
        for (FdHandler h : FdHandlers.ALL) {
            h.afterTreeDump(image, shared);
        }
    }

    @Override
    public void afterCheckpoint(Map<String, Object> shared, boolean killed) {
        RuntimeException failure = null;
        for (FdHandler h : FdHandlers.ALL) {
            try {
                h.afterCheckpoint(shared, killed);
            } catch (RuntimeException e) {
                failure = failure == null ? e : failure;
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public void afterTreeRestore(RestoreContext ctx) {
        HiddenFds.closeAll(ctx);
        for (FdHandler h : FdHandlers.ALL) {
            h.afterTreeRestore(ctx);
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
                int other = ctx.inNamespace(e.getSharedPid());
                int pidfd = (int) sys.call("pidfd_open(" + other + ")", Nr.PIDFD_OPEN, other, 0);
                int fd = (int) sys.call("pidfd_getfd", Nr.PIDFD_GETFD, pidfd, e.getSharedFd(), 0);
                sys.closeFd(pidfd);
                if (fd == e.getFd() && !e.getCloexec()) {
                    sys.call("fcntl(F_SETFD)", Nr.FCNTL, fd, F_SETFD, 0); // pidfd_getfd always sets FD_CLOEXEC
                }
                moveTo(sys, fd, e);
                continue;
            }
            int fd = FdHandlers.of(e).open(e, ctx);
            SignalOwner.restore(e, fd, sys, ctx::inNamespace);
            if (fd == e.getFd()) {
                sys.call("fcntl(F_SETFD)", Nr.FCNTL, fd, F_SETFD, e.getCloexec() ? 1 : 0);
            }
            moveTo(sys, fd, e);
        }
        for (FdEntry e : image.getFdsList()) {
            if (!e.hasDupOf() && e.getSharedPid() == 0) {
                FdHandlers.of(e).afterAll(e, ctx);
            }
            FileLocks.restore(e, ctx);
        }
        for (FdHandler h : FdHandlers.ALL) {
            h.afterFds(ctx);
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
