package dev.cryo.image;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import dev.cryo.image.proto.FileChecksum;
import dev.cryo.image.proto.Inventory;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * Opens an image directory. {@link #open} reads the inventory and checks every file it lists
 * (present, same size, same CRC-32C) before anything else reads from the image, so a damaged or
 * foreign image is rejected up front with the file and the problem named.
 */
public final class ImageReader {
    /**
     * Checksums are computed over mappings of at most this many bytes at a time, each unmapped
     * before the next: the mapped page cache counts in Cryo's resident set while it is mapped.
     */
    private static final long MAP_CHUNK = 16L << 20;
    private final Path dir;
    private final Inventory inventory;
    private final Map<String, FileChecksum> files = new HashMap<>();
    private final boolean verifyData;
    private ImageReader parent;
    /** Page files still being checksummed in the background ({@link #openForRestore}), or null. */
    private java.util.concurrent.CompletableFuture<Void> pageChecks;

    private ImageReader(Path dir, Inventory inventory, boolean verifyData) {
        this.dir = dir;
        this.inventory = inventory;
        this.verifyData = verifyData;
        inventory.getFilesList().forEach(f -> files.put(f.getName(), f));
    }

    /** Reads the inventory and verifies every file; {@code verifyData=false} skips checksumming (inspect). */
    public static ImageReader open(Path dir, boolean verifyData) {
        if (!Files.isDirectory(dir)) {
            throw new ImageException("image directory " + dir + " does not exist");
        }
        Path inv = dir.resolve(ImageKind.INVENTORY.fileName(0));
        if (!Files.exists(inv)) {
            throw new ImageException(dir + " is not a Cryo image (no " + inv.getFileName()
                    + "; an interrupted checkpoint leaves none)");
        }
        Inventory inventory = parse(inv, ImageKind.INVENTORY, Inventory.parser());
        ImageReader reader = new ImageReader(dir, inventory, verifyData);
        for (FileChecksum f : inventory.getFilesList()) {
            reader.verify(f, verifyData);
        }
        return reader;
    }

    /**
     * Like {@link #open}, but the raw page files, by far the largest, are checksummed on another
     * thread while the restore goes on: their pages are loaded into tasks that cannot run before
     * {@link #awaitChecks} has passed, so a damaged file is still refused before anything runs,
     * only sooner (sizes and every other file are checked at once, as by {@code open}).
     */
    public static ImageReader openForRestore(Path dir) {
        ImageReader reader = open(dir, false);
        java.util.List<FileChecksum> pages = new java.util.ArrayList<>();
        for (FileChecksum f : reader.inventory.getFilesList()) {
            if (f.getName().startsWith("pages-")) {
                pages.add(f);
            } else {
                reader.verify(f, true);
            }
        }
        reader.pageChecks = java.util.concurrent.CompletableFuture.runAsync(() -> pages.forEach(f -> reader.verify(f, true)),
                runnable -> Thread.ofPlatform().daemon().name("cryo-page-check").start(runnable));
        return reader;
    }

    /** Waits for the background checks of {@link #openForRestore}; throws what they found. */
    public void awaitChecks() {
        if (pageChecks == null) {
            return;
        }
        try {
            pageChecks.join();
        } catch (java.util.concurrent.CompletionException e) {
            throw e.getCause() instanceof RuntimeException r ? r : new ImageException("checking page files: " + e.getCause(), e);
        }
    }

    public Path dir() {
        return dir;
    }

    public Inventory inventory() {
        return inventory;
    }

    /**
     * The image this one builds on (an incremental dump's parent), opened and checked the same
     * way, or null for a full image. Its id must be the one recorded when this image was made:
     * a parent directory that now holds another image is rejected, naming it.
     */
    public ImageReader parent() {
        if (inventory.getParentImage().isEmpty()) {
            return null;
        }
        if (parent == null) {
            Path at = dir.resolve(inventory.getParentImage()).normalize();
            ImageReader r;
            try {
                r = open(at, verifyData);
            } catch (ImageException e) {
                throw new ImageException(dir + " builds on the parent image " + at + ", which cannot be used: " + e.getMessage(), e);
            }
            if (!r.inventory().getImageId().equals(inventory.getParentImageId())) {
                throw new ImageException(dir + " builds on the parent image " + at + ", but that directory now holds another"
                        + " image (id " + r.inventory().getImageId() + ", expected " + inventory.getParentImageId()
                        + "): the parent was replaced or dumped again");
            }
            parent = r;
        }
        return parent;
    }

    public <T extends Message> T read(ImageKind kind, int pid, Parser<T> parser) {
        String name = kind.fileName(pid);
        if (!files.containsKey(name)) {
            throw new ImageException(dir.resolve(name) + ": not listed in the inventory; the image is incomplete");
        }
        return parse(dir.resolve(name), kind, parser);
    }

    public boolean has(ImageKind kind, int pid) {
        return files.containsKey(kind.fileName(pid));
    }

    public Path path(ImageKind kind, int pid) {
        return dir.resolve(kind.fileName(pid));
    }

    private static <T extends Message> T parse(Path file, ImageKind kind, Parser<T> parser) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new ImageException(file + ": missing");
        } catch (IOException e) {
            throw new ImageException(file + ": cannot read: " + e.getMessage(), e);
        }
        if (bytes.length < ImageFormat.HEADER_SIZE) {
            throw new ImageException(file + ": truncated (" + bytes.length + " bytes, shorter than the header)");
        }
        ByteBuffer head = ByteBuffer.wrap(bytes);
        int magic = head.getInt(ImageFormat.MAGIC_OFFSET);
        int code = head.getShort(ImageFormat.KIND_OFFSET) & 0xffff;
        int version = head.getShort(ImageFormat.VERSION_OFFSET) & 0xffff;
        if (magic != ImageFormat.MAGIC) {
            throw new ImageException(file + ": not a Cryo image file (magic 0x" + Integer.toHexString(magic) + ")");
        }
        if (code != kind.code()) {
            ImageKind actual = ImageKind.byCode(code);
            throw new ImageException(file + ": holds " + (actual == null ? "kind " + code : actual.name())
                    + ", expected " + kind.name());
        }
        if (version != ImageFormat.VERSION) {
            throw new ImageException(file + ": image format version " + version + ", this Cryo reads version "
                    + ImageFormat.VERSION);
        }
        try {
            return parser.parseFrom(ByteBuffer.wrap(bytes, ImageFormat.HEADER_SIZE, bytes.length - ImageFormat.HEADER_SIZE));
        } catch (InvalidProtocolBufferException e) {
            throw new ImageException(file + ": damaged metadata: " + e.getMessage(), e);
        }
    }

    private void verify(FileChecksum f, boolean verifyData) {
        Path file = dir.resolve(f.getName());
        long size;
        try {
            size = Files.size(file);
        } catch (IOException e) {
            throw new ImageException(file + ": missing from the image");
        }
        if (size != f.getSize()) {
            throw new ImageException(file + ": " + (size < f.getSize() ? "truncated" : "grown") + " (" + size
                    + " bytes, the inventory says " + f.getSize() + ")");
        }
        if (!verifyData) {
            return;
        }
        CRC32C crc = new CRC32C();
        // checksummed straight from the page cache through a mapping (unmapped when the arena
        // closes): half the time of reading it into a buffer first, for a page file of a GiB
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            for (long at = 0; at < size; at += MAP_CHUNK) {
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment chunk = ch.map(FileChannel.MapMode.READ_ONLY, at, Math.min(MAP_CHUNK, size - at), arena);
                    crc.update(chunk.asByteBuffer());
                }
            }
        } catch (IOException e) {
            throw new ImageException(file + ": cannot read: " + e.getMessage(), e);
        }
        if ((int) crc.getValue() != f.getCrc32C()) {
            throw new ImageException(file + ": damaged (checksum mismatch)");
        }
    }
}
