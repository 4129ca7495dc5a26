package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.IgnoredSignals;
import dev.cryo.testing.Target;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * One C target per kind of state: it sets the state up, is checkpointed (and so killed),
 * restored with the same pid, and then checks by itself that the state survived.
 */
class CheckpointRestoreTest extends TargetTest {
    void roundTrip(String program, String... args) {
        Target t = startReady(program, args);
        assertThat(t.check(CHECK)).as("before checkpoint: " + t.log()).isEqualTo("PASS");
        checkpointAndRestore(t, tmp.resolve("img"));
        assertThat(t.check(CHECK)).as("after restore: " + t.log()).isEqualTo("PASS");
    }

    @Test
    void memoryOfEveryKindSurvives() {
        roundTrip("memory");
    }

    /**
     * Under a file size limit smaller than its pages, the task must not write its own page file:
     * the write would queue SIGXFSZ, which the image would keep. Cryo copies the pages instead.
     */
    @Test
    void memoryOfAProcessWithASmallFileSizeLimitSurvives() throws Exception {
        Path state = Files.createDirectories(tmp.resolve("fsize-state"));
        Target t = track(Target.start(state, List.of("prlimit", "--fsize=1048576",
                dev.cryo.testing.TargetBuilder.build("memory").toString(), state.toString())));
        t.awaitReady(READY);
        assertThat(t.check(CHECK)).as("before checkpoint: " + t.log()).isEqualTo("PASS");
        checkpointAndRestore(t, tmp.resolve("img"));
        assertThat(t.check(CHECK)).as("after restore: " + t.log()).isEqualTo("PASS");
        assertThat(dev.cryo.proc.ProcFiles.status((int) t.pid()).get("SigPnd")).as("no signal waits").isEqualTo("0000000000000000");
    }

    /** Its seccomp filters stay out of Cryo's way while it works, and are back after the restore. */
    @Test
    void seccompFiltersAreKeptAndDoNotStopCryo() {
        roundTrip("seccomp");
    }

    @Test
    void counterContinuesWithItsFileOffset() throws Exception {
        Target t = startReady("counter");
        Thread.sleep(200);
        checkpointAndRestore(t, tmp.resolve("img"));
        long before = Long.parseLong(Files.readString(t.stateDir().resolve("count")).strip());
        Thread.sleep(300);
        long after = Long.parseLong(Files.readString(t.stateDir().resolve("count")).strip());
        assertThat(after).as("the restored counter keeps counting from where it was").isGreaterThan(before);
        assertThat(t.check(CHECK)).isEqualTo("PASS");
    }

    @Test
    void fileDescriptorsKeepNumbersFlagsAndOffsets() {
        roundTrip("files");
    }

    @Test
    void signalHandlersMasksPendingSignalsAndTimers() {
        roundTrip("signals");
    }

    /**
     * Cryo run with SIGINT, SIGQUIT and SIGHUP ignored (a shell's {@code &} job, nohup): the
     * restored process gets back the actions it had, defaults included, not its restorer's.
     */
    @Test
    void signalsLeftAtTheirDefaultStayThereWhateverCryosCallerIgnores() {
        Target t = startReady("signals");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("img").toString());
        assertThat(dump.exitCode()).as(dump + "\n" + t.log()).isZero();
        t.awaitPidFree(PID_FREE);
        final int sighup = 1, sigint = 2, sigquit = 3;
        try (var ignored = new IgnoredSignals(sighup, sigint, sigquit)) {
            CryoCli.Result restore = CryoCli.run("restore", "-D", tmp.resolve("img").toString(), "-d");
            assertThat(restore.exitCode()).as(restore.toString()).isZero();
        }
        assertThat(t.check(CHECK)).as("after restore: " + t.log()).isEqualTo("PASS");
    }

    @Test
    void interruptedSystemCallsContinue() {
        roundTrip("syscalls");
    }

    /**
     * CPU affinity, I/O priority, timer slack and parent-death signal of each thread, and
     * oom_score_adj, the child-subreaper flag, the THP opt-out and dumpable of the process: all
     * set away from what a fresh task (or the test JVM restoring it) has, and all back after.
     */
    @Test
    void perTaskAttributesAreTheProcesssOwnNotItsRestorers() {
        roundTrip("taskattrs");
    }

    @Test
    void avx512RegistersSurvive() {
        roundTrip("avx512");
    }

    @Test
    void commandLineEnvironmentCommLimitsAndBrk() {
        Target t = startReady("cmdline", Map.of("CRYO_TEST_ENV", "hello"), "alpha", "beta");
        assertThat(t.check(CHECK)).isEqualTo("PASS");
        checkpointAndRestore(t, tmp.resolve("img"));
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
    }
}
