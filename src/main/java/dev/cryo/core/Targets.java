package dev.cryo.core;

import dev.cryo.CryoException;
import dev.cryo.proc.ProcFiles;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.nio.file.Files;
import java.util.List;

/** Checks that a pid names something Cryo can checkpoint, before touching it. */
final class Targets {
    private static final long PF_KTHREAD = 0x00200000;

    private Targets() {
    }

    static void checkCheckpointable(int pid) {
        if (pid <= 0) {
            throw new CryoException("invalid PID " + pid);
        }
        if (!ProcFiles.exists(pid)) {
            throw new CryoException("no process with PID " + pid);
        }
        if (pid == Sys.getpid()) {
            throw new CryoException("PID " + pid + " is Cryo itself");
        }
        List<String> stat;
        try {
            stat = ProcFiles.statFields(pid);
        } catch (RuntimeException e) {
            throw new CryoException("no process with PID " + pid);
        }
        if ((ProcFiles.statField(stat, 9) & PF_KTHREAD) != 0) {
            throw new CryoException("PID " + pid + " is a kernel thread (" + ProcFiles.readString(pid, "comm").strip()
                    + "); only user processes can be checkpointed");
        }
        if (stat.get(0).equals("Z")) {
            throw new CryoException("PID " + pid + " is a zombie: it has exited and holds no state to save");
        }
        String tgid = ProcFiles.status(pid).get("Tgid");
        if (!Integer.toString(pid).equals(tgid)) {
            throw new Refusal("PID " + pid + " is a thread of process " + tgid + "; checkpoint the process");
        }
    }

    /**
     * A process can only be put back into a session or group that exists at restore: its own,
     * its parent's, or one led by another process of the tree. Anything else is refused now
     * rather than restored wrong. (The root may stay in whatever session it had: it is restored
     * into Cryo's.)
     */
    static void checkTreeIds(dev.cryo.image.proto.PstreeImage tree) {
        java.util.Map<Integer, dev.cryo.image.proto.PstreeEntry> byPid = new java.util.HashMap<>();
        tree.getProcessesList().forEach(p -> byPid.put(p.getPid(), p));
        for (dev.cryo.image.proto.PstreeEntry p : tree.getProcessesList().subList(1, tree.getProcessesCount())) {
            dev.cryo.image.proto.PstreeEntry parent = byPid.get(p.getPpid());
            boolean sidOk = p.getSid() == p.getPid() || p.getSid() == parent.getSid();
            boolean pgidOk = p.getPgid() == p.getPid() || p.getPgid() == parent.getPgid()
                    || (byPid.containsKey(p.getPgid()) && byPid.get(p.getPgid()).getSid() == p.getSid());
            if (!sidOk || !pgidOk) {
                throw new Refusal("process " + p.getPid() + " is in session " + p.getSid() + " and group " + p.getPgid()
                        + ", which cannot be recreated from its tree (their leaders are gone or outside it)");
            }
        }
    }
}
