package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * TCP connections with one end checkpointed and the other outside the tree: with
 * --tcp-established the stream goes on after restore without a lost or repeated byte (both ends
 * check every byte), and the peer saw only a pause; the restored listener still accepts.
 */
class TcpTest extends TargetTest {

    @ParameterizedTest(name = "{0}, checkpointed end: {1}")
    @CsvSource({"127.0.0.1, server", "::1, server", "127.0.0.1, client"})
    void streamGoesOnAcrossCheckpointAndRestore(String address, String checkpointed) throws Exception {
        // when the server is checkpointed both ends read slower than the other sends, so that at
        // checkpoint time the server's send and receive queues are both full
        String pace = checkpointed.equals("server") ? "slow" : "fast";
        Target server = startProgram("tcp_stream", "server", address, pace);
        String port = awaitFile(server.stateDir().resolve("port"));
        Target client = startReady("tcp_stream", "client", address, port, pace);
        server.awaitReady(READY);
        Target inside = checkpointed.equals("server") ? server : client;
        Target outside = inside == server ? client : server;
        awaitProgress(inside, 150_000);
        awaitProgress(outside, 150_000);

        Path images = tmp.resolve("img");
        CryoCli.Result refused = CryoCli.run("checkpoint", pid(inside), "-D", images.toString());
        assertThat(refused.exitCode()).as(refused.toString()).isNotZero();
        assertThat(refused.err()).contains("established TCP connection").contains("--tcp-established");
        assertThat(inside.isAlive()).isTrue();

        CryoCli.Result dump = CryoCli.run("checkpoint", pid(inside), "-D", images.toString(), "--tcp-established");
        assertThat(dump.exitCode()).as(dump + inside.log()).isZero();
        inside.awaitPidFree(PID_FREE);
        long[] atCheckpoint = progress(outside);
        Thread.sleep(300); // the peer retransmits into the lock meanwhile
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();

        awaitProgress(outside, atCheckpoint[0] + 150_000);
        awaitProgress(inside, progress(inside)[0] + 150_000);
        if (inside == server) {
            try (Socket s = new Socket(address, Integer.parseInt(port));
                 BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream()))) {
                assertThat(in.readLine()).as("the restored listener accepts").isEqualTo("hello");
            }
        }
        assertThat(inside.check(CHECK)).as(inside.log()).isEqualTo("PASS");
        assertThat(outside.check(CHECK)).as("the peer outside the tree: " + outside.log()).isEqualTo("PASS");
        String inspect = CryoCli.run("inspect", images.toString()).out();
        assertThat(inspect).contains("TCP " + (address.contains(":") ? "[::1]" : "127.0.0.1"));
        if (inside == server) {
            assertThat(inspect).as("the listener, and data queued both ways").contains("TCP listening on")
                    .doesNotContain("(0 bytes to send").doesNotContain(", 0 to read)");
        }
    }

    @Test
    void leftRunningTheConnectionNeverStops() throws Exception {
        Target server = startProgram("tcp_stream", "server", "127.0.0.1");
        String port = awaitFile(server.stateDir().resolve("port"));
        Target client = startReady("tcp_stream", "client", "127.0.0.1", port);
        server.awaitReady(READY);
        awaitProgress(server, 100_000);
        // the connection went into repair mode and the network was locked: both are undone
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(server), "-D", images.toString(), "--tcp-established", "-R");
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        bothFlowOnAndPass(server, client);
    }

    @Test
    void connectionWithBothEndsInTheTreeGoesOn() throws Exception {
        Path serverState = Files.createDirectories(tmp.resolve("server")), clientState = Files.createDirectories(tmp.resolve("client"));
        String program = dev.cryo.testing.TargetBuilder.build("tcp_stream").toString();
        Target shell = start("pair", java.util.List.of("bash", "-c", program + " " + serverState + " server 127.0.0.1 & "
                + "while [ ! -s " + serverState + "/port ]; do sleep 0.01; done; "
                + program + " " + clientState + " client 127.0.0.1 $(cat " + serverState + "/port) & wait"));
        Target server = Target.attach(serverState), client = Target.attach(clientState);
        awaitProgress(server, 300_000);
        awaitProgress(client, 300_000);
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(shell), "-D", images.toString(), "--tcp-established");
        assertThat(dump.exitCode()).as(dump + shell.log()).isZero();
        assertThat(dump.out()).contains("3 processes");
        shell.awaitPidFree(PID_FREE);
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        bothFlowOnAndPass(server, client);
    }

    @Test
    void halfClosedConnectionsComeBackHalfClosed() throws Exception {
        Path state = Files.createDirectories(tmp.resolve("half"));
        Target t = track(Target.start(state, java.util.List.of("python3",
                Path.of("src/test/resources/python/tcp_half_closed.py").toAbsolutePath().toString(), state.toString())));
        int port = Integer.parseInt(awaitFile(state.resolve("port")));
        try (Socket closeWait = new Socket("127.0.0.1", port); Socket finWait = new Socket("127.0.0.1", port)) {
            closeWait.setSoTimeout(20_000);
            finWait.setSoTimeout(20_000);
            closeWait.getOutputStream().write("hello".getBytes());
            closeWait.shutdownOutput();                     // the tree's end: CLOSE_WAIT, "hello" unread
            assertThat(new String(finWait.getInputStream().readNBytes(3))).isEqualTo("bye");
            assertThat(finWait.getInputStream().read()).as("the tree's end shut its side: FIN_WAIT1/2").isEqualTo(-1);
            Files.writeString(state.resolve("armed"), "armed");
            t.awaitReady(READY);
            Path images = tmp.resolve("img");
            CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString(), "--tcp-established");
            assertThat(dump.exitCode()).as(dump + t.log()).isZero();
            // FIN_WAIT1 until the test's end acknowledges the FIN (it may delay its ACK), FIN_WAIT2 after
            assertThat(CryoCli.run("inspect", images.toString()).out()).contains("CLOSE_WAIT").containsPattern("FIN_WAIT[12]");
            t.awaitPidFree(PID_FREE);
            CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
            assertThat(restore.exitCode()).as(restore.toString()).isZero();
            finWait.getOutputStream().write("late".getBytes());
            Files.writeString(state.resolve("go"), "go");
            assertThat(new String(closeWait.getInputStream().readNBytes(10))).isEqualTo("still-open");
            Path out = state.resolve("out");
            long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
            while (!Files.exists(out) && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertThat(Files.exists(out) ? Files.readString(out).strip() : "no answer; " + t.log()).isEqualTo("hello,eof late");
        }
    }

    /** Both ends receive another 300 kB, then each checks every byte it got. */
    private static void bothFlowOnAndPass(Target server, Target client) throws InterruptedException {
        awaitProgress(server, progress(server)[0] + 300_000);
        awaitProgress(client, progress(client)[0] + 300_000);
        assertThat(server.check(CHECK)).as(server.log()).isEqualTo("PASS");
        assertThat(client.check(CHECK)).as(client.log()).isEqualTo("PASS");
    }

    private static String awaitFile(Path file) throws Exception {
        long deadline = System.nanoTime() + READY.toNanos();
        while (System.nanoTime() < deadline) {
            if (Files.exists(file)) {
                return Files.readString(file).strip();
            }
            Thread.sleep(10);
        }
        throw new AssertionError(file + " did not appear");
    }

    /** {received, sent} bytes as the target last wrote them. */
    private static long[] progress(Target t) {
        try {
            String[] parts = Files.readString(t.stateDir().resolve("progress")).strip().split(" ");
            return new long[] {Long.parseLong(parts[0]), Long.parseLong(parts[1])};
        } catch (Exception e) {
            return new long[] {0, 0};
        }
    }

    private static void awaitProgress(Target t, long received) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
        while (System.nanoTime() < deadline) {
            if (progress(t)[0] >= received) {
                return;
            }
            Thread.sleep(20);
        }
        throw new AssertionError("received stayed at " + progress(t)[0] + ", expected " + received + "; " + t.log());
    }
}
