package dev.cryo.image;

import com.google.protobuf.Message;
import dev.cryo.image.proto.FileChecksum;
import dev.cryo.image.proto.Inventory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * Writes an image directory: metadata files, page files, and last the inventory with their
 * checksums. Everything is first written into a staging directory inside it and moved into place
 * only by {@link #finish}, so a checkpoint that fails halfway leaves an earlier image there
 * untouched ({@link #abort} just drops the staging directory).
 */
public final class ImageWriter {
    /** The outer class of every .proto file of the image (src/main/proto): checked by ImageSchemasTest. */
    static final List<Class<?>> SCHEMAS = List.of(dev.cryo.image.proto.Cgroup.class, dev.cryo.image.proto.Container.class,
            dev.cryo.image.proto.Core.class, dev.cryo.image.proto.Files.class, dev.cryo.image.proto.Inet.class,
            dev.cryo.image.proto.InventoryOuterClass.class, dev.cryo.image.proto.Mm.class, dev.cryo.image.proto.Pipes.class,
            dev.cryo.image.proto.Pstree.class, dev.cryo.image.proto.Seccomp.class, dev.cryo.image.proto.Signal.class,
            dev.cryo.image.proto.Timer.class, dev.cryo.image.proto.Track.class, dev.cryo.image.proto.Unix.class);

    /**
     * Builds every image schema now: protobuf parses a file's descriptor and sets up its message
     * classes the first time one is used, 0.4-3 ms per file, ~10 ms in all on a cold JVM. A
     * checkpoint calls this before the freeze, so that the processes do not wait for it.
     */
    public static void prepareSchemas() {
        for (Class<?> schema : SCHEMAS) {
            try {
                schema.getMethod("getDescriptor").invoke(null);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("image schema " + schema.getName() + " has no descriptor", e);
            }
        }
        dev.cryo.image.proto.TaskCore.newBuilder().setPid(1).build().toByteArray(); // the serializing code's first use
    }

    private final Path target;
    private final Path dir;
    private final List<FileChecksum> files = new ArrayList<>();

    /**
     * Made when the writer is, before anything is frozen: the first random UUID of a JVM sets up
     * SecureRandom, milliseconds that {@link #finish} would otherwise add to the time frozen.
     */
    private final String imageId = java.util.UUID.randomUUID().toString();

    public ImageWriter(Path target) {
        this.target = target;
        this.dir = target.resolve(".cryo-partial-" + ProcessHandle.current().pid());
        try {
            Files.createDirectories(target);
            abort();
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new ImageException("cannot create image directory " + target + ": " + e.getMessage(), e);
        }
    }

    /** The image directory (where the files end up). */
    public Path dir() {
        return target;
    }

    /** Drops whatever was written; an image already in the directory stays as it was. */
    public void abort() {
        if (!Files.exists(dir)) {
            return;
        }
        try (java.util.stream.Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) {
                Files.deleteIfExists(p);
            }
            Files.deleteIfExists(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("removing the partial image " + dir, e);
        }
    }

    public void write(ImageKind kind, int pid, Message message) {
        byte[] body = message.toByteArray();
        ByteBuffer buf = ByteBuffer.allocate(ImageFormat.HEADER_SIZE + body.length);
        buf.putInt(ImageFormat.MAGIC).putShort((short) kind.code()).putShort((short) ImageFormat.VERSION).put(body);
        String name = kind.fileName(pid);
        try {
            Files.write(dir.resolve(name), buf.array());
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + dir.resolve(name), e);
        }
        CRC32C crc = new CRC32C();
        crc.update(buf.array());
        record(name, buf.array().length, crc.getValue());
    }

    /** A page file opened for streaming writes; its checksum is recorded on close. */
    public PageFileWriter pages(int pid) {
        return pages(ImageKind.PAGES, pid);
    }

    /** A raw page file of {@code kind} ({@link ImageKind#raw()}) opened for streaming writes. */
    public PageFileWriter pages(ImageKind kind, int pid) {
        String name = kind.fileName(pid);
        try {
            FileChannel ch = FileChannel.open(dir.resolve(name), StandardOpenOption.CREATE,
                    StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
            return new PageFileWriter(dir.resolve(name).toAbsolutePath(), ch, (size, crc) -> record(name, size, crc));
        } catch (IOException e) {
            throw new UncheckedIOException("creating " + dir.resolve(name), e);
        }
    }

    private synchronized void record(String name, long size, long crc) {
        files.add(FileChecksum.newBuilder().setName(name).setSize(size).setCrc32C((int) crc).build());
    }

    /**
     * Writes inventory.img, then replaces the image in the directory with the new one: the old
     * inventory goes first and the new one comes last, so at no moment does an inventory vouch
     * for a mix of files. Other files in the directory (a log) are left alone.
     */
    public void finish(Inventory.Builder inventory) {
        inventory.setFormatVersion(ImageFormat.VERSION).clearFiles().addAllFiles(files);
        if (inventory.getImageId().isEmpty()) {
            inventory.setImageId(imageId);
        }
        byte[] body = inventory.build().toByteArray();
        ByteBuffer buf = ByteBuffer.allocate(ImageFormat.HEADER_SIZE + body.length);
        buf.putInt(ImageFormat.MAGIC).putShort((short) ImageKind.INVENTORY.code())
                .putShort((short) ImageFormat.VERSION).put(body);
        String inventoryName = ImageKind.INVENTORY.fileName(0);
        try {
            Files.write(dir.resolve(inventoryName), buf.array());
            Files.deleteIfExists(target.resolve(inventoryName));
            try (java.util.stream.Stream<Path> old = Files.list(target)) {
                for (Path p : old.toList()) {
                    if (p.getFileName().toString().endsWith(".img")) {
                        Files.delete(p);
                    }
                }
            }
            for (FileChecksum f : files) {
                Files.move(dir.resolve(f.getName()), target.resolve(f.getName()), java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            }
            Files.move(dir.resolve(inventoryName), target.resolve(inventoryName), java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            Files.delete(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("moving the new image into " + target, e);
        }
    }
}
