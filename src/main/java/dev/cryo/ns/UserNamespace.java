package dev.cryo.ns;

import dev.cryo.CryoException;
import dev.cryo.image.proto.UserNamespaceMaps;
import dev.cryo.proc.ProcFiles;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The uid and gid maps of a container's user namespace: written for its new namespace by `cryo
 * run` (and the same again by a restore), saved with a checkpoint, and used to turn the ids Cryo
 * reads from the host's side (/proc/PID/status shows them in the reader's namespace) into the ones
 * the container's tasks use.
 * <p>
 * Root maps every id to itself. A user other than root may map only its own uid and gid, one
 * line each, and must deny setgroups(2) in the namespace before writing the gid map
 * (user_namespaces(7)); inside, it is root, and files it creates are the user's on the host.
 */
public final class UserNamespace {
    private static final String EVERY_ID_TO_ITSELF = "0 0 4294967295";
    /** What an id without a mapping shows as (/proc/sys/kernel/overflowuid, overflowgid). */
    public static final int OVERFLOW_ID = 65534;

    private UserNamespace() {
    }

    /** The maps Cryo's user gives a new container: every id to itself for root, else root inside as the user. */
    public static UserNamespaceMaps forCaller() {
        int euid = Sys.geteuid();
        if (euid == 0) {
            return UserNamespaceMaps.newBuilder().setUidMap(EVERY_ID_TO_ITSELF).setGidMap(EVERY_ID_TO_ITSELF).build();
        }
        int egid = Integer.parseInt(ProcFiles.status(Sys.getpid()).get("Gid").split("\\s+")[1]);
        return UserNamespaceMaps.newBuilder().setUidMap("0 " + euid + " 1").setGidMap("0 " + egid + " 1")
                .setSetgroupsDenied(true).build();
    }

    /** The maps of {@code pid}'s user namespace, as the host sees them. */
    public static UserNamespaceMaps of(int pid) {
        return UserNamespaceMaps.newBuilder().setUidMap(normalized(ProcFiles.readString(pid, "uid_map")))
                .setGidMap(normalized(ProcFiles.readString(pid, "gid_map")))
                .setSetgroupsDenied(ProcFiles.readString(pid, "setgroups").strip().equals("deny")).build();
    }

    /**
     * Writes the maps of the new user namespace that {@code holder} is in, before any other task
     * enters it. The kernel refuses a map its writer may not write (a user other than root
     * mapping ids not its own): that is said with the map.
     */
    public static void write(int holder, UserNamespaceMaps maps) {
        if (maps.getSetgroupsDenied()) {
            writeFile(holder, "setgroups", "deny", maps);
        }
        writeFile(holder, "uid_map", maps.getUidMap(), maps);
        writeFile(holder, "gid_map", maps.getGidMap(), maps);
    }

    private static void writeFile(int holder, String name, String value, UserNamespaceMaps maps) {
        Path f = ProcFiles.dir(holder).resolve(name);
        try {
            Files.writeString(f, value + "\n");
        } catch (IOException e) {
            String why = Sys.geteuid() == 0 ? "" : " (user " + Sys.geteuid() + " may map only its own uid and gid: a container"
                    + " with uid map '" + maps.getUidMap() + "', gid map '" + maps.getGidMap()
                    + "' is restored by that user or root)";
            throw new CryoException("cannot write '" + value + "' to " + f + ": " + e.getMessage() + why, e);
        }
    }

    /**
     * The id {@code hostId} (as the host sees it) inside the namespace with {@code map} ("inside
     * outside count" lines); {@link #OVERFLOW_ID} when the map has none for it, as the kernel shows it.
     */
    public static int inside(String map, long hostId) {
        for (String line : map.split("\n")) {
            String[] f = line.strip().split("\\s+");
            if (f.length == 3) {
                long in = Long.parseLong(f[0]), out = Long.parseLong(f[1]), count = Long.parseLong(f[2]);
                if (hostId >= out && hostId - out < count) {
                    return (int) (in + hostId - out);
                }
            }
        }
        return OVERFLOW_ID;
    }

    /** Host uid {@code hostUid} as process {@code pid}'s user namespace sees it (what a call injected into it takes). */
    public static int uidInside(int pid, long hostUid) {
        return inside(ProcFiles.readString(pid, "uid_map"), hostUid);
    }

    /** Host gid {@code hostGid} as process {@code pid}'s user namespace sees it. */
    public static int gidInside(int pid, long hostGid) {
        return inside(ProcFiles.readString(pid, "gid_map"), hostGid);
    }

    /** One "inside outside count" line per mapping, single-spaced (the kernel pads them in columns). */
    private static String normalized(String map) {
        return String.join("\n", map.lines().map(l -> String.join(" ", l.strip().split("\\s+"))).filter(l -> !l.isEmpty()).toList());
    }
}
