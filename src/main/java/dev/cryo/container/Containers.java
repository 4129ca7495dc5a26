package dev.cryo.container;

import dev.cryo.CryoException;
import dev.cryo.image.proto.ContainerRecord;
import dev.cryo.ns.Veth;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.WaitStatus;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.logging.Logger;

/** The containers Cryo keeps records of: are they running, stop one, free a name for reuse. */
public final class Containers {
    private static final Logger LOG = Logger.getLogger("container");

    public enum State { RUNNING, FROZEN, EXITED }

    private Containers() {
    }

    /** Its first process is still the one recorded (same pid and start time) and has not exited. */
    public static boolean alive(ContainerRecord r) {
        try {
            List<String> stat = ProcFiles.statFields(r.getInitPid());
            return ProcFiles.statField(stat, 22) == r.getInitStartTime() && !stat.get(0).equals("Z");
        } catch (RuntimeException gone) {
            return false;
        }
    }

    /** Its first process, alive or a zombie, still holds the recorded pid. */
    private static boolean holdsPid(ContainerRecord r) {
        try {
            return ProcFiles.statField(ProcFiles.statFields(r.getInitPid()), 22) == r.getInitStartTime();
        } catch (RuntimeException gone) {
            return false;
        }
    }

    public static State state(ContainerRecord r) {
        if (!alive(r)) {
            return State.EXITED;
        }
        ContainerCgroup cg = ContainerCgroup.of(r);
        return cg != null && cg.frozen() ? State.FROZEN : State.RUNNING;
    }

    /** Memory the container uses: its cgroup's count, else the resident sets of its pid 1's tree. */
    public static long memoryBytes(ContainerRecord r) {
        ContainerCgroup cg = ContainerCgroup.of(r);
        return cg != null ? cg.memoryBytes() : ContainerCgroup.residentBytes(ProcFiles.tree(r.getInitPid()));
    }

    public static List<ContainerRecord> list() {
        return StateStore.all();
    }

    /** The record of running container {@code name}, or why there is none. */
    public static ContainerRecord running(String name) {
        ContainerRecord r = StateStore.read(name).orElseThrow(() -> new CryoException("no container named " + name));
        if (!alive(r)) {
            throw new CryoException("container " + name + " is not running (its first process " + r.getInitPid() + " has exited)");
        }
        return r;
    }

    /**
     * Makes {@code name} free for a new container: refused while a container of that name runs;
     * what an exited one left (record, cgroup, overlay directories) is removed.
     */
    static void claimName(String name) {
        StateStore.checkName(name);
        StateStore.read(name).ifPresent(r -> {
            if (alive(r)) {
                throw new CryoException("container name " + name + " is taken by a running container (pid " + r.getInitPid()
                        + "); choose another with --name, or stop it with cryo kill " + name);
            }
            remove(r);
        });
    }

    /** Stops container {@code name} (SIGKILL to its first process ends its whole pid namespace) and removes what it left. */
    public static ContainerRecord kill(String name) {
        ContainerRecord r = StateStore.read(name).orElseThrow(() -> new CryoException("no container named " + name));
        if (alive(r)) {
            Sys.raw(Nr.KILL, r.getInitPid(), 9);
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (alive(r)) {
                if (System.nanoTime() > deadline) {
                    throw new CryoException("container " + name + " (pid " + r.getInitPid() + ") did not die within 5 s");
                }
                ContainerCgroup.sleepMillis(2);
            }
        }
        if (holdsPid(r)) {
            Sys.raw(Nr.WAIT4, r.getInitPid(), 0, 1 /* WNOHANG: a zombie is reaped if it is Cryo's own child */, 0);
        }
        remove(r);
        LOG.info(() -> "container " + name + " stopped and removed");
        return r;
    }

    /**
     * Waits for the first process of a container run in the foreground (Cryo's child) to exit,
     * then removes the container; gives the exit code as a shell would. Should Cryo be stopped
     * meanwhile (Ctrl-C, SIGTERM), the container is stopped with it: its pid 1 ignores the
     * signals it has no handler for, so it would otherwise run on unattended.
     */
    public static int waitInForeground(String name, int pid) {
        Thread stopWithCryo = new Thread(() -> {
            try {
                kill(name);
            } catch (RuntimeException e) {
                LOG.warning(() -> "stopping container " + name + " with Cryo: " + e.getMessage());
            }
        }, "stop-container-" + name);
        Runtime.getRuntime().addShutdownHook(stopWithCryo);
        int status = Sys.wait4(pid, 0)[1];
        Runtime.getRuntime().removeShutdownHook(stopWithCryo);
        StateStore.read(name).ifPresent(Containers::remove);
        return new WaitStatus(status).shellCode();
    }

    /** Removes an exited container's veth host end, cgroup and state directory. */
    static void remove(ContainerRecord r) {
        Veth.remove(r.getVethHost());
        if (!r.getCgroup().isEmpty() && Files.isDirectory(Path.of(r.getCgroup()))) {
            ContainerCgroup.of(r).remove();
        }
        StateStore.remove(r.getName());
    }

    /**
     * A container that could not be set up (run or restore) leaves nothing: the host end of its
     * veth (if it got one), its cgroup and its record go; returns the exception to throw, cleanup
     * failures attached to it.
     */
    static RuntimeException undoPrepare(String name, ContainerCgroup cgroup, String vethHost, Exception e) {
        try {
            if (vethHost != null) {
                Veth.remove(vethHost);
            }
            if (cgroup != null) {
                cgroup.remove();
            }
            StateStore.remove(name);
        } catch (RuntimeException cleanup) {
            e.addSuppressed(cleanup);
        }
        return e instanceof RuntimeException re ? re : new CryoException("cannot prepare container " + name + ": " + e.getMessage(), e);
    }
}
