package dev.cryo.proc;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/** Parser for /proc/pid/smaps: each mapping with its VmFlags. */
public final class ProcMaps {
    private ProcMaps() {
    }

    public static List<Vma> read(int pid) {
        try {
            return parse(Files.readAllLines(Path.of("/proc", Integer.toString(pid), "smaps")));
        } catch (IOException e) {
            throw new UncheckedIOException("reading /proc/" + pid + "/smaps", e);
        }
    }

    /**
     * /proc/pid/maps only: the same areas without VmFlags, much cheaper than smaps, which walks
     * every page table of every area for its Rss and Pss lines (milliseconds for a GiB).
     */
    public static List<Vma> readWithoutFlags(int pid) {
        try {
            return parse(Files.readAllLines(Path.of("/proc", Integer.toString(pid), "maps")));
        } catch (IOException e) {
            throw new UncheckedIOException("reading /proc/" + pid + "/maps", e);
        }
    }

    public static List<Vma> parse(List<String> lines) {
        List<Vma> out = new ArrayList<>();
        String header = null;
        long sharedKb = -1;
        for (String line : lines) {
            if (isHeader(line)) {
                if (header != null) {
                    out.add(vma(header, Set.of(), sharedKb));
                }
                header = line;
                sharedKb = -1;
            } else if (line.startsWith("Shared_Clean:") || line.startsWith("Shared_Dirty:")) {
                sharedKb = Math.max(sharedKb, 0) + Long.parseLong(line.substring(13).strip().split("\\s+")[0]);
            } else if (line.startsWith("VmFlags:") && header != null) {
                out.add(vma(header, Set.of(line.substring(8).trim().split("\\s+")), sharedKb));
                header = null;
            }
        }
        if (header != null) {
            out.add(vma(header, Set.of(), sharedKb));
        }
        return out;
    }

    private static boolean isHeader(String line) {
        int dash = line.indexOf('-');
        int space = line.indexOf(' ');
        return dash > 0 && space > dash && line.substring(0, dash).chars().allMatch(c -> Character.digit(c, 16) >= 0);
    }

    /** {@code start-end perms offset dev inode   path}, path possibly containing spaces. */
    static Vma vma(String line, Set<String> flags, long sharedKb) {
        String[] f = line.split("\\s+", 6);
        String[] range = f[0].split("-");
        String path = f.length > 5 ? f[5].strip() : "";
        return new Vma(Long.parseUnsignedLong(range[0], 16), Long.parseUnsignedLong(range[1], 16), f[1],
                Long.parseUnsignedLong(f[2], 16), f[3], Long.parseLong(f[4]), path, flags, sharedKb);
    }
}
