package dev.cryo.e2e;

import dev.cryo.core.Restore;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.PagemapImage;
import dev.cryo.image.proto.PstreeImage;
import dev.cryo.testing.CryoCli;
import dev.cryo.testing.ImageFiles;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
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
            // the first restore builds the processes while others load their pages (the default),
            // the second one process after another (CRYO_RESTORE_THREADS=1)
            CryoCli.Result restore = restoreWithThreads(cycle == 0 ? "0" : "1", "-D", images.toString(), "-d");
            assertThat(restore.exitCode()).as(restore.toString()).isZero();
            assertThat(describe(target.pid())).as("pid, ppid, pgid, sid and state of every process").isEqualTo(before);
            assertThat(target.check(CHECK)).as(target.log()).isEqualTo("PASS");
        }
    }

    /**
     * The pages of a tree's processes load on other threads while the next processes are built.
     * One child's page load fails (its pagemap, checksums fixed up, sends a run to an address it
     * never maps) while its siblings are built and loaded: the restore fails naming that child,
     * and none of the tree's processes, nor a restore stub, is left; the undamaged image then
     * restores into a tree whose own check passes.
     */
    @Test
    void failedPageLoadOfOneProcessLeavesNoneOfTheTree() throws Exception {
        Target target = startProgram("cow", "32", "4");
        target.awaitReady(Duration.ofSeconds(20)); // a tree with memory to set up
        tree.addAll(describe(target.pid()).keySet());
        assertThat(tree).hasSize(5);
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(target), "-D", images.toString());
        assertThat(dump.exitCode()).as(dump + target.log()).isZero();
        target.awaitPidFree(PID_FREE);

        Path damaged = tmp.resolve("damaged");
        copy(images, damaged);
        List<Integer> children = ImageFiles.read(damaged.resolve(ImageKind.PSTREE.fileName(0)), PstreeImage.parser())
                .getProcessesList().stream().filter(p -> p.getPpid() == target.pid()).map(p -> p.getPid()).toList();
        assertThat(children).hasSize(4);
        int victim = children.get(1);
        Path pagemapFile = damaged.resolve(ImageKind.PAGEMAP.fileName(victim));
        PagemapImage pagemap = ImageFiles.read(pagemapFile, PagemapImage.parser());
        assertThat(pagemap.getRunsCount()).as("pages of process " + victim + " of its own").isPositive();
        // below mmap_min_addr: never mapped, so process_vm_writev fails there (EFAULT)
        ImageFiles.rewrite(pagemapFile, pagemap.toBuilder().setRuns(0, pagemap.getRuns(0).toBuilder().setVaddr(0x1000)).build());
        List<Long> childrenBefore = Procs.childrenOfThisJvm();

        CryoCli.Result failed = CryoCli.run("restore", "-D", damaged.toString(), "-d");
        assertThat(failed.exitCode()).as(failed.toString()).isEqualTo(1);
        assertThat(failed.err()).as(failed.toString()).startsWith("Error: ")
                .contains("process " + victim).contains("process_vm_writev").contains("EFAULT");
        assertThat(failed.err().lines().count()).as("one line: " + failed).isEqualTo(1);
        for (long pid : tree) {
            assertThat(Procs.exists(pid)).as("process " + pid + " of the tree is left after " + failed).isFalse();
        }
        assertThat(Procs.childrenOfThisJvm()).as("no restore stub or half-built process left").isSubsetOf(childrenBefore);

        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as("the undamaged image still restores: " + restore).isZero();
        assertThat(describe(target.pid()).keySet()).isEqualTo(new java.util.TreeSet<>(tree));
        assertThat(target.check(Duration.ofSeconds(10))).as(target.log()).isEqualTo("PASS");
    }

    /** {@code cryo restore ARGS} with {@link Restore#THREADS_PROPERTY} (CRYO_RESTORE_THREADS) set to {@code threads}. */
    private static CryoCli.Result restoreWithThreads(String threads, String... args) {
        System.setProperty(Restore.THREADS_PROPERTY, threads);
        try {
            String[] all = new String[args.length + 1];
            all[0] = "restore";
            System.arraycopy(args, 0, all, 1, args.length);
            return CryoCli.run(all);
        } finally {
            System.clearProperty(Restore.THREADS_PROPERTY);
        }
    }

    private static void copy(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (var files = Files.list(from)) {
            for (Path f : files.toList()) {
                Files.copy(f, to.resolve(f.getFileName()));
            }
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
