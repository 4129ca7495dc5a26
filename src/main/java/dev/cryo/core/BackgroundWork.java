package dev.cryo.core;

import dev.cryo.CryoException;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/**
 * The work of a restore that needs no ptrace stop, so that any thread may do it: above all the
 * pages written into a task with process_vm_writev, whose first touch of fresh memory is most of
 * a restore's time. It runs on one pool of threads (one per core) shared by the whole tree, while
 * the tracer thread, the only one that may drive the tasks, goes on with the next process. Pieces
 * run in the order they were handed in, so the processes finish in tree order, as the tracer
 * waits for them.
 *
 * <p>At most {@link #processesAtOnce} processes have work in flight; with one, each process waits
 * for its own work before the tracer moves on, which is how restore ran before
 * (CRYO_RESTORE_THREADS=1, for comparison: the processes one after another, each one's pages
 * still on all cores).
 *
 * <p>Closing drops what has not started and waits for what has: after a failed restore, nothing
 * writes into a task that is being killed, or into another process that takes its pid later.
 */
final class BackgroundWork implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger("restore");
    /** Threads of the pool: one per core, as many as page loading gains from (it did not beyond 8). */
    private static final int MAX_THREADS = 8;

    private final int processesAtOnce;
    private final ExecutorService pool;
    private final Deque<Batch> inFlight = new ArrayDeque<>();
    /** The first piece that failed, in any batch: the restore stops at its next step. */
    private volatile Failure failure;
    /** For the log: how long the tracer thread waited for the work, and for how many processes' work. */
    private long waitedNanos;
    private int batches;

    /**
     * A failure of a part's work in the background, or of what follows it, with a message that
     * already names the part and its process.
     */
    static final class Failure extends CryoException {
        Failure(String message, Throwable cause) {
            super(message, cause);
        }
    }

    BackgroundWork(int processesAtOnce) {
        this.processesAtOnce = processesAtOnce;
        int threads = Math.max(1, Math.min(Runtime.getRuntime().availableProcessors(), MAX_THREADS));
        this.pool = Executors.newFixedThreadPool(threads, r -> Thread.ofPlatform().daemon().name("cryo-restore-bg").unstarted(r));
    }

    /**
     * Every process at once, or at most CRYO_RESTORE_THREADS if set above 0 (the benchmark
     * compares 1 with the default). No limit by default: the pool's threads are the limit that
     * counts, and the tracer is best kept busy building the next processes, which it can only do
     * once the earlier ones' work is queued.
     */
    static BackgroundWork fromEnvironment() {
        String setting = System.getProperty(Restore.THREADS_PROPERTY);
        if (setting == null || setting.isEmpty()) {
            setting = System.getenv().getOrDefault("CRYO_RESTORE_THREADS", "0");
        }
        int n;
        try {
            n = Integer.parseInt(setting.strip());
        } catch (NumberFormatException e) {
            n = 0;
        }
        return new BackgroundWork(n > 0 ? n : Integer.MAX_VALUE);
    }

    /** True when each process's work is awaited before the next process is restored (the old way). */
    boolean oneProcessAtATime() {
        return processesAtOnce <= 1;
    }

    /**
     * Queues the pieces of one process's work ({@code what}: "mem of process 42", for messages),
     * once fewer than {@link #processesAtOnce} processes have work in flight.
     */
    Batch start(String what, List<Runnable> pieces) {
        throwIfFailed();
        inFlight.removeIf(Batch::done);
        while (inFlight.size() >= processesAtOnce && !inFlight.isEmpty()) {
            inFlight.removeFirst().await();
        }
        Batch batch = new Batch(what);
        for (Runnable piece : pieces) {
            batch.pieces.add(pool.submit(() -> batch.run(piece)));
        }
        inFlight.addLast(batch);
        return batch;
    }

    /** Throws the first failure of any work handed in so far (it names its process), so the restore stops early. */
    void throwIfFailed() {
        Failure f = failure;
        if (f != null) {
            throw f;
        }
    }

    @Override
    public void close() {
        if (batches > 0) {
            LOG.fine(() -> "work of " + batches + " processes done on other threads; the tracer waited "
                    + waitedNanos / 1_000_000 + " ms for it");
        }
        pool.shutdownNow();
        boolean interrupted = false;
        while (true) {
            try {
                if (pool.awaitTermination(1, TimeUnit.MINUTES)) {
                    break;
                }
                LOG.warning("still waiting for the restore's background work to stop");
            } catch (InterruptedException e) {
                interrupted = true; // the pieces must end before the tasks are killed: wait on
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** The pieces of one process's work. */
    final class Batch {
        private final String what;
        private final List<Future<?>> pieces = new ArrayList<>();
        private final long queued = System.nanoTime();
        private volatile long lastEnd;
        private boolean awaited;

        private Batch(String what) {
            this.what = what;
        }

        private void run(Runnable piece) {
            if (failure != null) {
                return; // the restore fails anyway: write nothing more
            }
            try {
                piece.run();
                lastEnd = System.nanoTime();
            } catch (RuntimeException e) {
                Failure wrapped = new Failure("restoring " + what + ": " + e.getMessage(), e);
                synchronized (BackgroundWork.this) {
                    if (failure == null) {
                        failure = wrapped;
                    }
                }
                throw wrapped;
            }
        }

        private boolean done() {
            return pieces.stream().allMatch(Future::isDone);
        }

        /** Waits until every piece has run; throws the first failure of any work (this one's or an earlier one's). */
        void await() {
            if (awaited) {
                throwIfFailed();
                return;
            }
            long t = System.nanoTime();
            for (Future<?> f : pieces) {
                try {
                    f.get();
                } catch (ExecutionException e) {
                    // recorded in failure by the piece itself, thrown below
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new CryoException("interrupted while restoring " + what, e);
                }
            }
            awaited = true;
            waitedNanos += System.nanoTime() - t;
            batches++;
            throwIfFailed();
            LOG.fine(() -> what + ": background work done " + (Math.max(lastEnd, queued) - queued) / 1000
                    + " us after it was queued, " + pieces.size() + " pieces");
        }
    }
}
