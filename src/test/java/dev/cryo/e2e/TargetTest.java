package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Base of end-to-end tests that start C targets: runs only as root, gives each test a temporary
 * directory, and kills (and reaps, when a restore made them this JVM's children) every target a
 * test started, by pid.
 */
abstract class TargetTest {
    static final Duration READY = Duration.ofSeconds(10);
    static final Duration CHECK = Duration.ofSeconds(5);
    static final Duration PID_FREE = Duration.ofSeconds(5);

    @TempDir
    Path tmp;
    private final List<Target> started = new ArrayList<>();

    @BeforeAll
    static void needsRoot() {
        Assumptions.assumeTrue("root".equals(System.getProperty("user.name")), "checkpoint/restore tests need root");
    }

    @AfterEach
    void killStarted() {
        for (Target t : started) {
            t.close();
            CryoCli.reap(t.pid());
        }
    }

    /** Starts C target {@code program} with a state directory of its own and waits until it is ready. */
    Target startReady(String program, String... args) {
        return startReady(program, Map.of(), args);
    }

    /**
     * Starts C target {@code program} with extra environment variables and a state directory of
     * its own, and waits until it is ready. A target that reports "SKIP" skips the test.
     */
    Target startReady(String program, Map<String, String> env, String... args) {
        Target t = startProgram(program, env, args);
        String ready = t.awaitReady(READY);
        Assumptions.assumeFalse("SKIP".equals(ready), program + " cannot run on this machine");
        return t;
    }

    /** Starts C target {@code program} with a state directory of its own, without waiting until it is ready. */
    Target startProgram(String program, String... args) {
        return startProgram(program, Map.of(), args);
    }

    /**
     * Starts C target {@code program} with extra environment variables and a state directory of
     * its own, without waiting until it is ready.
     */
    Target startProgram(String program, Map<String, String> env, String... args) {
        Path state = tmp.resolve(program + "-state-" + started.size());
        try {
            Files.createDirectories(state);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return track(Target.startProgram(program, state, env, args));
    }

    /** Starts any command detached (not as this JVM's child), with a state directory of its own. */
    Target start(String name, List<String> command) {
        return track(Target.start(tmp.resolve(name + "-state-" + started.size()), command));
    }

    /** Kills {@code t}, started some other way (e.g. in a state directory prepared by the test), after the test. */
    Target track(Target t) {
        started.add(t);
        return t;
    }

    static String pid(Target t) {
        return Long.toString(t.pid());
    }

    /** Checkpoints (killing the target), checks it is gone, restores it detached. */
    static void checkpointAndRestore(Target t, Path images) {
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString() + "\n" + t.log()).isZero();
        assertThat(dump.out()).contains("Checkpointed process " + t.pid());
        t.awaitPidFree(PID_FREE);
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        assertThat(restore.out().strip()).isEqualTo(pid(t));
        assertThat(t.isAlive()).as("restored process runs").isTrue();
    }
}
