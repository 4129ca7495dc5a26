package dev.cryo.remote;

import dev.cryo.sys.SysException;

/** A system call injected into a tracee ran, and the kernel said no. */
public class RemoteSysException extends SysException {
    private final int pid;

    public RemoteSysException(int pid, String call, int errno, long... args) {
        super("task " + pid + ": " + call, errno, args);
        this.pid = pid;
    }

    public int pid() {
        return pid;
    }
}
