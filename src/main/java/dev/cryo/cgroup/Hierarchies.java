package dev.cryo.cgroup;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Where this machine mounts each cgroup hierarchy, from a mountinfo (proc(5)): the v2 one
 * (fstype cgroup2) and the v1 ones (fstype cgroup), a v1 hierarchy known by its controllers
 * or "name=" option among its super options ("rw,cpu,cpuacct"). Nothing is assumed of the
 * paths: a hybrid machine mounts v2 at /sys/fs/cgroup/unified, a v2-only one at
 * /sys/fs/cgroup, and v1 hierarchies may group controllers differently from the machine a
 * checkpoint was taken on.
 */
public final class Hierarchies {
    /** One cgroup filesystem mount: its super options (v1 controllers), the cgroup it shows (root) and where. */
    record Mount(boolean v2, Set<String> options, String root, Path mountPoint) {
    }

    private final List<Mount> mounts;

    Hierarchies(List<Mount> mounts) {
        this.mounts = mounts;
    }

    /** The hierarchies mounted in Cryo's own mount namespace. */
    public static Hierarchies here() {
        try {
            return parse(Files.readString(Path.of("/proc/self/mountinfo")));
        } catch (IOException e) {
            throw new UncheckedIOException("reading /proc/self/mountinfo", e);
        }
    }

    /** The cgroup mounts of a mountinfo text; other lines are ignored. */
    public static Hierarchies parse(String mountinfo) {
        List<Mount> out = new ArrayList<>();
        for (String line : mountinfo.split("\n")) {
            String[] f = line.split(" ");
            int dash = List.of(f).indexOf("-");
            if (dash < 6 || f.length < dash + 4) {
                continue;
            }
            String fsType = f[dash + 1];
            if (!fsType.equals("cgroup") && !fsType.equals("cgroup2")) {
                continue;
            }
            out.add(new Mount(fsType.equals("cgroup2"), Set.of(f[dash + 3].split(",")), unescape(f[3]),
                    Path.of(unescape(f[4]))));
        }
        return new Hierarchies(out);
    }

    /**
     * The directory of cgroup {@code path} of the hierarchy holding {@code controllers} (as in
     * /proc/PID/cgroup: "" for v2, "memory", "cpu,cpuacct", "name=systemd"), or null when no
     * mount here shows that cgroup (hierarchy not mounted, or only a subtree of it elsewhere).
     * Whether the directory exists is the caller's question.
     */
    public Path directory(String controllers, String path) {
        boolean v2 = controllers.isEmpty();
        List<String> wanted = v2 ? List.of() : List.of(controllers.split(","));
        for (Mount m : mounts) {
            if (m.v2() != v2 || !m.options().containsAll(wanted)) {
                continue;
            }
            // a mount of a subtree (its root is not "/") shows only the cgroups under that root
            String root = m.root().equals("/") ? "" : m.root();
            if (path.equals(root) || path.startsWith(root + "/")) {
                String rest = path.substring(root.length());
                return rest.isEmpty() || rest.equals("/") ? m.mountPoint() : m.mountPoint().resolve(rest.substring(1));
            }
        }
        return null;
    }

    /** Lines "ID:CONTROLLERS:PATH" of /proc/PID/cgroup as controllers to path, in their order. */
    public static Map<String, String> membership(String procCgroup) {
        Map<String, String> out = new LinkedHashMap<>();
        for (String line : procCgroup.split("\n")) {
            String[] f = line.split(":", 3);
            if (f.length == 3) {
                out.put(f[1], f[2]);
            }
        }
        return out;
    }

    /** mountinfo escapes space, tab, newline and backslash as \ooo. */
    private static String unescape(String s) {
        if (s.indexOf('\\') < 0) {
            return s;
        }
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 3 < s.length()) {
                b.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
                i += 3;
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }
}
