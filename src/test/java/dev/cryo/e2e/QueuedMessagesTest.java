package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Messages waiting in unix datagram and seqpacket socketpairs, and in UDP sockets, come back
 * after restore exactly once, in order, each with its own boundaries (and a UDP datagram from
 * its own sender); the restored program reads them itself. Sockets Cryo cannot save are refused
 * with the reason, and the program goes on using them as if nothing happened.
 */
class QueuedMessagesTest extends TargetTest {
    @Test
    void waitingDatagramsAndSeqpacketsComeBackInOrder() throws Exception {
        assertThat(restoreAndAsk("unix_datagrams.py")).isEqualTo("one two three seq-a seq-b | extra:");
    }

    @Test
    void udpDatagramsComeBackFromTheirSendersAndConnectedSocketsKeepTheirPeer() throws Exception {
        assertThat(restoreAndAsk("udp_queues.py")).isEqualTo(
                "first@ok second@ok third@ok connected-ping@ok first@ok second@ok third@ok connected-ping@ok filtered-keep-me owner-ok");
    }

    @Test
    void namedUnixSocketsKeepTheirNamesConnectionsAndQueues() throws Exception {
        assertThat(restoreAndAsk("unix_named.py")).isEqualTo("to-server,to-client names-ok peercred-ok new-connection-new"
                + " to-server,to-client names-ok peercred-ok new-connection-new d1,d2 d3 mode-640");
    }

    /**
     * The same program as an unprivileged user: the restored connections' SO_PEERCRED name that
     * user (and group), not root, although Cryo makes them while the task is still root. The
     * checkpoint asks the task to write its own pages (cryo.page-path=task), which it cannot: the
     * image directory is root's; Cryo copies them instead.
     */
    @Test
    void namedUnixSocketsOfAnUnprivilegedUserKeepItsCredentials() throws Exception {
        System.setProperty("cryo.page-path", "task");
        try {
            unprivilegedNamedSockets();
        } finally {
            System.clearProperty("cryo.page-path");
        }
    }

