package dev.cryo.sys;

import dev.cryo.CryoException;

import java.util.Arrays;
import java.util.stream.Collectors;

/**
 * The kernel refused a system call. Carries the call's name, errno and arguments so a log line
 * says exactly what was asked and why it failed.
 */
public class SysException extends CryoException {
    private final String call;
    private final int errno;

    public SysException(String call, int errno, long... args) {
        super(call + "(" + Arrays.stream(args).mapToObj(Sys::argToString).collect(Collectors.joining(", "))
                + ") failed: " + Errno.name(errno) + " (" + Errno.describe(errno) + ")");
        this.call = call;
        this.errno = errno;
    }

    public String call() {
        return call;
    }

    public int errno() {
        return errno;
    }
}
