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
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Incremental dumps with the {@code rewriter} target, whose memory keeps changing while it is
 * pre-dumped: pages it rewrites, a shmem area, and an area it replaces by a new mapping at the
 * same address every 100 ms. After a chain of pre-dumps and a checkpoint on top, the restored
 * process checks that every page holds its latest generation: a page taken from the wrong
 * image of the chain, or left out as unchanged when it was not, holds an older one.
 */
class IncrementalDumpTest extends TargetTest {
    private static final Pattern PRE_DUMPED = Pattern.compile("Pre-dumped process \\d+.*: (\\d+) pages .* tracking kept by process (\\d+)");
    private static final Pattern CHECKPOINTED = Pattern.compile("Checkpointed process .*, (\\d+) pages \\(");
    private static final Pattern IN_PARENT = Pattern.compile("Incremental: (\\d+) pages");
    private final List<Long> keepers = new ArrayList<>();
    /** Processes of a tree target besides its root, killed after the test. */
    private final List<Long> tree = new ArrayList<>();

    /** Keepers the tests left behind on purpose (or by failing): ended and reaped (they are this JVM's children). */
    @AfterEach
    void endKeepers() {
        tree.forEach(IncrementalDumpTest::runKill);
        for (long pid : keepers) {
            if (Procs.exists(pid) && !Procs.cmdline(pid).isEmpty() && Procs.cmdline(pid).getFirst().equals("cryo-tracker")) {
                runKill(pid);
            }
            CryoCli.reap(pid);
        }
    }

