package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A plain process in cgroups of its own (v1 pids, with a limit, and memory; v2 when the unified
 * hierarchy takes a new cgroup) comes back in them after a restore, as the process itself sees
 * it; a saved cgroup removed before the restore is warned about and the process runs anyway.
 */
class CgroupMembershipTest extends TargetTest {
    private static int serial;
    private final String name = "cryo-test-" + ProcessHandle.current().pid() + "-" + (serial++);
    /** The cgroups made for this test, by hierarchy ("pids", "memory", "" for v2). */
    private final Map<String, Path> made = new LinkedHashMap<>();
    /** The root cgroup of each hierarchy used, where leftover processes go back at the end. */
    private final Map<String, Path> roots = new LinkedHashMap<>();

    @AfterEach
    void removeCgroups() throws IOException {
        for (Map.Entry<String, Path> e : made.entrySet()) {
            Path dir = e.getValue();
            if (!Files.isDirectory(dir)) {
                continue;
            }
            for (String pid : Files.readString(dir.resolve("cgroup.procs")).split("\n")) {
                if (!pid.isBlank()) {
                    try {
                        Files.writeString(roots.get(e.getKey()).resolve("cgroup.procs"), pid.strip());
                    } catch (IOException gone) {
                        // the process ended meanwhile
                    }
                }
            }
            Files.delete(dir);
        }
    }

    @Test
    void restoredProcessIsBackInItsCgroups() throws Exception {
        Target t = startReady("cgroupcheck");
        moveInto(t, makeCgroups(true));
        String before = t.check(CHECK);
        assertThat(before).as(t.log()).isEqualTo("PASS");
        assertRecordedIn(t);

        Path images = tmp.resolve("images");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        t.awaitPidFree(PID_FREE);
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        assertThat(restore.out().strip()).isEqualTo(pid(t));

        assertThat(t.check(CHECK)).as("after restore: " + t.log()).isEqualTo("PASS");
        for (Map.Entry<String, Path> e : made.entrySet()) {
            assertThat(procs(e.getValue())).as("cgroup.procs of " + e.getValue()).contains(pid(t));
        }
        CryoCli.Result inspect = CryoCli.run("inspect", images.toString());
        assertThat(inspect.out()).as(inspect.toString()).contains("pids:/" + name).contains("memory:/" + name);
    }

    @Test
    void removedCgroupIsWarnedAboutAndTheProcessRuns() throws Exception {
        Target t = startReady("cgroupcheck");
        moveInto(t, makeCgroups(false));
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");

        Path images = tmp.resolve("images");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        t.awaitPidFree(PID_FREE);
        Path pids = made.remove("pids");
        Files.delete(pids);

        Path log = tmp.resolve("restore.log");
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d", "-o", log.toString());
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        assertThat(t.isAlive()).as("restored process runs").isTrue();
        assertThat(Files.readString(log)).contains("Warn: ").contains("pids:/" + name).contains("does not exist");
        // the hierarchy whose cgroup is still there is restored; the process itself sees the other changed
        assertThat(procs(made.get("memory"))).contains(pid(t));
        String check = t.check(CHECK);
        assertThat(check).as("only the removed cgroup is missed").startsWith("FAIL: in cgroups").contains(":pids:/;");
        String now = check.substring("FAIL: in cgroups ".length(), check.indexOf(", recorded"));
        assertThat(now).contains(":memory:/" + name + ";");
    }

    @Test
    void threadInAnotherCgroupIsRefused() throws Exception {
        Target t = startReady("cgroupcheck");
        moveInto(t, makeCgroups(false));
        // v1 lets one thread move alone, through "tasks": the second thread into a child cgroup
        Path child = made.get("pids").resolve("other");
        Files.createDirectory(child);
        try {
            String second = Files.list(Path.of("/proc", pid(t), "task")).map(p -> p.getFileName().toString())
                    .filter(tid -> !tid.equals(pid(t))).findFirst().orElseThrow();
            Files.writeString(child.resolve("tasks"), second);

            CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("images").toString());
            assertThat(dump.exitCode()).as(dump.toString()).isNotZero();
            assertThat(dump.err()).as(dump.toString()).contains("thread " + second)
                    .contains("pids cgroup /" + name + "/other")
                    .contains("pids cgroup /" + name + ";");
            assertThat(t.isAlive()).as("the refused process runs on").isTrue();
        } finally {
            Files.writeString(made.get("pids").resolve("cgroup.procs"), pid(t)); // the whole process back, for the cleanup
            Files.delete(child);
        }
    }

    /** Makes this test's cgroup in the v1 pids (limit 50) and memory hierarchies, and in v2 if asked and possible. */
    private List<Path> makeCgroups(boolean v2) throws IOException {
        mkdir("pids", v1Mount("pids"));
        Files.writeString(made.get("pids").resolve("pids.max"), "50");
        mkdir("memory", v1Mount("memory"));
        if (v2) {
            Path unified = mountOf("cgroup2", Set.of());
            try {
                if (unified != null) {
                    mkdir("", unified);
                }
            } catch (IOException e) {
                // a v2 hierarchy that takes no new cgroup here: the v1 ones are the test
            }
        }
        return new ArrayList<>(made.values());
    }

    private void mkdir(String hierarchy, Path mount) throws IOException {
        Assumptions.assumeTrue(mount != null, "no cgroup hierarchy " + hierarchy + " mounted");
        Path dir = mount.resolve(name);
        Files.createDirectory(dir);
        made.put(hierarchy, dir);
        roots.put(hierarchy, mount);
    }

    private static void moveInto(Target t, List<Path> cgroups) throws IOException {
        for (Path dir : cgroups) {
            Files.writeString(dir.resolve("cgroup.procs"), pid(t));
        }
    }

    /** The target's record of its cgroups names this test's in each hierarchy. */
    private void assertRecordedIn(Target t) throws IOException {
        String recorded = Files.readString(t.stateDir().resolve("cgroups"));
        assertThat(recorded).contains(":pids:/" + name + ";").contains(":memory:/" + name + ";");
        if (made.containsKey("")) {
            assertThat(recorded).contains("0::/" + name + ";");
        }
    }

    private static List<String> procs(Path dir) throws IOException {
        return List.of(Files.readString(dir.resolve("cgroup.procs")).split("\n"));
    }

    private static Path v1Mount(String controller) throws IOException {
        return mountOf("cgroup", Set.of(controller));
    }

    /** Mount point of the first mount of {@code fsType} whose super options include {@code options}, from mountinfo. */
    private static Path mountOf(String fsType, Set<String> options) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
            List<String> f = List.of(line.split(" "));
            int dash = f.indexOf("-");
            if (dash > 0 && f.get(dash + 1).equals(fsType) && f.get(3).equals("/")
                    && Set.of(f.get(dash + 3).split(",")).containsAll(options)) {
                return Path.of(f.get(4));
            }
        }
        return null;
    }
}
