package dev.cryo.proc;

import java.util.Set;

/**
 * One line of /proc/pid/maps with the VmFlags of its smaps entry.
 *
 * @param path     the mapped file, a pseudo name such as {@code [heap]}, or empty for anonymous memory;
 *                 a deleted file keeps the kernel's " (deleted)" suffix
 * @param vmFlags  the two-letter flags of smaps' VmFlags line (rd, wr, gd, sh, ...)
 * @param sharedKb smaps' Shared_Clean + Shared_Dirty: resident pages that more than one process
 *                 maps (after fork, copy-on-write); -1 when read from /proc/pid/maps, which lacks it
 */
public record Vma(long start, long end, String perms, long offset, String dev, long inode, String path,
                  Set<String> vmFlags, long sharedKb) {

    public long length() {
        return end - start;
    }

    public boolean readable() {
        return perms.charAt(0) == 'r';
    }

    public boolean writable() {
        return perms.charAt(1) == 'w';
    }

    public boolean executable() {
        return perms.charAt(2) == 'x';
    }

    public boolean shared() {
        return perms.charAt(3) == 's';
    }

    public boolean fileBacked() {
        return inode != 0;
    }

    public boolean pseudo() {
        return path.startsWith("[");
    }

    /** Name as map_files/ spells it: {@code start-end} in lowercase hex. */
    public String mapFilesName() {
        return Long.toHexString(start) + "-" + Long.toHexString(end);
    }

    @Override
    public String toString() {
        return Long.toHexString(start) + "-" + Long.toHexString(end) + " " + perms + " " + path;
    }
}
