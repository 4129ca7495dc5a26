package dev.cryo.e2e;

import dev.cryo.image.ImageFormat;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.FilesImage;
import dev.cryo.testing.CryoCli;
import dev.cryo.testing.ImageFiles;
import dev.cryo.testing.Target;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Restores that must fail, and leave nothing behind when they do: an image whose PID is taken,
 * and images damaged in every way a disk, a copy or a person can damage them. Each is refused
 * with one line naming the file and the problem; no process with the image's PID appears, no
 * restore stub is left among this JVM's children; and the undamaged image still restores into a
 * process whose own check passes, so the failed attempt left nothing in the way.
 *
 * <p>One checkpoint of the counter target serves every damage case: each test damages a copy.
 */
class RestoreFailureTest {
    private static final Duration READY = Duration.ofSeconds(10);
    private static final Duration CHECK = Duration.ofSeconds(5);
    private static final Duration PID_FREE = Duration.ofSeconds(5);

    @TempDir
    static Path shared;
    private static Target counter;
    private static Path pristine;
    private static int pid;

    @TempDir
    Path tmp;
    private Path image;
    private List<Long> childrenBefore;

    @BeforeAll
    static void checkpointOnce() {
        Assumptions.assumeTrue("root".equals(System.getProperty("user.name")), "checkpoint/restore tests need root");
        counter = Target.startProgram("counter", shared.resolve("counter-state"));
        counter.awaitReady(READY);
        pid = (int) counter.pid();
        pristine = shared.resolve("pristine");
        CryoCli.Result dump = CryoCli.run("checkpoint", Integer.toString(pid), "-D", pristine.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        counter.awaitPidFree(PID_FREE);
    }

    @AfterAll
    static void killCounter() {
        if (counter != null) {
            counter.close();
            CryoCli.reap(counter.pid());
        }
    }

    @BeforeEach
    void copyImage() throws IOException {
        image = tmp.resolve("img");
        Files.createDirectories(image);
        try (Stream<Path> s = Files.list(pristine)) {
            for (Path f : s.toList()) {
                Files.copy(f, image.resolve(f.getFileName()));
            }
        }
        childrenBefore = Procs.childrenOfThisJvm();
    }

    @AfterEach
    void killRestored() {
        if (counter != null && Procs.exists(pid)) {
            counter.close();
            CryoCli.reap(pid);
        }
    }

    /**
     * Restores {@code dir}, which must fail with one error line holding each of {@code words};
     * then checks nothing was left behind and the undamaged image still restores.
     */
    private void assertRejected(Path dir, String... words) {
        CryoCli.Result r = CryoCli.run("restore", "-D", dir.toString(), "-d");
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(1);
        assertThat(r.err()).as(r.toString()).startsWith("Error: ");
        assertThat(r.err().lines().count()).as("one line, no stack trace: " + r).isEqualTo(1);
        for (String w : words) {
            assertThat(r.err()).as(r.toString()).contains(w);
        }
        assertThat(r.out()).as("no PID printed: " + r).isEmpty();
        assertThat(Procs.exists(pid)).as("no process with the image's PID " + pid + " appeared").isFalse();
        // a subset: a target reaper from before may have exited meanwhile; nothing new may remain
        assertThat(Procs.childrenOfThisJvm()).as("no restore stub or half-built process left").isSubsetOf(childrenBefore);

        CryoCli.Result ok = CryoCli.run("restore", "-D", pristine.toString(), "-d");
        assertThat(ok.exitCode()).as("the undamaged image still restores: " + ok).isZero();
        assertThat(ok.out().strip()).isEqualTo(Integer.toString(pid));
        assertThat(counter.check(CHECK)).as(counter.log()).isEqualTo("PASS");
    }

    private String file(ImageKind kind) {
        return kind.fileName(pid);
    }

    @Test
    void pidInUse() throws IOException {
        // a fresh counter, saved with --leave-running, so its PID is taken when the restore comes
        Path state = tmp.resolve("running-state");
        Target running = Target.startProgram("counter", state);
        try {
            running.awaitReady(READY);
            List<String> cmdline = Procs.cmdline(running.pid());
            Path images = tmp.resolve("running-img");
            CryoCli.Result dump = CryoCli.run("checkpoint", Long.toString(running.pid()), "-D", images.toString(),
                    "--leave-running");
            assertThat(dump.exitCode()).as(dump.toString()).isZero();
            assertThat(dump.out()).contains("left running");
            assertThat(running.isAlive()).isTrue();
            List<Long> children = Procs.childrenOfThisJvm();

            CryoCli.Result r = CryoCli.run("restore", "-D", images.toString(), "-d");
            assertThat(r.exitCode()).as(r.toString()).isEqualTo(1);
            assertThat(r.err()).as(r.toString()).startsWith("Error: ")
                    .contains("PID " + running.pid() + " is in use");
            assertThat(r.out()).isEmpty();
            assertThat(Procs.withCmdline(cmdline)).as("only the original runs " + cmdline)
                    .containsExactly(running.pid());
            assertThat(Procs.childrenOfThisJvm()).as("no restore stub or new process").isSubsetOf(children);
            assertThat(Procs.status(running.pid()).get("TracerPid")).isEqualTo("0");
            assertThat(running.check(CHECK)).as("the original: " + running.log()).isEqualTo("PASS");
        } finally {
            running.close();
        }
    }

    @Test
    void flippedByteInPages() throws IOException {
        Path pages = image.resolve(file(ImageKind.PAGES));
        long size = Files.size(pages);
        assertThat(size).isGreaterThan(4096);
        try (RandomAccessFile f = new RandomAccessFile(pages.toFile(), "rw")) {
            f.seek(size / 2);
            int b = f.read();
            f.seek(size / 2);
            f.write(b ^ 0x01);
        }
        assertRejected(image, file(ImageKind.PAGES), "damaged", "checksum");
    }

    @Test
    void truncatedMm() throws IOException {
        truncate(image.resolve(file(ImageKind.MM)), 3);
        assertRejected(image, file(ImageKind.MM), "truncated");
    }

    @Test
    void truncatedPages() throws IOException {
        truncate(image.resolve(file(ImageKind.PAGES)), 5);
        assertRejected(image, file(ImageKind.PAGES), "truncated");
    }

    @Test
    void grownCore() throws IOException {
        Files.write(image.resolve(file(ImageKind.CORE)), new byte[] {0}, java.nio.file.StandardOpenOption.APPEND);
        assertRejected(image, file(ImageKind.CORE), "grown");
    }

    @Test
    void randomBytesInCoreOfTheSameSize() throws IOException {
        Path core = image.resolve(file(ImageKind.CORE));
        Files.write(core, random((int) Files.size(core)));
        assertRejected(image, file(ImageKind.CORE), "damaged", "checksum");
    }

    @Test
    void garbageInventory() throws IOException {
        Files.write(image.resolve("inventory.img"), random(300));
        assertRejected(image, "inventory.img", "not a Cryo image");
    }

    @Test
    void inventoryOfAnotherFormatVersion() throws IOException {
        Path inv = image.resolve("inventory.img");
        byte[] bytes = Files.readAllBytes(inv);
        ByteBuffer.wrap(bytes).putShort(ImageFormat.VERSION_OFFSET, (short) (ImageFormat.VERSION + 1));
        Files.write(inv, bytes);
        assertRejected(image, "inventory.img", "version " + (ImageFormat.VERSION + 1));
    }

    @Test
    void coreWithForeignMagicAndMatchingChecksum() throws IOException {
        // The checksum in the inventory is fixed up, so only the file's own header gives it away.
        Path core = image.resolve(file(ImageKind.CORE));
        byte[] bytes = Files.readAllBytes(core);
        System.arraycopy("ELF!".getBytes(), 0, bytes, ImageFormat.MAGIC_OFFSET, 4);
        ImageFiles.replaceListed(core, bytes);
        assertRejected(image, file(ImageKind.CORE), "not a Cryo image file");
    }

    @Test
    void coreWithUnreadableMetadataAndMatchingChecksum() throws IOException {
        Path core = image.resolve(file(ImageKind.CORE));
        byte[] bytes = Files.readAllBytes(core);
        java.util.Arrays.fill(bytes, ImageFormat.HEADER_SIZE, bytes.length, (byte) 0xff);
        ImageFiles.replaceListed(core, bytes);
        assertRejected(image, file(ImageKind.CORE), "damaged");
    }

    @Test
    void failureWhileBuildingTheProcessLeavesNothing() throws IOException {
        // An image that passes every check up front (checksums fixed up, every path exists) but
        // cannot be rebuilt: the counter's fd now names a directory, to be opened read-write.
        // The restore fails only once the process with the saved PID exists.
        Path files = image.resolve(file(ImageKind.FILES));
        FilesImage.Builder b = ImageFiles.read(files, FilesImage.parser()).toBuilder();
        int fd = -1;
        for (int i = 0; i < b.getFdsCount(); i++) {
            if (b.getFds(i).getPath().endsWith("/count")) {
                fd = b.getFds(i).getFd();
                b.setFds(i, b.getFds(i).toBuilder().setPath(tmp.toString()));
            }
        }
        assertThat(fd).as("the counter's fd in the image").isPositive();
        ImageFiles.rewrite(files, b.build());
        assertRejected(image, "EISDIR");
    }

    @Test
    void missingInventory() throws IOException {
        Files.delete(image.resolve("inventory.img"));
        assertRejected(image, image.toString(), "not a Cryo image");
    }

    @Test
    void missingListedFile() throws IOException {
        Files.delete(image.resolve(file(ImageKind.FILES)));
        assertRejected(image, file(ImageKind.FILES), "missing");
    }

    @Test
    void imageDirectoryDoesNotExist() {
        Path nowhere = tmp.resolve("no-such-image");
        assertRejected(nowhere, nowhere.toString(), "does not exist");
        assertThat(nowhere).doesNotExist();
    }

    private static void truncate(Path file, int bytes) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(f.length() - bytes);
        }
    }

    private static byte[] random(int size) {
        byte[] b = new byte[size];
        new Random(20260101L).nextBytes(b);
        return b;
    }
}
