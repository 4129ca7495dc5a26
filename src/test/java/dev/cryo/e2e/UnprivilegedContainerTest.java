package dev.cryo.e2e;

import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.Clone3;
import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import dev.cryo.testing.TargetBuilder;
import dev.cryo.testing.UnprivilegedCryo;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;

import static dev.cryo.e2e.ContainerTest.assertCounts;
import static dev.cryo.e2e.ContainerTest.awaitFile;
import static dev.cryo.e2e.ContainerTest.awaitLines;
import static dev.cryo.e2e.ContainerTest.savedLines;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Containers of a user other than root ({@link UnprivilegedCryo}: uid and gid 59999, in a JVM of
 * its own): that user runs one with --user, checkpoints it and restores it, and the restored
 * processes prove their state as in {@link ContainerTest}. No cgroup (root owns the hierarchy):
 * the tree is held through ptrace alone. Inside, the user is root; on the host every process and
 * every file it writes is the user's. Skipped, with the reason, where the kernel gives such a
 * user no user namespace (as `cryo check --feature unprivileged_containers` finds).
 */
class UnprivilegedContainerTest extends TargetTest {
    private static final String ID = Integer.toString(UnprivilegedCryo.ID);
    private final List<String> containers = new ArrayList<>();
    private UnprivilegedCryo cryo;
    private Path rootfs;

    @BeforeEach
    void userAndRootfs() throws IOException {
        String why = UnprivilegedCryo.unavailable();
        Assumptions.assumeTrue(why == null, why);
        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxr-xr-x")); // the user passes through
        cryo = new UnprivilegedCryo(tmp.resolve("user"));
        rootfs = tmp.resolve("rootfs");
        Files.createDirectories(rootfs.resolve("app"));
        Files.createDirectories(rootfs.resolve("out"));
        for (String f : new String[] {"counter.sh", "writer.py", "talkers.py"}) {
            Path to = rootfs.resolve("app").resolve(f);
            Files.copy(Path.of("src/test/resources/container", f), to);
            to.toFile().setExecutable(true);
        }
        Files.createSymbolicLink(rootfs.resolve("usr"), Path.of("/"));
        // the user's, so root inside the container owns them (an id the namespace does not map could not be written)
        UnprivilegedCryo.chown(rootfs);
    }

    @AfterEach
    void killContainers() {
        if (!containers.isEmpty()) { // all in one command: each command is a JVM start
            List<String> kill = new ArrayList<>(List.of("kill"));
            kill.addAll(containers);
            CryoCli.Result r = cryo.run(kill.toArray(String[]::new));
            assertThat(r.exitCode()).as(r.toString()).isZero();
        }
    }

    @Test
    void aUserCheckpointsItsContainerAndRestoresTwoClonesBesideIt() throws Exception {
        run("orig", "--hostname", "box", "--rootfs", rootfs + ":/usr", "--", "/app/counter.sh");
        Path origOut = cryo.state().resolve("orig/upper/out");
        awaitLines(origOut.resolve("python.log"), 10);
        awaitLines(origOut.resolve("shell.log"), 10);
        assertThat(record("orig")).as("no cgroup for a user other than root").doesNotContain("\"cgroup\"");
        assertOwnedByTheUser(hostPid("orig"));

        Path images = tmp.resolve("user/img");
        CryoCli.Result dump = cryo.run("checkpoint", "--container", "orig", "-D", images.toString(), "--leave-running");
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        assertThat(dump.out()).contains("Checkpointed container orig").contains("left running");
        assertThat(CryoCli.run("inspect", images.toString()).out()) // in this JVM: root reads the image too
                .contains("user namespace: uid map 0 " + ID + " 1, gid map 0 " + ID + " 1, setgroups denied");
        List<String> shellAtCheckpoint = savedLines(images, "out/shell.log");
        List<String> pythonAtCheckpoint = savedLines(images, "out/python.log");

        // another user may not map this one's ids: refused, naming them, and nothing of the container is left
        UnprivilegedCryo other = new UnprivilegedCryo(tmp.resolve("other"), UnprivilegedCryo.OTHER_ID);
        CryoCli.Result refused = other.run("restore", "-D", images.toString(), "--name", "stolen", "-d");
        assertThat(refused.exitCode()).as(refused.toString()).isEqualTo(1);
        assertThat(refused.err()).contains("uid_map").contains("may map only its own uid and gid")
                .contains("uid map '0 " + ID + " 1'");
        assertThat(other.state().resolve("stolen")).doesNotExist();

        for (String clone : new String[] {"clone1", "clone2"}) {
            CryoCli.Result restore = cryo.run("restore", "-D", images.toString(), "--name", clone, "-d");
            assertThat(restore.exitCode()).as(restore.toString()).isZero();
            containers.add(clone);
        }
        for (String clone : new String[] {"clone1", "clone2"}) {
            Path out = cryo.state().resolve(clone + "/upper/out");
            ContainerTest.assertCountersContinue(clone, out, shellAtCheckpoint, pythonAtCheckpoint);
            assertOwnedByTheUser(hostPid(clone));
            assertThat(Files.getOwner(out.resolve("shell.log")).getName()).isEqualTo(ID);
        }
        assertThat(hostPid("clone1")).isNotEqualTo(hostPid("clone2"));
        // the original, left running beside its clones, went on in its own files
        List<String> original = awaitLines(origOut.resolve("shell.log"), shellAtCheckpoint.size() + 20);
        assertCounts(original, "orig shell.log");
        assertThat(cryo.run("ps").out()).containsPattern("orig +\\d+ running")
                .containsPattern("clone1 +\\d+ running").containsPattern("clone2 +\\d+ running");
    }

