package dev.cryo.core;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The restore's work on other threads, without any task: pieces run off the caller's thread and
 * in the order queued; a failure names its work and stops later work; closing leaves nothing
 * running; one process at a time means the caller waits before the next starts.
 */
class BackgroundWorkTest {
    @Test
    void piecesRunOffTheCallersThreadAndAreAllDoneOnceAwaited() {
        List<String> ran = Collections.synchronizedList(new ArrayList<>());
        try (BackgroundWork work = new BackgroundWork(Integer.MAX_VALUE)) {
            List<Runnable> pieces = new ArrayList<>();
            for (int i = 0; i < 20; i++) {
                pieces.add(() -> ran.add(Thread.currentThread().getName()));
            }
            BackgroundWork.Batch batch = work.start("mem of process 1", pieces);
            batch.await();
            assertThat(ran).hasSize(20).allMatch(name -> name.equals("cryo-restore-bg"));
        }
    }

    @Test
    void aFailedPieceNamesItsWorkAndStopsWorkQueuedLater() throws Exception {
        CountDownLatch failed = new CountDownLatch(1);
        AtomicInteger laterPieces = new AtomicInteger();
        try (BackgroundWork work = new BackgroundWork(Integer.MAX_VALUE)) {
            BackgroundWork.Batch bad = work.start("mem of process 7", List.of(() -> {
                failed.countDown();
                throw new IllegalStateException("process_vm_writev failed: EFAULT");
            }));
            assertThat(failed.await(10, TimeUnit.SECONDS)).isTrue();
            assertThatThrownBy(bad::await).isInstanceOf(BackgroundWork.Failure.class)
                    .hasMessage("restoring mem of process 7: process_vm_writev failed: EFAULT");
            assertThatThrownBy(() -> work.start("mem of process 8", List.of(laterPieces::incrementAndGet)))
                    .isInstanceOf(BackgroundWork.Failure.class).hasMessageContaining("process 7");
            assertThatThrownBy(work::throwIfFailed).hasMessageContaining("process 7");
        }
        assertThat(laterPieces).hasValue(0);
    }

    @Test
    void closingDropsQueuedPiecesAndWaitsForRunningOnes() throws Exception {
        CountDownLatch running = new CountDownLatch(Runtime.getRuntime().availableProcessors());
        AtomicInteger started = new AtomicInteger(), finished = new AtomicInteger();
        BackgroundWork work = new BackgroundWork(Integer.MAX_VALUE);
        List<Runnable> pieces = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            pieces.add(() -> {
                started.incrementAndGet();
                running.countDown();
                long until = System.nanoTime() + 50_000_000; // busy, as a process_vm_writev is: no interrupt stops it
                while (System.nanoTime() < until) {
                    Thread.onSpinWait();
                }
                finished.incrementAndGet();
            });
        }
        work.start("mem of process 3", pieces);
        running.await(10, TimeUnit.SECONDS);
        work.close();
        int atClose = finished.get();
        assertThat(atClose).as("every piece that started has ended").isEqualTo(started.get());
        assertThat(atClose).as("queued pieces were dropped").isLessThan(100);
        Thread.sleep(100);
        assertThat(finished.get()).as("nothing runs after close").isEqualTo(atClose);
    }

    @Test
    void oneProcessAtATimeWaitsForTheEarlierProcessBeforeStartingTheNext() {
        List<String> order = Collections.synchronizedList(new ArrayList<>());
        try (BackgroundWork work = new BackgroundWork(1)) {
            assertThat(work.oneProcessAtATime()).isTrue();
            work.start("mem of process 1", List.of(() -> sleepThen(order, "1")));
            BackgroundWork.Batch second = work.start("mem of process 2", List.of(() -> order.add("2")));
            assertThat(order).as("process 1's work, done before process 2's was queued").startsWith("1");
            second.await();
        }
        assertThat(order).containsExactly("1", "2");
    }

    private static void sleepThen(List<String> order, String what) {
        try {
            Thread.sleep(200);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        order.add(what);
    }
}
