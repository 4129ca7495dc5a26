package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * One C target per family of file descriptors beyond plain files: pipes (within a process and
 * between two), eventfd/signalfd/timerfd/epoll, a sealed memfd, a deleted file and O_PATH fds,
 * and file locks. Each goes through two checkpoint/restore rounds, the second from the restored
 * process itself, and checks its own state before, after the first and after the second restore
 * (every check leaves the state as it found it, so the second round sees the same state).
 */
class FdFamiliesTest extends TargetTest {
    /** eventfds watches its timerfd for up to 1.5 s; the others answer within milliseconds. */
    private static final Duration FD_CHECK = Duration.ofSeconds(10);
    private static final int ROUNDS = 2;

    /** Processes below the targets' roots, killed by pid (deepest first) before the roots. */
    private final List<Long> descendants = new ArrayList<>();

    @AfterEach
    void killDescendants() {
        for (long pid : descendants.reversed()) {
            ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
            // the root reaps it (pipes does, in its main loop); wait so no zombie is orphaned
            long deadline = System.nanoTime() + Duration.ofSeconds(2).toNanos();
            while (Files.exists(Path.of("/proc", Long.toString(pid))) && System.nanoTime() < deadline) {
                pause();
            }
        }
    }

    @Test
    void pipesWithDataInFlightWithinAndBetweenProcesses() {
        roundTrips("pipes", 2);
    }

    @Test
    void eventfdsSignalfdTimerfdAndNestedEpoll() {
        roundTrips("eventfds", 1);
    }

    @Test
    void sealedMemfd() {
        roundTrips("memfd", 1);
    }

    @Test
    void deletedFileAndOPathFds() {
        roundTrips("deleted", 1);
    }

    @Test
    void posixOfdAndFlockLocks() {
        roundTrips("locks", 1);
    }

    /**
     * Starts {@code program}, checks it, then twice: checkpoint (which ends the whole tree), wait
     * for the pid to be free, restore detached, check again.
     */
    private void roundTrips(String program, int processes) {
        Target t = startReady(program);
        List<Long> tree = tree(t.pid());
        descendants.addAll(tree.subList(1, tree.size()));
        assertThat(tree).as("processes of " + program).hasSize(processes);
        assertThat(t.check(FD_CHECK)).as("before the first checkpoint: " + t.log()).isEqualTo("PASS");

        for (int round = 1; round <= ROUNDS; round++) {
            Path images = tmp.resolve("img" + round);
            CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString());
            assertThat(dump.exitCode()).as("checkpoint " + round + ": " + dump + "\n" + t.log()).isZero();
            assertThat(dump.out()).contains("Checkpointed process " + t.pid());
            t.awaitPidFree(PID_FREE);
            for (long pid : tree) {
                awaitGone(pid);
            }

            CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
            assertThat(restore.exitCode()).as("restore " + round + ": " + restore).isZero();
            assertThat(restore.out().strip()).isEqualTo(pid(t));
            assertThat(t.isAlive()).as("restored process runs").isTrue();
            assertThat(tree(t.pid())).as("the restored tree has the same pids").isEqualTo(tree);
            assertThat(t.check(FD_CHECK)).as("after restore " + round + ": " + t.log()).isEqualTo("PASS");
        }
    }

    /** {@code root} and its descendants, parents before children, from /proc. */
    private static List<Long> tree(long root) {
        List<Long> out = new ArrayList<>();
        List<Long> todo = new ArrayList<>(List.of(root));
        while (!todo.isEmpty()) {
            long pid = todo.removeFirst();
            out.add(pid);
            try (var tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
                for (Path task : tasks.toList()) {
                    String children = Files.readString(task.resolve("children")).strip();
                    if (!children.isEmpty()) {
                        for (String c : children.split(" ")) {
                            todo.add(Long.parseLong(c));
                        }
                    }
                }
            } catch (IOException e) {
                throw new IllegalStateException("cannot list the children of " + pid + ": " + e, e);
            }
        }
        return out;
    }

    private static void awaitGone(long pid) {
        Path proc = Path.of("/proc", Long.toString(pid));
        long deadline = System.nanoTime() + PID_FREE.toNanos();
        while (Files.exists(proc)) {
            assertThat(System.nanoTime()).as("pid " + pid + " still in use after the checkpoint").isLessThan(deadline);
            pause();
        }
    }

    private static void pause() {
        try {
            Thread.sleep(10);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }
}
