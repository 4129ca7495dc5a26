package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * python3 asyncio (epoll, socketpairs, timers) keeps its schedule over two restores: the
 * consumer coroutine sees every sequence number the producer sent, once and in order.
 */
class PythonAsyncioTest extends TargetTest {
    @Test
    void asyncioStreamOverASocketpairContinues() throws Exception {
        Path out = tmp.resolve("progress");
        Path program = Path.of("src/test/resources/python/asyncio_stream.py").toAbsolutePath();
        Target t = start("asyncio", List.of("python3", program.toString(), out.toString()));
        long seen = awaitProgress(out, 40, t);
        for (int round = 0; round < 2; round++) {
            Path images = tmp.resolve("img" + round);
            CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString());
            assertThat(dump.exitCode()).as(dump + t.log()).isZero();
            t.awaitPidFree(PID_FREE);
            long atCheckpoint = progress(out);
            CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
            assertThat(restore.exitCode()).as(restore.toString()).isZero();
            seen = awaitProgress(out, Math.max(seen, atCheckpoint) + 100, t);
        }
        Path bad = Path.of(out + ".bad");
        assertThat(Files.exists(bad) ? Files.readString(bad) : "").as("lines lost, repeated or out of order").isEmpty();
    }

    private static long awaitProgress(Path out, long min, Target t) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        long seen = -1;
        while (System.nanoTime() < deadline) {
            seen = progress(out);
            if (seen >= min) {
                return seen;
            }
            Thread.sleep(20);
        }
        throw new AssertionError("asyncio progress stayed at " + seen + ", expected " + min + "; log: " + t.log());
    }

    private static long progress(Path out) {
        try {
            String s = Files.readString(out).strip();
            return s.isEmpty() ? -1 : Long.parseLong(s);
        } catch (NoSuchFileException e) {
            return -1;
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
    }
}
