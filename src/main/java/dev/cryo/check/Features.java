package dev.cryo.check;

import dev.cryo.image.proto.UserNamespaceMaps;
import dev.cryo.net.NetworkLock;
import dev.cryo.ns.Namespaces;
import dev.cryo.ns.UserNamespace;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RestoreStub;
import dev.cryo.remote.Tracee;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Ptrace;
import dev.cryo.sys.Sockets;
import dev.cryo.sys.Sys;
import dev.cryo.sys.Tty;
import dev.cryo.task.HostCpu;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Probes, by trying them, the kernel features Cryo relies on. Each probe does the real thing on
 * a throwaway object (a restore stub, a userfaultfd, a temporary cgroup) and reports what the
 * kernel said.
 */
public final class Features {
    private static final List<String> NAMES = List.of("ptrace_seize", "process_vm_readv", "ptrace_rseq_config",
            "clone3_set_tid", "pr_set_mm_map", "pidfd_getfd", "kcmp", "timer_restore_ids", "uffd_wp_async",
            "pagemap_scan", "cgroup2_freeze", "namespaces", "overlayfs", "ipc_next_id", "xsave", "tcp_repair", "network_lock", "tiocsti",
            "unprivileged_containers", "seccomp_suspend");
    private static final int PR_SET_MM = 35, PR_SET_MM_MAP_SIZE = 15, PR_TIMER_CREATE_RESTORE_IDS = 77;
    private static final long UFFDIO_API = 0xc018aa3fL, PAGEMAP_SCAN = 0xc0606610L;
    private static final long UFFD_FEATURE_WP_UNPOPULATED = 1L << 13, UFFD_FEATURE_WP_ASYNC = 1L << 15;
    private static final int UFFD_USER_MODE_ONLY = 1, O_CLOEXEC = 02000000;
    private static final long PAGE_IS_WRITTEN = dev.cryo.sys.PagemapScan.PAGE_IS_WRITTEN;

    private Features() {
    }

    public static List<String> names() {
        return NAMES;
    }

