package dev.cryo.core;

/** Told how far a long piece of work (saving memory, loading pages) has come; the CLI draws it. */
@FunctionalInterface
public interface Progress {
    Progress NONE = (what, done, total) -> { };

    /** {@code done} of {@code total} bytes of {@code what}. */
    void update(String what, long done, long total);
}