    private static void runKill(long pid) {
        try {
            // no pipes: they would stay open in this JVM until the Process object is collected
            new ProcessBuilder("kill", "-9", Long.toString(pid)).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectErrorStream(true).start().waitFor();
        } catch (IOException | InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Runs a pre-dump, checks it worked, and returns {pages copied, keeper pid}. */
    private long[] preDump(Target t, Path dir, Path parent) {
        List<String> args = new ArrayList<>(List.of("pre-dump", pid(t), "-D", dir.toString()));
        if (parent != null) {
            args.addAll(List.of("--parent", parent.toString()));
        }
        CryoCli.Result r = CryoCli.run(args.toArray(String[]::new));
        assertThat(r.exitCode()).as(r + "\n" + t.log()).isZero();
        Matcher m = PRE_DUMPED.matcher(r.out());
        assertThat(m.find()).as(r.out()).isTrue();
        keepers.add(Long.parseLong(m.group(2)));
        return new long[] {Long.parseLong(m.group(1)), Long.parseLong(m.group(2))};
    }

    private static void pause(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Test
    void aChainOfPreDumpsAndAnIncrementalCheckpointRestoresTheLatestMemory() {
        Target t = startReady("rewriter", "32", "2");
        int fds = Procs.fdCount(t.pid());
        long[] first = preDump(t, tmp.resolve("pre1"), null);
        assertThat(Procs.fdCount(t.pid())).as("the task sees no extra fd").isEqualTo(fds);
        assertThat(t.check(CHECK)).as("after the first pre-dump: " + t.log()).isEqualTo("PASS");
        pause(300);
        long[] second = preDump(t, tmp.resolve("pre2"), tmp.resolve("pre1"));
        assertThat(Procs.exists(first[1]) && Procs.state(first[1]) != 'Z').as("the first keeper ended").isFalse();
        assertThat(second[0]).as("the second pre-dump copies only what changed").isLessThan(first[0] / 2);
        pause(300);

        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("final").toString(),
                "--parent", tmp.resolve("pre2").toString());
        assertThat(dump.exitCode()).as(dump + "\n" + t.log()).isZero();
        Matcher copied = CHECKPOINTED.matcher(dump.out());
        Matcher inParent = IN_PARENT.matcher(dump.out());
        assertThat(copied.find() && inParent.find()).as(dump.out()).isTrue();
        assertThat(Long.parseLong(copied.group(1))).as("the final dump copies few pages").isLessThan(first[0] / 2);
        assertThat(Long.parseLong(inParent.group(1))).as("most pages come from the parents").isGreaterThan(first[0] / 2);
        assertThat(Procs.exists(second[1]) && Procs.state(second[1]) != 'Z').as("the second keeper ended").isFalse();

        CryoCli.Result inspect = CryoCli.run("inspect", tmp.resolve("final").toString());
        assertThat(inspect.out()).contains("Parent image: " + tmp.resolve("pre2")).contains("in parent");
        CryoCli.Result preInspect = CryoCli.run("inspect", tmp.resolve("pre2").toString());
        assertThat(preInspect.out()).contains("Pre-dump: memory only").contains("Parent image: " + tmp.resolve("pre1"));

        t.awaitPidFree(PID_FREE);
        CryoCli.Result refused = CryoCli.run("restore", "-D", tmp.resolve("pre2").toString(), "-d");
        assertThat(refused.exitCode()).isNotZero();
        assertThat(refused.err()).contains("is a pre-dump");
        CryoCli.Result restore = CryoCli.run("restore", "-D", tmp.resolve("final").toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        assertThat(t.check(CHECK)).as("after restore through the chain: " + t.log()).isEqualTo("PASS");
    }

    /**
     * The memory target's areas of every kind (a sparse 256 MiB one among them, whose untouched
     * pages must stay untouched: write protection puts a marker on each, which pagemap shows as
     * a swapped page) through a pre-dump and an incremental checkpoint.
     */
    @Test
    void theMemoryTargetComesBackWholeFromAPreDumpAndAnIncrementalCheckpoint() {
        Target t = startReady("memory");
        assertThat(t.check(CHECK)).as("before: " + t.log()).isEqualTo("PASS");
        long[] pre = preDump(t, tmp.resolve("pre"), null);
        assertThat(t.check(CHECK)).as("after the pre-dump: " + t.log()).isEqualTo("PASS");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("final").toString(),
                "--parent", tmp.resolve("pre").toString());
        assertThat(dump.exitCode()).as(dump + "\n" + t.log()).isZero();
        Matcher copied = CHECKPOINTED.matcher(dump.out());
        assertThat(copied.find()).isTrue();
        assertThat(Long.parseLong(copied.group(1))).as("untouched pages are not saved").isLessThan(pre[0] / 4);
        t.awaitPidFree(PID_FREE);
        CryoCli.Result restore = CryoCli.run("restore", "-D", tmp.resolve("final").toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        assertThat(t.check(CHECK)).as("after restore: " + t.log()).isEqualTo("PASS");
    }

    /** Pre-dump, pre-dump again, checkpoint on top, restore: for a tree target and a threaded one. */
    private void chainAndRestore(Target t, String expectInDump) {
        preDump(t, tmp.resolve("pre1"), null);
        pause(100);
        preDump(t, tmp.resolve("pre2"), tmp.resolve("pre1"));
        pause(100);
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("final").toString(),
                "--parent", tmp.resolve("pre2").toString());
        assertThat(dump.exitCode()).as(dump + "\n" + t.log()).isZero();
        assertThat(dump.out()).contains(expectInDump);
        t.awaitPidFree(PID_FREE);
        CryoCli.Result restore = CryoCli.run("restore", "-D", tmp.resolve("final").toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        assertThat(t.check(CHECK)).as("after restore: " + t.log()).isEqualTo("PASS");
    }

    /** Seven processes sharing an anonymous mapping, each tracked through a userfaultfd of its own. */
    @Test
    void aProcessTreeThroughPreDumpsAndAnIncrementalCheckpoint() throws Exception {
        Target t = startReady("tree");
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
        java.util.TreeMap<Long, String> before = TreeTest.describe(t.pid());
        tree.addAll(before.keySet());
        chainAndRestore(t, "7 processes");
        assertThat(TreeTest.describe(t.pid())).isEqualTo(before);
    }

    @Test
    void aThreadedProcessThroughPreDumpsAndAnIncrementalCheckpoint() {
        Target t = startReady("threads");
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
        chainAndRestore(t, "2 threads");
    }

    @Test
    void aParentDirectoryThatNowHoldsAnotherImageIsRejectedByName() {
        Target t = startReady("rewriter", "8", "1");
        preDump(t, tmp.resolve("pre"), null);
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("final").toString(),
                "--prev-images-dir", "../pre", "--track-mem");
        assertThat(dump.exitCode()).as(dump + "\n" + t.log()).isZero();
        t.awaitPidFree(PID_FREE);

        Target other = startReady("rewriter", "8", "1");
        preDump(other, tmp.resolve("pre"), null); // the parent directory now holds another process's pre-dump
        CryoCli.Result restore = CryoCli.run("restore", "-D", tmp.resolve("final").toString(), "-d");
        assertThat(restore.exitCode()).isNotZero();
        assertThat(restore.err()).contains("builds on the parent image " + tmp.resolve("pre"))
                .contains("now holds another image");
        assertThat(Procs.exists(t.pid())).as("nothing was restored").isFalse();
    }

    @Test
    void aParentImageOfAnotherProcessIsRefusedAndItsTrackingGoesOn() {
        Target tracked = startReady("rewriter", "8", "1");
        Target other = startReady("rewriter", "8", "1");
        long[] pre = preDump(tracked, tmp.resolve("pre"), null);
        CryoCli.Result r = CryoCli.run("checkpoint", pid(other), "-D", tmp.resolve("final").toString(),
                "--parent", tmp.resolve("pre").toString());
        assertThat(r.exitCode()).isNotZero();
        assertThat(r.err()).contains("is of process " + tracked.pid() + ", not of " + other.pid());
        assertThat(other.isAlive()).isTrue();
        assertThat(Procs.exists(pre[1]) && Procs.state(pre[1]) != 'Z').as("the keeper goes on").isTrue();
        assertThat(maps(tracked)).contains(" uw");
    }

    @Test
    void aFullCheckpointOfAPreDumpedProcessEndsItsKeeper() {
        Target t = startReady("rewriter", "8", "1");
        long[] pre = preDump(t, tmp.resolve("pre"), null);
        assertThat(Procs.cmdline(pre[1])).as("the keeper names whom it tracks").containsExactly("cryo-tracker", pid(t));
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("full").toString(), "-R");
        assertThat(dump.exitCode()).as(dump + "\n" + t.log()).isZero();
        CryoCli.reap(pre[1]);
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (maps(t).contains(" uw") && System.nanoTime() < deadline) {
            pause(20);
        }
        assertThat(maps(t)).as("no tracking left once its keeper is gone").doesNotContain(" uw");
        assertThat(Procs.exists(pre[1]) && !Procs.cmdline(pre[1]).isEmpty()).as("the keeper ended").isFalse();
        assertThat(t.check(CHECK)).as(t.log()).isEqualTo("PASS");
    }

    @Test
    void withItsKeeperGoneTheNextDumpCopiesEverythingAndStaysRight() {
        Target t = startReady("rewriter", "8", "1");
        long[] pre = preDump(t, tmp.resolve("pre"), null);
        assertThat(maps(t)).contains(" uw");
        runKill(pre[1]);
        CryoCli.reap(pre[1]);
        pause(100);
        assertThat(maps(t)).as("the tracking ended with its last userfaultfd").doesNotContain(" uw");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(t), "-D", tmp.resolve("final").toString(),
                "--parent", tmp.resolve("pre").toString());
        assertThat(dump.exitCode()).as(dump + "\n" + t.log()).isZero();
        assertThat(dump.out()).contains("Incremental: 0 pages");
        t.awaitPidFree(PID_FREE);
        CryoCli.Result restore = CryoCli.run("restore", "-D", tmp.resolve("final").toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        assertThat(t.check(CHECK)).as("after restore: " + t.log()).isEqualTo("PASS");
    }

    @Test
    void anAreaTheApplicationTracksWithItsOwnUserfaultfdIsLeftAloneAndReported() {
        Target t = startReady("rewriter", Map.of("REWRITER_OWN_UFFD", "1"), "8", "1");
        assertThat(t.check(CHECK)).as("before: " + t.log()).isEqualTo("PASS");
        CryoCli.Result r = CryoCli.run("pre-dump", pid(t), "-D", tmp.resolve("pre1").toString());
        assertThat(r.exitCode()).as(r + "\n" + t.log()).isZero();
        Matcher m = PRE_DUMPED.matcher(r.out());
        assertThat(m.find()).isTrue();
        keepers.add(Long.parseLong(m.group(2)));
        assertThat(r.out()).contains("Not tracked (registered with the application's own userfaultfd");
        assertThat(t.check(CHECK)).as("the application's own tracking after a pre-dump: " + t.log()).isEqualTo("PASS");
        preDump(t, tmp.resolve("pre2"), tmp.resolve("pre1"));
        assertThat(t.check(CHECK)).as("after a second pre-dump: " + t.log()).isEqualTo("PASS");
        assertThat(CryoCli.run("inspect", tmp.resolve("pre2").toString()).out()).contains("[application's userfaultfd]");
    }

    /**
     * A pre-dump refused after it armed the tracking (the process maps a deleted file privately,
     * which the memory part refuses once it looks at that area): the process runs on as it was,
     * with no area left registered with a userfaultfd, no keeper, and no image.
     */
    @Test
    void aPreDumpThatFailsLeavesNoTrackingNoKeeperAndNoImage() throws Exception {
        Path ready = tmp.resolve("ready");
        String script = "import mmap, os, time\n"
                + "f = open('" + tmp.resolve("doomed") + "', 'w+b'); f.write(b'x' * 65536); f.flush()\n"
                + "m = mmap.mmap(f.fileno(), 65536, mmap.MAP_PRIVATE); m[0:1] = b'y'; os.unlink(f.name)\n"
                + "b = bytearray(32 << 20)\n"
                + "open('" + ready + "', 'w').write('ready')\n"
                + "while True: time.sleep(0.01)\n";
        Target t = start("python", List.of("python3", "-c", script));
        long deadline = System.nanoTime() + READY.toNanos();
        while (!Files.exists(ready) && System.nanoTime() < deadline) {
            pause(20);
        }
        assertThat(Files.exists(ready)).as("python target ready: " + t.log()).isTrue();
        Procs.Snapshot before = Procs.snapshot(t.pid());
        List<Long> keepersBefore = Procs.withCmdline(List.of("cryo-tracker"));

        CryoCli.Result r = CryoCli.run("pre-dump", pid(t), "-D", tmp.resolve("pre").toString());
        assertThat(r.exitCode()).as(r.toString()).isNotZero();
        assertThat(r.err()).contains("deleted");
        assertThat(maps(t)).as("no area left registered with a userfaultfd").doesNotContain(" uw");
        assertThat(Procs.withCmdline(List.of("cryo-tracker"))).as("no keeper left").isEqualTo(keepersBefore);
        assertThat(tmp.resolve("pre/inventory.img")).doesNotExist();
        assertThat(Procs.snapshot(t.pid())).as("the process as it was").isEqualTo(before);
        assertThat(t.isAlive()).isTrue();
    }

    private static String maps(Target t) {
        try {
            return Files.readString(Path.of("/proc", pid(t), "smaps"));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
