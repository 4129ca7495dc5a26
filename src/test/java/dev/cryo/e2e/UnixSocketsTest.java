package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Messages waiting in unix datagram and seqpacket socketpairs come back after restore exactly
 * once, in order, each with its own boundaries; the restored program reads them itself.
 */
class UnixSocketsTest extends TargetTest {
    @Test
    void waitingDatagramsAndSeqpacketsComeBackInOrder() throws Exception {
        Path state = Files.createDirectories(tmp.resolve("state"));
        Path program = Path.of("src/test/resources/python/unix_datagrams.py").toAbsolutePath();
        Target t = track(Target.start(state, List.of("python3", program.toString(), state.toString())));
        t.awaitReady(READY);
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString());
        assertThat(dump.exitCode()).as(dump + t.log()).isZero();
        t.awaitPidFree(PID_FREE);
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        Files.writeString(state.resolve("go"), "go");
        Path out = state.resolve("out");
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (!Files.exists(out) && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertThat(Files.exists(out) ? Files.readString(out).strip() : "no answer; log: " + t.log())
                .isEqualTo("one two three seq-a seq-b | extra:");
    }
}