    private void unprivilegedNamedSockets() throws Exception {
        // the system's python: one on root's PATH may live under /root, out of that user's reach
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/python3")), "/usr/bin/python3 is needed");
        Path state = Files.createTempDirectory(Path.of("/tmp"), "cryo-peercred-");
        try {
            Files.setPosixFilePermissions(state, java.nio.file.attribute.PosixFilePermissions.fromString("rwxrwxrwx"));
            Path program = Files.copy(Path.of("src/test/resources/python/unix_named.py"), state.resolve("unix_named.py"));
            assertThat(restoreAndAsk(state, List.of("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    "/usr/bin/python3", program.toString(), state.toString())))
                    .isEqualTo("to-server,to-client names-ok peercred-ok new-connection-new"
                            + " to-server,to-client names-ok peercred-ok new-connection-new d1,d2 d3 mode-640");
        } finally {
            try (var files = Files.walk(state)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            }
        }
    }

    @Test
    void descriptorsInFlightArriveLiveAfterRestore() throws Exception {
        String each = "plain-first,with-fds,plain-last,3,56789,in-pipe,7";
        assertThat(restoreAndAsk("scm_rights.py")).isEqualTo(each + " " + each);
    }

    @Test
    void aDatagramSocketConnectedOutsideTheTreeNeedsExtUnixSkAndIsConnectedAgain() throws Exception {
        Path log = tmp.resolve("log.sock"), lines = tmp.resolve("log.txt");
        start("log-server", List.of("python3", Path.of("src/test/resources/python/unix_log_server.py").toAbsolutePath().toString(),
                log.toString(), lines.toString()));
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (!Files.exists(log) && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        Path state = Files.createDirectories(tmp.resolve("state"));
        Target t = track(Target.start(state, List.of("python3", Path.of("src/test/resources/python/unix_log_client.py")
                .toAbsolutePath().toString(), state.toString(), log.toString())));
        t.awaitReady(READY);
        Path images = tmp.resolve("img");
        CryoCli.Result refused = CryoCli.run("checkpoint", pid(t), "-D", images.toString());
        assertThat(refused.exitCode()).isNotZero();
        assertThat(refused.err()).contains(log.toString()).contains("--ext-unix-sk");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString(), "--ext-unix-sk");
        assertThat(dump.exitCode()).as(dump + t.log()).isZero();
        t.awaitPidFree(PID_FREE);
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        Files.writeString(state.resolve("go"), "go");
        while (!(Files.exists(lines) && Files.readString(lines).contains("after")) && System.nanoTime() < deadline + 10_000_000_000L) {
            Thread.sleep(20);
        }
        assertThat(Files.readString(lines)).isEqualTo("before\nafter\n");
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource(delimiter = '|', value = {
            "stream-fds | descriptors in flight in a stream socket | x,through-the-pipe",
            "pending    | not yet accepted                          | accepted-later",
            "unix-pending | 1 of them from a client outside the process tree | from-outside"})
    void socketsCryoCannotSaveAreRefusedAndKeepWorking(String mode, String reason, String afterwards) throws Exception {
        Path state = Files.createDirectories(tmp.resolve("state"));
        Target t = track(Target.start(state, List.of("python3", Path.of("src/test/resources/python/refused_sockets.py")
                .toAbsolutePath().toString(), state.toString(), mode)));
        t.awaitReady(READY);
        CryoCli.Result r = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("img").toString(), "--tcp-established");
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(1);
        assertThat(r.err()).startsWith("Error: ").contains(reason);
        assertThat(t.isAlive()).isTrue();
        Files.writeString(state.resolve("go"), "go");
        Path out = state.resolve("out");
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (!Files.exists(out) && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertThat(Files.exists(out) ? Files.readString(out).strip() : "no answer; log: " + t.log()).isEqualTo(afterwards);
    }

    /**
     * Connections waiting in the accept queues of a stream and a seqpacket listener, made by two
     * processes in turn: after restore the server accepts them in the same order and reads what
     * each client sent before the checkpoint (seqpackets one message at a time), and the
     * clients read its answers.
     */
    @Test
    void connectionsNotYetAcceptedComeBackInOrderWithWhatTheirClientsSent() {
        Target t = startReady("unixpending");
        checkpointAndRestore(t, tmp.resolve("img"));
        assertThat(t.check(CHECK)).isEqualTo("PASS");
    }

    /**
     * Reading what waits in a connection not yet accepted takes accepting it, which cannot be
     * undone: a checkpoint that leaves the tree running refuses, and the server still finds
     * every connection there.
     */
    @Test
    void connectionsNotYetAcceptedAreRefusedWhenTheTreeRunsOn() {
        Target t = startReady("unixpending");
        CryoCli.Result r = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("img").toString(), "-R");
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(1);
        assertThat(r.err()).contains("@cryo-unixpending-" + t.pid() + "-")
                .contains("not yet accepted").contains("a checkpoint that stops the processes can save them");
        assertThat(t.check(CHECK)).isEqualTo("PASS");
    }

    /**
     * Starts python program {@code name}, which sets up its sockets and says ready; checkpoints
     * and restores it, then lets it read everything and returns what it wrote.
     */
    private String restoreAndAsk(String name) throws Exception {
        Path state = Files.createDirectories(tmp.resolve("state"));
        Path program = Path.of("src/test/resources/python/" + name).toAbsolutePath();
        return restoreAndAsk(state, List.of("python3", program.toString(), state.toString()));
    }

    /** Runs {@code command} (a program that writes STATE/ready, waits for STATE/go, then answers in STATE/out) through a checkpoint and restore. */
    private String restoreAndAsk(Path state, List<String> command) throws Exception {
        Target t = track(Target.start(state, command));
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
        return Files.exists(out) ? Files.readString(out).strip() : "no answer; log: " + t.log();
    }
}
