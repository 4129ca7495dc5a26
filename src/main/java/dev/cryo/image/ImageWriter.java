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

/** Writes an image directory: metadata files, page files, and last the inventory with their checksums. */
public final class ImageWriter {
    private final Path dir;
    private final List<FileChecksum> files = new ArrayList<>();

    public ImageWriter(Path dir) {
        this.dir = dir;
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new ImageException("cannot create image directory " + dir + ": " + e.getMessage(), e);
        }
    }

    public Path dir() {
        return dir;
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
        String name = ImageKind.PAGES.fileName(pid);
        try {
            FileChannel ch = FileChannel.open(dir.resolve(name), StandardOpenOption.CREATE,
                    StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
            return new PageFileWriter(ch, (size, crc) -> record(name, size, crc));
        } catch (IOException e) {
            throw new UncheckedIOException("creating " + dir.resolve(name), e);
        }
    }

    private synchronized void record(String name, long size, long crc) {
        files.add(FileChecksum.newBuilder().setName(name).setSize(size).setCrc32C((int) crc).build());
    }

    /** Writes inventory.img last: an image without it is incomplete and will not be restored. */
    public void finish(Inventory.Builder inventory) {
        inventory.setFormatVersion(ImageFormat.VERSION).clearFiles().addAllFiles(files);
        byte[] body = inventory.build().toByteArray();
        ByteBuffer buf = ByteBuffer.allocate(ImageFormat.HEADER_SIZE + body.length);
        buf.putInt(ImageFormat.MAGIC).putShort((short) ImageKind.INVENTORY.code())
                .putShort((short) ImageFormat.VERSION).put(body);
        Path tmp = dir.resolve(ImageKind.INVENTORY.fileName(0) + ".tmp");
        try {
            Files.write(tmp, buf.array());
            Files.move(tmp, dir.resolve(ImageKind.INVENTORY.fileName(0)), java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("writing inventory in " + dir, e);
        }
    }
}
