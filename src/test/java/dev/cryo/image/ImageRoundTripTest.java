package dev.cryo.image;

import dev.cryo.image.proto.FileChecksum;
import dev.cryo.image.proto.Inventory;
import dev.cryo.image.proto.MmImage;
import dev.cryo.image.proto.TaskCore;
import dev.cryo.image.proto.VmaEntry;
import dev.cryo.image.proto.VmaKind;
import dev.cryo.image.proto.X86Regs;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * An image written by {@link ImageWriter} reads back the same through {@link ImageReader}; and
 * each way of damaging it is rejected with an {@link ImageException} naming the file and the
 * problem.
 */
class ImageRoundTripTest {
    private static final int PID = 4242;
    private static final int PAGE = 4096;

    @TempDir
    Path dir;

    private final TaskCore core = TaskCore.newBuilder().setPid(PID).setPpid(1)
            .addThreads(dev.cryo.image.proto.ThreadCore.newBuilder().setTid(PID).setComm("round trip")
                    .setRegs(X86Regs.newBuilder().setRip(0x401000).setRsp(0x7ffd7297cff0L).setRax(-516).setOrigRax(-1))
                    .setXstate(com.google.protobuf.ByteString.copyFrom(new byte[] {1, 2, 3})))
            .build();
    private final MmImage mm = MmImage.newBuilder().setTotalPages(2).setExe("/bin/true")
            .addVmas(VmaEntry.newBuilder().setStart(0x10000).setEnd(0x12000).setProt(3).setKind(VmaKind.PRIVATE_ANON)
                    .addVmFlags("rd").addVmFlags("wr"))
            .build();
    private byte[] pages;

    @BeforeEach
    void writeImage() {
        pages = new byte[2 * PAGE];
        for (int i = 0; i < pages.length; i++) {
            pages[i] = (byte) (i * 31 + (i >> 12));
        }
        ImageWriter w = new ImageWriter(dir);
        w.write(ImageKind.CORE, PID, core);
        w.write(ImageKind.MM, PID, mm);
        try (PageFileWriter p = w.pages(PID)) {
            p.write(ByteBuffer.wrap(pages, 0, PAGE));
            ByteBuffer direct = ByteBuffer.allocateDirect(PAGE);
            direct.put(pages, PAGE, PAGE).flip();
            p.write(direct);
            assertThat(p.size()).isEqualTo(2L * PAGE);
        }
        w.finish(Inventory.newBuilder().setRootPid(PID).setToolVersion("test").setPageSize(PAGE));
    }

    @Test
    void readsBackWhatWasWritten() throws IOException {
        ImageReader r = ImageReader.open(dir, true);
        Inventory inv = r.inventory();
        assertThat(inv.getRootPid()).isEqualTo(PID);
        assertThat(inv.getFormatVersion()).isEqualTo(ImageFormat.VERSION);
        assertThat(inv.getFilesList()).extracting(FileChecksum::getName)
                .containsExactlyInAnyOrder("core-4242.img", "mm-4242.img", "pages-4242.img");
        assertThat(inv.getFilesList()).filteredOn(f -> f.getName().equals("pages-4242.img"))
                .singleElement().extracting(FileChecksum::getSize).isEqualTo(2L * PAGE);
        assertThat(r.read(ImageKind.CORE, PID, TaskCore.parser())).isEqualTo(core);
        assertThat(r.read(ImageKind.MM, PID, MmImage.parser())).isEqualTo(mm);
        assertThat(r.has(ImageKind.PAGES, PID)).isTrue();
        assertThat(r.has(ImageKind.FILES, PID)).isFalse();
        assertThat(Files.readAllBytes(r.path(ImageKind.PAGES, PID))).isEqualTo(pages);
        try (Stream<Path> s = Files.list(dir)) {
            assertThat(s.map(p -> p.getFileName().toString()).sorted().toList()).as("no temporary file left")
                    .containsExactly("core-4242.img", "inventory.img", "mm-4242.img", "pages-4242.img");
        }
    }

    @Test
    void metadataFilesStartWithTheHeader() throws IOException {
        ByteBuffer head = ByteBuffer.wrap(Files.readAllBytes(dir.resolve("mm-4242.img")));
        assertThat(head.getInt(ImageFormat.MAGIC_OFFSET)).isEqualTo(0x4352594f);
        assertThat(new String(Files.readAllBytes(dir.resolve("mm-4242.img")), 0, 4)).isEqualTo("CRYO");
        assertThat(head.getShort(ImageFormat.KIND_OFFSET)).isEqualTo((short) ImageKind.MM.code());
        assertThat(head.getShort(ImageFormat.VERSION_OFFSET)).isEqualTo((short) ImageFormat.VERSION);
        assertThat(Files.size(dir.resolve("pages-4242.img"))).as("page files have no header").isEqualTo(2L * PAGE);
    }

