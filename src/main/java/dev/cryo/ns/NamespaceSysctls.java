package dev.cryo.ns;

import dev.cryo.CryoException;
import dev.cryo.proc.ProcFiles;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermission;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.logging.Logger;
import java.util.stream.Stream;

/**
 * The sysctls a container tuned in its own network and IPC namespaces (net.core.somaxconn,
 * net.ipv4.ip_local_port_range, net.ipv4.conf.eth0.*, kernel.msgmnb ...), which a new namespace
 * would otherwise bring back at the kernel's defaults.
 * <p>
 * /proc/sys/net and the IPC entries of /proc/sys/kernel show the namespaces of the <em>thread
 * reading them</em>, not those of a /proc/PID one goes through (/proc/PID/root/proc/sys/net shows
 * the reader's; /proc/PID/net, unlike it, shows PID's): so they are read and written by a thread
 * of Cryo's that joined the namespace ({@link NamespaceThread}). Joining needs CAP_SYS_ADMIN in
 * Cryo's own user namespace: only root's checkpoints have them.
 * <p>
 * Only values that differ from those of a new namespace of the same kind, which a thread of
 * Cryo's makes and reads at checkpoint before the freeze ({@link Defaults}), are saved: the image stays small, the restore writes a
 * handful, and what the kernel decides for a new namespace (conf/all and conf/default inherited
 * from the host's as net.core.devconf_inherit_init_net says, memory-sized tcp_rmem ...) is
 * measured on this kernel rather than listed. An interface the new namespace lacks (the veth's
 * eth0) is compared with what it copied when made ({@link #defaultOf}); its IPv6 mtu, which
 * follows the link's, shows as changed and is written back unchanged. In a network namespace
 * other than the first the kernel shows only entries of that namespace; those that cannot be
 * read back (route/flush, an unset stable_secret) are left out. The IPC ones are a fixed list:
 * /proc/sys/kernel is otherwise global, fs.mqueue is saved with the queues (ipc.PosixMessageQueues)
 * and the *_next_id entries belong to the IPC objects' restore.
 * <p>
 * A value the kernel refuses at restore fails the restore, naming it: a container running on with
 * another somaxconn than it set would be restored wrong.
 */
public final class NamespaceSysctls {
    private static final Logger LOG = Logger.getLogger("ns");
    private static final int CLONE_NEWNET = (int) Namespaces.NEWNET, CLONE_NEWIPC = (int) Namespaces.NEWIPC;
    private static final List<String> IPC = List.of("kernel/shmmax", "kernel/shmall", "kernel/shmmni", "kernel/shm_rmid_forced",
            "kernel/msgmax", "kernel/msgmnb", "kernel/msgmni", "kernel/sem");

    private NamespaceSysctls() {
    }

    /**
     * The sysctls of process {@code pid}'s network namespace that differ from a new one's, by
     * path under /proc/sys ("net/core/somaxconn" -> "777"); per-interface entries only for
     * {@code interfaces} and all/default.
     */
    public static Map<String, String> saveNet(int pid, String container, Set<String> interfaces, Defaults defaults) {
        if (!mayJoin(container, "network")) {
            return Map.of();
        }
        Map<String, String> now = new TreeMap<>();
        List<String> names = netNames(defaults.net().keySet(), interfaces);
        NamespaceThread.call(pid, "net", CLONE_NEWNET, () -> read(names, now));
        return changed(container, "network", now, defaults.net());
    }

    /**
     * What to read in the frozen container: the entries the new namespace had (walked before the
     * freeze; a walk with its stat calls doubled the ~13 ms of reads), per-interface ones only for
     * {@code interfaces} and all/default, and for an interface the new namespace lacks (eth0)
     * the entries a new interface gets: those of conf/default, and of neigh/lo.
     */
    private static List<String> netNames(Set<String> fresh, Set<String> interfaces) {
        Set<String> names = new java.util.TreeSet<>();
        for (String name : fresh) {
            if (ofKept(name, interfaces)) {
                names.add(name);
            }
            String[] p = name.split("/");
            boolean template = p.length == 5 && (p[2].equals("conf") && p[3].equals("default") || p[2].equals("neigh") && p[3].equals("lo"));
            for (String i : template ? interfaces : Set.<String>of()) {
                names.add(p[0] + "/" + p[1] + "/" + p[2] + "/" + i + "/" + p[4]);
            }
        }
        return new ArrayList<>(names);
    }

