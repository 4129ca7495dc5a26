package dev.cryo.container;

import dev.cryo.CryoException;
import dev.cryo.check.Cgroups;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The cgroup v1 hierarchies of the controllers a container's limits need (memory, pids, cpu)
 * where the v2 hierarchy does not offer them: a hybrid system mounts each such controller as a
 * hierarchy of its own (/sys/fs/cgroup/memory ...). A container gets a directory cryo/NAME in
 * each, under the cgroup Cryo itself is in there (its line of /proc/self/cgroup), so it also
 * works where Cryo runs inside a cgroup delegated to it. Limits keep their v2 form everywhere
 * else (the image's, so an image moves between v1 and v2 machines); this class translates:
 * <pre>
 * memory.max  "max" | BYTES          memory.limit_in_bytes  -1 | BYTES (unlimited reads 0x7ffffffffffff000)
 * pids.max    "max" | N              pids.max               the same
 * cpu.max     "max"|QUOTA PERIOD     cpu.cfs_quota_us -1|QUOTA, cpu.cfs_period_us PERIOD (microseconds)
 * </pre>
 */
final class CgroupV1 {
    /** The limits Cryo knows in both forms, by their v2 file. */
    static final List<String> LIMITS = List.of("memory.max", "pids.max", "cpu.max");
    /** memory.limit_in_bytes of an unlimited cgroup: PAGE_COUNTER_MAX pages; anything from here on means no limit. */
    private static final long MEMORY_UNLIMITED = 0x7ffffffffffff000L;

    private CgroupV1() {
    }

    /** "memory" for memory.max: the controller a v2 limit file belongs to. */
    static String controller(String limit) {
        return limit.substring(0, limit.indexOf('.'));
    }

    /** Whether the v2 hierarchy offers {@code controller} (its root's cgroup.controllers lists it). */
    static boolean onV2(String controller) {
        Path v2 = Cgroups.v2Mount();
        try {
            return v2 != null && Arrays.asList(Files.readString(v2.resolve("cgroup.controllers")).strip().split("\\s+"))
                    .contains(controller);
        } catch (IOException e) {
            return false;
        }
    }

    /** Where container {@code name} gets its cgroup of {@code controller}'s v1 hierarchy, if one is mounted. */
    static Optional<Path> dir(String controller, String name) {
        try {
            Path mount = null;
            for (String line : Files.readAllLines(Path.of("/proc/self/mounts"))) {
                String[] f = line.split(" ");
                if (f.length > 3 && f[2].equals("cgroup") && Arrays.asList(f[3].split(",")).contains(controller)) {
                    mount = Path.of(f[1]);
                }
            }
            if (mount == null) {
                return Optional.empty();
            }
            // /proc/self/cgroup: "4:memory:/process_api/abc" (controllers may be joined: "1:cpu,cpuacct:/")
            for (String line : Files.readAllLines(Path.of("/proc/self/cgroup"))) {
                String[] f = line.split(":", 3);
                if (f.length == 3 && Arrays.asList(f[1].split(",")).contains(controller)) {
                    return Optional.of(mount.resolve(f[2].substring(1)).resolve("cryo").resolve(name));
                }
            }
            return Optional.empty();
        } catch (IOException e) {
            throw new CryoException("cannot read this process's cgroups: " + e.getMessage(), e);
        }
    }

    /** The controller whose v1 directory {@code dir} is, known by its interface files. */
    static String controllerOf(Path dir) {
        if (Files.exists(dir.resolve("memory.limit_in_bytes"))) {
            return "memory";
        }
        if (Files.exists(dir.resolve("pids.max"))) {
            return "pids";
        }
        if (Files.exists(dir.resolve("cpu.cfs_quota_us"))) {
            return "cpu";
        }
        return "";
    }

    /** Limit {@code limit} (a v2 name) of the v1 cgroup {@code dir}, in its v2 form. */
    static String read(Path dir, String limit) {
        return switch (limit) {
            case "memory.max" -> {
                long bytes = Long.parseLong(ContainerCgroup.readFile(dir, "memory.limit_in_bytes").strip());
                yield bytes >= MEMORY_UNLIMITED ? "max" : Long.toString(bytes);
            }
            case "pids.max" -> ContainerCgroup.readFile(dir, "pids.max").strip();
            case "cpu.max" -> {
                long quota = Long.parseLong(ContainerCgroup.readFile(dir, "cpu.cfs_quota_us").strip());
                yield (quota < 0 ? "max" : Long.toString(quota)) + " " + ContainerCgroup.readFile(dir, "cpu.cfs_period_us").strip();
            }
            default -> throw new IllegalArgumentException(limit);
        };
    }

    /** Sets limit {@code limit} (a v2 name, {@code value} in its v2 form) on the v1 cgroup {@code dir}. */
    static void write(Path dir, String limit, String value) {
        switch (limit) {
            case "memory.max" -> ContainerCgroup.writeFile(dir, "memory.limit_in_bytes", value.equals("max") ? "-1" : value);
            case "pids.max" -> ContainerCgroup.writeFile(dir, "pids.max", value);
            case "cpu.max" -> {
                String[] f = value.split(" ");
                if (f.length > 1) { // the period first: the quota is checked against it
                    ContainerCgroup.writeFile(dir, "cpu.cfs_period_us", f[1]);
                }
                ContainerCgroup.writeFile(dir, "cpu.cfs_quota_us", f[0].equals("max") ? "-1" : f[0]);
            }
            default -> throw new IllegalArgumentException(limit);
        }
    }

}
