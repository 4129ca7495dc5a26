package dev.cryo.remote;

import dev.cryo.CryoException;

/** The tracee died (or was killed) while Cryo was driving it. */
public class TaskGoneException extends CryoException {
    public TaskGoneException(int pid, String how) {
        super("task " + pid + " " + how);
    }
}
