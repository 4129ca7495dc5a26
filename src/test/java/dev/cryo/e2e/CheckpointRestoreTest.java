package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * One C target per kind of state: it sets the state up, is checkpointed (and so killed),
 * restored with the same pid, and then checks by itself that the state survived.
 */
class CheckpointRestoreTest {
    static final Duration READY = Duration.ofSeconds(10);
    static final Duration CHECK = Duration.ofSeconds(5);

    @TempDir
    Path tmp;
    private final List<Target> started = new ArrayList<>();

    @BeforeAll
    static void needsRoot() {
        Assumptions.assumeTrue("root".equals(System.getProperty("user.name")), "checkpoint/restore tests need root");
    }

    @AfterEach
    void cleanUp() {
        for (Target t : started) {
            t.close();
            CryoCli.reap(t.pid());
        }
    }

    Target start(String program, String... args) {
        return start(program, Map.of(), args);
    }

    Target start(String program, Map<String, String> env, String... args) {
        Path state = tmp.resolve(program + "-state");
        try {
            Files.createDirectories(state);
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
        Target t = Target.startProgram(program, state, env, args);
        started.add(t);
        return t;
    }

    /** Checkpoints (killing the target), checks it is gone, restores it detached. */
    static void checkpointAndRestore(Target t, Path images) {
        CryoCli.Result dump = CryoCli.run("checkpoint", Long.toString(t.pid()), "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString() + "\n" + t.log()).isZero();
        assertThat(dump.out()).contains("Checkpointed process " + t.pid());
        t.awaitPidFree(Duration.ofSeconds(5));
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        assertThat(restore.out().strip()).isEqualTo(Long.toString(t.pid()));
        assertThat(t.isAlive()).as("restored process runs").isTrue();
    }

    void roundTrip(String program, String... args) {
        Target t = start(program, args);
        String ready = t.awaitReady(READY);
        Assumptions.assumeFalse("SKIP".equals(ready), program + " cannot run on this machine");
        assertThat(t.check(CHECK)).as("before checkpoint: " + t.log()).isEqualTo("PASS");
        checkpointAndRestore(t, tmp.resolve("img"));
        assertThat(t.check(CHECK)).as("after restore: " + t.log()).isEqualTo("PASS");
    }

    @Test
    void memoryOfEveryKindSurvives() {
        roundTrip("memory");
    }

    @Test
    void counterContinuesWithItsFileOffset() throws Exception {
        Target t = start("counter");
        t.awaitReady(READY);
        Thread.sleep(200);
        checkpointAndRestore(t, tmp.resolve("img"));
        long before = Long.parseLong(Files.readString(t.stateDir().resolve("count")).strip());
        Thread.sleep(300);
        long after = Long.parseLong(Files.readString(t.stateDir().resolve("count")).strip());
        assertThat(after).as("the restored counter keeps counting from where it was").isGreaterThan(before);
        assertThat(t.check(CHECK)).isEqualTo("PASS");
    }

    @Test
    void fileDescriptorsKeepNumbersFlagsAndOffsets() {
        roundTrip("files");
    }

    @Test
    void signalHandlersMasksPendingSignalsAndTimers() {
        roundTrip("signals");
    }

    @Test
    void interruptedSystemCallsContinue() {
        roundTrip("syscalls");
    }

    @Test
    void avx512RegistersSurvive() {
        roundTrip("avx512");
    }

    @Test
    void commandLineEnvironmentCommLimitsAndBrk() {
        Target t = start("cmdline", Map.of("CRYO_TEST_ENV", "hello"), "alpha", "beta");
        t.awaitReady(READY);
        assertThat(t.check(CHECK)).isEqualTo("PASS");
        checkpointAndRestore(t, tmp.resolve("img"));
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
    }
}
