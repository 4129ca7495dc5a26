package dev.cryo.e2e;

import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;
import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import dev.cryo.testing.TargetBuilder;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * More kinds of file descriptors: inotify watches (with a gap in their watch descriptors), and
 * the terminal of a shell job (--shell-job), with the job and the restore each inside a
 * pseudo-terminal of its own made by script(1).
 */
class MoreFdFamiliesTest extends TargetTest {
    private static final int ROUNDS = 2;
    private static final int SIGUSR2 = 12, SIGKILL = 9;
    /** A restore in a JVM of its own, started cold and without Cryo's AOT cache, within this. */
    private static final Duration RESTORE = Duration.ofSeconds(60);
    /** script(1) copies what the terminal shows to its typescript as it comes (-f); within this. */
    private static final Duration TYPESCRIPT = Duration.ofSeconds(10);

    /** Processes this test started that are not the root of a {@link Target}, killed by pid first. */
    private final List<Long> toKill = new ArrayList<>();

    @AfterEach
    void killByPid() {
        for (long pid : toKill) { // the job first: then the Cryo waiting for it ends by itself
            if (Files.exists(Path.of("/proc", Long.toString(pid)))) {
                Sys.raw(Nr.KILL, pid, SIGKILL);
            }
            CryoCli.reap(pid); // only if a restore in this JVM made it our child
        }
        for (long pid : toKill) {
            awaitPidFree(pid, Duration.ofSeconds(5), false);
        }
    }

