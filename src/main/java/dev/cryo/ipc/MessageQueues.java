package dev.cryo.ipc;

import dev.cryo.CryoException;
import dev.cryo.core.Checkpoint;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.files.FdHandler;
import dev.cryo.files.FdSource;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.proc.ProcFiles;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Open POSIX message queues. A queue lives in an IPC namespace, not in the process: for a tree in
 * the host's namespace Cryo cannot save it as the tree's, so the checkpoint refuses unless
 * --ipc-host says the queue stays on the host. A container's own namespace is saved with its
 * queues ({@link PosixMessageQueues}), made again before the tree. Either way restore opens the
 * queue again by name, with the fd's access mode and O_NONBLOCK.
 */
public final class MessageQueues implements FdHandler {
    private static final long MQUEUE_MAGIC = 0x19800202L;

    @Override
    public Set<FdKind> kinds() {
        return Set.of(FdKind.MQUEUE);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.link().startsWith("/") && fileSystemType(ProcFiles.dir(fd.pid()).resolve("fd/" + fd.fd()).toString()) == MQUEUE_MAGIC;
    }

    /** statfs(2) f_type of the file system holding {@code path}. */
    static long fileSystemType(String path) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(120, 8); // struct statfs, f_type first
            long r = Sys.raw(Nr.STATFS, arena.allocateFrom(path).address(), buf.address());
            return r < 0 ? -1 : buf.get(JAVA_LONG, 0);
        }
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        if (ctx.shared().containsKey(Checkpoint.IPC_NAMESPACE_IN_IMAGE)) {
            if (!inNamespaceByName(fd, ctx)) {
                throw new Refusal(fd.where() + ": a POSIX message queue that is not under this name in the container's IPC"
                        + " namespace (unlinked, or another namespace's); restore could not open it again");
            }
        } else if (!ctx.shared().containsKey(Checkpoint.IPC_HOST)) {
            throw new Refusal(fd.where() + ": a POSIX message queue of the host's IPC namespace; checkpoint with --ipc-host"
                    + " to leave it on the host and reopen it at restore");
        }
        e.setKind(FdKind.MQUEUE).setPath(fd.link());
    }

    /**
     * Is the queue {@code fd} has open one of its process's IPC namespace, under the name it
     * shows? The namespace's queues are listed once per checkpoint.
     */
    @SuppressWarnings("unchecked")
    private static boolean inNamespaceByName(FdSource fd, DumpContext ctx) {
        Path link = ProcFiles.dir(fd.pid()).resolve("fd/" + fd.fd());
        try {
            String ns = "ipc:mqueues:" + Files.readSymbolicLink(ProcFiles.dir(fd.pid()).resolve("ns/ipc"));
            Map<String, String> queues = (Map<String, String>) ctx.shared()
                    .computeIfAbsent(ns, k -> PosixMessageQueues.identities(ctx.syscalls()));
            return PosixMessageQueues.identity(link).equals(queues.get(fd.link().substring(1)));
        } catch (IOException e) {
            throw new CryoException("cannot stat " + link + ": " + e.getMessage(), e);
        }
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        var sys = ctx.syscalls();
        // mq_open takes the name without its leading slash
        String name = e.getPath().startsWith("/") ? e.getPath().substring(1) : e.getPath();
        int flags = e.getFlags() & (FdSource.O_ACCMODE | FdSource.O_NONBLOCK);
        int fd = (int) sys.call("mq_open(" + e.getPath() + ")", Nr.MQ_OPEN, sys.scratch().putString(name).value(), flags, 0, 0);
        sys.scratch().reset();
        return fd;
    }
}
