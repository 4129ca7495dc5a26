package dev.cryo.container;

import dev.cryo.CryoException;
import dev.cryo.image.proto.ContainerRecord;
import dev.cryo.image.proto.Volume;
import dev.cryo.ns.Namespaces;
import dev.cryo.ns.UserNamespace;
import dev.cryo.ns.Uts;
import dev.cryo.ns.Veth;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteScratch;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.RestoreStub;
import dev.cryo.remote.Tracee;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

/**
 * Starts a container without forking the JVM: the restore stub is spawned and made to unshare
 * new namespaces; a clone3 injected into it creates the container's first process (pid 1 of the
 * new pid namespace, a child of Cryo's through CLONE_PARENT), which Cryo puts into the
 * container's cgroup and drives through its set-up (mounts, overlay root, /proc, host name)
 * and finally an injected execve of the command. With `--net veth` its network namespace gets an
 * uplink ({@link Veth}) while the stub holds it, before any process of the container exists.
 * Detached from ptrace, it runs the command.
 */
public final class Run {
    private static final Logger LOG = Logger.getLogger("container");
    private static final long SCRATCH_SIZE = 64 * 1024;
    private static final String DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /** How the container reaches the network: a namespace with only loopback, the host's, or a veth pair. */
    public enum Net { NONE, HOST, VETH }

    /**
     * @param name     null for a generated one
     * @param hostname null for the name
     * @param rootfs   overlay lower layers (colon-separated, the first on top), or null to share the host's root
     * @param detach   stdin, stdout and stderr are /dev/null instead of Cryo's own (a log file of the
     *                 host's would tie the container to a path a checkpoint could not take along)
     * @param volumes  host directories to bind in ({@link Volumes#parse})
     * @param limits   cgroup limits in their v2 form (memory.max, pids.max, cpu.max -> value), set
     *                 before the command runs; in a v1 hierarchy where v2 lacks the controller
     */
    public record Options(String name, String hostname, String rootfs, Net net, boolean user, boolean detach,
                          List<String> command, List<Volume> volumes, Map<String, String> limits) {
    }

    /** A container whose first process runs the command; {@link #waitForExit()} for one run in the foreground. */
    public record Started(String name, int pid) {
        /** Waits until its first process (Cryo's child) exits, removes the container, and gives the exit code as a shell would. */
        public int waitForExit() {
            return Containers.waitInForeground(name, pid);
        }
    }

    private Run() {
    }