    @Test
    void flippedBitInPagesIsAChecksumMismatch() throws IOException {
        flip(dir.resolve("pages-4242.img"), PAGE + 17);
        assertRejected(true, "pages-4242.img", "damaged (checksum mismatch)");
        assertThat(ImageReader.open(dir, false).inventory().getRootPid()).as("inspect does not checksum").isEqualTo(PID);
    }

    @Test
    void flippedBitInMetadataIsAChecksumMismatch() throws IOException {
        flip(dir.resolve("core-4242.img"), ImageFormat.HEADER_SIZE + 3);
        assertRejected(true, "core-4242.img", "damaged (checksum mismatch)");
    }

    @Test
    void truncatedFile() throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("pages-4242.img").toFile(), "rw")) {
            f.setLength(f.length() - 1);
        }
        assertRejected(false, "pages-4242.img", "truncated", "8191 bytes", "8192");
    }

    @Test
    void grownFile() throws IOException {
        Files.write(dir.resolve("mm-4242.img"), new byte[] {0}, StandardOpenOption.APPEND);
        assertRejected(false, "mm-4242.img", "grown");
    }

    @Test
    void missingFile() throws IOException {
        Files.delete(dir.resolve("core-4242.img"));
        assertRejected(false, "core-4242.img", "missing");
    }

    @Test
    void missingInventory() throws IOException {
        Files.delete(dir.resolve("inventory.img"));
        assertRejected(false, dir.toString(), "not a Cryo image");
    }

    @Test
    void noDirectory() {
        Path nowhere = dir.resolve("nowhere");
        assertThatThrownBy(() -> ImageReader.open(nowhere, true)).isInstanceOf(ImageException.class)
                .hasMessageContaining(nowhere.toString()).hasMessageContaining("does not exist");
    }

    @Test
    void inventoryShorterThanItsHeader() throws IOException {
        Files.write(dir.resolve("inventory.img"), new byte[] {'C', 'R', 'Y'});
        assertRejected(false, "inventory.img", "truncated");
    }

    @Test
    void inventoryWithForeignMagic() throws IOException {
        byte[] b = Files.readAllBytes(dir.resolve("inventory.img"));
        b[0] = 0x7f;
        Files.write(dir.resolve("inventory.img"), b);
        assertRejected(false, "inventory.img", "not a Cryo image file");
    }

    @Test
    void inventoryOfAnotherVersion() throws IOException {
        byte[] b = Files.readAllBytes(dir.resolve("inventory.img"));
        ByteBuffer.wrap(b).putShort(ImageFormat.VERSION_OFFSET, (short) 7);
        Files.write(dir.resolve("inventory.img"), b);
        assertRejected(false, "inventory.img", "version 7", "reads version " + ImageFormat.VERSION);
    }

    @Test
    void inventoryWithDamagedBody() throws IOException {
        byte[] b = Files.readAllBytes(dir.resolve("inventory.img"));
        java.util.Arrays.fill(b, ImageFormat.HEADER_SIZE, b.length, (byte) 0xff);
        Files.write(dir.resolve("inventory.img"), b);
        assertRejected(false, "inventory.img", "damaged metadata");
    }

    @Test
    void fileOfAnotherKindUnderTheExpectedName() throws IOException {
        ImageReader r = ImageReader.open(dir, true);
        Files.copy(dir.resolve("core-4242.img"), dir.resolve("mm-4242.img"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        assertThatThrownBy(() -> r.read(ImageKind.MM, PID, MmImage.parser())).isInstanceOf(ImageException.class)
                .hasMessageContaining("mm-4242.img").hasMessageContaining("holds CORE, expected MM");
    }

    @Test
    void fileNotInTheInventory() {
        ImageReader r = ImageReader.open(dir, true);
        assertThatThrownBy(() -> r.read(ImageKind.SIGNALS, PID, dev.cryo.image.proto.SignalsImage.parser()))
                .isInstanceOf(ImageException.class).hasMessageContaining("signals-4242.img")
                .hasMessageContaining("not listed in the inventory");
    }

    private void assertRejected(boolean checksums, String... words) {
        var thrown = assertThatThrownBy(() -> ImageReader.open(dir, checksums)).isInstanceOf(ImageException.class);
        for (String w : words) {
            thrown.hasMessageContaining(w);
        }
        if (!checksums) { // what is caught without checksums is caught with them as well
            var again = assertThatThrownBy(() -> ImageReader.open(dir, true)).isInstanceOf(ImageException.class);
            for (String w : words) {
                again.hasMessageContaining(w);
            }
        }
    }

    private static void flip(Path file, long at) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.seek(at);
            int b = f.read();
            f.seek(at);
            f.write(b ^ 0x10);
        }
    }
}
