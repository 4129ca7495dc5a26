package dev.cryo.container;

import dev.cryo.core.Refusal;
import dev.cryo.image.proto.ContainerMount;
import dev.cryo.image.proto.ContainerRecord;
import dev.cryo.image.proto.Volume;
import dev.cryo.ns.Mounts;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Sys;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.logging.Logger;

/**
 * The mount table of a container beyond what `cryo run` gives every container: the volumes
 * (host directories bound in with `-v`) and the mounts it made itself, read from its pid 1's
 * /proc/PID/mountinfo at checkpoint and made again, in the same order, from inside its restored
 * pid 1: proc, sysfs, devpts and mqueue made anew (from inside, so they show the container's own
 * pid and network namespaces), tmpfs with their files, binds of its own paths, with their flags
 * (read-only, nosuid, ...). Whatever restore cannot make again is refused by name.
 */
final class ContainerMounts {
    private static final Logger LOG = Logger.getLogger("mounts");
    /** File systems with nothing of their own to save: a new one is just as good. */
    private static final Set<String> PSEUDO = Set.of("proc", "sysfs", "devpts", "mqueue");
    private static final String DELETED = "//deleted";

    private ContainerMounts() {
    }

    /** "ID POINT (TYPE)": how a mount is recognised as one `cryo run` or restore made (ids are reused once freed). */
    private static String key(Mounts.Mount m) {
        return m.id() + " " + m.describe();
    }

    /**
     * The mounts {@code pid} has once its root is set up, as the record keeps them
     * ({@link ContainerRecord#getBaseMountsList()}): "ID POINT (TYPE) OPTIONS".
     */
    static List<String> base(int pid) {
        return Mounts.of(pid).stream().map(m -> key(m) + " " + m.options()).toList();
    }

    /** The per-mount options {@code m} had when the root was set up, if it is one of those mounts; else null. */
    private static String baseOptions(Mounts.Mount m, List<String> base) {
        String key = key(m) + " ";
        return base.stream().filter(b -> b.startsWith(key)).map(b -> b.substring(key.length())).findFirst().orElse(null);
    }

    /**
     * The container's own mounts, each after the one it sits on (a mount moved under a later one
     * comes after it), without contents yet: {@link #withContents} reads them while frozen.
     *
     * @throws Refusal naming every mount restore could not make again, with why
     */
    static List<ContainerMount> own(ContainerRecord r, List<Mounts.Mount> table) {
        if (r.getBaseMountsCount() == 0) {
            throw new Refusal("container " + r.getName() + " was started by a Cryo that did not record the mounts it made;"
                    + " its own mounts cannot be told from them");
        }
        Set<String> base = new HashSet<>();
        List<ContainerMount> out = new ArrayList<>();
        for (Mounts.Mount m : table) {
            String options = baseOptions(m, r.getBaseMountsList());
            if (options != null) {
                base.add(key(m));
                if (m.flags() != Mounts.flags(options)) {
                    // made anyway at restore; its flags as the container changed them (mount -o remount,ro /)
                    out.add(ContainerMount.newBuilder().setKind(ContainerMount.Kind.REMOUNT).setMountPoint(m.point())
                            .setFsType(m.type()).setFlags(m.flags()).build());
                }
            }
        }
        Set<Integer> hostGroups = peerGroups(Mounts.of(Sys.getpid()));
        List<String> refused = new ArrayList<>();
        for (Mounts.Mount m : parentsFirst(table, base)) {
            try {
                out.add(describe(r.getInitPid(), m, table, hostGroups));
            } catch (Refusal why) {
                refused.add(m.describe() + ": " + why.getMessage());
            }
        }
        if (!refused.isEmpty()) {
            throw new Refusal("container " + r.getName() + " has mounts restore cannot make again: " + String.join("; ", refused));
        }
        return out;
    }

