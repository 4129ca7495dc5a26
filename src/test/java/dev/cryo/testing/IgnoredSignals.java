package dev.cryo.testing;

import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Ignores signals in this JVM for a while, as a caller of Cryo may have them ignored (a shell
 * starts its {@code &} jobs with SIGINT and SIGQUIT ignored, nohup ignores SIGHUP): whatever
 * Cryo forks inherits that. Closing puts the JVM's own actions back exactly.
 */
public final class IgnoredSignals implements AutoCloseable {
    /** struct kernel_sigaction: handler, flags, restorer, mask. */
    private static final int SIZE = 32;
    private static final long SIG_IGN = 1;

    private final Arena arena = Arena.ofConfined();
    private final int[] signals;
    private final MemorySegment[] before;

    public IgnoredSignals(int... signals) {
        this.signals = signals.clone();
        this.before = new MemorySegment[signals.length];
        MemorySegment ignore = arena.allocate(SIZE);
        ignore.set(ValueLayout.JAVA_LONG, 0, SIG_IGN);
        for (int i = 0; i < signals.length; i++) {
            before[i] = arena.allocate(SIZE);
            Sys.raw(Nr.RT_SIGACTION, signals[i], ignore.address(), before[i].address(), 8);
        }
    }

    @Override
    public void close() {
        for (int i = 0; i < signals.length; i++) {
            Sys.raw(Nr.RT_SIGACTION, signals[i], before[i].address(), 0, 8);
        }
        arena.close();
    }
}
