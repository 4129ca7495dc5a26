package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A process checkpointed, restored, checkpointed again from its restored self, and so on:
 * whatever a restore gets slightly wrong (a leftover mapping, a register, a lost page) would
 * pile up from one generation to the next. The memory target, ten rounds, checksums
 * 64 MiB of its own memory and its maps after every restore; the threads target, three rounds,
 * checks that its second thread still runs.
 *
 * <p>From the second round on the process is this JVM's child (Cryo restores with
 * CLONE_PARENT), and the checkpoint that kills it also reaps it. Every round writes over the
 * previous round's image in the same directory. Cryo's own leaks would pile up too: from round to
 * round this JVM keeps the same number of fds and no child but the target.
 */
class RepeatedCheckpointTest extends TargetTest {
    private static final int ROUNDS = 10;

    @Test
    void bothThreadsOfAMultiThreadedProcessRunOnThroughThreeRounds() {
        Target t = startReady("threads");
        assertThat(t.check(CHECK)).as("before the first checkpoint: " + t.log()).isEqualTo("PASS");
        Path images = tmp.resolve("img");
        for (int round = 1; round <= 3; round++) {
            CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString());
            assertThat(dump.exitCode()).as("round " + round + ": " + dump + "\n" + t.log()).isZero();
            t.awaitPidFree(PID_FREE);
            CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
            assertThat(restore.exitCode()).as("round " + round + ": " + restore).isZero();
            assertThat(t.check(CHECK)).as("after restore " + round + ": " + t.log()).isEqualTo("PASS");
            assertThat(Procs.status(t.pid()).get("Threads")).isEqualTo("2");
        }
    }

    @Test
    void tenCheckpointRestoreRoundsOfTheMemoryTarget() {
        Target t = startReady("memory");
        assertThat(t.check(CHECK)).as("before the first checkpoint: " + t.log()).isEqualTo("PASS");
        Path images = tmp.resolve("img");
        int jvmFds = -1;
        // the target's launcher may still be a child of this JVM for a while (it exits once the
        // target is gone, and is reaped when the JDK gets to it): it is not Cryo's leftover
        java.util.List<Long> before = Procs.childrenOfThisJvm();
        for (int round = 1; round <= ROUNDS; round++) {
            CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString());
            assertThat(dump.exitCode()).as("round " + round + ": " + dump + "\n" + t.log()).isZero();
            assertThat(dump.out()).contains("Checkpointed process " + t.pid());
            t.awaitPidFree(PID_FREE);

            CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
            assertThat(restore.exitCode()).as("round " + round + ": " + restore).isZero();
            assertThat(restore.out().strip()).isEqualTo(pid(t));
            assertThat(Procs.status(t.pid()).get("TracerPid")).as("round " + round).isEqualTo("0");
            assertThat(t.check(CHECK)).as("after restore " + round + ": " + t.log()).isEqualTo("PASS");

            // Cryo itself, run ten times in this JVM, leaks neither fds nor processes.
            java.util.List<Long> allowed = new java.util.ArrayList<>(before);
            allowed.add(t.pid());
            assertThat(Procs.childrenOfThisJvm()).as("round " + round + ": no restore stub left, only the target")
                    .contains(t.pid()).isSubsetOf(allowed);
            int fds = round == 1 ? Procs.fdCount(ProcessHandle.current().pid()) : settledFdCount(jvmFds);
            if (round == 1) {
                jvmFds = fds;
            }
            assertThat(fds).as("round " + round + ": fds open in this JVM").isEqualTo(jvmFds);
        }
    }

    /**
     * The JVM's fd count, given up to two seconds to come back to {@code expected}: other threads
     * of the test JVM (process reapers, stream cleaners) may hold a few fds for a moment on a
     * loaded machine; a leak stays.
     */
    private static int settledFdCount(int expected) {
        long deadline = System.nanoTime() + 2_000_000_000L;
        int fds = Procs.fdCount(ProcessHandle.current().pid());
        while (fds != expected && System.nanoTime() < deadline) {
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            fds = Procs.fdCount(ProcessHandle.current().pid());
        }
        return fds;
    }
}
