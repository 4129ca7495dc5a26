package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Process trees: every process comes back with its PID, parent, group and session, zombies as
 * zombies, and memory the processes share stays one object.
 */
class TreeTest extends TargetTest {
    private final List<Long> tree = new ArrayList<>();

    /** Runs before the base class kills the root process. */
    @AfterEach
    void killTree() {
        // the tree spans several groups and sessions: kill each process by pid
        for (long pid : tree) {
            try {
                new ProcessBuilder("kill", "-KILL", Long.toString(pid)).start().waitFor();
            } catch (IOException | InterruptedException ignored) {
                // gone already
            }
        }
    }

    @Test
    void treeWithSessionsGroupsZombieAndSharedMemory() throws Exception {
        Target target = startReady("tree");
        assertThat(target.check(CHECK)).as(target.log()).isEqualTo("PASS");
        TreeMap<Long, String> before = describe(target.pid());
        tree.addAll(before.keySet());
        assertThat(before).hasSize(7);

        for (int cycle = 0; cycle < 2; cycle++) {
            Path images = tmp.resolve("img" + cycle);
            CryoCli.Result dump = CryoCli.run("checkpoint", pid(target), "-D", images.toString());
            assertThat(dump.exitCode()).as(dump + target.log()).isZero();
            assertThat(dump.out()).contains("7 processes");
            target.awaitPidFree(PID_FREE);
            CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
            assertThat(restore.exitCode()).as(restore.toString()).isZero();
            assertThat(describe(target.pid())).as("pid, ppid, pgid, sid and state of every process").isEqualTo(before);
            assertThat(target.check(CHECK)).as(target.log()).isEqualTo("PASS");
        }
    }

    /** pid -> "ppid pgid sid state-class" for the tree under {@code root}, from /proc. */
    static TreeMap<Long, String> describe(long root) throws IOException {
        TreeMap<Long, String> out = new TreeMap<>();
        List<Long> todo = new ArrayList<>(List.of(root));
        while (!todo.isEmpty()) {
            long pid = todo.removeFirst();
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            String state = f[0].equals("Z") ? "zombie" : "live";
            out.put(pid, (pid == root ? "-" : f[1]) + " " + f[2] + " " + f[3] + " " + state);
            try (var tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
                for (Path task : tasks.toList()) {
                    String children = Files.readString(task.resolve("children")).strip();
                    if (!children.isEmpty()) {
                        for (String c : children.split(" ")) {
                            todo.add(Long.parseLong(c));
                        }
                    }
                }
            }
        }
        return out;
    }
}
