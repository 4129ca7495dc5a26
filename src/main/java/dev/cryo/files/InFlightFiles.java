package dev.cryo.files;

import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.sys.Sys;

import java.util.Set;

/**
 * Open files in flight: sent over a unix socket (SCM_RIGHTS) and not yet received, so in no
 * process's fd table. Peeking at the queue gives Cryo a copy of each; it is saved by the
 * handler of its kind like any fd, and rebuilt inside the receiving process just long enough to
 * be sent again. Kinds whose state names other fds of a process (epoll) or pairs up through
 * the fd table (unix sockets) are refused.
 */
public final class InFlightFiles {
    private static final Set<FdKind> SUPPORTED = Set.of(FdKind.REGULAR, FdKind.DIRECTORY, FdKind.CHAR_DEVICE, FdKind.PIPE,
            FdKind.FIFO, FdKind.EVENTFD, FdKind.DELETED_FILE, FdKind.INET_SOCKET, FdKind.SIGNALFD, FdKind.TIMERFD);

    private InFlightFiles() {
    }

    /** Describes Cryo's copy {@code fd} of a file in flight over {@code where}. */
    public static FdEntry dump(int fd, String where, DumpContext ctx) {
        FdSource src = FdSource.of(Sys.getpid(), fd);
        FdEntry.Builder e = FdEntry.newBuilder().setFd(fd).setFlags(src.flags() & ~FdSource.O_CLOEXEC)
                .setPos(Long.parseLong(src.info().get("pos"))).setPath(src.link());
        FdHandlers.find(src).dump(src, e, ctx);
        if (!SUPPORTED.contains(e.getKind())) {
            throw new Refusal(where + ": a " + e.getKind() + " (" + src.link() + ") is in flight in its queue (SCM_RIGHTS);"
                    + " that kind cannot be saved in flight yet");
        }
        return e.build();
    }

    /** Makes the file again inside the restoring task; returns its fd there (the caller sends it and closes it). */
    public static int open(FdEntry e, RestoreContext ctx) {
        return FdHandlers.of(e).open(e, ctx);
    }
}
