package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Programs that know nothing of Cryo: an interpreter counting into a file. After restore the
 * count goes on from where it was instead of starting over, which only the restored
 * interpreter's own memory can explain.
 */
class UnawareProgramsTest extends TargetTest {
    private Target target;

    @Test
    void bashLoopKeepsCounting() throws Exception {
        Path count = tmp.resolve("count");
        // Builtins only (a child process such as sleep would make this a process tree); appending
        // keeps every complete line readable even when the checkpoint lands mid-write.
        countsOnAfterRestore(List.of("bash", "-c", "i=0; while :; do i=$((i+1)); if (( i % 2000 == 0 )); then echo $i >> "
                + count + "; fi; done"), count);
    }

    @Test
    void bashWithABackgroundJobKeepsCounting() throws Exception {
        Path count = tmp.resolve("count");
        // a process tree: bash, a background sleep job, and bash counting in the foreground
        countsOnAfterRestore(List.of("bash", "-c", "sleep 1000 & i=0; while :; do i=$((i+1)); if (( i % 2000 == 0 )); "
                + "then echo $i >> " + count + "; fi; done"), count);
        assertThat(TreeTest.describe(target.pid())).as("bash and its sleep job").hasSize(2);
    }

    @Test
    void bashForkingAllTheTimeIsFrozenConsistently() throws Exception {
        Path count = tmp.resolve("count");
        // forks and execs a child every few hundred microseconds: some checkpoint lands mid-fork
        countsOnAfterRestore(List.of("bash", "-c", "i=0; while :; do i=$((i+1)); /bin/true; if (( i % 20 == 0 )); "
                + "then echo $i >> " + count + "; fi; done"), count);
    }

    @Test
    void bashPipelineKeepsFlowingWithoutLosingOrRepeatingALine() throws Exception {
        Path count = tmp.resolve("count");
        Path gaps = tmp.resolve("gaps");
        // producer | filter | consumer, all bash: the consumer checks every sequence number
        String script = "i=0; while :; do echo $i; i=$((i+1)); done"
                + " | while read l; do echo \"x$l\"; done"
                + " | { e=0; while read l; do n=${l#x}; if [ \"$n\" != \"$e\" ]; then echo \"expected $e got $n\" >> " + gaps
                + "; fi; e=$((n+1)); if (( n % 500 == 0 )); then echo $n >> " + count + "; fi; done; }";
        for (int round = 0; round < 2; round++) {
            if (round == 0) {
                countsOnAfterRestore(List.of("bash", "-c", script), count);
            } else {
                long before = readCount(count);
                Path images = tmp.resolve("img2");
                CryoCli.Result dump = CryoCli.run("checkpoint", pid(target), "-D", images.toString());
                assertThat(dump.exitCode()).as(dump.toString()).isZero();
                target.awaitPidFree(PID_FREE);
                assertThat(CryoCli.run("restore", "-D", images.toString(), "-d").exitCode()).isZero();
                assertThat(awaitCount(count, before + 1000)).isGreaterThan(before);
            }
        }
        assertThat(TreeTest.describe(target.pid())).as("bash and the three stages").hasSize(4);
        assertThat(Files.exists(gaps) ? Files.readString(gaps) : "").as("lines lost or repeated").isEmpty();
    }

    @Test
    void python3LoopKeepsCounting() throws Exception {
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/python3")) || onPath("python3"), "python3 not installed");
        Path count = tmp.resolve("count");
        String program = String.join("\n",
                "import os, time",
                "i = 0",
                "while True:",
                "    i += 1",
                "    with open(" + quoted(count + ".tmp") + ", 'w') as f: f.write(str(i) + chr(10))",
                "    os.replace(" + quoted(count + ".tmp") + ", " + quoted(count.toString()) + ")",
                "    time.sleep(0.01)");
        countsOnAfterRestore(List.of("python3", "-c", program), count);
    }

    private void countsOnAfterRestore(List<String> command, Path count) throws Exception {
        target = start(command.getFirst(), command);
        long before = awaitCount(count, 1);
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(target), "-D", images.toString());
        assertThat(dump.exitCode()).as(dump + target.log()).isZero();
        target.awaitPidFree(PID_FREE);
        long atCheckpoint = readCount(count);
        assertThat(atCheckpoint).isGreaterThanOrEqualTo(before);
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        long after = awaitCount(count, atCheckpoint + 1);
        assertThat(after).as("counts on from %d instead of starting over", atCheckpoint).isGreaterThan(atCheckpoint);
        assertThat(target.isAlive()).isTrue();
    }

    /** Waits until the file holds a count of at least {@code min}. */
    private long awaitCount(Path count, long min) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        long seen = -1;
        while (System.nanoTime() < deadline) {
            seen = readCount(count);
            if (seen >= min) {
                return seen;
            }
            Thread.sleep(20);
        }
        throw new AssertionError("count stayed at " + seen + ", expected at least " + min + "; log: " + target.log());
    }

    private static long readCount(Path count) {
        try {
            String s = Files.readString(count);
            int end = s.lastIndexOf('\n');
            if (end < 0) {
                return -1;
            }
            String complete = s.substring(0, end);
            return Long.parseLong(complete.substring(complete.lastIndexOf('\n') + 1).strip());
        } catch (NoSuchFileException e) {
            return -1;
        } catch (IOException | NumberFormatException e) {
            return -1; // caught mid-write: try again
        }
    }

    private static String quoted(String s) {
        return "'" + s.replace("'", "\\'") + "'";
    }

    private static boolean onPath(String program) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (Files.isExecutable(Path.of(dir, program))) {
                return true;
            }
        }
        return false;
    }
}
