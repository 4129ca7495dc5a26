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
        Path state = tmp.resolve(program + "-state-" + started.size());
        try {
            Files.createDirectories(state);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        Target t = Target.startProgram(program, state, args);
        started.add(t);
        String ready = t.awaitReady(READY);
        Assumptions.assumeFalse("SKIP".equals(ready), program + " cannot run on this machine");
        return t;
    }

    /** Starts any command detached (not as this JVM's child), with a state directory of its own. */
    Target start(String name, List<String> command) {
        Target t = Target.start(tmp.resolve(name + "-state-" + started.size()), command);
        started.add(t);
        return t;
    }

    static String pid(Target t) {
        return Long.toString(t.pid());
    }
}