    /** The IPC sysctls (kernel.shm*, msg*, sem) of process {@code pid}'s IPC namespace that differ from a new one's. */
    public static Map<String, String> saveIpc(int pid, String container, Defaults defaults) {
        if (!mayJoin(container, "IPC")) {
            return Map.of();
        }
        Map<String, String> now = new TreeMap<>();
        NamespaceThread.call(pid, "ipc", CLONE_NEWIPC, () -> read(IPC, now));
        return changed(container, "IPC", now, defaults.ipc());
    }

    /**
     * What new namespaces hold, read before the container is frozen: a walk of /proc/sys/net takes
     * 30-60 ms here, which the frozen window need not pay twice.
     */
    public record Defaults(Map<String, String> net, Map<String, String> ipc) {
        /** Measured in new namespaces of the kinds among {@code namespaces} (CLONE_NEW* flags); none without root. */
        public static Defaults measure(long namespaces) {
            Map<String, String> net = new TreeMap<>();
            Map<String, String> ipc = new TreeMap<>();
            if (Sys.geteuid() == 0 && (namespaces & Namespaces.NEWNET) != 0) {
                NamespaceThread.fresh("net", CLONE_NEWNET, () -> readNet(net));
            }
            if (Sys.geteuid() == 0 && (namespaces & Namespaces.NEWIPC) != 0) {
                NamespaceThread.fresh("ipc", CLONE_NEWIPC, () -> read(IPC, ipc));
            }
            return new Defaults(net, ipc);
        }
    }

    /** Writes {@code saved} into the network namespace of {@code holder}, once its interfaces exist. */
    public static void restoreNet(int holder, String container, Map<String, String> saved) {
        restore(holder, "net", CLONE_NEWNET, container, "network", saved);
    }

    /** Writes {@code saved} into the IPC namespace of {@code holder}, before its objects are made again. */
    public static void restoreIpc(int holder, String container, Map<String, String> saved) {
        restore(holder, "ipc", CLONE_NEWIPC, container, "IPC", saved);
    }

    /** "net.core.somaxconn=777, kernel.msgmnb=12345" (sysctl(8)'s names; an interface name with a dot would read ambiguously). */
    public static String describe(Map<String, String> sysctls) {
        List<String> out = new ArrayList<>();
        ordered(sysctls).forEach(e -> out.add(e.getKey().replace('/', '.') + "=" + e.getValue().replace('\t', ' ')));
        return String.join(", ", out);
    }

    private static boolean mayJoin(String container, String kind) {
        if (Sys.geteuid() == 0) {
            return true;
        }
        LOG.info(() -> "container " + container + ": the sysctls of its " + kind + " namespace are not saved"
                + " (reading them needs root: joining the namespace takes CAP_SYS_ADMIN in Cryo's own user namespace)");
        return false;
    }

    private static Map<String, String> changed(String container, String kind, Map<String, String> now, Map<String, String> fresh) {
        Map<String, String> out = new TreeMap<>();
        now.forEach((name, value) -> {
            if (!value.equals(fresh.getOrDefault(name, defaultOf(name, fresh)))) {
                out.put(name, value);
            }
        });
        if (!out.isEmpty()) {
            LOG.info(() -> "container " + container + ": " + out.size() + " sysctl(s) of its " + kind
                    + " namespace differ from a new one's: " + describe(out));
        }
        return out;
    }

    /**
     * What a new interface (one the new namespace lacks) starts with: a copy of conf/default, and
     * for neigh the table's defaults, which only the first namespace shows as neigh/default; an
     * untouched loopback has them too.
     */
    private static String defaultOf(String name, Map<String, String> fresh) {
        String[] p = name.split("/");
        if (p.length == 5 && (p[2].equals("conf") || p[2].equals("neigh"))) {
            return fresh.get(p[0] + "/" + p[1] + "/" + p[2] + (p[2].equals("conf") ? "/default/" : "/lo/") + p[4]);
        }
        return null;
    }

