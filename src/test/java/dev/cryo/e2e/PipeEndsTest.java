package dev.cryo.e2e;

import dev.cryo.testing.Target;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A pipe whose write end was closed everywhere is not a pipe to outside the tree: a reader whose
 * writer exited (a shell reading a command substitution) gets its bytes and then end of file
 * after restore.
 */
class PipeEndsTest extends TargetTest {
    @Test
    void pipesWithOneEndClosedEverywhereComeBackSo() throws Exception {
        Path state = tmp.resolve("pipes-state");
        Path program = Path.of("src/test/resources/python/closed_pipe_ends.py").toAbsolutePath();
        Target t = track(Target.start(state, List.of("python3", program.toString(), state.toString())));
        t.awaitReady(READY);
        checkpointAndRestore(t, tmp.resolve("img"));
        Files.writeString(state.resolve("go"), "");
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!Files.exists(state.resolve("result")) && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertThat(Files.readString(state.resolve("result"))).as(t.log()).isEqualTo("PASS");
    }
}