    /** The own mounts of {@code table} in mount order, except that none comes before the mount it sits on. */
    private static List<Mounts.Mount> parentsFirst(List<Mounts.Mount> table, Set<String> base) {
        Set<Integer> placed = new HashSet<>();
        Set<Integer> ids = new HashSet<>();
        for (Mounts.Mount m : table) {
            ids.add(m.id());
            if (base.contains(key(m))) {
                placed.add(m.id());
            }
        }
        List<Mounts.Mount> waiting = new ArrayList<>(table.stream().filter(m -> !base.contains(key(m))).toList());
        List<Mounts.Mount> out = new ArrayList<>();
        boolean progress = true;
        while (!waiting.isEmpty() && progress) {
            progress = false;
            for (Mounts.Mount m : List.copyOf(waiting)) {
                if (placed.contains(m.parentId()) || !ids.contains(m.parentId())) {
                    out.add(m);
                    placed.add(m.id());
                    waiting.remove(m);
                    progress = true;
                    break; // back to the first waiting one: mount order wherever the parents allow
                }
            }
        }
        out.addAll(waiting); // a loop cannot happen in a mount tree; kept rather than lost
        return out;
    }

    private static Set<Integer> peerGroups(List<Mounts.Mount> table) {
        Set<Integer> groups = new HashSet<>();
        for (Mounts.Mount m : table) {
            groups.add(m.sharedGroup());
            groups.add(m.masterGroup());
        }
        groups.remove(0);
        return groups;
    }

    /** How restore makes {@code m} again, or a Refusal saying why it cannot. */
    private static ContainerMount describe(int init, Mounts.Mount m, List<Mounts.Mount> table, Set<Integer> hostGroups) {
        if (m.root().endsWith(DELETED)) {
            throw new Refusal("a bind of " + m.root().substring(0, m.root().length() - DELETED.length())
                    + ", a directory deleted since");
        }
        if (m.sharedGroup() != 0) {
            throw new Refusal(hostGroups.contains(m.sharedGroup())
                    ? "shared with the host (peer group " + m.sharedGroup() + "): mounts would propagate between them"
                    : "a shared mount (peer group " + m.sharedGroup() + "); propagation is not restored yet");
        }
        if (m.masterGroup() != 0) {
            throw new Refusal("a slave of peer group " + m.masterGroup() + (hostGroups.contains(m.masterGroup()) ? " of the host" : "")
                    + "; propagation is not restored yet");
        }
        ContainerMount.Builder b = ContainerMount.newBuilder().setMountPoint(m.point()).setFlags(m.flags())
                .setFsType(m.type()).setUnbindable(m.unbindable());
        String source = bindSource(m, table);
        if (source != null) {
            boolean file = Files.isRegularFile(Path.of("/proc/" + init + "/root" + m.point()));
            return b.setKind(ContainerMount.Kind.BIND).setSource(source).setFile(file).build();
        }
        if (m.type().equals("tmpfs")) {
            Mounts.Mount top = seenAt(m.point(), table);
            if (top != m) {
                throw new Refusal("a tmpfs hidden under " + top.describe() + ", mounted later: its files cannot be read");
            }
            return b.setKind(ContainerMount.Kind.TMPFS).setData(m.tmpfsData()).build();
        }
        if (PSEUDO.contains(m.type())) {
            return b.setKind(ContainerMount.Kind.PSEUDO).setData(m.data()).build();
        }
        throw new Refusal(m.source().startsWith("/dev/") ? "a file system on block device " + m.source()
                : m.type().startsWith("fuse") ? "a FUSE file system (" + m.source() + ")"
                : m.type().startsWith("nfs") || m.type().equals("cifs") || m.type().equals("smb3")
                ? "a network file system (" + m.source() + ")" : "a file system of type " + m.type());
    }

    /**
     * The path inside the container that {@code m} is a bind of: the same file system (device)
     * shows through an earlier mount whose root holds {@code m}'s root, not covered by one made
     * between them (as restore makes them in order, later ones do not exist yet when it binds).
     * Null for a mount of a file system of its own.
     */
    private static String bindSource(Mounts.Mount m, List<Mounts.Mount> table) {
        List<Mounts.Mount> before = table.subList(0, table.indexOf(m));
        for (Mounts.Mount e : before) {
            String root = e.root().equals("/") ? "" : e.root();
            if (e.device().equals(m.device()) && (m.root().equals(e.root()) || m.root().startsWith(root + "/"))) {
                String rest = m.root().equals(e.root()) ? "" : m.root().substring(root.length());
                String source = e.point().equals("/") ? (rest.isEmpty() ? "/" : rest) : e.point() + rest;
                if (seenAt(source, before) == e) {
                    return source;
                }
            }
        }
        return null;
    }