    /** Reads the calling thread's namespace's readable, writable /proc/sys/net entries into {@code into}. */
    private static int readNet(Map<String, String> into) {
        Path root = Path.of("/proc/sys");
        List<String> names = new ArrayList<>();
        try (Stream<Path> files = Files.walk(root.resolve("net"))) {
            files.filter(Files::isRegularFile).filter(NamespaceSysctls::readWrite).map(f -> root.relativize(f).toString())
                    .forEach(names::add);
        } catch (IOException | UncheckedIOException e) {
            throw new CryoException("cannot list /proc/sys/net of the network namespace: " + e.getMessage(), e);
        }
        return read(names, into);
    }

    private static boolean readWrite(Path f) {
        try {
            Set<PosixFilePermission> mode = Files.getPosixFilePermissions(f);
            return mode.contains(PosixFilePermission.OWNER_READ) && mode.contains(PosixFilePermission.OWNER_WRITE);
        } catch (IOException e) {
            return false;
        }
    }

    /** Not an entry of an interface, or one of {@code interfaces}' (null: any) or all/default. */
    private static boolean ofKept(String name, Set<String> interfaces) {
        String[] p = name.split("/");
        if (interfaces != null && p.length == 5 && (p[2].equals("conf") || p[2].equals("neigh"))) {
            return p[3].equals("all") || p[3].equals("default") || interfaces.contains(p[3]);
        }
        return true;
    }

    private static int read(List<String> names, Map<String, String> into) {
        for (String name : names) {
            try {
                into.put(name, ProcFiles.sysctl(name));
            } catch (UncheckedIOException unreadable) {
                // write-only (route/flush) or nothing to show (stable_secret before it is set)
            }
        }
        return 0;
    }

    private static void restore(int holder, String ns, int nstype, String container, String kind, Map<String, String> saved) {
        if (saved.isEmpty()) {
            return;
        }
        if (Sys.geteuid() != 0) {
            throw new CryoException("container " + container + " had sysctls of its " + kind + " namespace changed (" + describe(saved)
                    + "), which only root can write: joining the namespace takes CAP_SYS_ADMIN in Cryo's own user namespace");
        }
        NamespaceThread.call(holder, ns, nstype, () -> {
            for (Map.Entry<String, String> e : ordered(saved)) {
                write(container, kind, e.getKey(), e.getValue());
            }
            return 0;
        });
        LOG.info(() -> "container " + container + ": " + saved.size() + " sysctl(s) of its " + kind + " namespace restored: "
                + describe(saved));
    }

    /**
     * Namespace-wide entries first, then conf/all, conf/default, then each interface's: writing
     * ip_forward or conf/all/forwarding changes every interface's too, which then get their own.
     */
    private static List<Map.Entry<String, String>> ordered(Map<String, String> sysctls) {
        return new LinkedHashMap<>(sysctls).entrySet().stream().sorted(Comparator.comparingInt(
                (Map.Entry<String, String> e) -> rank(e.getKey())).thenComparing(Map.Entry::getKey)).toList();
    }

    private static int rank(String name) {
        String[] p = name.split("/");
        if (p.length != 5 || !(p[2].equals("conf") || p[2].equals("neigh"))) {
            return 0;
        }
        return p[3].equals("all") ? 1 : p[3].equals("default") ? 2 : 3;
    }

    private static void write(String container, String kind, String name, String value) {
        try {
            if (value.equals(ProcFiles.sysctl(name))) {
                return; // already so (set with another one: ip_forward and conf/all/forwarding)
            }
            Files.write(Path.of("/proc/sys", name), (value + "\n").getBytes(StandardCharsets.UTF_8), StandardOpenOption.WRITE);
        } catch (IOException | UncheckedIOException e) {
            Throwable cause = e instanceof UncheckedIOException u ? u.getCause() : e;
            String why = cause instanceof FileSystemException f && f.getReason() != null ? f.getReason() : cause.getMessage();
            throw new CryoException("container " + container + ": the kernel refused sysctl " + name.replace('/', '.') + " = "
                    + value.replace('\t', ' ') + " in its new " + kind + " namespace: " + why, e);
        }
    }
}
