package dev.cryo.task;

import dev.cryo.proc.ProcFiles;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;

/** Facts about the machine Cryo runs on that a restore compares the image against. */
public final class HostCpu {
    private HostCpu() {
    }

    /**
     * The xsave features this CPU and kernel offer, as an XCR0 mask. The JVM cannot run xgetbv,
     * so the mask is built from the cpuinfo flags each feature group depends on.
     */
    public static long xfeatures() {
        Set<String> flags;
        try {
            flags = Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("flags"))
                    .findFirst().map(l -> Set.of(l.substring(l.indexOf(':') + 1).trim().split("\\s+"))).orElse(Set.of());
        } catch (IOException e) {
            return 0;
        }
        long mask = 0b11; // x87, SSE
        if (flags.contains("avx")) mask |= 1L << 2;
        if (flags.contains("mpx")) mask |= (1L << 3) | (1L << 4);
        if (flags.contains("avx512f")) mask |= (1L << 5) | (1L << 6) | (1L << 7);
        if (flags.contains("ospke")) mask |= 1L << 9;
        if (flags.contains("amx_tile")) mask |= (1L << 17) | (1L << 18);
        return mask;
    }

    /** Cryo's own capability bounding set, which a restored task starts from. */
    public static long boundingSet() {
        return Long.parseUnsignedLong(ProcFiles.status((int) ProcessHandle.current().pid()).get("CapBnd"), 16);
    }
}
