package dev.cryo.sys;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Kernel structs built or read byte by byte, in x86_64's byte order. */
public final class Structs {
    private Structs() {
    }

    /** {@code bytes} as a little-endian buffer, to read a struct from or write one into. */
    public static ByteBuffer le(byte[] bytes) {
        return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    }
}
