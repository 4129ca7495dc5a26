package dev.cryo.container;

import dev.cryo.CryoException;
import dev.cryo.check.Cgroups;
import dev.cryo.proc.ProcFiles;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * A container's cgroup v2 directory, {@code <cgroup2 mount>/cryo/NAME}: every process of the
 * container is in it (the first one is put there before it runs anything, the others inherit
 * it), so it lists them, freezes them all at once, and carries the container's limits. A limit
 * of a controller the v2 hierarchy lacks goes to a cgroup of the container in that controller's
 * v1 hierarchy ({@link CgroupV1}), joined the same way.
 */
public final class ContainerCgroup {
    private static final Logger LOG = Logger.getLogger("container");
    private static final long WAIT_NANOS = 5_000_000_000L;
    private static final int FREEZE_ATTEMPTS = 50;

    private final Path dir;
    /** The container's cgroups in v1 hierarchies (memory, pids, cpu), for limits v2 cannot carry here. */
    private final List<Path> v1Dirs;

    public ContainerCgroup(Path dir, List<Path> v1Dirs) {
        this.dir = dir;
        this.v1Dirs = List.copyOf(v1Dirs);
    }

    /** The cgroups of the container of record {@code r}, or null for one run without (by a user other than root). */
    public static ContainerCgroup of(dev.cryo.image.proto.ContainerRecord r) {
        return r.getCgroup().isEmpty() ? null
                : new ContainerCgroup(Path.of(r.getCgroup()), r.getV1CgroupsList().stream().map(Path::of).toList());
    }

    /** Its directories in cgroup v1 hierarchies, for the record. */
    List<String> v1Dirs() {
        return v1Dirs.stream().map(Path::toString).toList();
    }

    public Path dir() {
        return dir;
    }

    /** The cgroup v2 mount point, or a clear refusal when there is none. */
    static Path hierarchy() {
        Path mount = Cgroups.v2Mount();
        if (mount == null) {
            throw new CryoException("no cgroup v2 hierarchy is mounted (/proc/self/mounts has no cgroup2); containers need one");
        }
        return mount;
    }

    /**
     * Creates the cgroup of container {@code name}; one left empty by an earlier container of
     * that name is reused. For each of {@code limits} (v2 names: memory.max ...) whose controller
     * the v2 hierarchy lacks, also a cgroup in that controller's v1 hierarchy. Null for a user
     * other than root, who may not create cgroups in the hierarchy (root owns it): the container
     * then has no cgroup, so no limits, and a checkpoint holds it through ptrace alone.
     */
    static ContainerCgroup create(String name, java.util.Collection<String> limits) {
        List<Path> v1 = new ArrayList<>();
        for (String limit : limits) {
            String controller = CgroupV1.controller(limit);
            if (CgroupV1.LIMITS.contains(limit) && !CgroupV1.onV2(controller)) {
                CgroupV1.dir(controller, name).filter(d -> !v1.contains(d)).ifPresent(v1::add);
            }
        }
        ContainerCgroup cg = new ContainerCgroup(hierarchy().resolve("cryo").resolve(name), v1);
        for (Path d : cg.allDirs()) {
            try {
                Files.createDirectories(d);
            } catch (AccessDeniedException e) {
                cg.remove();
                if (Sys.geteuid() != 0 && limits.isEmpty()) {
                    LOG.info(() -> "container " + name + " runs without a cgroup: user " + Sys.geteuid() + " may not create "
                            + d + " (no limits; frozen through ptrace alone)");
                    return null;
                }
                throw new CryoException("cannot create cgroup " + d + ": permission denied"
                        + (Sys.geteuid() != 0 ? " (limits need a cgroup, which only root can make here)" : ""), e);
            } catch (IOException e) {
                cg.remove();
                throw new CryoException("cannot create cgroup " + d + ": " + e.getMessage(), e);
            }
            if (!procs(d).isEmpty()) {
                throw new CryoException("cgroup " + d + " already holds processes " + procs(d));
            }
        }
        return cg;
    }