    public static Started start(Options o) {
        if (o.command().isEmpty()) {
            throw new CryoException("no command given to run in the container");
        }
        int euid = Sys.geteuid();
        if (euid != 0 && !o.user()) {
            throw new CryoException("user " + euid + " may create namespaces only inside a user namespace of its own: add --user");
        }
        if (euid != 0 && o.net() == Net.VETH) {
            throw new CryoException("--net veth needs root: the host end of the pair is made in the host's network namespace"
                    + " (use --net none or host)");
        }
        String name = o.name() != null ? o.name() : "c" + Long.toHexString(System.nanoTime() & 0xffffffL);
        Containers.claimName(name);
        String hostname = o.hostname() != null ? o.hostname() : name;
        long namespaces = Namespaces.NEWPID | Namespaces.NEWNS | Namespaces.NEWIPC | Namespaces.NEWUTS
                | (o.net() != Net.HOST ? Namespaces.NEWNET : 0) | (o.user() ? Namespaces.NEWUSER : 0);
        Path state = StateStore.dir(name);
        RootSetup setup = RootSetup.of(namespaces, o.rootfs(), state, new Uts.Names(hostname, null), o.volumes(), List.of());
        ContainerCgroup cgroup = null;
        Tracee init = null;
        Veth.Uplink uplink = null;
        List<String> baseMounts;
        try {
            Files.createDirectories(state);
            setup.prepareDirectories();
            cgroup = ContainerCgroup.create(name, o.limits().keySet());
            if (cgroup != null) {
                cgroup.applyLimits(o.limits(), true);
            }
            try (RestoreStub stub = RestoreStub.spawn(!o.detach())) {
                stub.unshare(namespaces);
                if (o.user()) {
                    UserNamespace.write(stub.pid(), UserNamespace.forCaller());
                }
                if (o.net() == Net.VETH) {
                    uplink = Veth.create(name, stub.pid(), StateStore.root());
                }
                init = stub.cloneWithPid(1);
            }
            if (cgroup != null) {
                cgroup.join(init.pid()); // before it runs anything: whatever it starts is in the cgroup too
            }
            List<String> env = environment(hostname);
            try (RemoteSyscalls sys = new RemoteSyscalls(init, RestoreStub.SYSCALL_INSN)) {
                RemoteAddr scratch = sys.mmap(0, SCRATCH_SIZE, RemoteSyscalls.PROT_READ | RemoteSyscalls.PROT_WRITE,
                        RemoteSyscalls.MAP_PRIVATE | RemoteSyscalls.MAP_ANONYMOUS, -1, 0);
                sys.attachScratch(new RemoteScratch(init, scratch, SCRATCH_SIZE));
                sys.call("setsid", Nr.SETSID);
                baseMounts = setup.apply(sys);
                exec(sys, o.command(), env);
            }
            init.detach();
        } catch (IOException | RuntimeException e) {
            if (init != null) {
                init.kill();
                Sys.raw(Nr.WAIT4, init.pid(), 0, 1, 0);
            }
            throw Containers.undoPrepare(name, cgroup, uplink == null ? null : uplink.hostName(), e);
        }
        ContainerRecord.Builder record = ContainerRecord.newBuilder();
        if (uplink != null) {
            record.setVethHost(uplink.hostName()).setVethHostAddress(uplink.hostAddress()).setVethAddress(uplink.containerAddress());
        }
        StateStore.write(record.setName(name).setInitPid(init.pid())
                .setInitStartTime(ProcFiles.statField(ProcFiles.statFields(init.pid()), 22))
                .setCgroup(cgroup == null ? "" : cgroup.dir().toString()).addAllV1Cgroups(cgroup == null ? List.of() : cgroup.v1Dirs())
                .addAllCommand(o.command()).setRootfs(o.rootfs() == null ? "" : o.rootfs())
                .setHostname(hostname).setNamespaces(namespaces).setCreatedUnixMs(System.currentTimeMillis())
                .addAllVolumes(o.volumes()).addAllBaseMounts(baseMounts).build());
        int pid = init.pid();
        String cgroupDir = cgroup == null ? "none" : cgroup.dir().toString();
        LOG.info(() -> "container " + name + " runs " + String.join(" ", o.command()) + " as pid " + pid + " (1 inside), namespaces "
                + Namespaces.describe(namespaces) + ", cgroup " + cgroupDir);
        return new Started(name, pid);
    }

    /** What the command starts with: a plain PATH and the container's own identity, not Cryo's environment. */
    private static List<String> environment(String hostname) {
        List<String> env = new ArrayList<>(List.of("PATH=" + DEFAULT_PATH, "HOME=/root", "HOSTNAME=" + hostname, "container=cryo"));
        String term = System.getenv("TERM");
        if (term != null) {
            env.add("TERM=" + term);
        }
        return env;
    }

    /**
     * execve injected with each place PATH gives for the command, in the container's own view of
     * the file system; the first that works ends the session: the task leaves the call already
     * running the command, with no signal blocked.
     */
    private static void exec(RemoteSyscalls sys, List<String> command, List<String> env) {
        String cmd = command.getFirst();
        List<String> candidates = new ArrayList<>();
        if (cmd.contains("/")) {
            candidates.add(cmd);
        } else {
            for (String dir : DEFAULT_PATH.split(":")) {
                candidates.add(dir + "/" + cmd);
            }
        }
        long argv = pointerArray(sys, command);
        long envp = pointerArray(sys, env);
        int errno = Errno.ENOENT;
        for (String path : candidates) {
            long r = sys.raw(Nr.EXECVE, sys.scratch().putString(path).value(), argv, envp);
            if (r == 0) {
                sys.finish(sys.task().getRegs(), 0);
                return;
            }
            errno = (int) -r;
            if (errno != Errno.ENOENT && errno != Errno.ENOTDIR && errno != Errno.EACCES) {
                break;
            }
        }
        throw new CryoException(cmd + ": " + (errno == Errno.ENOENT ? "not found in the container"
                + (cmd.contains("/") ? "" : " (PATH=" + DEFAULT_PATH + ")") : "cannot execute: " + Errno.name(errno)));
    }

    /** A NULL-terminated array of pointers to copies of {@code strings}, in the scratch area. */
    private static long pointerArray(RemoteSyscalls sys, List<String> strings) {
        ByteBuffer ptrs = ByteBuffer.allocate(8 * (strings.size() + 1)).order(ByteOrder.LITTLE_ENDIAN);
        for (String s : strings) {
            ptrs.putLong(sys.scratch().putString(s).value());
        }
        return sys.scratch().put(ptrs.array()).value();
    }
}
