package dev.cryo.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A program under test, started detached and tracked by its pid alone.
 *
 * <p>Why detached: the target must not be a child of the JVM that runs Cryo. The JVM's process
 * reaper waits on its children, and for a traced child such a wait would consume the ptrace
 * stops Cryo is waiting for. So the JVM starts the small {@code reaper} program
 * ({@code src/test/c/reaper.c}), which forks the target into a session of its own (no terminal,
 * stdin from /dev/null, output to {@code STATE/out.log}, default signal state), writes its pid
 * to {@code STATE/pid} and then only reaps.
 *
 * <p>Why a reaper: PID 1 on these machines does not reap orphans, so a killed orphan would stay
 * a zombie and keep its pid forever; a restore, which needs that exact pid back, would then
 * fail. The reaper reaps the target when it dies; as a child subreaper it also reaps what the
 * target's own children leave behind (a killed bash's {@code sleep}). It exits when nothing is
 * left, and the JVM reaps it.
 *
 * <p>Only the pid number is tracked: after a checkpoint and restore the pid is the same while
 * the process is a new one (whose parent is no longer the reaper), and all methods here still
 * apply to it.
 *
 * <p>Targets written for this protocol (the C programs of {@code src/test/c}, see
 * {@code target.h}) write {@code STATE/ready} when set up and answer SIGUSR2 by writing
 * {@code STATE/result}, "PASS" or "FAIL: reason".
 */
public final class Target implements AutoCloseable {
    private static final Duration START_TIMEOUT = Duration.ofSeconds(10);
    private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(5);
    private static final long POLL_MILLIS = 10;

    private final long pid;
    private final Path stateDir;
    private final List<String> command;

    private Target(long pid, Path stateDir, List<String> command) {
        this.pid = pid;
        this.stateDir = stateDir;
        this.command = command;
    }

    /** Starts C target {@code name} (built if needed) as {@code NAME STATE args...}. */
    public static Target startProgram(String name, Path stateDir, String... args) {
        return startProgram(name, stateDir, Map.of(), args);
    }

    /** Starts C target {@code name} as {@code NAME STATE args...} with extra environment variables. */
    public static Target startProgram(String name, Path stateDir, Map<String, String> env, String... args) {
        List<String> command = new ArrayList<>();
        command.add(TargetBuilder.build(name).toString());
        command.add(stateDir.toAbsolutePath().toString());
        command.addAll(List.of(args));
        return start(stateDir, env, command);
    }

    /** Starts any command (e.g. {@code bash -c ...}) detached, with {@code stateDir} for its pid and output. */
    public static Target start(Path stateDir, List<String> command) {
        return start(stateDir, Map.of(), command);
    }

    /**
     * Starts any command detached, with extra environment variables. Waits only until its pid is
     * known, not until it is ready.
     *
     * @throws IllegalStateException if the reaper fails or does not publish a pid in time
     */
    public static Target start(Path stateDir, Map<String, String> env, List<String> command) {
        Path state = stateDir.toAbsolutePath();
        try {
            Files.createDirectories(state);
            for (String stale : List.of("pid", "ready", "result")) {
                Files.deleteIfExists(state.resolve(stale));
            }
            List<String> launch = new ArrayList<>(List.of(TargetBuilder.build("reaper").toString(), state.toString()));
            launch.addAll(command);
            ProcessBuilder builder = new ProcessBuilder(launch)
                    .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .redirectError(ProcessBuilder.Redirect.appendTo(state.resolve("launch.log").toFile()));
            builder.environment().putAll(env);
            Process reaper = builder.start();
            long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
            Path pidFile = state.resolve("pid");
            while (!Files.exists(pidFile)) {
                if (!reaper.isAlive() && !Files.exists(pidFile)) {
                    throw new IllegalStateException("reaper exited " + reaper.exitValue()
                            + " before starting " + command + ": " + read(state.resolve("launch.log")));
                }
                if (System.nanoTime() > deadline) {
                    reaper.destroyForcibly();
                    throw new IllegalStateException("no pid for " + command + " after " + START_TIMEOUT);
                }
                pause();
            }
            return new Target(Long.parseLong(Files.readString(pidFile).trim()), state, List.copyOf(command));
        } catch (IOException e) {
            throw new IllegalStateException("cannot start " + command + ": " + e, e);
        }
    }

