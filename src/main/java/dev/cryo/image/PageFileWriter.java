package dev.cryo.image;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.util.zip.CRC32C;

/** Streams page data to a pages file from off-heap buffers, checksumming as it goes. */
public final class PageFileWriter implements AutoCloseable {
    interface OnClose {
        void done(long size, long crc);
    }

    private final java.nio.file.Path path;
    private final FileChannel channel;
    private final OnClose onClose;
    private final CRC32C crc = new CRC32C();
    private long size;

    PageFileWriter(java.nio.file.Path path, FileChannel channel, OnClose onClose) {
        this.path = path;
        this.channel = channel;
        this.onClose = onClose;
    }

    /** The file, absolute: where another process may open it to write the pages itself. */
    public java.nio.file.Path path() {
        return path;
    }

    /**
     * Counts {@code bytes} that another process wrote into the file at the current end (see
     * {@link #path}), after they were given to {@link #checksum}.
     */
    public void writtenElsewhere(long bytes) {
        size += bytes;
    }

    /** Appends the buffer's remaining bytes (a direct buffer over the page data). */
    public void write(ByteBuffer data) {
        checksum(data);
        writeChecksummed(data);
    }

    /**
     * Adds the buffer's remaining bytes to the file's checksum, without writing them: with
     * {@link #writeChecksummed}, the checksum can be computed on one thread and the write done on
     * another, as long as both see the buffers in the same order.
     */
    public void checksum(ByteBuffer data) {
        crc.update(data.duplicate());
    }

    /** Appends bytes already given to {@link #checksum}. */
    public void writeChecksummed(ByteBuffer data) {
        try {
            while (data.hasRemaining()) {
                size += channel.write(data);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("writing page data", e);
        }
    }

    public long size() {
        return size;
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException e) {
            throw new UncheckedIOException("closing page file", e);
        }
        onClose.done(size, crc.getValue());
    }
}
