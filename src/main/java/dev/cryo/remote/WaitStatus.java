package dev.cryo.remote;

/** Decodes a wait(2) status word, including ptrace's event and syscall stops. */
public record WaitStatus(int raw) {
    public static final int SIGTRAP = 5;

    public boolean exited() {
        return (raw & 0x7f) == 0;
    }

    public int exitCode() {
        return (raw >> 8) & 0xff;
    }

    public boolean signaled() {
        return (raw & 0x7f) != 0 && (raw & 0x7f) != 0x7f;
    }

    public int termSignal() {
        return raw & 0x7f;
    }

    public boolean stopped() {
        return (raw & 0xff) == 0x7f;
    }

    public int stopSignal() {
        return (raw >> 8) & 0xff;
    }

    /** PTRACE_EVENT_* of an event stop, 0 otherwise. */
    public int event() {
        return (raw >> 16) & 0xff;
    }

    /** A syscall-enter or -exit stop (PTRACE_O_TRACESYSGOOD sets bit 7 of the signal). */
    public boolean syscallStop() {
        return stopped() && stopSignal() == (SIGTRAP | 0x80);
    }

    /** The exit code a shell would report for this status. */
    public int shellCode() {
        return exited() ? exitCode() : 128 + termSignal();
    }

    @Override
    public String toString() {
        if (exited()) return "exited with " + exitCode();
        if (signaled()) return "killed by signal " + termSignal();
        if (stopped()) return "stopped by signal " + stopSignal() + (event() != 0 ? " event " + event() : "");
        return "status 0x" + Integer.toHexString(raw);
    }
}
