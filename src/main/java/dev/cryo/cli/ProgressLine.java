package dev.cryo.cli;

import dev.cryo.core.Progress;

import java.io.PrintWriter;

/**
 * A progress line on stderr for long work: drawn only for more than {@link #MIN_BYTES}, redrawn
 * at most every 200 ms, and ended with a newline when the work completes.
 */
final class ProgressLine implements Progress {
    private static final long MIN_BYTES = 256L << 20;
    private static final long REDRAW_NANOS = 200_000_000L;

    private final PrintWriter err;
    private long lastDraw;
    private boolean drawn;

    ProgressLine(PrintWriter err) {
        this.err = err;
    }

    /** Called by the page copies of several processes at once. */
    @Override
    public synchronized void update(String what, long done, long total) {
        if (total < MIN_BYTES) {
            return;
        }
        long now = System.nanoTime();
        boolean finished = done >= total;
        if (!finished && drawn && now - lastDraw < REDRAW_NANOS) {
            return;
        }
        lastDraw = now;
        drawn = true;
        err.printf("\rSaving %s: %s of %s (%d%%)%s", what, Sizes.human(done), Sizes.human(total), done * 100 / total,
                finished ? "\n" : "");
        err.flush();
    }
}