    private List<Path> allDirs() {
        List<Path> all = new ArrayList<>(List.of(dir));
        all.addAll(v1Dirs);
        return all;
    }

    /** Moves process {@code pid} (and threads) into the cgroup (and its v1 ones). */
    void join(int pid) {
        for (Path d : allDirs()) {
            writeFile(d, "cgroup.procs", Integer.toString(pid));
        }
    }

    /** Host pids of the processes in the cgroup. */
    public List<Integer> procs() {
        return procs(dir);
    }

    private static List<Integer> procs(Path cgroup) {
        List<Integer> out = new ArrayList<>();
        for (String line : readFile(cgroup, "cgroup.procs").split("\n")) {
            if (!line.isBlank()) {
                out.add(Integer.parseInt(line.strip()));
            }
        }
        return out;
    }

    /** cgroup.freeze = 1, and waits until cgroup.events says every task is frozen. */
    void freeze() {
        write("cgroup.freeze", "1");
        awaitEvent("frozen 1");
    }

    /**
     * Freezes the cgroup at a moment when every task of it can still be seized: a task frozen
     * while it waits for a vfork child (state D, in kernel_clone) never reports a ptrace stop,
     * as its child is frozen too and cannot exec or exit; seizing it would hang. Such a moment
     * is caught by thawing and trying again; when none comes (a task stuck in D for other
     * reasons), the cgroup is left running and false returned: ptrace alone holds the tree then
     * (parents first, which lets a vfork child finish).
     */
    boolean freezeSeizable() {
        for (int attempt = 0; attempt < FREEZE_ATTEMPTS; attempt++) {
            freeze();
            if (!anyTaskUninterruptible()) {
                return true;
            }
            thaw();
            sleepMillis(1);
        }
        LOG.warning(() -> "cgroup " + dir + " keeps a task in uninterruptible sleep when frozen; seizing it unfrozen");
        return false;
    }

    private boolean anyTaskUninterruptible() {
        for (String tid : read("cgroup.threads").split("\n")) {
            if (!tid.isBlank()) {
                try {
                    if (ProcFiles.statFields(Integer.parseInt(tid.strip())).get(0).equals("D")) {
                        return true;
                    }
                } catch (RuntimeException exited) {
                    // gone meanwhile
                }
            }
        }
        return false;
    }

    void thaw() {
        write("cgroup.freeze", "0");
        awaitEvent("frozen 0");
    }

    public boolean frozen() {
        return Files.exists(dir.resolve("cgroup.freeze")) && read("cgroup.freeze").strip().equals("1");
    }

    private void awaitEvent(String line) {
        long deadline = System.nanoTime() + WAIT_NANOS;
        while (!read("cgroup.events").lines().anyMatch(line::equals)) {
            if (System.nanoTime() > deadline) {
                throw new CryoException("cgroup " + dir + " did not report '" + line + "' within 5 s");
            }
            sleepMillis(1);
        }
    }

    /**
     * memory.current where the memory controller is enabled for the cgroup, else its v1 memory
     * cgroup's memory.usage_in_bytes, else the sum of its processes' resident sets.
     */
    public long memoryBytes() {
        Path current = dir.resolve("memory.current");
        if (Files.exists(current)) {
            return Long.parseLong(read("memory.current").strip());
        }
        for (Path d : v1Dirs) {
            if (CgroupV1.controllerOf(d).equals("memory")) {
                return Long.parseLong(readFile(d, "memory.usage_in_bytes").strip());
            }
        }
        return residentBytes(procs());
    }

    /** The sum of the resident sets (VmRSS) of {@code pids}; one that exited meanwhile counts nothing. */
    static long residentBytes(List<Integer> pids) {
        long total = 0;
        for (int pid : pids) {
            try {
                String rss = ProcFiles.status(pid).get("VmRSS");
                if (rss != null) {
                    total += Long.parseLong(rss.strip().split("\\s+")[0]) * 1024;
                }
            } catch (RuntimeException gone) {
                // exited meanwhile
            }
        }
        return total;
    }

