package dev.cryo.testing;

import com.google.protobuf.ByteString;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import dev.cryo.image.ImageFormat;
import dev.cryo.image.proto.FileChecksum;
import dev.cryo.image.proto.Inventory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.CRC32C;

/**
 * Changes the files of an image as a careful person could: the content and also its size and
 * checksum in the inventory, so that the image passes every check up front and only the restore
 * itself can find what is wrong.
 */
public final class ImageFiles {
    private ImageFiles() {
    }

    /** The message a metadata file of the image holds (after its header). */
    public static <T extends Message> T read(Path file, Parser<T> parser) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        return parser.parseFrom(ByteString.copyFrom(bytes, ImageFormat.HEADER_SIZE, bytes.length - ImageFormat.HEADER_SIZE));
    }

    /** Writes {@code message} into metadata file {@code file} (keeping its header) and lists it so in the inventory. */
    public static void rewrite(Path file, Message message) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        byte[] body = message.toByteArray();
        replaceListed(file, ByteBuffer.allocate(ImageFormat.HEADER_SIZE + body.length)
                .put(bytes, 0, ImageFormat.HEADER_SIZE).put(body).array());
    }

    /** Writes new content to a file of the image and updates its size and checksum in the inventory. */
    public static void replaceListed(Path file, byte[] content) throws IOException {
        Files.write(file, content);
        CRC32C crc = new CRC32C();
        crc.update(content);
        Path invFile = file.resolveSibling("inventory.img");
        Inventory.Builder b = read(invFile, Inventory.parser()).toBuilder();
        String name = file.getFileName().toString();
        boolean found = false;
        for (int i = 0; i < b.getFilesCount(); i++) {
            if (b.getFiles(i).getName().equals(name)) {
                b.setFiles(i, FileChecksum.newBuilder().setName(name).setSize(content.length)
                        .setCrc32C((int) crc.getValue()));
                found = true;
            }
        }
        if (!found) {
            throw new IllegalArgumentException(name + " is not listed in the inventory of " + file.getParent());
        }
        byte[] inv = Files.readAllBytes(invFile);
        byte[] body = b.build().toByteArray();
        Files.write(invFile, ByteBuffer.allocate(ImageFormat.HEADER_SIZE + body.length)
                .put(inv, 0, ImageFormat.HEADER_SIZE).put(body).array());
    }
}
