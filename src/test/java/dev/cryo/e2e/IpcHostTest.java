package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A process using the host's SysV shared memory and a POSIX message queue: refused without
 * --ipc-host (and left running), and with it restored still attached to the very same segment
 * and queue, which the test can see from outside.
 */
class IpcHostTest extends TargetTest {
    private static final String KEY = "0x43727901";
    private static final String QUEUE = "/cryo-ipc-host-test";

    @AfterEach
    void removeIpcObjects() throws Exception {
        new ProcessBuilder("ipcrm", "-M", KEY).redirectErrorStream(true).start().waitFor();
        new ProcessBuilder("python3", "-c", "import ctypes; ctypes.CDLL(None).mq_unlink(b'" + QUEUE + "')").start().waitFor();
    }

    @Test
    void hostIpcObjectsAreReconnectedWithIpcHost() throws Exception {
        Path out = tmp.resolve("progress");
        Path program = Path.of("src/test/resources/python/ipc_host.py").toAbsolutePath();
        Target t = start("ipc", List.of("python3", program.toString(), out.toString(), KEY, QUEUE));
        long before = await(out, 5, t);

        CryoCli.Result refused = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("refused").toString());
        assertThat(refused.exitCode()).isEqualTo(1);
        assertThat(refused.err()).contains("SysV shared memory").contains("--ipc-host");
        assertThat(await(out, before + 5, t)).as("the refused process runs on").isGreaterThan(before);

        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString(), "--ipc-host");
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        t.awaitPidFree(PID_FREE);
        long atCheckpoint = value(out);
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        assertThat(await(out, atCheckpoint + 5, t)).isGreaterThan(atCheckpoint);
        assertThat(Files.readAllLines(Path.of("/proc", pid(t), "maps")))
                .as("the host's segment is attached again").anyMatch(l -> l.contains("/SYSV" + KEY.substring(2)));
    }

    /** Waits until the process wrote a value of at least {@code min} through both the segment and the queue. */
    private static long await(Path out, long min, Target t) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        long seen = -1;
        while (System.nanoTime() < deadline) {
            seen = value(out);
            if (seen >= min) {
                return seen;
            }
            Thread.sleep(20);
        }
        throw new AssertionError("value stayed at " + seen + ", expected " + min + "; log: " + t.log());
    }

    /** The value, when the segment and the queue agree on it; -1 otherwise. */
    private static long value(Path out) {
        try {
            String[] f = Files.readString(out).strip().split(" ");
            return f.length == 2 && f[0].equals(f[1]) ? Long.parseLong(f[0]) : -1;
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
    }
}
