package dev.cryo.check;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Where the cgroup v2 hierarchy is mounted (not always /sys/fs/cgroup: here it is .../unified). */
public final class Cgroups {
    private Cgroups() {
    }

    public static Path v2Mount() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mounts"))) {
                String[] f = line.split(" ");
                if (f.length > 2 && f[2].equals("cgroup2")) {
                    return Path.of(f[1]);
                }
            }
        } catch (IOException e) {
            return null;
        }
        return null;
    }
}
