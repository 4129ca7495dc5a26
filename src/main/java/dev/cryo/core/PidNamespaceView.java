package dev.cryo.core;

import dev.cryo.image.proto.PstreeEntry;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.Tracee;

import java.util.Map;

/**
 * The ids a process has inside its own pid namespace, which a container's tree keeps: /proc
 * shows them as the last entry of the NSpid, NSpgid and NSsid lines of its status (the first is
 * Cryo's view). A tree must live in one pid namespace, its root's, to be saved this way.
 */
final class PidNamespaceView {
    private PidNamespaceView() {
    }

    /** The identity of the pid namespace {@code pid} is in, as {@code pid:[inode]}. */
    static String of(int pid) {
        return ProcFiles.readLink(pid, "ns/pid");
    }

    /** Fills the ns_* fields of {@code entry} for process {@code p}, which must share the root's pid namespace. */
    static void describe(FrozenTree.Proc p, String rootPidNs, PstreeEntry.Builder entry) {
        entry.setInOwnPidNs(true);
        if (p.zombie()) {
            // a zombie's status still has its ids; its namespace link is gone
            Map<String, String> st = ProcFiles.status(p.pid());
            entry.setNsPid(innermost(st, "NSpid", p.pid())).setNsPgid(innermost(st, "NSpgid", p.pid()))
                    .setNsSid(innermost(st, "NSsid", p.pid()));
            return;
        }
        if (!of(p.pid()).equals(rootPidNs)) {
            throw new Refusal("process " + p.pid() + " is in a pid namespace of its own, nested in the tree's; "
                    + "nested pid namespaces are not supported");
        }
        Map<String, String> st = ProcFiles.status(p.pid());
        entry.setNsPid(innermost(st, "NSpid", p.pid())).setNsPgid(innermost(st, "NSpgid", p.pid()))
                .setNsSid(innermost(st, "NSsid", p.pid()));
        for (Tracee t : p.threads()) {
            Map<String, String> ts = ProcFiles.keyValues(ProcFiles.readString(p.pid(), "task/" + t.pid() + "/status"));
            entry.addNsThreads(innermost(ts, "NSpid", t.pid()));
        }
    }

    private static int innermost(Map<String, String> status, String key, int pid) {
        String line = status.get(key);
        if (line == null) {
            throw new dev.cryo.CryoException("/proc/" + pid + "/status has no " + key + " line");
        }
        String[] ids = line.strip().split("\\s+");
        return Integer.parseInt(ids[ids.length - 1]);
    }
}
