package dev.cryo.remote;

import dev.cryo.sys.Nr;
import dev.cryo.sys.Ptrace;
import dev.cryo.sys.Sys;

import java.util.logging.Logger;

/**
 * The seed every restored process grows from: a 200-byte static ELF, generated here and run
 * from a memfd, that does nothing but {@code pause()} in a loop. Cryo seizes it and injects a
 * {@code clone3} with {@code set_tid} to get a child with exactly the saved PID, then rebuilds
 * that child from the image. CLONE_PARENT makes the child a sibling of the stub, i.e. a child of
 * Cryo itself, so the stub can go as soon as the child exists.
 * <pre>
 *   0x00  ELF header (64 bytes)
 *   0x40  PT_LOAD        r-x  the whole file at {@link #BASE}
 *   0x78  PT_GNU_STACK   rw-  (no executable stack)
 *   0xb0  loop: mov eax, 34 (pause); syscall; jmp loop
 * </pre>
 */
public final class RestoreStub implements AutoCloseable {
    /** How the stub, and so every task forked from it, is traced (children inherit the options). */
    public static final long TRACE_OPTIONS = Ptrace.O_TRACESYSGOOD | Ptrace.O_TRACECLONE | Ptrace.O_TRACEFORK | Ptrace.O_EXITKILL;
    private static final Logger LOG = Logger.getLogger("restore");
    /** Load address; anything works, as the stub's mappings are removed before the image's are made. */
    public static final long BASE = 0x7a000000L;
    private static final int CODE_OFFSET = TinyElf.CODE_OFFSET;
    /** Address of the {@code syscall} instruction: after the 5-byte {@code mov eax, imm32}. */
    public static final RemoteAddr SYSCALL_INSN = new RemoteAddr(BASE + CODE_OFFSET + 5);

    private static final int O_RDONLY = 0, O_CLOEXEC = 02000000;

    private final Tracee stub;
    private boolean gone;

    private RestoreStub(Tracee stub) {
        this.stub = stub;
    }

    static byte[] elf() {
        return TinyElf.of(BASE, new byte[] {(byte) 0xb8, 34, 0, 0, 0, 0x0f, 0x05, (byte) 0xeb, (byte) 0xf7});
    }

    /** Writes the stub into a memfd, spawns it (stdio on /dev/null) and seizes it. */
    public static RestoreStub spawn() {
        return spawn(false);
    }

    /** Spawns the stub with Cryo's own stdio if {@code inheritStdio} (a container run in the foreground), and seizes it. */
    public static RestoreStub spawn(boolean inheritStdio) {
        int pid = TinyElf.spawn(elf(), new String[] {"cryo-restore"}, new int[0], inheritStdio);
        try {
            Tracee t = Tracee.seize(pid, TRACE_OPTIONS);
            return new RestoreStub(t);
        } catch (RuntimeException e) {
            Sys.raw(Nr.KILL, pid, 9);
            Sys.raw(Nr.WAIT4, pid, 0, 0, 0);
            throw e;
        }
    }

    /**
     * Injects clone3(CLONE_PARENT, set_tid = {pid}) into the stub and returns the new child,
     * stopped and traced by the calling thread.
     */
    public Tracee cloneWithPid(int pid) {
        Tracee child;
        try (RemoteSyscalls sys = new RemoteSyscalls(stub, SYSCALL_INSN)) {
            RemoteAddr scratch = sys.mmap(0, 4096, RemoteSyscalls.PROT_READ | RemoteSyscalls.PROT_WRITE,
                    RemoteSyscalls.MAP_PRIVATE | RemoteSyscalls.MAP_ANONYMOUS, -1, 0);
            sys.attachScratch(new RemoteScratch(stub, scratch, 4096));
            child = Clone3.withId(sys, Clone3.CLONE_PARENT, pid);
        }
        LOG.fine(() -> "created task " + pid + " from the restore stub " + stub.pid());
        return child;
    }

    /**
     * Injects unshare({@code namespaces}) (CLONE_NEW* flags) into the stub: the child cloned next
     * is the first task of the new namespaces, pid 1 of a new pid namespace (which only the
     * stub's children enter; the stub stays where it was).
     */
    public void unshare(long namespaces) {
        try (RemoteSyscalls sys = new RemoteSyscalls(stub, SYSCALL_INSN)) {
            sys.call("unshare(0x" + Long.toHexString(namespaces) + ")", Nr.UNSHARE, namespaces);
        }
    }

    /**
     * Moves the stub into the namespaces of process {@code pid} named by {@code kinds} ("user",
     * "net" ...), in that order, by injected open and setns(2). A single-threaded task may join a
     * user namespace, which Cryo's JVM (many threads) never may; and a user other than root must
     * be in a container's user namespace before it may join the container's other namespaces.
     */
    public void joinNamespaces(int pid, java.util.List<String> kinds) {
        try (RemoteSyscalls sys = new RemoteSyscalls(stub, SYSCALL_INSN)) {
            RemoteAddr scratch = sys.mmap(0, 4096, RemoteSyscalls.PROT_READ | RemoteSyscalls.PROT_WRITE,
                    RemoteSyscalls.MAP_PRIVATE | RemoteSyscalls.MAP_ANONYMOUS, -1, 0);
            sys.attachScratch(new RemoteScratch(stub, scratch, 4096));
            for (String kind : kinds) {
                int fd = sys.open("/proc/" + pid + "/ns/" + kind, O_RDONLY | O_CLOEXEC, 0);
                try {
                    sys.call("setns(/proc/" + pid + "/ns/" + kind + ")", Nr.SETNS, fd, 0);
                } finally {
                    sys.closeFd(fd);
                }
            }
            sys.munmap(scratch.value(), 4096);
        }
    }

    /** socket(2) made by the stub, in its namespaces; returns Cryo's own copy of it (pidfd_getfd). */
    public int socket(int domain, int type, int protocol) {
        int remote;
        try (RemoteSyscalls sys = new RemoteSyscalls(stub, SYSCALL_INSN)) {
            remote = (int) sys.call("socket", Nr.SOCKET, domain, type, protocol);
        }
        return Sys.fdOf(stub.pid(), remote);
    }

    /**
     * Makes the stub a plain user: no supplementary groups, then gid and uid {@code id} (real,
     * effective, saved). The tasks it creates next, and the namespaces it unshares, are that user's.
     */
    public void becomeUser(int id) {
        try (RemoteSyscalls sys = new RemoteSyscalls(stub, SYSCALL_INSN)) {
            sys.call("setgroups(0)", Nr.SETGROUPS, 0, 0);
            sys.call("setresgid(" + id + ")", Nr.SETRESGID, id, id, id);
            sys.call("setresuid(" + id + ")", Nr.SETRESUID, id, id, id);
        }
    }

    public int pid() {
        return stub.pid();
    }

    /** Kills the stub and reaps it (it is Cryo's own child). */
    @Override
    public void close() {
        if (!gone) {
            gone = true;
            stub.kill();
            Sys.raw(Nr.WAIT4, stub.pid(), 0, 0, 0);
        }
    }
}
