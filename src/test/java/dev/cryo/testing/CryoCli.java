package dev.cryo.testing;

import dev.cryo.cli.Main;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Arrays;

/**
 * Runs Cryo's command line inside the test JVM, on the calling thread, capturing what a user
 * would see. Restored processes become children of this JVM (Cryo restores with CLONE_PARENT),
 * so {@link #reap} collects them once a test killed them, freeing their pid.
 */
public final class CryoCli {
    private CryoCli() {
    }

    public record Result(int exitCode, String out, String err) {
        @Override
        public String toString() {
            return "exit " + exitCode + "\n--- out:\n" + out + "--- err:\n" + err;
        }
    }

    public static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        // as main builds it: with only the subcommand named
        int code = Main.commandLine(new PrintWriter(out, true), new PrintWriter(err, true), args).execute(args);
        return new Result(code, out.toString(), err.toString());
    }

    /**
     * The command line that runs Cryo's real main in a JVM of its own, on the test class path:
     * for what only a separate process shows (the JVM's logging defaults, a caller's
     * restrictions, another terminal).
     */
    public static java.util.List<String> inOwnJvm(String... args) {
        java.util.List<String> command = new java.util.ArrayList<>(java.util.List.of(
                java.nio.file.Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")), Main.class.getName()));
        command.addAll(Arrays.asList(args));
        return command;
    }

    /** Reaps {@code pid} if it is a dead child of this JVM; harmless otherwise. */
    public static void reap(long pid) {
        Sys.raw(Nr.WAIT4, pid, 0, 1 /* WNOHANG */, 0);
    }

    public static String describe(String... args) {
        return "cryo " + String.join(" ", Arrays.asList(args));
    }
}
