package dev.cryo.core;

import dev.cryo.image.ImageReader;

/**
 * One kind of per-task kernel state (memory, files, signals, ...): how to save it from a frozen
 * task and how to rebuild it inside a restoring one, side by side. The orchestrators only call
 * these in {@link TaskParts} order; they never name a concrete kind of state.
 */
public interface TaskPart {
    /** Short name, used as the log prefix and in error messages. */
    String name();

    /** Reads this state from the frozen task and writes it to the image. May refuse with a {@link Refusal}. */
    void dump(DumpContext ctx);

    /**
     * Checks, before any process is created, that the image's state can be rebuilt here (files
     * still present, CPU features available, ...) with these restore options (keys as in
     * {@link RestoreContext#shared()}). Throws with the reason otherwise.
     */
    default void verify(ImageReader image, int pid, java.util.Map<String, Object> options) {
    }

    /** Rebuilds this state inside the restoring task. */
    void restore(RestoreContext ctx);

    /**
     * State a child gets from its parent by fork (memory): restored in the parent before its
     * children are forked from it, so that what they still share stays shared.
     */
    default boolean beforeFork() {
        return false;
    }

    /** After every process of the tree was dumped: write what spans processes, check what must pair up. */
    default void afterTreeDump(dev.cryo.image.ImageWriter image, java.util.Map<String, Object> shared) {
    }

    /**
     * The checkpoint is over, whatever its outcome: the tree was killed ({@code killed}), or runs
     * on (left running, or the checkpoint failed). Release what the dump held on to.
     */
    default void afterCheckpoint(java.util.Map<String, Object> shared, boolean killed) {
    }

    /** Once every process of the tree is fully restored, before any runs: drop what restore held for others. */
    default void afterTreeRestore(RestoreContext ctx) {
    }
}
