package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Checkpoints Cryo must refuse: of what is no process (a free PID, PID 0, a zombie), of a kernel
 * thread, of Cryo itself, of a thread that is not its process's leader, of a process stopped by
 * job control, into a directory holding something else, and of processes holding state Cryo
 * cannot save yet (an application's own userfaultfd, next to a pipe, also in a multi-threaded process and in a process tree). Each is refused with one clear line and a
 * failure exit code, leaves no image, and a refused process keeps running exactly as it was:
 * same memory map (nothing injected left behind), same fds with the same flags and offsets, same
 * signal state, not traced, not stopped, and its own check still passes.
 */
class CheckpointRefusalTest extends TargetTest {

    /** Runs a checkpoint that must fail, and checks the user sees one error line and no image is left. */
    private CryoCli.Result refusedCheckpoint(String pid, Path images) {
        CryoCli.Result r = CryoCli.run("checkpoint", pid, "-D", images.toString());
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(1);
        assertThat(r.err()).as(r.toString()).startsWith("Error: ");
        assertThat(r.err().lines().count()).as("one line, no stack trace: " + r).isEqualTo(1);
        assertThat(r.out()).as(r.toString()).isEmpty();
        assertNoImage(images);
        return r;
    }

    /** Either the image directory is not there at all or it is empty: no inventory, no partial files. */
    private static void assertNoImage(Path images) {
        if (Files.exists(images)) {
            try (Stream<Path> s = Files.list(images)) {
                assertThat(s.toList()).as("files left in " + images).isEmpty();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    @Test
    void pidThatDoesNotExist() {
        long pid = Procs.unusedPid();
        CryoCli.Result r = refusedCheckpoint(Long.toString(pid), tmp.resolve("img"));
        assertThat(r.err()).contains("no process with PID " + pid);
        assertThat(Procs.exists(pid)).isFalse();
    }

    @Test
    void pidZero() {
        CryoCli.Result r = refusedCheckpoint("0", tmp.resolve("img"));
        assertThat(r.err()).contains("invalid PID 0");
    }

    @Test
    void kernelThread() {
        Assumptions.assumeTrue(Procs.exists(2) && "kthreadd".equals(comm(2)), "PID 2 is kthreadd on the host");
        CryoCli.Result r = refusedCheckpoint("2", tmp.resolve("img"));
        assertThat(r.err()).contains("PID 2").contains("kernel thread").contains("kthreadd");
        assertThat(Procs.status(2).get("TracerPid")).isEqualTo("0");
    }

    @Test
    void cryoItself() {
        long self = ProcessHandle.current().pid();
        CryoCli.Result r = refusedCheckpoint(Long.toString(self), tmp.resolve("img"));
        assertThat(r.err()).contains("PID " + self + " is Cryo itself");
        assertThat(Procs.status(self).get("TracerPid")).isEqualTo("0");
    }

    @Test
    void pipeIsRefusedAndTheProcessRunsOnUntouched() {
        Target t = startReady("pipe_holder");
        assertThat(t.check(CHECK)).as("before: " + t.log()).isEqualTo("PASS");
        Procs.Snapshot before = Procs.snapshot(t.pid());
        assertThat(before.fds()).as("the target's pipe ends").containsKeys(10, 11);
        assertThat(before.fds().get(10)).startsWith("pipe:[");

        CryoCli.Result r = refusedCheckpoint(pid(t), tmp.resolve("img"));
        assertThat(r.err()).as(r.toString()).contains("fd 12").contains("userfaultfd");

        assertUntouched(t, before);
    }

    @Test
    void pipeRefusalLeavesNothingInAnImageDirectoryMadeBeforehand() throws IOException {
        // The attempt goes as far as freezing the task and saving its memory before the fds are
        // looked at: everything it wrote must be gone again.
        Target t = startReady("pipe_holder");
        Path images = tmp.resolve("img");
        Files.createDirectories(images);
        Procs.Snapshot before = Procs.snapshot(t.pid());
        CryoCli.Result r = refusedCheckpoint(pid(t), images);
        assertThat(r.err()).contains("userfaultfd");
        assertUntouched(t, before);
    }

    @Test
    void multiThreadedProcessRefusedAfterFreezingEveryThreadRunsOnUntouched() {
        // Every thread is seized and given a syscall session before the fds are looked at; the
        // refusal must release them all as they were.
        Target t = startReady("threads", "pipe");
        assertThat(t.check(CHECK)).as("before: " + t.log()).isEqualTo("PASS");
        List<String> threads = tasks(t.pid());
        assertThat(threads).hasSize(2);
        Procs.Snapshot before = Procs.snapshot(t.pid());

        CryoCli.Result r = refusedCheckpoint(pid(t), tmp.resolve("img"));
        assertThat(r.err()).as(r.toString()).contains("fd 12").contains("userfaultfd");

        assertThat(tasks(t.pid())).as("the same threads").isEqualTo(threads);
        for (String task : threads) {
            long tid = Long.parseLong(task);
            assertThat(Procs.status(tid).get("TracerPid")).as("thread " + task + " not traced").isEqualTo("0");
            assertThat(Procs.state(tid)).as("thread " + task + " not left stopped").isIn('R', 'S');
        }
        assertUntouched(t, before);
    }

    @Test
    void processTreeRefusedAfterFreezingRunsOnUntouched() throws IOException {
        // Parent and child are both frozen before the pipe they share is found; the refusal must
        // release both as they were.
        Target t = startReady("forker", "pipe");
        long child = Long.parseLong(Files.readString(t.stateDir().resolve("child")).strip());
        assertThat(t.check(CHECK)).as("before: " + t.log()).isEqualTo("PASS");
        Procs.Snapshot before = Procs.snapshot(t.pid());
        Procs.Snapshot childBefore = Procs.snapshot(child);

        CryoCli.Result r = refusedCheckpoint(pid(t), tmp.resolve("img"));
        assertThat(r.err()).as(r.toString()).contains("fd 12").contains("userfaultfd");

        // before the parent's check, whose report moves the offset of the stdout they share
        assertThat(Procs.snapshot(child)).as("the child").isEqualTo(childBefore);
        assertThat(Procs.state(child)).as("the child not left stopped").isIn('R', 'S');
        assertUntouched(t, before);
    }

    @Test
    void threadThatIsNotTheLeaderIsRefused() {
        Target t = startReady("threads");
        String worker = tasks(t.pid()).stream().filter(id -> !id.equals(pid(t))).findFirst().orElseThrow();
        CryoCli.Result r = refusedCheckpoint(worker, tmp.resolve("img"));
        assertThat(r.err()).contains("PID " + worker + " is a thread of process " + t.pid());
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
    }

    @Test
    void zombieIsRefused() throws IOException {
        // sleep 0 ends at once and is never reaped: the exec'ed sleep 100 does not wait for children
        Target parent = start("zombie", List.of("bash", "-c", "sleep 0 & exec sleep 100"));
        Path children = Path.of("/proc", pid(parent), "task", pid(parent), "children");
        long zombie = -1;
        long deadline = System.nanoTime() + READY.toNanos();
        while (zombie < 0 && System.nanoTime() < deadline) {
            pause(10);
            String c = Files.exists(children) ? Files.readString(children).strip() : "";
            if (c.matches("\\d+") && List.of("sleep", "100").equals(Procs.cmdline(parent.pid()))
                    && Procs.exists(Long.parseLong(c)) && Procs.state(Long.parseLong(c)) == 'Z') {
                zombie = Long.parseLong(c);
            }
        }
        assertThat(zombie).as("a zombie child of " + parent).isPositive();
        CryoCli.Result r = refusedCheckpoint(Long.toString(zombie), tmp.resolve("img"));
        assertThat(r.err()).contains("PID " + zombie + " is a zombie");
        assertThat(Procs.state(zombie)).as("still a zombie, for its parent to reap").isEqualTo('Z');
    }

    @Test
    void stoppedProcessIsRefusedAndStaysStopped() throws IOException {
        Target t = startReady("counter");
        t.signal("STOP");
        awaitState(t, 'T');
        Procs.Snapshot before = Procs.snapshot(t.pid());
        CryoCli.Result r = refusedCheckpoint(pid(t), tmp.resolve("img"));
        assertThat(r.err()).contains("stopped").contains("kill -CONT " + t.pid());
        // PTRACE_DETACH wakes a task in group-stop, which then stops again by itself: give it that
        // moment, then it must stay stopped, counting no further, until the user continues it.
        awaitState(t, 'T');
        String count = Files.readString(t.stateDir().resolve("count"));
        pause(100);
        assertThat(Procs.state(t.pid())).as("still stopped, as the user left it").isEqualTo('T');
        assertThat(Files.readString(t.stateDir().resolve("count"))).as("not counting while stopped").isEqualTo(count);
        t.signal("CONT");
        assertUntouched(t, before);
    }

    private static void awaitState(Target t, char state) {
        long deadline = System.nanoTime() + READY.toNanos();
        while (Procs.state(t.pid()) != state && System.nanoTime() < deadline) {
            pause(10);
        }
        assertThat(Procs.state(t.pid())).as("state of " + t).isEqualTo(state);
    }

    @Test
    void foreignDirectoryIsNotWrittenInto() throws IOException {
        Target t = startReady("counter");
        Path dir = tmp.resolve("not-an-image");
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("precious.txt"), "keep me");
        Procs.Snapshot before = Procs.snapshot(t.pid());
        CryoCli.Result r = CryoCli.run("checkpoint", pid(t), "-D", dir.toString());
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(1);
        assertThat(r.err()).startsWith("Error: ").contains(dir.toString()).contains("precious.txt").contains("not part of an image");
        try (Stream<Path> s = Files.list(dir)) {
            assertThat(s.toList()).containsExactly(dir.resolve("precious.txt"));
        }
        assertThat(Files.readString(dir.resolve("precious.txt"))).isEqualTo("keep me");
        assertUntouched(t, before);
    }

    /**
     * The process is alive, not traced, not stopped, its map, fds and signal state are what
     * they were, and its own check passes (which also shows it kept running).
     */
    private static void assertUntouched(Target t, Procs.Snapshot before) {
        assertThat(t.isAlive()).as("the refused process still runs").isTrue();
        Procs.Snapshot after = Procs.snapshot(t.pid());
        assertThat(after.status().get("TracerPid")).as("no tracer left attached").isEqualTo("0");
        assertThat(Procs.state(t.pid())).as("not left stopped").isIn('R', 'S');
        assertThat(after.maps()).as("memory map unchanged (no injected leftovers)").isEqualTo(before.maps());
        assertThat(after.fds()).as("fd table unchanged").isEqualTo(before.fds());
        assertThat(after.status()).as("status unchanged").isEqualTo(before.status());
        assertThat(t.check(CHECK)).as("after the refused checkpoint: " + t.log()).isEqualTo("PASS");
    }

    private static void pause(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static String comm(long pid) {
        try {
            return Files.readString(Path.of("/proc", Long.toString(pid), "comm")).strip();
        } catch (IOException e) {
            return null;
        }
    }

    private static List<String> tasks(long pid) {
        try (Stream<Path> s = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