    /**
     * The limits set on the cgroup: the writable interface files of its controllers (pids.max,
     * memory.max, cpu.weight, hugetlb.2MB.max ...), not cgroup.* (its own bookkeeping); and those
     * of its v1 cgroups, in their v2 form.
     */
    Map<String, String> limits() {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> files = Files.list(dir)) {
            for (Path f : files.sorted().toList()) {
                String name = f.getFileName().toString();
                boolean limit = name.endsWith(".max") || name.endsWith(".high") || name.endsWith(".low")
                        || name.endsWith(".min") || name.endsWith(".weight");
                if (limit && !name.startsWith("cgroup.") && Files.isWritable(f)
                        && Files.getPosixFilePermissions(f).contains(PosixFilePermission.OWNER_WRITE)) {
                    out.put(name, read(name).strip());
                }
            }
        } catch (IOException e) {
            throw new CryoException("cannot list cgroup " + dir + ": " + e.getMessage(), e);
        }
        for (Path d : v1Dirs) {
            String controller = CgroupV1.controllerOf(d);
            CgroupV1.LIMITS.stream().filter(l -> CgroupV1.controller(l).equals(controller))
                    .forEach(l -> out.putIfAbsent(l, CgroupV1.read(d, l)));
        }
        return out;
    }

    /**
     * Sets limits (v2 names and values) on the cgroup or its v1 ones. A controller missing here
     * is reported, not fatal, for a restore (the container runs unlimited by it), and refused
     * when {@code required} (the user asked for that limit).
     */
    void applyLimits(Map<String, String> limits, boolean required) {
        for (Map.Entry<String, String> l : limits.entrySet()) {
            if (Files.exists(dir.resolve(l.getKey()))) {
                if (!read(l.getKey()).strip().equals(l.getValue())) {
                    write(l.getKey(), l.getValue());
                }
                continue;
            }
            String controller = CgroupV1.controller(l.getKey());
            Path v1 = v1Dirs.stream().filter(d -> CgroupV1.controllerOf(d).equals(controller)).findFirst().orElse(null);
            if (v1 != null) {
                CgroupV1.write(v1, l.getKey(), l.getValue());
            } else if (required) {
                throw new CryoException("cannot set " + l.getKey() + " " + l.getValue() + ": the " + controller
                        + " controller is neither enabled for " + dir.getParent() + " (cgroup.subtree_control) nor mounted as a"
                        + " cgroup v1 hierarchy");
            } else {
                LOG.warning(() -> "cgroup " + dir + " has no " + l.getKey() + " (controller not enabled here); limit "
                        + l.getValue() + " not set");
            }
        }
    }

    /** Removes the cgroup (and its v1 ones) once its processes are gone (dying ones leave it within moments). */
    void remove() {
        for (Path d : allDirs()) {
            remove(d);
        }
    }

    private static void remove(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        long deadline = System.nanoTime() + WAIT_NANOS;
        while (true) {
            try {
                Files.delete(dir);
                return;
            } catch (IOException e) {
                if (System.nanoTime() > deadline) {
                    throw new CryoException("cannot remove cgroup " + dir + ": " + e.getMessage(), e);
                }
                sleepMillis(5);
            }
        }
    }

    private String read(String file) {
        return readFile(dir, file);
    }

    private void write(String file, String value) {
        writeFile(dir, file, value);
    }

    static String readFile(Path dir, String file) {
        try {
            return Files.readString(dir.resolve(file));
        } catch (IOException e) {
            throw new CryoException("cannot read " + dir.resolve(file) + ": " + e.getMessage(), e);
        }
    }

    static void writeFile(Path dir, String file, String value) {
        try {
            Files.writeString(dir.resolve(file), value);
        } catch (IOException e) {
            throw new CryoException("cannot write '" + value + "' to " + dir.resolve(file) + ": " + e.getMessage(), e);
        }
    }

    static void sleepMillis(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CryoException("interrupted");
        }
    }
}
