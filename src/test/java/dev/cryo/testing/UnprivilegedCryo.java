package dev.cryo.testing;

import dev.cryo.check.Feature;
import dev.cryo.check.Features;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Runs Cryo's command line as a user other than root: uid and gid {@link #ID} (no passwd entry
 * needed), in a JVM of its own started through setpriv(1), with $CRYO_STATE_DIR set.
 *
 * <p>That JVM must be able to read its classes: the project may sit under directories only root
 * may enter (CI clones anywhere), so Cryo's classes and libraries are copied once into a
 * world-readable directory, and the JDK too when that user cannot run it where it is.
 *
 * <p>Each command runs under the {@code reaper} launcher (see {@link Target}): a container's pid 1
 * is a child of the Cryo that made it, which exits at once with -d; the reaper, a child
 * subreaper, adopts it and reaps it once it is killed (PID 1 of these machines never would).
 */
public final class UnprivilegedCryo {
    /** The user's uid and gid. */
    public static final int ID = 59999;
    /** Another user's, for what one user may not do with another's containers. */
    public static final int OTHER_ID = 59998;
    private static final long TIMEOUT_SECONDS = 120;
    private static Path classpathCopy;
    private static String javaCommand;
    private static String unavailable;
    private static boolean probed;

    private final int id;
    private final Path work;
    private final Path state;
    private int calls;

    /** As user {@link #ID}; @param work a directory made here (its parent must be enterable by the user), owned by the user */
    public UnprivilegedCryo(Path work) {
        this(work, ID);
    }

    public UnprivilegedCryo(Path work, int id) {
        this.id = id;
        this.work = work;
        this.state = work.resolve("state");
        try {
            Files.createDirectories(work);
            chown(work, id);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public Path state() {
        return state;
    }

    /**
     * Why a user other than root cannot run containers here (no setpriv, or the kernel refuses
     * it a user namespace: `cryo check`'s probe, run here), or null when it can. Prepares the copies
     * that user's JVM runs from.
     */
    public static synchronized String unavailable() {
        if (probed) {
            return unavailable;
        }
        probed = true;
        try {
            if (!Files.isExecutable(Path.of("/usr/bin/setpriv"))) {
                return unavailable = "no /usr/bin/setpriv to run Cryo as another user";
            }
            Feature kernel = Features.unprivilegedContainers(); // as root it tries as nobody: the same rules
            if (!kernel.available()) {
                return unavailable = "a user other than root cannot run containers here: " + kernel.detail();
            }
        } catch (RuntimeException e) {
            return unavailable = "cannot probe whether a user other than root can run containers: " + e;
        }
        try { // a failure from here on is the test's own, not the machine's: it fails, never skips
            prepare();
            return null;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare a JVM for user " + ID, e);
        }
    }

    /** Copies what the user's JVM needs where it can read it, once per test JVM. */
    private static void prepare() throws IOException {
        Path top = Files.createTempDirectory("cryo-unpriv-jvm");
        Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(top)));
        classpathCopy = top.resolve("cp");
        Files.createDirectories(classpathCopy);
        String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        int n = 0;
        List<String> entries = new ArrayList<>();
        for (String entry : classpath.split(":")) {
            Path from = Path.of(entry);
            if (entry.isEmpty() || entry.contains("test-classes") || !Files.exists(from)) {
                continue;
            }
            Path to = classpathCopy.resolve((n++) + "-" + from.getFileName());
            exec(List.of("cp", "-r", from.toString(), to.toString()));
            entries.add(to.toString());
        }
        Files.writeString(top.resolve("classpath"), String.join(":", entries));
        javaCommand = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        exec(List.of("chmod", "-R", "a+rX", top.toString()));
        if (setpriv(List.of(javaCommand, "-version")) != 0) { // a JDK the user may not reach: a copy it can
            Path jdk = top.resolve("jdk");
            exec(List.of("cp", "-a", System.getProperty("java.home"), jdk.toString()));
            exec(List.of("chmod", "-R", "a+rX", jdk.toString()));
            javaCommand = jdk.resolve("bin/java").toString();
        }
    }

    /** Runs {@code cryo args...} as the user and waits for it; what it printed and its exit code. */
    public CryoCli.Result run(String... args) {
        try {
            Path call = work.getParent().resolve(work.getFileName() + "-call-" + (calls++));
            Files.createDirectories(call);
            List<String> command = new ArrayList<>(List.of(TargetBuilder.build("reaper").toString(), call.toString(),
                    "/bin/sh", "-c", "\"$@\" >\"$0/stdout\" 2>\"$0/stderr\"; echo $? >\"$0/exit.tmp\"; mv \"$0/exit.tmp\" \"$0/exit\"",
                    call.toString()));
            command.addAll(asUser(id));
            command.addAll(List.of("env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "CRYO_STATE_DIR=" + state, javaCommand, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData",
                    "-Xmx256m", "-Xshare:auto", "--enable-native-access=ALL-UNNAMED", "-cp",
                    Files.readString(classpathCopy.resolveSibling("classpath")), "dev.cryo.cli.Main"));
            command.addAll(List.of(args));
            Process reaper = new ProcessBuilder(command).redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(call.resolve("launch.log").toFile()).start();
            Path exit = call.resolve("exit");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_SECONDS);
            while (!Files.exists(exit)) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("cryo " + String.join(" ", args) + " as user " + id + " did not finish within "
                            + TIMEOUT_SECONDS + " s");
                }
                if (!reaper.isAlive() && !Files.exists(exit)) {
                    throw new AssertionError("the reaper exited before cryo " + String.join(" ", args) + " did: "
                            + Files.readString(call.resolve("launch.log")));
                }
                Thread.sleep(10);
            }
            return new CryoCli.Result(Integer.parseInt(Files.readString(exit).strip()),
                    Files.readString(call.resolve("stdout")), Files.readString(call.resolve("stderr")));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }

    private static List<String> asUser(int id) {
        return List.of("/usr/bin/setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups");
    }

    private static int setpriv(List<String> command) throws IOException {
        List<String> c = new ArrayList<>(asUser(ID));
        c.addAll(command);
        return waitFor(new ProcessBuilder(c).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start());
    }

    /** Makes {@code path} (and what is in it) user {@link #ID}'s. */
    public static void chown(Path path) {
        chown(path, ID);
    }

    private static void chown(Path path, int id) {
        exec(List.of("chown", "-R", id + ":" + id, path.toString()));
    }

    private static void exec(List<String> command) {
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (waitFor(p) != 0) {
                throw new IllegalStateException(String.join(" ", command) + " failed: " + out);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static int waitFor(Process p) {
        try {
            if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException(p.info().commandLine().orElse("a command") + " did not finish");
            }
            return p.exitValue();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }

    private static void deleteTree(Path top) {
        try (Stream<Path> walk = Files.walk(top)) {
            for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException ignored) {
            // a temporary directory: best effort
        }
    }
}
