package dev.cryo.ns;

import dev.cryo.CryoException;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.lang.foreign.Arena;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntSupplier;

/**
 * Work done by a thread of Cryo's own that first joins a namespace of another process: setns(2)
 * of a network or IPC namespace moves only the calling thread, so the rest of Cryo stays where
 * it is, and the thread ends with the work.
 */
public final class NamespaceThread {
    private static final int O_RDONLY_CLOEXEC = 0x80000;

    private NamespaceThread() {
    }

    /**
     * Runs {@code work} on a new thread that joined namespace {@code kind} ("net", "ipc": the name
     * under /proc/PID/ns, of type {@code nstype}) of process {@code pid}; returns its result, or
     * throws what it threw.
     */
    public static int call(int pid, String kind, int nstype, IntSupplier work) {
        return onThread(kind, "the " + kind + " namespace of process " + pid, () -> {
            try (Arena arena = Arena.ofConfined()) {
                int ns = (int) Sys.call("open(ns/" + kind + ")", Nr.OPEN,
                        arena.allocateFrom("/proc/" + pid + "/ns/" + kind).address(), O_RDONLY_CLOEXEC);
                try {
                    Sys.call("setns(" + kind + ")", Nr.SETNS, ns, nstype);
                } finally {
                    Sys.close(ns);
                }
            }
        }, work);
    }

    /**
     * Runs {@code work} on a new thread that made itself a new, throwaway namespace of type
     * {@code nstype} (unshare(2) of CLONE_NEWNET or CLONE_NEWIPC moves only the calling thread):
     * what a namespace of that kind holds before anyone changes it. It goes with the thread.
     */
    public static int fresh(String kind, long nstype, IntSupplier work) {
        return onThread(kind, "a new " + kind + " namespace", () -> Sys.call("unshare(" + kind + ")", Nr.UNSHARE, nstype), work);
    }

    private static int onThread(String kind, String where, Runnable enter, IntSupplier work) {
        AtomicReference<Object> result = new AtomicReference<>();
        Thread t = Thread.ofPlatform().name("cryo-" + kind + "ns").start(() -> {
            try {
                enter.run();
                result.set(work.getAsInt());
            } catch (RuntimeException e) {
                result.set(e);
            }
        });
        try {
            t.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CryoException("interrupted while working in " + where, e);
        }
        if (result.get() instanceof RuntimeException e) {
            throw e;
        }
        return (Integer) result.get();
    }
}
