package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Real servers from Debian's packages, unaware of Cryo, restored with their clients' connections:
 * redis-server keeps serving its 10,000 keys to the very redis-cli that was connected at
 * checkpoint time (same connection: same client id), and python3's http.server answers again.
 */
class RealServersTest extends TargetTest {
    private static final int KEYS = 10_000;

    @Test
    void redisKeepsServingTheSameClientOverTheSameConnection() throws Exception {
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/redis-server")) && Files.isExecutable(Path.of("/usr/bin/redis-cli")),
                "redis-server and redis-cli are not installed (bin/setup installs them)");
        int port = freePort();
        Path data = Files.createDirectories(tmp.resolve("redis"));
        Target redis = start("redis", List.of("/usr/bin/redis-server", "--port", Integer.toString(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", data.toString()));
        awaitListening(port, redis);
        fill(port);

        Path in = tmp.resolve("cli-in"), out = tmp.resolve("cli-out");
        new ProcessBuilder("mkfifo", in.toString()).start().waitFor();
        Files.createFile(out);
        Target cli = start("redis-cli", List.of("bash", "-c", "exec /usr/bin/redis-cli -p " + port + " < " + in + " > " + out + " 2>&1"));
        try (OutputStream commands = Files.newOutputStream(in)) {
            String clientId = ask(commands, out, "CLIENT ID");
            assertThat(ask(commands, out, "DBSIZE")).isEqualTo(Integer.toString(KEYS));

            Path images = tmp.resolve("img");
            CryoCli.Result dump = CryoCli.run("checkpoint", pid(redis), "-D", images.toString(), "--tcp-established");
            assertThat(dump.exitCode()).as(dump + redis.log()).isZero();
            redis.awaitPidFree(PID_FREE);
            CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
            assertThat(restore.exitCode()).as(restore.toString()).isZero();

            assertThat(ask(commands, out, "GET key:4321")).isEqualTo("value-4321");
            assertThat(ask(commands, out, "DBSIZE")).isEqualTo(Integer.toString(KEYS));
            assertThat(ask(commands, out, "CLIENT ID")).as("the same connection, not a new one").isEqualTo(clientId);
            assertThat(ask(commands, out, "SET after restore")).isEqualTo("OK");
            assertThat(Files.readString(out)).doesNotContain("rror").doesNotContain("closed");
        }
        cli.awaitGone(Duration.ofSeconds(5)); // EOF on its input: it quits by itself
    }

    @Test
    void pythonHttpServerAnswersAfterRestore() throws Exception {
        int port = freePort();
        Path root = Files.createDirectories(tmp.resolve("www"));
        Files.writeString(root.resolve("hello.txt"), "served after restore\n");
        Target server = start("http", List.of("python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", root.toString(),
                Integer.toString(port)));
        awaitListening(port, server);
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        HttpRequest get = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/hello.txt")).timeout(Duration.ofSeconds(5)).build();
        assertThat(http.send(get, HttpResponse.BodyHandlers.ofString()).body()).isEqualTo("served after restore\n");
        checkpointAndRestore(server, tmp.resolve("img"));
        for (int i = 0; i < 3; i++) {
            HttpResponse<String> r = HttpClient.newHttpClient().send(get, HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).isEqualTo(200);
            assertThat(r.body()).isEqualTo("served after restore\n");
        }
    }

    /** Sends one command line to redis-cli and returns the line it prints in answer. */
    private static String ask(OutputStream commands, Path out, String command) throws Exception {
        long before = Files.readAllLines(out).size();
        commands.write((command + "\n").getBytes(StandardCharsets.UTF_8));
        commands.flush();
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (System.nanoTime() < deadline) {
            List<String> lines = Files.readAllLines(out);
            if (lines.size() > before) {
                return lines.get((int) before).strip();
            }
            Thread.sleep(10);
        }
        throw new AssertionError("redis-cli did not answer " + command + "; its output: " + Files.readString(out));
    }

    /** Sets key:N to value-N for N below KEYS, pipelined over a connection of the test's own. */
    private static void fill(int port) throws IOException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            StringBuilder b = new StringBuilder();
            for (int i = 0; i < KEYS; i++) {
                String k = "key:" + i, v = "value-" + i;
                b.append("*3\r\n$3\r\nSET\r\n$").append(k.length()).append("\r\n").append(k).append("\r\n$")
                        .append(v.length()).append("\r\n").append(v).append("\r\n");
            }
            s.getOutputStream().write(b.toString().getBytes(StandardCharsets.US_ASCII));
            BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
            for (int i = 0; i < KEYS; i++) {
                assertThat(in.readLine()).isEqualTo("+OK");
            }
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static void awaitListening(int port, Target t) throws InterruptedException {
        long deadline = System.nanoTime() + READY.toNanos();
        while (System.nanoTime() < deadline) {
            try (Socket ignored = new Socket("127.0.0.1", port)) {
                return;
            } catch (IOException notYet) {
                Thread.sleep(20);
            }
        }
        throw new AssertionError("nothing listens on port " + port + "; " + t.log());
    }
}