    @Test
    void inotifyWatchesWithAGapInTheirDescriptors() throws IOException {
        Target t = startReady("inotify");
        assertThat(Files.readString(t.stateDir().resolve("wds")).strip()).as("watch descriptors").isEqualTo("2 3 4");
        assertThat(t.check(CHECK)).as("before the first checkpoint: " + t.log()).isEqualTo("PASS");

        for (int round = 1; round <= ROUNDS; round++) {
            Path images = tmp.resolve("img" + round);
            CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString());
            assertThat(dump.exitCode()).as("checkpoint " + round + ": " + dump + "\n" + t.log()).isZero();
            assertThat(dump.out()).contains("Checkpointed process " + t.pid());
            t.awaitPidFree(PID_FREE);

            CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
            assertThat(restore.exitCode()).as("restore " + round + ": " + restore).isZero();
            assertThat(restore.out().strip()).isEqualTo(pid(t));
            assertThat(t.isAlive()).as("restored process runs").isTrue();
            assertThat(t.check(CHECK)).as("after restore " + round + ": " + t.log()).isEqualTo("PASS");
        }
    }

    /**
     * A job on its terminal: refused without --shell-job (and left running), saved with it;
     * restoring that image without --shell-job is refused, and with it (inside a new
     * pseudo-terminal) the job runs on the new terminal, in its foreground, and writes there.
     */
    @Test
    void shellJobGetsTheRestoringTerminal() throws IOException {
        String script = onPath("script");
        Assumptions.assumeTrue(script != null, "script(1) (util-linux) is needed to give the job a terminal");

        // ttyjob inside a pseudo-terminal: reaper -> script -> ttyjob (exec'd by script's shell)
        Path state = tmp.resolve("ttyjob");
        Files.createDirectories(state);
        String job = "exec " + quote(TargetBuilder.build("ttyjob").toString()) + " " + quote(state.toString());
        Target jobTerminal = start("ttyjob-script", List.of(script, "-qfc", job, "/dev/null"));
        long pid = awaitReady(state, jobTerminal);
        toKill.add(pid);
        Supplier<String> jobLog = () -> "\n--- the job's terminal:\n" + jobTerminal.log();
        assertThat(pid).as("the job is script's child, not script").isNotEqualTo(jobTerminal.pid());
        assertThat(check(pid, state)).as("before the checkpoints" + jobLog.get()).isEqualTo("PASS");

        // without --shell-job: refused, naming the option, and the job runs on
        Path refused = tmp.resolve("img-refused");
        CryoCli.Result noShellJob = CryoCli.run("checkpoint", Long.toString(pid), "-D", refused.toString());
        assertThat(noShellJob.exitCode()).as("checkpoint without --shell-job: " + noShellJob).isNotZero();
        assertThat(noShellJob.out() + noShellJob.err()).as("checkpoint without --shell-job").contains("--shell-job");
        assertThat(check(pid, state)).as("after the refused checkpoint" + jobLog.get()).isEqualTo("PASS");
        // script relays the terminal to its output as it comes: the line may trail the result file
        awaitText(jobTerminal.stateDir().resolve("out.log"), "ttyjob " + pid + " check 2", TYPESCRIPT, jobTerminal, jobLog);
        assertThat(jobTerminal.log()).as("what the job wrote to its terminal")
                .contains("ttyjob " + pid + " check 1").contains("ttyjob " + pid + " check 2");

        // with --shell-job: saved (and ended)
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", Long.toString(pid), "-D", images.toString(), "--shell-job");
        assertThat(dump.exitCode()).as("checkpoint --shell-job: " + dump + jobLog.get()).isZero();
        assertThat(dump.out()).contains("Checkpointed process " + pid);
        awaitPidFree(pid, PID_FREE, true);

        // restoring without --shell-job: refused, naming the option, leaving nothing behind
        CryoCli.Result plainRestore = CryoCli.run("restore", "-D", images.toString(), "-d");
        CryoCli.reap(pid); // should there be anything left, it is our child: no zombie for the next restore
        assertThat(plainRestore.exitCode()).as("restore without --shell-job: " + plainRestore).isNotZero();
        assertThat(plainRestore.out() + plainRestore.err()).as("restore without --shell-job").contains("--shell-job");
        assertThat(Path.of("/proc", Long.toString(pid))).as("pid " + pid + " after the refused restore").doesNotExist();

        // restoring with --shell-job, by a Cryo of its own inside a new pseudo-terminal
        Path typescript = tmp.resolve("restore.typescript");
        String restoreCommand = "exec " + String.join(" ", CryoCli.inOwnJvm("restore", "-D", images.toString(), "--shell-job")
                .stream().map(MoreFdFamiliesTest::quote).toList());
        Target restoreTerminal = start("restore-script", List.of(script, "-qfc", restoreCommand, typescript.toString()));
        Supplier<String> restoreLog = () -> "\n--- the restoring terminal:\n" + read(typescript)
                + "\n--- script's launch log:\n" + read(restoreTerminal.stateDir().resolve("launch.log"));
        awaitText(typescript, "Restored process " + pid, RESTORE, restoreTerminal, restoreLog);
        childrenOf(restoreTerminal.pid()).forEach(toKill::add); // the restoring JVM, which waits for the job
        assertThat(Path.of("/proc", Long.toString(pid))).as("restored job" + restoreLog.get()).exists();

        assertThat(check(pid, state)).as("after the restore" + restoreLog.get()).isEqualTo("PASS");
        // the third check of its life, written to the new terminal
        awaitText(typescript, "ttyjob " + pid + " check 3", TYPESCRIPT, restoreTerminal, restoreLog);
        assertThat(check(pid, state)).as("again after the restore" + restoreLog.get()).isEqualTo("PASS");
        awaitText(typescript, "ttyjob " + pid + " check 4", TYPESCRIPT, restoreTerminal, restoreLog);

        // ending the job ends the waiting Cryo, and with it the restoring script
        Sys.raw(Nr.KILL, pid, SIGKILL);
        restoreTerminal.awaitGone(Duration.ofSeconds(10));
    }

    /**
     * A pty pair with both ends in the tree (ptypair.c: the parent holds the master, a child in a
     * session of its own has the slave as its controlling terminal): bytes wait in both
     * directions, a partial input line among them. A checkpoint that leaves the tree running
     * puts them back; two checkpoint/restore rounds rebuild the pair with them, its termios,
     * window size and packet mode, and the child's session gets its terminal back.
     */
    @Test
    void ptyPairWithBothEndsInTheTree() throws IOException {
        Target t = startReady("ptypair");
        long child = Long.parseLong(Files.readString(t.stateDir().resolve("child")).strip());
        toKill.add(child);
        assertThat(t.check(CHECK)).as("before the checkpoints: " + t.log()).isEqualTo("PASS");

        CryoCli.Result running = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("img-running").toString(), "--leave-running");
        assertThat(running.exitCode()).as("checkpoint --leave-running: " + running + "\n" + t.log()).isZero();
        assertThat(t.check(CHECK)).as("after a checkpoint that left it running: " + t.log()).isEqualTo("PASS");

        for (int round = 1; round <= ROUNDS; round++) {
            checkpointAndRestore(t, tmp.resolve("img" + round));
            assertThat(Path.of("/proc", Long.toString(child))).as("restored child, round " + round).exists();
            assertThat(t.check(CHECK)).as("after restore " + round + ": " + t.log()).isEqualTo("PASS");
        }
    }

    /**
     * A pty end whose other end is outside the tree: the slave alone is a terminal (only a shell
     * job's, with --shell-job), a master alone is refused; both keep running, the pair untouched.
     */
    @Test
    void ptyEndWithItsOtherEndOutsideTheTreeIsRefused() throws IOException {
        Target t = startReady("ptypair");
        long child = Long.parseLong(Files.readString(t.stateDir().resolve("child")).strip());
        toKill.add(child);
        CryoCli.Result slaveOnly = CryoCli.run("checkpoint", Long.toString(child), "-D", tmp.resolve("img-slave").toString());
        assertThat(slaveOnly.exitCode()).as("the slave's holder alone: " + slaveOnly).isNotZero();
        assertThat(slaveOnly.err()).as("the slave's holder alone").contains("terminal").contains("--shell-job");
        assertThat(t.check(CHECK)).as("after the refused checkpoint: " + t.log()).isEqualTo("PASS");

        Assumptions.assumeTrue(onPath("python3") != null, "python3 holds a master alone");
        Target alone = start("ptmx-alone", List.of("python3", "-c",
                "import os, time\nm = os.open('/dev/ptmx', os.O_RDWR | os.O_NOCTTY)\nprint('open', flush=True)\ntime.sleep(600)"));
        awaitText(alone.stateDir().resolve("out.log"), "open", READY, alone, alone::log);
        CryoCli.Result masterOnly = CryoCli.run("checkpoint", pid(alone), "-D", tmp.resolve("img-master").toString());
        assertThat(masterOnly.exitCode()).as("a master alone: " + masterOnly).isNotZero();
        assertThat(masterOnly.err()).as("a master alone").contains("master of /dev/pts/").contains("slave is not open in the process tree");
        assertThat(alone.isAlive()).as("the master's holder runs on").isTrue();
    }

    /**
     * script(1) running an interactive bash: script holds the master, bash has the slave as its
     * controlling terminal. Commands reach script through a FIFO this test holds open. A command
     * half typed before the checkpoint is finished after the restore; each command runs once in
     * bash and its output comes back through the master once, over two restores.
     */
    @Test
    void scriptRunningBashGoesOnAfterRestore() throws Exception {
        String script = onPath("script");
        Assumptions.assumeTrue(script != null && onPath("bash") != null, "script(1) and bash are needed");
        Path fifo = tmp.resolve("commands");
        assertThat(new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor()).as("mkfifo").isZero();
        Path typescript = tmp.resolve("typescript");
        // read-write: opening never blocks, and script never sees its input end while the test runs
        try (java.nio.channels.FileChannel commands = java.nio.channels.FileChannel.open(fifo,
                java.nio.file.StandardOpenOption.READ, java.nio.file.StandardOpenOption.WRITE)) {
            // script runs its command through $SHELL -c (/bin/sh when unset, as in CI), and dash
            // does not exec a lone command: without the exec, "bash under script" was dash, and
            // its child, taken for the job, the interactive bash itself
            Target t = start("script-bash", List.of("sh", "-c", "exec " + quote(script) + " -qfc 'exec bash --norc --noprofile -i' "
                    + quote(typescript.toString()) + " < " + quote(fifo.toString())));
            Supplier<String> log = () -> "\n--- typescript:\n" + read(typescript) + "\n--- script's output:\n" + t.log();
            type(commands, "echo ready-$((6*7))\n");
            awaitText(typescript, "ready-42", TYPESCRIPT, t, log);
            awaitPrompt(typescript, "ready-42", t, log);
            List<Long> shell = childrenOf(t.pid());
            assertThat(shell).as("bash under script").hasSize(1);
            assertThat(dev.cryo.proc.ProcFiles.readString(shell.getFirst().intValue(), "comm").strip()).as("script's child").isEqualTo("bash");
            toKill.addAll(shell);

            for (int round = 1; round <= ROUNDS; round++) {
                String word = "round" + round + "-";
                type(commands, "echo " + word);  // half a line: in bash's line editor at the checkpoint
                awaitText(typescript, "echo " + word, TYPESCRIPT, t, log);
                checkpointAndRestore(t, tmp.resolve("img" + round));
                assertThat(Path.of("/proc", Long.toString(shell.getFirst()))).as("bash after restore " + round + log.get()).exists();
                type(commands, "$((6*7))\n");
                awaitText(typescript, word + "42", TYPESCRIPT, t, log);
                awaitPrompt(typescript, word + "42", t, log);
                type(commands, "echo done-" + round + "-$((6*7))\n");
                awaitText(typescript, "done-" + round + "-42", TYPESCRIPT, t, log);
                awaitPrompt(typescript, "done-" + round + "-42", t, log);
                String seen = read(typescript);
                assertThat(count(seen, word + "42")).as("output of the finished command, once" + log.get()).isEqualTo(1);
                assertThat(count(seen, "done-" + round + "-42")).as("output of a new command, once" + log.get()).isEqualTo(1);
                assertThat(count(seen, "echo done-" + round)).as("the new command's echo, once" + log.get()).isEqualTo(1);
                assertThat(t.isAlive()).as("script after restore " + round + log.get()).isTrue();
            }

            // a line typed ahead while bash runs a loop waits in the slave's input (canonical
            // mode, echoed once by the terminal then); after the restore bash reads it and runs it once
            Path go = tmp.resolve("go");
            type(commands, "while [ ! -e " + go + " ]; do sleep 0.1; done\n");
            awaitText(typescript, "done\r\n", TYPESCRIPT, t, log);
            type(commands, "echo typed-$((6*7))\n");
            awaitText(typescript, "echo typed-$((6*7))", TYPESCRIPT, t, log);
            checkpointAndRestore(t, tmp.resolve("img-typed"));
            Files.writeString(go, "");
            awaitText(typescript, "typed-42", TYPESCRIPT, t, log);
            type(commands, "echo after-$((1+1))-loop\n");
            awaitText(typescript, "after-2-loop", TYPESCRIPT, t, log);
            String seen = read(typescript);
            assertThat(count(seen, "typed-42")).as("output of the typed-ahead command, once" + log.get()).isEqualTo(1);
            // echoed by the terminal as typed, then shown again by bash's line editor as it reads it
            assertThat(count(seen, "echo typed-$((6*7))")).as("the typed-ahead command shown twice, no more" + log.get())
                    .isEqualTo(2);

            // a foreground job of bash's: its group has the terminal after the restore, so ^C reaches it
            // checkpointed once the job runs sleep and owns the terminal: between bash's fork and
            // the exec, a ^C can be lost in bash itself, checkpointed or not
            type(commands, "sleep 600\n");
            long bash = shell.getFirst();
            long deadline = System.nanoTime() + TYPESCRIPT.toNanos();
            while (!sleepOwnsTheTerminal(bash) && System.nanoTime() < deadline) {
                pause();
            }
            List<Long> job = childrenOf(bash);
            assertThat(job).as("sleep under bash" + log.get()).hasSize(1);
            toKill.addAll(job);
            assertThat(sleepOwnsTheTerminal(bash)).as("sleep in the terminal's foreground; bash: " + describe(bash) + log.get()).isTrue();
            checkpointAndRestore(t, tmp.resolve("img-job"));
            assertThat(dev.cryo.proc.ProcFiles.statField(dev.cryo.proc.ProcFiles.statFields((int) bash), 8)).as("bash's terminal's foreground group: the job's").isEqualTo(job.getFirst());
            type(commands, "\u0003");
            long stopped = System.nanoTime() + PID_FREE.toNanos();
            while (Files.exists(Path.of("/proc", job.getFirst().toString())) && System.nanoTime() < stopped) {
                pause();
            }
            assertThat(Path.of("/proc", job.getFirst().toString())).as("sleep ended by ^C and reaped by bash; sleep: "
                    + describe(job.getFirst()) + "; bash: " + describe(bash) + log.get()).doesNotExist();
            type(commands, "echo after-$((6*7))\n");
            awaitText(typescript, "after-42", TYPESCRIPT, t, log);
        }
    }

    /** Whether bash's only child has exec'd sleep and its group is the terminal's foreground group. */
    private static boolean sleepOwnsTheTerminal(long bash) throws IOException {
        List<Long> job = childrenOf(bash);
        if (job.size() != 1) {
            return false;
        }
        int pid = job.getFirst().intValue();
        try {
            return dev.cryo.proc.ProcFiles.readString(pid, "comm").strip().equals("sleep")
                    && dev.cryo.proc.ProcFiles.statField(dev.cryo.proc.ProcFiles.statFields(pid), 8) == pid;
        } catch (RuntimeException gone) {
            return false;
        }
    }

    /** A process's state and signal masks, and those of its descendants, for a failure message. */
    private static String describe(long pid) {
        try {
            StringBuilder out = new StringBuilder(Files.readAllLines(Path.of("/proc", Long.toString(pid), "status")).stream()
                    .filter(l -> l.matches("(Name|State|PPid|Tgid|SigPnd|ShdPnd|SigBlk|SigIgn|SigCgt):.*"))
                    .map(l -> l.replaceAll("\\s+", " ")).collect(java.util.stream.Collectors.joining(", "))
                    + ", wchan " + Files.readString(Path.of("/proc", Long.toString(pid), "wchan"))
                    + ", stat " + Files.readString(Path.of("/proc", Long.toString(pid), "stat")).strip());
            for (long child : childrenOf(pid)) {
                out.append("\n  child ").append(child).append(": ").append(describe(child).replace("\n", "\n  "));
            }
            return out.toString();
        } catch (IOException gone) {
            return "gone";
        }
    }

    /**
     * Waits until bash shows its prompt again after {@code output}: a line typed before bash's
     * line editor takes the terminal back is echoed twice (by the terminal, then by the editor),
     * whether or not a restore came in between.
     */
    private static void awaitPrompt(Path file, String output, Target launcher, Supplier<String> log) {
        long deadline = System.nanoTime() + TYPESCRIPT.toNanos();
        while (true) {
            String text = read(file);
            int at = text.lastIndexOf(output);
            if (at >= 0 && text.substring(at + output.length()).matches("(?s).*\\n[^\\n]*[#$] $")) {
                return;
            }
            if (!launcher.isAlive() || System.nanoTime() > deadline) {
                throw new AssertionError("no prompt after \"" + output + "\" within " + TYPESCRIPT + log.get());
            }
            pause();
        }
    }

    private static void type(java.nio.channels.FileChannel commands, String text) throws IOException {
        commands.write(java.nio.ByteBuffer.wrap(text.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    }

    private static int count(String text, String what) {
        int n = 0;
        for (int at = text.indexOf(what); at >= 0; at = text.indexOf(what, at + what.length())) {
            n++;
        }
        return n;
    }

    /** Waits for STATE/ready of a target that is not the {@link Target}'s own process; returns its pid. */
    private static long awaitReady(Path state, Target launcher) {
        String ready = awaitFile(state.resolve("ready"), READY, launcher);
        assertThat(ready).as("ready of the job").matches("\\d+");
        return Long.parseLong(ready);
    }

    /** Like {@link Target#check}, for a process known by its pid only. */
    private static String check(long pid, Path state) throws IOException {
        Path result = state.resolve("result");
        Files.deleteIfExists(result);
        assertThat(Path.of("/proc", Long.toString(pid))).as("process " + pid + " before its check").exists();
        assertThat(Sys.raw(Nr.KILL, pid, SIGUSR2)).as("kill -USR2 " + pid).isZero();
        long deadline = System.nanoTime() + CHECK.toNanos();
        while (true) {
            try {
                return Files.readString(result).strip();
            } catch (NoSuchFileException e) {
                // not answered yet
            }
            if (!Files.exists(Path.of("/proc", Long.toString(pid))) || System.nanoTime() > deadline) {
                return "(no answer from " + pid + " within " + CHECK + ")";
            }
            pause();
        }
    }

    /** Waits until the file exists and returns its content, trimmed; fails if the launcher ends first. */
    private static String awaitFile(Path file, Duration timeout, Target launcher) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            try {
                return Files.readString(file).strip();
            } catch (NoSuchFileException e) {
                // not yet
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
            if (!launcher.isAlive() || System.nanoTime() > deadline) {
                throw new AssertionError("no " + file + " from " + launcher + " within " + timeout + " (it "
                        + (launcher.isAlive() ? "runs" : "ended") + "); its output:\n" + launcher.log());
            }
            pause();
        }
    }

    /** Waits until {@code text} shows in {@code file}; fails early if {@code launcher} ends without it. */
    private static void awaitText(Path file, String text, Duration timeout, Target launcher, Supplier<String> log) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!read(file).contains(text)) {
            boolean alive = launcher.isAlive();
            if (!alive && !read(file).contains(text) || System.nanoTime() > deadline) {
                throw new AssertionError("\"" + text + "\" not in " + file + " within " + timeout + " ("
                        + launcher + (alive ? " runs" : " ended") + ")" + log.get());
            }
            pause();
        }
    }

    /** Waits until {@code /proc/PID} is gone; fails the test if asked to, after the timeout. */
    private static void awaitPidFree(long pid, Duration timeout, boolean fail) {
        Path proc = Path.of("/proc", Long.toString(pid));
        long deadline = System.nanoTime() + timeout.toNanos();
        while (Files.exists(proc)) {
            if (System.nanoTime() > deadline) {
                if (fail) {
                    throw new AssertionError("pid " + pid + " still in use after " + timeout);
                }
                return;
            }
            pause();
        }
    }

    /** The pids of the children of {@code pid} (of all its threads). */
    private static List<Long> childrenOf(long pid) throws IOException {
        List<Long> out = new ArrayList<>();
        try (var tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            for (Path task : tasks.toList()) {
                for (String c : Files.readString(task.resolve("children")).strip().split(" ")) {
                    if (!c.isEmpty()) {
                        out.add(Long.parseLong(c));
                    }
                }
            }
        }
        return out;
    }

    /** The executable {@code name} on PATH, or null. */
    private static String onPath(String name) {
        return Optional.ofNullable(System.getenv("PATH")).stream()
                .flatMap(p -> List.of(p.split(File.pathSeparator)).stream())
                .map(dir -> Path.of(dir, name))
                .filter(Files::isExecutable)
                .map(Path::toString)
                .findFirst().orElse(null);
    }

    /** {@code s} as one word for sh -c. */
    private static String quote(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }

    private static String read(Path file) {
        try {
            return Files.readString(file);
        } catch (NoSuchFileException e) {
            return "";
        } catch (IOException e) {
            return "(" + file + " unreadable: " + e + ")";
        }
    }

    private static void pause() {
        try {
            Thread.sleep(10);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }
}