    public static List<Feature> probeAll() {
        List<Feature> out = new ArrayList<>();
        out.addAll(stubProbes());
        out.add(probe("pr_set_mm_map", true, () -> {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment size = a.allocate(JAVA_LONG);
                Sys.prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, size.address(), 0, 0);
                return "prctl_mm_map of " + size.get(java.lang.foreign.ValueLayout.JAVA_INT, 0) + " bytes";
            }
        }));
        out.add(probe("pidfd_getfd", false, () -> {
            int pidfd = Sys.pidfdOpen(Sys.getpid());
            try {
                Sys.close(Sys.pidfdGetfd(pidfd, 0));
                return "copies another task's fd";
            } finally {
                Sys.close(pidfd);
            }
        }));
        out.add(probe("kcmp", false, () -> {
            Sys.call("kcmp", Nr.KCMP, Sys.getpid(), Sys.getpid(), 0 /* KCMP_FILE */, 0, 0);
            return "compares kernel objects";
        }));
        out.add(probe("timer_restore_ids", false, () -> {
            long r = Sys.call("prctl(PR_TIMER_CREATE_RESTORE_IDS)", Nr.PRCTL, PR_TIMER_CREATE_RESTORE_IDS, 2, 0, 0, 0);
            return "POSIX timers can be recreated with their ids (currently " + (r == 1 ? "on" : "off") + ")";
        }));
        out.add(probe("uffd_wp_async", false, Features::uffdWpAsync));
        out.add(probe("pagemap_scan", false, Features::pagemapScan));
        out.add(probe("cgroup2_freeze", false, Features::cgroup2Freeze));
        out.add(probe("namespaces", false, () -> {
            List<String> missing = new ArrayList<>();
            for (String ns : List.of("user", "pid", "mnt", "ipc", "uts", "net", "cgroup", "time")) {
                if (!Files.exists(Path.of("/proc/self/ns", ns))) {
                    missing.add(ns);
                }
            }
            if (!missing.isEmpty()) {
                throw new IllegalStateException("missing " + String.join(", ", missing));
            }
            return "user pid mnt ipc uts net cgroup time";
        }));
        out.add(unprivilegedContainers());
        out.add(probe("overlayfs", false, () -> {
            // the root of a container run with --rootfs
            if (!fileSystemKnown("overlay")) {
                throw new IllegalStateException("no overlay in /proc/filesystems (modprobe overlay)");
            }
            return "overlay file system for container roots";
        }));
        out.add(probe("ipc_next_id", false, () -> {
            // SysV IPC objects of a container come back with their ids through these sysctls
            for (String kind : List.of("shm", "sem", "msg")) {
                if (!Files.exists(Path.of("/proc/sys/kernel/" + kind + "_next_id"))) {
                    throw new IllegalStateException("no /proc/sys/kernel/" + kind + "_next_id (CONFIG_CHECKPOINT_RESTORE)");
                }
            }
            return "shm_next_id, sem_next_id, msg_next_id";
        }));
        out.add(probe("xsave", true, () -> "XCR0 0x" + Long.toHexString(HostCpu.xfeatures())));
        out.add(probe("tcp_repair", false, () -> {
            int fd = (int) Sys.call("socket(AF_INET, SOCK_STREAM)", Nr.SOCKET, 2, 1 | O_CLOEXEC, 0);
            try {
                Sockets.setInt(fd, Sockets.SOL_TCP, 19 /* TCP_REPAIR */, 1);
                return "TCP_REPAIR (--tcp-established)";
            } finally {
                Sys.close(fd);
            }
        }));
        out.add(probe("tiocsti", false, Features::tiocsti));
        out.add(probe("network_lock", false, () -> {
            NetworkLock.unlock(NetworkLock.lock(Sys.getpid(), List.of()));
            return "nftables table made and removed (keeps peers quiet during --tcp-established)";
        }));
        return out;
    }

    /** Whether /proc/filesystems, which lists each file system the kernel knows after a tab, names {@code type}. */
    private static boolean fileSystemKnown(String type) {
        try {
            return Files.readString(Path.of("/proc/filesystems")).contains("\t" + type + "\n");
        } catch (java.io.IOException e) {
            throw new IllegalStateException("cannot read /proc/filesystems: " + e.getMessage());
        }
    }

    /** A byte pushed into a new pty's input with TIOCSTI comes out of its slave: how restore puts back unread terminal input. */
    private static String tiocsti() {
        try (Arena a = Arena.ofConfined()) {
            int master = (int) Sys.call("open(/dev/ptmx)", Nr.OPEN, a.allocateFrom("/dev/ptmx").address(), 02 | 0400 | O_CLOEXEC);
            try {
                Tty.setInt(master, Tty.TIOCSPTLCK, 0, "TIOCSPTLCK");
                int slave = (int) Sys.call("ioctl(TIOCGPTPEER)", Nr.IOCTL, master, Tty.TIOCGPTPEER,
                        02 | 04000 | 0400 | O_CLOEXEC);
                try {
                    Tty.Termios t = Tty.getTermios(slave);
                    Tty.setTermios(slave, t.withFlags(t.iflag(), t.oflag(), t.lflag() & ~(Tty.ICANON | Tty.ECHO))); // raw input
                    Tty.inject(slave, new byte[] {'x'});
                    MemorySegment got = a.allocate(1);
                    if (Sys.read(slave, got) != 1 || got.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0) != 'x') {
                        throw new IllegalStateException("the byte pushed with TIOCSTI did not come out of the slave");
                    }
                    return "unread terminal input of pty pairs can be put back";
                } finally {
                    Sys.close(slave);
                }
            } finally {
                Sys.close(master);
            }
        } catch (dev.cryo.sys.SysException e) {
            String legacy = ProcFiles.sysctl("dev/tty/legacy_tiocsti");
            throw new IllegalStateException(e.getMessage() + ("0".equals(legacy) ? " (dev.tty.legacy_tiocsti is 0)" : ""));
        }
    }

    private static Feature probe(String name, boolean required, Supplier<String> body) {
        try {
            return new Feature(name, true, required, body.get());
        } catch (RuntimeException e) {
            return new Feature(name, false, required, e.getMessage());
        }
    }

    /** Seize a restore stub, read its memory and rseq state, and clone it into a chosen free PID. */
    private static List<Feature> stubProbes() {
        List<Feature> out = new ArrayList<>();
        RestoreStub stub;
        try {
            stub = RestoreStub.spawn();
        } catch (RuntimeException e) {
            for (String n : List.of("ptrace_seize", "process_vm_readv", "ptrace_rseq_config", "clone3_set_tid")) {
                out.add(new Feature(n, false, true, "could not seize a test process: " + e.getMessage()));
            }
            return out;
        }
        try (stub) {
            out.add(new Feature("ptrace_seize", true, true, "PTRACE_SEIZE and PTRACE_INTERRUPT"));
            out.add(probe("process_vm_readv", true, () -> {
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment buf = a.allocate(4);
                    Sys.processVmRead(stub.pid(), buf, RestoreStub.BASE, 4);
                    return "reads a stopped task's memory";
                }
            }));
            out.add(probe("ptrace_rseq_config", false, () -> {
                Ptrace.rseqConfiguration(stub.pid());
                return "PTRACE_GET_RSEQ_CONFIGURATION";
            }));
            out.add(probe("seccomp_suspend", false, () -> {
                Ptrace.setOptions(stub.pid(), RestoreStub.TRACE_OPTIONS | Ptrace.O_SUSPEND_SECCOMP);
                Ptrace.setOptions(stub.pid(), RestoreStub.TRACE_OPTIONS);
                return "a task's seccomp filters can be suspended while Cryo works in it (needed for tasks that have filters)";
            }));
            out.add(probe("clone3_set_tid", true, () -> {
                int pid = freePid();
                Tracee child = stub.cloneWithPid(pid);
                child.kill();
                Sys.raw(Nr.WAIT4, pid, 0, 1, 0);
                return "created a process with the chosen PID " + pid;
            }));
        }
        return out;
    }

    private static int freePid() {
        int last = Integer.parseInt(ProcFiles.sysctl("kernel/ns_last_pid"));
        int max = Integer.parseInt(ProcFiles.sysctl("kernel/pid_max"));
        for (int p = last + 100; p < max; p++) {
            if (!ProcFiles.exists(p)) {
                return p;
            }
        }
        throw new IllegalStateException("no free PID found");
    }

    /** userfaultfd with write-protect in async mode: the dirty tracking incremental dumps use. */
    private static String uffdWpAsync() {
        long fd = Sys.raw(Nr.USERFAULTFD, O_CLOEXEC | UFFD_USER_MODE_ONLY);
        if (fd < 0) {
            throw new IllegalStateException("userfaultfd: " + Errno.name((int) -fd));
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment api = a.allocate(24, 8);
            api.set(JAVA_LONG, 0, 0xAA);
            api.set(JAVA_LONG, 8, UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED);
            Sys.call("ioctl(UFFDIO_API)", Nr.IOCTL, fd, UFFDIO_API, api.address());
            return "UFFD_FEATURE_WP_ASYNC and WP_UNPOPULATED";
        } finally {
            Sys.close((int) fd);
        }
    }

    /** PAGEMAP_SCAN on our own pagemap over an empty range: accepted only by kernels that have it. */
    private static String pagemapScan() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment path = a.allocateFrom("/proc/self/pagemap");
            int fd = (int) Sys.call("open", Nr.OPEN, path.address(), 0);
            try {
                MemorySegment arg = a.allocate(96, 8); // struct pm_scan_arg
                MemorySegment page = a.allocate(4096, 4096);
                arg.set(JAVA_LONG, 0, 96);
                arg.set(JAVA_LONG, 16, page.address());
                arg.set(JAVA_LONG, 24, page.address() + 4096);
                arg.set(JAVA_LONG, 72, PAGE_IS_WRITTEN); // category_mask
                arg.set(JAVA_LONG, 88, PAGE_IS_WRITTEN); // return_mask
                Sys.call("ioctl(PAGEMAP_SCAN)", Nr.IOCTL, fd, PAGEMAP_SCAN, arg.address());
                return "PAGE_IS_WRITTEN scans of /proc/pid/pagemap";
            } finally {
                Sys.close(fd);
            }
        }
    }

    /**
     * What `cryo run --user` by a user other than root needs: a stub of that user (root's stub
     * becomes nobody first) unshares a user namespace with pid, mount, IPC and UTS ones, gets
     * the maps such a user may write, and clones pid 1 of the new pid namespace. Distributions
     * turn this off with kernel.unprivileged_userns_clone=0, user.max_user_namespaces=0 or
     * AppArmor's kernel.apparmor_restrict_unprivileged_userns=1; those are named when it fails.
     */
    public static Feature unprivilegedContainers() {
        return probe("unprivileged_containers", false, Features::tryUnprivilegedContainer);
    }

    private static String tryUnprivilegedContainer() {
        int euid = Sys.geteuid();
        try (RestoreStub stub = RestoreStub.spawn()) {
            UserNamespaceMaps maps = UserNamespace.forCaller();
            if (euid == 0) {
                stub.becomeUser(UserNamespace.OVERFLOW_ID);
                maps = UserNamespaceMaps.newBuilder().setUidMap("0 " + UserNamespace.OVERFLOW_ID + " 1")
                        .setGidMap("0 " + UserNamespace.OVERFLOW_ID + " 1").setSetgroupsDenied(true).build();
            }
            stub.unshare(Namespaces.NEWUSER | Namespaces.NEWPID | Namespaces.NEWNS | Namespaces.NEWIPC | Namespaces.NEWUTS);
            UserNamespace.write(stub.pid(), maps);
            Tracee init = stub.cloneWithPid(1);
            init.kill();
            Sys.raw(Nr.WAIT4, init.pid(), 0, 0, 0);
            return (euid == 0 ? "a user other than root (tried as nobody)" : "user " + euid)
                    + " can run containers in a user namespace of its own (without a cgroup)";
        } catch (RuntimeException e) {
            StringBuilder why = new StringBuilder(e.getMessage());
            for (String knob : List.of("kernel/unprivileged_userns_clone=0", "user/max_user_namespaces=0",
                    "kernel/apparmor_restrict_unprivileged_userns=1")) {
                String[] kv = knob.split("=");
                if (Files.exists(Path.of("/proc/sys", kv[0])) && ProcFiles.sysctl(kv[0]).equals(kv[1])) {
                    why.append(" (").append(kv[0].replace('/', '.')).append(" is ").append(kv[1]).append(")");
                }
            }
            throw new IllegalStateException(why.toString(), e);
        }
    }

    private static String cgroup2Freeze() {
        Path mount = Cgroups.v2Mount();
        if (mount == null) {
            throw new IllegalStateException("no cgroup2 file system mounted");
        }
        Path probe = mount.resolve("cryo-probe-" + Sys.getpid());
        try {
            Files.createDirectory(probe);
            try {
                if (!Files.exists(probe.resolve("cgroup.freeze"))) {
                    throw new IllegalStateException("cgroup.freeze missing under " + mount);
                }
                return "cgroup.freeze under " + mount;
            } finally {
                Files.delete(probe);
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot create a cgroup under " + mount + ": " + e.getMessage());
        }
    }
}
