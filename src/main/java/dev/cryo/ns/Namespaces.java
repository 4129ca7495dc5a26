package dev.cryo.ns;

import dev.cryo.proc.ProcFiles;

import java.util.ArrayList;
import java.util.List;

/** The CLONE_NEW* flags of the namespaces a container may have (clone(2), unshare(2)), with their /proc/PID/ns names. */
public final class Namespaces {
    public static final long NEWNS = 0x00020000L, NEWCGROUP = 0x02000000L, NEWUTS = 0x04000000L, NEWIPC = 0x08000000L,
            NEWUSER = 0x10000000L, NEWPID = 0x20000000L, NEWNET = 0x40000000L;

    private static final long[] FLAGS = {NEWPID, NEWNS, NEWIPC, NEWUTS, NEWNET, NEWUSER, NEWCGROUP};
    private static final String[] NAMES = {"pid", "mnt", "ipc", "uts", "net", "user", "cgroup"};

    private Namespaces() {
    }

    /** The flags as their /proc/PID/ns names, e.g. "pid,mnt,ipc,uts". */
    public static String describe(long flags) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < FLAGS.length; i++) {
            if ((flags & FLAGS[i]) != 0) {
                out.add(NAMES[i]);
            }
        }
        return String.join(",", out);
    }

    /** The namespaces {@code pid} does not share with {@code reference} (compared through their /proc/PID/ns links). */
    public static long ownOf(int pid, int reference) {
        long own = 0;
        for (int i = 0; i < FLAGS.length; i++) {
            String mine = ProcFiles.readLink(pid, "ns/" + NAMES[i]);
            String theirs = ProcFiles.readLink(reference, "ns/" + NAMES[i]);
            if (!mine.equals(theirs)) {
                own |= FLAGS[i];
            }
        }
        return own;
    }
}