    @Test
    void connectionsSysvIpcAndTmpfsInsideComeBack() throws Exception {
        // one container, as each command is a JVM start: pid 1, a shell, appends to a file of a tmpfs it
        // mounted, on an fd it keeps open; beside it python3 talks over TCP on the container's own loopback
        // (TCP_REPAIR there needs no privilege on the host) and over a unix socket, and a C target checks
        // the SysV IPC objects of the container's namespace
        Files.copy(TargetBuilder.build("sysvipc"), rootfs.resolve("app/sysvipc"));
        UnprivilegedCryo.chown(rootfs.resolve("app/sysvipc"));
        run("box", "--net", "none", "--rootfs", rootfs + ":/usr", "--", "/bin/sh", "-c",
                "mkdir -p /scratch && mount -t tmpfs -o size=1m,mode=750 none /scratch && echo kept > /scratch/keep"
                        + " && mkdir /scratch/shm || exit 1; /app/sysvipc /scratch/shm & /usr/bin/python3 /app/talkers.py &"
                        + " exec 3>>/scratch/log; i=0; while :; do i=$((i + 1)); echo \"$i x\" >&3;"
                        + " cp /scratch/log /out/copy.tmp; mv /out/copy.tmp /out/copy; sleep 0.02; done");
        Path out = cryo.state().resolve("box/upper/out");
        awaitFile(Path.of("/proc/" + hostPid("box") + "/root/scratch/shm/ready"));
        assertThat(checkSysvIpc("box")).isEqualTo("PASS");
        awaitLines(out.resolve("tcp"), 5);
        awaitLines(out.resolve("unix"), 5);
        awaitLines(out.resolve("copy"), 5);

        // a process that joined the container's pid namespace from outside is no descendant of its pid 1: the
        // checkpoint is refused naming it, and the container (held through ptrace alone, no cgroup) runs on
        Target joiner = track(Target.start(tmp.resolve("joiner"),
                List.of("/usr/bin/nsenter", "-t", Integer.toString(hostPid("box")), "--pid", "/bin/sleep", "1000")));
        int sleeper = awaitChild((int) joiner.pid());
        CryoCli.Result refused = cryo.run("checkpoint", "--container", "box", "-D", tmp.resolve("user/refused").toString());
        assertThat(refused.exitCode()).as(refused.toString()).isEqualTo(1);
        assertThat(refused.err()).contains("container box has processes that joined it from outside")
                .contains("[" + Clone3.innermostId(sleeper) + "]");
        dev.cryo.sys.Sys.kill(sleeper, 9);
        assertCounts(awaitLines(out.resolve("tcp"), awaitLines(out.resolve("tcp"), 1).size() + 5), "the tcp stream after the refusal");

        Path images = tmp.resolve("user/img");
        CryoCli.Result dump = cryo.run("checkpoint", "--container", "box", "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        CryoCli.Result restore = cryo.run("restore", "-D", images.toString(), "--name", "box2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("box2");

        Path restored = cryo.state().resolve("box2/upper/out");
        for (String stream : new String[] {"tcp", "unix"}) {
            int before = savedLines(images, "out/" + stream).size();
            List<String> lines = awaitLines(restored.resolve(stream), before + 10);
            assertCounts(lines, "the " + stream + " stream");
            assertThat(lines).as(stream).allMatch(l -> l.endsWith(" ok"));
        }
        assertThat(restored.resolve("client-bad")).doesNotExist();
        assertThat(checkSysvIpc("box2")).isEqualTo("PASS");
        int before = savedLines(images, "out/copy").size();
        assertCounts(awaitLines(restored.resolve("copy"), before + 10), "the tmpfs log, copied out");
        assertThat(Files.readString(Path.of("/proc/" + hostPid("box2") + "/root/scratch/keep"))).isEqualTo("kept\n");
    }

    @Test
    void whatNeedsRootIsRefusedClearly() {
        CryoCli.Result noUserNamespace = cryo.run("run", "-d", "--name", "x", "--", "/bin/true");
        assertThat(noUserNamespace.exitCode()).isEqualTo(1);
        assertThat(noUserNamespace.err()).contains("user " + ID + " may create namespaces only inside a user namespace of its own: add --user");
        CryoCli.Result veth = cryo.run("run", "-d", "--user", "--net", "veth", "--name", "y", "--", "/bin/true");
        assertThat(veth.exitCode()).isEqualTo(1);
        assertThat(veth.err()).contains("--net veth needs root");
        assertThat(cryo.state().resolve("x")).doesNotExist();
        assertThat(cryo.state().resolve("y")).doesNotExist();
    }

    /** Every process of the container runs as the user on the host, and its user namespace maps root inside to it alone. */
    private static void assertOwnedByTheUser(int pid) throws IOException {
        String status = Files.readString(Path.of("/proc/" + pid + "/status"));
        assertThat(status).containsPattern("Uid:\\s+" + ID + "\\s+" + ID + "\\s+" + ID + "\\s+" + ID);
        assertThat(Files.readString(Path.of("/proc/" + pid + "/uid_map")).strip().split("\\s+"))
                .containsExactly("0", ID, "1");
    }

    /**
     * Asks the sysvipc target of container {@code name} to check itself (SIGUSR2); its verdict,
     * from its state directory in the container's tmpfs (the image holds an earlier verdict: it
     * is removed first).
     */
    private String checkSysvIpc(String name) throws Exception {
        Path targetState = Path.of("/proc/" + hostPid(name) + "/root/scratch/shm");
        Files.deleteIfExists(targetState.resolve("result"));
        int target = ProcFiles.tree(hostPid(name)).stream()
                .filter(p -> ProcFiles.readString(p, "comm").strip().equals("sysvipc")).findFirst().orElseThrow();
        dev.cryo.sys.Sys.kill(target, 12);
        return awaitFile(targetState.resolve("result")).strip();
    }

    /** The first child of {@code pid}, once it has one. */
    private static int awaitChild(int pid) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (System.nanoTime() < deadline) {
            List<Integer> children = ProcFiles.children(pid, pid);
            if (!children.isEmpty()) {
                return children.getFirst();
            }
            Thread.sleep(10);
        }
        throw new AssertionError("process " + pid + " started no child");
    }

    private void run(String name, String... args) {
        List<String> argv = new ArrayList<>(List.of("run", "-d", "--user", "--name", name));
        argv.addAll(List.of(args));
        CryoCli.Result r = cryo.run(argv.toArray(String[]::new));
        assertThat(r.exitCode()).as(r.toString()).isZero();
        containers.add(name);
    }

    private String record(String name) throws IOException {
        return Files.readString(cryo.state().resolve(name + "/container.json"));
    }

    private int hostPid(String name) throws IOException {
        return Integer.parseInt(record(name).replaceAll("(?s).*\"initPid\": (\\d+).*", "$1"));
    }
}
