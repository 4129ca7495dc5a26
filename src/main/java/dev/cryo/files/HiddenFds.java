package dev.cryo.files;

import dev.cryo.core.RestoreContext;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Open files a restoring process holds only until the whole tree is rebuilt: the other end of a
 * pipe made here, waiting for the process that owns it to fetch it (pidfd_getfd) or for this
 * one to reach its number. They sit above every fd number the process will use and are closed
 * when the tree is done. Registered by key ("pipe:INO:w"), tree-wide, in
 * {@link RestoreContext#shared()}.
 */
public final class HiddenFds {
    private static final int F_DUPFD_CLOEXEC = 1030;

    /** Where an open file can be fetched from: process and fd number. */
    public record Place(int pid, int fd) {
    }

    private HiddenFds() {
    }

    /** Moves {@code fd} above every fd number the process will use and registers it under {@code key}; returns its new number. */
    public static int hide(RestoreContext ctx, String key, int fd) {
        RemoteSyscalls sys = ctx.syscalls();
        int above = ctx.image().read(dev.cryo.image.ImageKind.FILES, ctx.pid(), dev.cryo.image.proto.FilesImage.parser())
                .getFdsList().stream().mapToInt(dev.cryo.image.proto.FdEntry::getFd).max().orElse(2);
        int hidden = (int) sys.call("fcntl(F_DUPFD_CLOEXEC)", Nr.FCNTL, fd, F_DUPFD_CLOEXEC, above + 1);
        sys.closeFd(fd);
        register(ctx, key, new Place(ctx.pid(), hidden));
        mine(ctx).add(hidden);
        return hidden;
    }

    public static void register(RestoreContext ctx, String key, Place place) {
        ctx.shared().put("fd:" + key, place);
    }

    public static Place find(RestoreContext ctx, String key) {
        return (Place) ctx.shared().get("fd:" + key);
    }

    /** A new fd in this task for the open file at {@code place} (a dup here, or pidfd_getfd from another process). */
    public static int fetch(RestoreContext ctx, Place place) {
        RemoteSyscalls sys = ctx.syscalls();
        if (place.pid() == ctx.pid()) {
            return (int) sys.call("fcntl(F_DUPFD_CLOEXEC)", Nr.FCNTL, place.fd(), F_DUPFD_CLOEXEC, 0);
        }
        int other = ctx.inNamespace(place.pid());
        int pidfd = (int) sys.call("pidfd_open(" + other + ")", Nr.PIDFD_OPEN, other, 0);
        try {
            return (int) sys.call("pidfd_getfd", Nr.PIDFD_GETFD, pidfd, place.fd(), 0);
        } finally {
            sys.closeFd(pidfd);
        }
    }

    static void closeAll(RestoreContext ctx) {
        for (int fd : mine(ctx)) {
            ctx.syscalls().closeFd(fd);
        }
        mine(ctx).clear();
    }

    @SuppressWarnings("unchecked")
    private static List<Integer> mine(RestoreContext ctx) {
        return (List<Integer>) ((Map<String, Object>) ctx.shared()).computeIfAbsent("hidden:" + ctx.pid(), k -> new ArrayList<Integer>());
    }
}
