package dev.cryo.mem;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Page copies running on one thread per core. Reading another task's memory (process_vm_readv,
 * /proc/PID/mem) needs no ptrace stop, so a copy can start as soon as its process is laid out
 * and run while Cryo saves the process's other parts and lays out the next process; the tree
 * stays frozen until {@link #awaitAll} has returned.
 */
final class PageCopies {
    private final ExecutorService pool;
    private final List<Future<?>> started = new ArrayList<>();

    PageCopies() {
        this(copyThreads());
    }

    PageCopies(int threads) {
        pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "cryo-page-copy");
            t.setDaemon(true);
            return t;
        });
    }

    /** One per core, or CRYO_COPY_THREADS if set above 0 (the benchmark compares 1 with the default). */
    static int copyThreads() {
        try {
            int n = Integer.parseInt(System.getenv().getOrDefault("CRYO_COPY_THREADS", "0"));
            return n > 0 ? n : Runtime.getRuntime().availableProcessors();
        } catch (NumberFormatException e) {
            return Runtime.getRuntime().availableProcessors();
        }
    }

    /** @param taskRunning see {@link Memory.PageCopy#copy} */
    void start(Memory.PageCopy copy, boolean taskRunning) {
        started.add(pool.submit(() -> copy.copy(taskRunning)));
    }

    /** Waits for every copy; the first failure is thrown once all have ended, the others ride along. */
    void awaitAll() {
        RuntimeException failure = null;
        try {
            for (Future<?> f : started) {
                try {
                    f.get();
                } catch (ExecutionException e) {
                    RuntimeException cause = e.getCause() instanceof RuntimeException r ? r
                            : new IllegalStateException("copying pages", e.getCause());
                    if (failure == null) {
                        failure = cause;
                    } else {
                        failure.addSuppressed(cause);
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while copying pages", e);
                }
            }
        } finally {
            pool.shutdownNow();
        }
        if (failure != null) {
            throw failure;
        }
    }

    /**
     * The checkpoint failed: copies not started yet never start, running ones are interrupted
     * (they stop at their next wait for the writer), and this returns once none runs any more:
     * they read the tree, which must not be let go under them, and write into the image that is
     * about to be removed. Their outcome is dropped; the checkpoint's own failure is reported.
     */
    void abandon() {
        pool.shutdownNow();
        try {
            if (!pool.awaitTermination(1, java.util.concurrent.TimeUnit.MINUTES)) {
                throw new IllegalStateException("page copies still running a minute after the checkpoint failed");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
