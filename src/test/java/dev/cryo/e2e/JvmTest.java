package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A real JVM (each JDK on the machine: 17 and 25) with a thread pool updating a
 * ConcurrentHashMap: checkpointed after it has run a while, restored, and then counting on from
 * where it was, with its heap and JIT-compiled code intact. Prints the times and image size.
 * And a JVM TCP server whose IPv4 and IPv6 clients (this test) keep their connections across a
 * checkpoint with --tcp-established, a line sent while it was gone included.
 */
class JvmTest extends TargetTest {
    private Target target;

    @ParameterizedTest
    @ValueSource(strings = {"/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/temurin-25-jdk-amd64"})
    void jvmWithAThreadPoolCountsOn(String javaHome) throws Exception {
        Assumptions.assumeTrue(Files.isExecutable(Path.of(javaHome, "bin/javac")), javaHome + " is not installed");
        Path classes = compile(javaHome, "Counter.java");

        Path progress = tmp.resolve("progress");
        target = start("java", List.of(javaHome + "/bin/java", "-Xmx64m", "-cp", classes.toString(), "Counter",
                progress.toString()));
        awaitTotal(progress, 2000); // a couple of seconds in: classes loaded, hot code compiled

        Path images = tmp.resolve("img");
        long t0 = System.nanoTime();
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(target), "-D", images.toString());
        long dumpMs = (System.nanoTime() - t0) / 1_000_000;
        assertThat(dump.exitCode()).as(dump + target.log()).isZero();
        target.awaitPidFree(PID_FREE);
        long atCheckpoint = total(progress);

        t0 = System.nanoTime();
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        long restoreMs = (System.nanoTime() - t0) / 1_000_000;
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        long after = awaitTotal(progress, atCheckpoint + 1000);
        assertThat(after).as("the restored JVM counts on from %d", atCheckpoint).isGreaterThan(atCheckpoint);
        assertThat(target.isAlive()).isTrue();
        long imageBytes;
        try (var files = Files.list(images)) {
            imageBytes = files.mapToLong(p -> p.toFile().length()).sum();
        }
        System.out.printf("JVM %s: %s; checkpoint %d ms, restore %d ms, image %.1f MiB%n", javaHome,
                dump.out().strip(), dumpMs, restoreMs, imageBytes / 1048576.0);
    }

    @org.junit.jupiter.api.Test
    void jvmServerKeepsItsTcpClientsAcrossCheckpointAndRestore() throws Exception {
        String javaHome = "/usr/lib/jvm/temurin-25-jdk-amd64";
        Path classes = compile(javaHome, "EchoServer.java");
        Path port = tmp.resolve("port");
        target = start("java-server", List.of(javaHome + "/bin/java", "-Xmx64m", "-cp", classes.toString(), "EchoServer",
                port.toString()));
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (!Files.exists(port) && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        int p = Integer.parseInt(Files.readString(port).strip());
        try (java.net.Socket a = new java.net.Socket("127.0.0.1", p); java.net.Socket b = new java.net.Socket("::1", p)) {
            a.setSoTimeout(20_000);
            b.setSoTimeout(20_000);
            var inA = new java.io.BufferedReader(new java.io.InputStreamReader(a.getInputStream()));
            var inB = new java.io.BufferedReader(new java.io.InputStreamReader(b.getInputStream()));
            var outA = new java.io.PrintWriter(a.getOutputStream(), true);
            var outB = new java.io.PrintWriter(b.getOutputStream(), true);
            outA.println(1);
            assertThat(inA.readLine()).isEqualTo("2 served=1");
            outB.println(10);
            assertThat(inB.readLine()).isEqualTo("11 served=2");

            Path images = tmp.resolve("img");
            CryoCli.Result dump = CryoCli.run("checkpoint", pid(target), "-D", images.toString(), "--tcp-established");
            assertThat(dump.exitCode()).as(dump + target.log()).isZero();
            target.awaitPidFree(PID_FREE);
            outA.println(2); // sent while the server is gone: the network lock holds it back, TCP retransmits it
            CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
            assertThat(restore.exitCode()).as(restore.toString()).isZero();

            assertThat(inA.readLine()).as("the line sent while the server was gone").isEqualTo("3 served=3");
            outB.println(11);
            assertThat(inB.readLine()).isEqualTo("12 served=4");
            try (java.net.Socket c = new java.net.Socket("127.0.0.1", p)) {
                new java.io.PrintWriter(c.getOutputStream(), true).println(100);
                assertThat(new java.io.BufferedReader(new java.io.InputStreamReader(c.getInputStream())).readLine())
                        .as("a new client of the restored listener").isEqualTo("101 served=5");
            }
        }
    }

    /** Compiles src/test/resources/jvm/{@code source} with the JDK at {@code javaHome}; returns the classes directory. */
    private Path compile(String javaHome, String source) throws IOException, InterruptedException {
        Path classes = Files.createDirectories(tmp.resolve("classes"));
        Process javac = new ProcessBuilder(javaHome + "/bin/javac", "-d", classes.toString(),
                Path.of("src/test/resources/jvm", source).toAbsolutePath().toString()).redirectErrorStream(true).start();
        assertThat(javac.waitFor()).as(new String(javac.getInputStream().readAllBytes())).isZero();
        return classes;
    }

    private long awaitTotal(Path progress, long min) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        long seen = -1;
        while (System.nanoTime() < deadline) {
            seen = total(progress);
            if (seen >= min) {
                return seen;
            }
            Thread.sleep(20);
        }
        throw new AssertionError("the JVM's total stayed at " + seen + ", expected " + min + "; log: " + target.log());
    }

    private static long total(Path progress) {
        try {
            String line = Files.readString(progress).strip();
            return line.isEmpty() ? -1 : Long.parseLong(line.split(" ")[0]);
        } catch (NoSuchFileException e) {
            return -1;
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
    }
}
