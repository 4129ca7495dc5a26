package dev.cryo.e2e;

import dev.cryo.testing.CryoCli;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A parent with 128 MiB and 8 forked children that only read it: the tree must not come back as
 * nine private copies. Memory in use is measured as the sum of Pss (shared pages counted once
 * in all) before the checkpoint and after the restore.
 */
class CopyOnWriteTest extends TargetTest {
    private final List<Long> tree = new ArrayList<>();

    /** Runs before the base class kills the root process. */
    @AfterEach
    void killTree() throws Exception {
        for (long pid : tree) {
            new ProcessBuilder("kill", "-KILL", Long.toString(pid)).start().waitFor();
        }
    }

    @Test
    void forkedChildrenStillShareTheirParentsMemoryAfterRestore() throws Exception {
        Target target = startProgram("cow", "128", "8");
        target.awaitReady(Duration.ofSeconds(20)); // longer than READY: 128 MiB and 8 children to set up
        tree.addAll(TreeTest.describe(target.pid()).keySet());
        assertThat(tree).hasSize(9);
        long before = pssKib(tree);

        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", pid(target), "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        long imageBytes;
        try (var files = Files.list(images)) {
            imageBytes = files.mapToLong(p -> p.toFile().length()).sum();
        }
        target.awaitPidFree(PID_FREE);
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        long after = pssKib(tree);
        System.out.printf("copy-on-write tree of 9: Pss %d MiB before checkpoint, %d MiB after restore; image %d MiB%n",
                before / 1024, after / 1024, imageBytes >> 20);

        assertThat(target.check(Duration.ofSeconds(10))).as(target.log()).isEqualTo("PASS");
        assertThat(imageBytes).as("shared pages are saved once").isLessThan(2L * 128 << 20);
        assertThat(after).as("restored tree's memory (Pss, KiB) against %d KiB before", before)
                .isLessThan(before + before / 4);
    }

    private static long pssKib(List<Long> pids) throws IOException {
        long total = 0;
        for (long pid : pids) {
            for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "smaps_rollup"))) {
                if (line.startsWith("Pss:")) {
                    total += Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        }
        return total;
    }
}
