package dev.cryo.image;

/**
 * Layout of a metadata image file:
 * <pre>
 *  0       4       6       8
 *  +-------+-------+-------+------------------------+
 *  | magic | kind  |version| protobuf message ...   |
 *  +-------+-------+-------+------------------------+
 * </pre>
 * magic is "CRYO" (big-endian u32), kind is {@link ImageKind#code()} and version is
 * {@link #VERSION}, both big-endian u16. Page files ({@link ImageKind#raw()}) have no header:
 * they hold whole pages only, so offsets in them stay page-aligned.
 */
public final class ImageFormat {
    public static final int MAGIC = 0x4352594f; // "CRYO"
    public static final int MAGIC_OFFSET = 0;
    public static final int KIND_OFFSET = MAGIC_OFFSET + 4;
    public static final int VERSION_OFFSET = KIND_OFFSET + 2;
    public static final int HEADER_SIZE = VERSION_OFFSET + 2;
    /** Bumped whenever a schema changes in a way an older reader would misread. */
    public static final int VERSION = 1;

    private ImageFormat() {
    }
}
