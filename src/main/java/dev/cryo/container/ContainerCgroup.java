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
 * it), so it lists them, freezes them all at once, and carries the container's limits.
 */
public final class ContainerCgroup {
    private static final Logger LOG = Logger.getLogger("container");
    private static final long WAIT_NANOS = 5_000_000_000L;
    private static final int FREEZE_ATTEMPTS = 50;

    private final Path dir;

    public ContainerCgroup(Path dir) {
        this.dir = dir;
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
     * Creates the cgroup of container {@code name}; one left empty by an earlier container of that
     * name is reused. Null for a user other than root, who may not create cgroups in the
     * hierarchy (root owns it): the container then has no cgroup, so no limits, and a checkpoint
     * holds it through ptrace alone.
     */
    static ContainerCgroup create(String name) {
        ContainerCgroup cg = new ContainerCgroup(hierarchy().resolve("cryo").resolve(name));
        try {
            Files.createDirectories(cg.dir);
        } catch (AccessDeniedException e) {
            if (Sys.geteuid() != 0) {
                LOG.info(() -> "container " + name + " runs without a cgroup: user " + Sys.geteuid() + " may not create "
                        + cg.dir + " (no limits; frozen through ptrace alone)");
                return null;
            }
            throw new CryoException("cannot create cgroup " + cg.dir + ": permission denied", e);
        } catch (IOException e) {
            throw new CryoException("cannot create cgroup " + cg.dir + ": " + e.getMessage(), e);
        }
        if (!cg.procs().isEmpty()) {
            throw new CryoException("cgroup " + cg.dir + " already holds processes " + cg.procs());
        }
        return cg;
    }

    /** Moves process {@code pid} (and threads) into the cgroup. */
    void join(int pid) {
        write("cgroup.procs", Integer.toString(pid));
    }

    /** Host pids of the processes in the cgroup. */
    public List<Integer> procs() {
        List<Integer> out = new ArrayList<>();
        for (String line : read("cgroup.procs").split("\n")) {
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

    /** memory.current where the memory controller is enabled for the cgroup, else the sum of its processes' resident sets. */
    public long memoryBytes() {
        Path current = dir.resolve("memory.current");
        if (Files.exists(current)) {
            return Long.parseLong(read("memory.current").strip());
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
     * memory.max, cpu.weight, hugetlb.2MB.max ...), not cgroup.* (its own bookkeeping).
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
        return out;
    }

    /** Sets saved limits again; a controller missing here is reported, not fatal (the container runs unlimited by it). */
    void applyLimits(Map<String, String> limits) {
        for (Map.Entry<String, String> l : limits.entrySet()) {
            if (!Files.exists(dir.resolve(l.getKey()))) {
                LOG.warning(() -> "cgroup " + dir + " has no " + l.getKey() + " (controller not enabled here); limit "
                        + l.getValue() + " not set");
                continue;
            }
            if (!read(l.getKey()).strip().equals(l.getValue())) {
                write(l.getKey(), l.getValue());
            }
        }
    }

    /** Removes the cgroup once its processes are gone (dying ones leave it within moments). */
    void remove() {
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
        try {
            return Files.readString(dir.resolve(file));
        } catch (IOException e) {
            throw new CryoException("cannot read " + dir.resolve(file) + ": " + e.getMessage(), e);
        }
    }

    private void write(String file, String value) {
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
