package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Cryo called the way tools and test suites call criu: {@code dump -t PID -D DIR} with criu's
 * usual companions, {@code --tree}/{@code --images-dir}, {@code restore --restore-detached
 * --pidfile}, and log files, also for a dump that fails.
 */
class CriuSpellingTest extends TargetTest {

    @Test
    void dumpWithCriusUsualOptionsLeavesTheProcessRunningAndWritesTheLog() throws IOException {
        Target t = startReady("counter");
        Path images = tmp.resolve("img");
        Path log = tmp.resolve("dump.log");
        CryoCli.Result r = CryoCli.run("dump", "-t", pid(t), "-D", images.toString(), "--leave-running", "-v4",
                "--log-file", log.toString(), "--shell-job", "--timeout", "5", "--no-default-config");
        assertThat(r.exitCode()).as(r.toString()).isZero();
        assertThat(r.out()).contains("Checkpointed process " + t.pid()).contains("left running");
        assertThat(images.resolve("inventory.img")).exists();
        assertThat(t.isAlive()).isTrue();
        assertThat(Procs.status(t.pid()).get("TracerPid")).isEqualTo("0");
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
        assertThat(log).exists();
        assertThat(Files.readString(log)).as("the log names the process").contains(pid(t));
    }

    @Test
    void dumpByTreeAndImagesDirThenRestoreDetachedWithPidfile() throws IOException {
        Target t = startReady("counter");
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("dump", "--tree", pid(t), "--images-dir", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        assertThat(dump.out()).contains("killed");
        t.awaitPidFree(PID_FREE);

        Path pidfile = tmp.resolve("restored.pid");
        CryoCli.Result restore = CryoCli.run("restore", "--images-dir", images.toString(), "--restore-detached",
                "--pidfile", pidfile.toString());
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        assertThat(restore.out().strip()).isEqualTo(pid(t));
        assertThat(Files.readString(pidfile).strip()).isEqualTo(pid(t));
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
    }

    @Test
    void shortSpellingsOfRestore() {
        Target t = startReady("counter");
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("dump", "-t", pid(t), "-D", images.toString(), "-j");
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        t.awaitPidFree(PID_FREE);
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d", "-j");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        assertThat(restore.out().strip()).isEqualTo(pid(t));
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
    }

    @Test
    void failingDumpWritesTheErrorIntoTheLogFile() throws IOException {
        long pid = Procs.unusedPid();
        Path log = tmp.resolve("dump.log");
        CryoCli.Result r = CryoCli.run("dump", "-t", Long.toString(pid), "-D", tmp.resolve("img").toString(),
                "--log-file", log.toString());
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(1);
        assertThat(r.err()).startsWith("Error: ");
        assertThat(Files.readAllLines(log)).as("log of the failed dump")
                .anySatisfy(l -> assertThat(l).contains("Error").contains(Long.toString(pid)));
    }

    @Test
    void logFileNameIsTakenLiterally() throws IOException {
        Path log = tmp.resolve("dump-%h-%t-%u.log");
        CryoCli.Result r = CryoCli.run("dump", "-t", Long.toString(Procs.unusedPid()), "-D", tmp.resolve("img").toString(),
                "-o", log.toString());
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(1);
        assertThat(r.err().lines().toList()).as(r.toString()).singleElement().asString().startsWith("Error: no process");
        assertThat(Files.readString(log)).contains("Error");
    }

    @Test
    void dumpRefusedAfterFreezingWritesTheErrorIntoTheLogFile() throws IOException {
        Target t = startReady("pipe_holder");
        Path log = tmp.resolve("dump.log");
        CryoCli.Result r = CryoCli.run("dump", "-t", pid(t), "-D", tmp.resolve("img").toString(), "-o", log.toString());
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(1);
        assertThat(Files.readAllLines(log)).as("log of the refused dump")
                .anySatisfy(l -> assertThat(l).contains("Error").contains("userfaultfd"));
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
    }

    @Test
    void everyCommandWritesItsOwnLogFileAndLeavesNoLockBehind() throws IOException {
        // Two commands in one JVM with the same log file: the second log replaces the first, in
        // the file named, and the logging leaves nothing else next to it.
        Target t = startReady("counter");
        Path logs = tmp.resolve("logs");
        Files.createDirectories(logs);
        Path log = logs.resolve("cryo.log");
        CryoCli.Result dump = CryoCli.run("dump", "-t", pid(t), "-D", tmp.resolve("img").toString(), "-R",
                "-o", log.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        assertThat(Files.readString(log)).contains("checkpoint of " + t.pid() + " done");
        assertThat(list(logs)).as("after the dump").containsExactly("cryo.log");

        CryoCli.Result restore = CryoCli.run("restore", "-D", tmp.resolve("img").toString(), "-d", "-o", log.toString());
        assertThat(restore.exitCode()).as("restore while the original runs fails: " + restore).isEqualTo(1);
        assertThat(list(logs)).as("after the restore").containsExactly("cryo.log");
        String second = Files.readString(log);
        assertThat(second).as("the restore's log").contains("Error").contains("in use")
                .doesNotContain("checkpoint of " + t.pid() + " done");
    }

    @Test
    void logFileInsideTheImagesDirectory() throws IOException {
        // criu's own habit: `criu dump -D DIR -o dump.log` puts the log into DIR.
        Target t = startReady("counter");
        Path images = tmp.resolve("img");
        Files.createDirectories(images);
        Path log = images.resolve("dump.log");
        CryoCli.Result r = CryoCli.run("dump", "-t", pid(t), "-D", images.toString(), "-o", log.toString(), "-R");
        assertThat(r.exitCode()).as(r.toString()).isZero();
        assertThat(images.resolve("inventory.img")).exists();
        assertThat(Files.readString(log)).contains(pid(t));
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
    }

    private static List<String> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
