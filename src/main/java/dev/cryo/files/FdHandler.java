package dev.cryo.files;

import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.image.ImageWriter;
import dev.cryo.image.proto.FdEntry;

import java.util.Map;

/**
 * Save and rebuild one kind of open file (pipe, eventfd, ...). {@link Files} walks the fd table,
 * handles what is common (fd numbers, dup'ed and inherited fds, FD_CLOEXEC) and gives each fd
 * that opens a file of its own to the first handler that {@link #handles} it.
 */
public interface FdHandler {
    boolean handles(FdSource fd);

    /** The kinds of fd entry this handler writes, and so restores. */
    java.util.Set<dev.cryo.image.proto.FdKind> kinds();

    /** Fills in the kind and what this kind needs to be rebuilt. May refuse with a Refusal. */
    void dump(FdSource fd, FdEntry.Builder entry, DumpContext ctx);

    /**
     * Makes the open file inside the task and returns the fd it got there (any number: the
     * caller moves it to the saved one). Flags, offset and contents are the handler's to set.
     */
    int open(FdEntry entry, RestoreContext ctx);

    /** Once every fd of the process exists (an epoll registers its targets here). */
    default void afterAll(FdEntry entry, RestoreContext ctx) {
    }

    /** After every process of the tree was dumped: write what spans processes, check what must pair up. */
    default void afterTreeDump(ImageWriter image, Map<String, Object> shared) {
    }

    /** The checkpoint is over: the tree was killed, or runs on (left running, or the checkpoint failed). */
    default void afterCheckpoint(Map<String, Object> shared, boolean killed) {
    }

    /** Once every process of the tree is restored, before any runs. */
    default void afterTreeRestore(RestoreContext ctx) {
    }

    /** Before anything is restored: can this be rebuilt here, with these restore options? */
    default void verify(FdEntry entry, int pid, Map<String, Object> options) {
    }
}