    /**
     * A target started by another one (a child of a shell, say), known by its state directory:
     * waits until it is ready and takes the pid it reports.
     */
    public static Target attach(Path stateDir) {
        Path ready = stateDir.toAbsolutePath().resolve("ready");
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        while (!Files.exists(ready)) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("no target said ready in " + stateDir + " within " + START_TIMEOUT);
            }
            pause();
        }
        return new Target(Long.parseLong(read(ready).trim()), stateDir.toAbsolutePath(), List.of("(started by another target)"));
    }

    public long pid() {
        return pid;
    }

    /** The directory the target was given (absolute): its pid, ready, result and out.log live here. */
    public Path stateDir() {
        return stateDir;
    }

    /** The target's stdout and stderr so far, for failure messages. */
    public String log() {
        return read(stateDir.resolve("out.log"));
    }

    /**
     * Waits for {@code STATE/ready} and returns its content, trimmed: the pid, or e.g. "SKIP" from
     * a target that cannot run here.
     *
     * @throws IllegalStateException with the target's output if it dies or is not ready in time,
     *         or if the pid it reports is not the one launched
     */
    public String awaitReady(Duration timeout) {
        String ready = awaitFile("ready", timeout);
        if (ready.matches("\\d+") && Long.parseLong(ready) != pid) {
            throw failure("reported ready as pid " + ready);
        }
        return ready;
    }

    /**
     * Asks the target to check itself: deletes {@code STATE/result}, sends SIGUSR2 and waits for
     * a new result. Returns it trimmed, "PASS" or "FAIL: reason". Most targets answer within
     * milliseconds; {@code signals} may take 600 ms and {@code syscalls} always watches for 500 ms.
     *
     * @throws IllegalStateException with the target's output if it dies or does not answer in time
     */
    public String check(Duration timeout) {
        try {
            Files.deleteIfExists(stateDir.resolve("result"));
        } catch (IOException e) {
            throw new IllegalStateException("cannot delete old result of " + this + ": " + e, e);
        }
        if (!isAlive()) {
            throw failure("is not running");
        }
        signal("USR2");
        return awaitFile("result", timeout);
    }

    /**
     * Sends a signal by name ("USR1", "STOP", "KILL"...) to the target, with the {@code kill}
     * command, which, unlike {@link ProcessHandle}, can send any signal.
     *
     * @throws IllegalStateException if {@code kill} fails, e.g. because the process is gone
     */
    public void signal(String name) {
        String failure = runKill(name, Long.toString(pid));
        if (failure != null) {
            throw new IllegalStateException("kill -s " + name + " " + pid + " failed: " + failure);
        }
    }

    /** True while {@code /proc/PID} exists and is not a zombie. */
    public boolean isAlive() {
        String stat;
        try {
            stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
        } catch (NoSuchFileException e) {
            return false;
        } catch (IOException e) {
            // Raced with the process exiting: reading a vanishing /proc entry fails with ESRCH.
            return Files.exists(Path.of("/proc", Long.toString(pid)));
        }
        // The state letter follows the command name, which may itself contain ") ".
        int close = stat.lastIndexOf(')');
        char state = close >= 0 && close + 2 < stat.length() ? stat.charAt(close + 2) : '?';
        return state != 'Z' && state != 'X';
    }

    /**
     * Waits until the process is gone or a zombie.
     *
     * @throws IllegalStateException if it still runs after the timeout
     */
    public void awaitGone(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (isAlive()) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(this + " still alive after " + timeout);
            }
            pause();
        }
    }

    /**
     * Waits until {@code /proc/PID} is gone, zombie included, so that the pid can be taken again:
     * between a checkpoint that ended the target and the restore that needs its pid back.
     *
     * @throws IllegalStateException if the pid is still in use after the timeout, e.g. by a zombie
     *         whose parent does not reap
     */
    public void awaitPidFree(Duration timeout) {
        Path proc = Path.of("/proc", Long.toString(pid));
        long deadline = System.nanoTime() + timeout.toNanos();
        while (Files.exists(proc)) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("pid " + pid + " still in use after " + timeout + " ("
                        + (isAlive() ? "alive" : "a zombie") + ")");
            }
            pause();
        }
    }

    /**
     * Sends SIGKILL to the target's process group, then to the target. The reaper made the target
     * lead a session and group of its own, so the group holds what the target started (a bash's
     * children) and nothing else. Errors are ignored: the process may be gone already, and after a
     * restore the group may not exist.
     */
    public void kill() {
        runKill("KILL", "-" + pid);
        runKill("KILL", Long.toString(pid));
    }

    /** Kills the target and gives its reaper a moment, so the pid is free for the next test. */
    @Override
    public void close() {
        kill();
        try {
            awaitGone(CLOSE_TIMEOUT);
        } catch (IllegalStateException e) {
            // Nothing more to do here: the test's own assertions report what went wrong.
        }
    }

    @Override
    public String toString() {
        return "Target[pid " + pid + ", " + String.join(" ", command) + "]";
    }

    /** Waits for STATE/name, written atomically by the target, and returns its trimmed content. */
    private String awaitFile(String name, Duration timeout) {
        Path file = stateDir.resolve(name);
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            try {
                return Files.readString(file).trim();
            } catch (NoSuchFileException e) {
                // Not written yet.
            } catch (IOException e) {
                throw new IllegalStateException("cannot read " + file + ": " + e, e);
            }
            if (!isAlive()) {
                throw failure("died before writing " + name);
            }
            if (System.nanoTime() > deadline) {
                throw failure("wrote no " + name + " within " + timeout);
            }
            pause();
        }
    }

    /** Runs {@code kill -s SIGNAL -- WHO}; returns null on success, else what went wrong. */
    private static String runKill(String signal, String who) {
        try {
            Process kill = new ProcessBuilder("kill", "-s", signal, "--", who).redirectErrorStream(true).start();
            String output = new String(kill.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            if (!kill.waitFor(10, TimeUnit.SECONDS)) {
                kill.destroyForcibly();
                return "kill timed out";
            }
            return kill.exitValue() == 0 ? null : output;
        } catch (IOException e) {
            return "cannot run kill: " + e;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "interrupted";
        }
    }

    private IllegalStateException failure(String what) {
        return new IllegalStateException(this + " " + what + "; its output:\n" + log());
    }

    private static String read(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            return "(" + file + " unreadable: " + e + ")";
        }
    }

    private static void pause() {
        try {
            Thread.sleep(POLL_MILLIS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a target", e);
        }
    }
}
