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
        String children;
        try {
            children = Files.readString(ProcFiles.dir(pid).resolve("task/" + pid + "/children")).strip();
        } catch (IOException e) {
            children = "";
        }
        if (!children.isEmpty()) {
            throw new Refusal("process " + pid + " has child processes (" + children
                    + "); process trees are not supported yet");
        }
    }
}