    /**
     * The mount a walk of {@code path} ends in among {@code mounts}, as the kernel walks it: from
     * the root mount into whatever is stacked on the current mount at its own point, else into
     * its child mounted highest on the way (which hides any of its siblings below it).
     */
    static Mounts.Mount seenAt(String path, List<Mounts.Mount> mounts) {
        Set<Integer> ids = new HashSet<>();
        mounts.forEach(m -> ids.add(m.id()));
        Mounts.Mount at = mounts.stream().filter(m -> m.point().equals("/") && !ids.contains(m.parentId())).findFirst().orElse(null);
        while (at != null) {
            Mounts.Mount next = null;
            for (Mounts.Mount o : mounts) {
                if (o.parentId() != at.id() || o == at || !(path.equals(o.point()) || path.startsWith(o.point() + "/")
                        || o.point().equals("/"))) {
                    continue;
                }
                boolean stacked = o.point().equals(at.point());
                if (next == null || stacked || (!next.point().equals(at.point()) && o.point().length() <= next.point().length())) {
                    next = o;
                }
            }
            if (next == null) {
                return at;
            }
            at = next;
        }
        return null;
    }

    /** A tmpfs with its files, read through pid 1's view of its file system while it is frozen. */
    static ContainerMount withContents(int init, ContainerMount m) {
        if (m.getKind() != ContainerMount.Kind.TMPFS) {
            return m;
        }
        return m.toBuilder().setContents(RootfsLayers.save(Path.of("/proc/" + init + "/root" + m.getMountPoint()))).build();
    }

    /**
     * Binds the volumes at their places under {@code root} (the overlay before pivot_root, or
     * "" for a container on the host's root), each with the flags of the mount it came from,
     * plus read-only when asked.
     */
    static void bindVolumes(RemoteSyscalls sys, List<Volume> volumes, String root) {
        for (Volume v : volumes) {
            String point = root + v.getContainerPath();
            Mounts.bind(sys, v.getHostPath(), point, !Files.isDirectory(Path.of(v.getHostPath())));
            if (v.getReadOnly()) {
                long flags = Mounts.of(sys.task().pid()).stream().filter(m -> m.point().equals(point))
                        .reduce((first, last) -> last).orElseThrow().flags();
                Mounts.remount(sys, point, flags | Mounts.MS_RDONLY);
            }
        }
    }

    /**
     * Makes the saved mounts again in order from inside the container's pid 1, each with its
     * flags set once it is complete (a tmpfs filled first, from Cryo's side through the task's
     * view of its mounts).
     */
    static void restore(RemoteSyscalls sys, List<ContainerMount> mounts) {
        int pid = sys.task().pid();
        for (ContainerMount m : mounts) {
            String point = m.getMountPoint();
            switch (m.getKind()) {
                case TMPFS -> {
                    Mounts.mount(sys, "tmpfs", point, m.getFlags(), m.getData());
                    RootfsLayers.restore(m.getContents(), Path.of("/proc/" + pid + "/root" + point));
                }
                case PSEUDO -> Mounts.mount(sys, m.getFsType(), point, m.getFlags(), m.getData());
                case BIND -> Mounts.bind(sys, m.getSource(), point, m.getFile());
                case REMOUNT -> Mounts.remount(sys, point, m.getFlags()); // before any of its own could cover it
                default -> throw new IllegalStateException("unknown kind of mount " + m.getKind() + " in the image");
            }
            if (m.getKind() == ContainerMount.Kind.BIND || (m.getKind() != ContainerMount.Kind.REMOUNT
                    && (m.getFlags() & Mounts.MS_RDONLY) != 0)) {
                Mounts.remount(sys, point, m.getFlags()); // a bind has its source's flags until told
            }
            if (m.getUnbindable()) {
                Mounts.makeUnbindable(sys, point);
            }
            LOG.fine(() -> "made " + point + " (" + (m.getKind() == ContainerMount.Kind.BIND ? "bind of " + m.getSource()
                    : m.getFsType()) + ")");
        }
    }
}
