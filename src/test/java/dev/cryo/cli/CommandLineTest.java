package dev.cryo.cli;

import dev.cryo.testing.CryoCli;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The command line as a user (or a tool written for criu) meets it, without any target process:
 * help, usage errors with exit code 2 naming what was wrong, {@code check}, and failures that
 * read as one line on the real stderr of a real {@code cryo} JVM.
 */
class CommandLineTest {

    @ParameterizedTest
    @ValueSource(strings = {"", "check", "checkpoint", "dump", "restore", "inspect"})
    void helpOfEveryCommandExitsZero(String command) {
        String[] args = command.isEmpty() ? new String[] {"--help"} : new String[] {command, "--help"};
        CryoCli.Result r = CryoCli.run(args);
        assertThat(r.exitCode()).as(r.toString()).isZero();
        assertThat(r.out()).as(r.toString()).contains("Usage: cryo" + (command.isEmpty() ? "" : " "));
        assertThat(r.err()).as(r.toString()).isEmpty();
    }

    @Test
    void topLevelHelpListsTheCommandsAndCriuSpellings() {
        CryoCli.Result r = CryoCli.run("--help");
        assertThat(r.out()).contains("check", "checkpoint", "restore", "inspect", "dump");
    }

    @Test
    void unknownOptionOfDumpIsAUsageError() {
        CryoCli.Result r = CryoCli.run("dump", "-t", "1", "-D", "/nonexistent/img", "--frobnicate");
        assertUsageError(r, "--frobnicate");
        assertThat(r.err()).contains("cryo checkpoint --help");
    }

    @Test
    void unknownOptionOfRestoreIsAUsageError() {
        CryoCli.Result r = CryoCli.run("restore", "-D", "/nonexistent/img", "--frobnicate");
        assertUsageError(r, "--frobnicate");
    }

    @Test
    void unknownTopLevelOptionIsAUsageError() {
        CryoCli.Result r = CryoCli.run("--frobnicate");
        assertUsageError(r, "--frobnicate");
    }

    @Test
    void missingCommandIsAUsageError() {
        assertUsageError(CryoCli.run(), "Missing command");
    }

    @Test
    void checkpointWithoutPidIsAUsageError() {
        assertUsageError(CryoCli.run("checkpoint", "-D", "/nonexistent/img"), "PID");
    }

    @Test
    void twoDifferentPidsAreAUsageError() {
        assertUsageError(CryoCli.run("dump", "12", "-t", "13", "-D", "/nonexistent/img"), "12", "13");
    }

    @Test
    void restoreWithoutImageDirIsAUsageError() {
        assertUsageError(CryoCli.run("restore"), "--images-dir");
    }

    @Test
    void checkProbesEveryFeatureAndSaysOk() {
        assumeRoot();
        CryoCli.Result r = CryoCli.run("check");
        assertThat(r.exitCode()).as(r.toString()).isZero();
        List<String> lines = r.out().lines().toList();
        assertThat(lines).as(r.toString()).hasSizeGreaterThan(2);
        assertThat(lines.getLast()).isEqualTo("Looks good.");
        for (String line : lines.subList(0, lines.size() - 1)) {
            assertThat(line.split("\\s+")[1]).as(line).isIn("OK", "missing");
        }
        assertThat(lines).anySatisfy(l -> assertThat(l).startsWith("clone3_set_tid").contains(" OK "));
        assertThat(lines).anySatisfy(l -> assertThat(l).startsWith("ptrace_seize").contains(" OK "));
    }

    @Test
    void checkOfOneFeaturePrintsOneLine() {
        assumeRoot();
        // criu's spelling, as tools call it to ask about one feature
        CryoCli.Result r = CryoCli.run("check", "--feature", "clone3_set_tid");
        assertThat(r.exitCode()).as(r.toString()).isZero();
        assertThat(r.out().lines().toList()).as(r.toString()).singleElement()
                .satisfies(l -> assertThat(l).startsWith("clone3_set_tid").contains(" OK "));
        assertThat(r.err()).isEmpty();
    }

    @Test
    void checkOfAnUnknownFeatureNamesTheKnownOnes() {
        CryoCli.Result r = CryoCli.run("check", "--feature", "frobnication");
        assertUsageError(r, "frobnication", "clone3_set_tid");
    }

    /**
     * The real {@code main}, in a JVM of its own, so the JVM's logging defaults are in place as
     * for a user: a failure is one line on stderr, whatever the command.
     */
    @ParameterizedTest
    @ValueSource(strings = {"inspect /nonexistent/img", "restore -D /nonexistent/img", "checkpoint 0 -D /nonexistent/img",
            "check --feature frobnication"})
    void aFailureIsOneLineOnTheRealStderr(String command) throws Exception {
        List<String> cmd = CryoCli.inOwnJvm(command.split(" "));
        Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        CompletableFuture<byte[]> out = CompletableFuture.supplyAsync(() -> {
            try {
                return p.getInputStream().readAllBytes();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).as(command).isTrue();
        String what = command + " -> exit " + p.exitValue() + ", stderr:\n" + err;
        assertThat(p.exitValue()).as(what).isIn(Main.EXIT_FAILURE, Main.EXIT_USAGE);
        assertThat(out.get()).as(what).isEmpty();
        List<String> lines = err.lines().filter(l -> !l.startsWith("Run 'cryo")).toList();
        assertThat(lines).as(what).singleElement().asString().startsWith("Error: ");
    }

    private static void assertUsageError(CryoCli.Result r, String... words) {
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(Main.EXIT_USAGE);
        assertThat(r.err()).as(r.toString()).startsWith("Error: ");
        for (String w : words) {
            assertThat(r.err()).as(r.toString()).contains(w);
        }
        assertThat(r.out()).as(r.toString()).isEmpty();
    }

    private static void assumeRoot() {
        Assumptions.assumeTrue("root".equals(System.getProperty("user.name")), "probing features needs root");
    }
}
