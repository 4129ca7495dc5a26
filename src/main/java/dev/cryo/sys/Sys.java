package dev.cryo.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The one door to the kernel. Every downcall Cryo makes goes through a method handle declared
 * here; errno is captured per call (never through a shared static segment) and turned into a
 * {@link SysException} naming the call and its arguments.
 */
@SuppressWarnings("restricted")
public final class Sys {
    static final Linker LINKER = Linker.nativeLinker();
    static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE.varHandle(groupElement("errno"));

    /** long syscall(long number, ...): six register arguments, all passed as longs. */
    private static final MethodHandle SYSCALL = downcall("syscall",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            Linker.Option.firstVariadicArg(1), Linker.Option.captureCallState("errno"));

    /** int posix_spawn(pid_t *pid, const char *path, file_actions, attrp, char *const argv[], char *const envp[]). */
    private static final MethodHandle POSIX_SPAWN = downcall("posix_spawn",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));

    /** posix_spawn_file_actions_t is opaque; 80 bytes on x86_64 glibc, allocated with room to spare. */
    private static final long FILE_ACTIONS_SIZE = 256;
    private static final MethodHandle FA_INIT = downcall("posix_spawn_file_actions_init",
            FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle FA_DESTROY = downcall("posix_spawn_file_actions_destroy",
            FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle FA_ADDOPEN = downcall("posix_spawn_file_actions_addopen",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    private static final MethodHandle FA_ADDCLOSEFROM = downcall("posix_spawn_file_actions_addclosefrom_np",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle FA_ADDDUP2 = downcall("posix_spawn_file_actions_adddup2",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));

    private Sys() {
    }

    static MethodHandle downcall(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        try {
            return LINKER.downcallHandle(LIBC.find(name).orElseThrow(), descriptor, options);
        } catch (IllegalCallerException e) {
            throw new IllegalStateException("Cryo needs native access: run java with --enable-native-access=ALL-UNNAMED", e);
        }
    }

    /** Runs a system call; on failure throws a {@link SysException} named {@code name}. */
    public static long call(String name, int nr, long... args) {
        long a0 = arg(args, 0), a1 = arg(args, 1), a2 = arg(args, 2), a3 = arg(args, 3), a4 = arg(args, 4), a5 = arg(args, 5);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            long result = (long) SYSCALL.invokeExact(state, (long) nr, a0, a1, a2, a3, a4, a5);
            if (result == -1) {
                throw new SysException(name, (int) ERRNO.get(state, 0L), args);
            }
            return result;
        } catch (SysException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("downcall " + name + " failed", t);
        }
    }

    /** Like {@link #call}, but returns {@code -errno} instead of throwing, for callers that branch on errno. */
    public static long raw(int nr, long... args) {
        long a0 = arg(args, 0), a1 = arg(args, 1), a2 = arg(args, 2), a3 = arg(args, 3), a4 = arg(args, 4), a5 = arg(args, 5);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            long result = (long) SYSCALL.invokeExact(state, (long) nr, a0, a1, a2, a3, a4, a5);
            return result == -1 ? -(int) ERRNO.get(state, 0L) : result;
        } catch (Throwable t) {
            throw new IllegalStateException("downcall syscall " + nr + " failed", t);
        }
    }

    private static long arg(long[] args, int i) {
        return i < args.length ? args[i] : 0;
    }

    static String argToString(long value) {
        return value > 0xffff || value < -4096 ? "0x" + Long.toHexString(value) : Long.toString(value);
    }

    /**
     * posix_spawn(3) of {@code path} with {@code argv} and {@code envp}: a child of this JVM made
     * without forking it (glibc spawns with CLONE_VM|CLONE_VFORK), with /dev/null as its stdin,
     * stdout and stderr and no other fd. Returns the child's pid.
     */
    public static int posixSpawn(String path, String[] argv, String[] envp) {
        return posixSpawn(path, argv, envp, new int[0]);
    }

    /**
     * Like {@link #posixSpawn(String, String[], String[])}, but the child also gets
     * {@code passFds[i]} of this process as its fd {@code 3 + i}. The fds passed must be 10 or
     * above ({@link #dupAbove}), so that no dup2 overwrites one still to be passed.
     */
    public static int posixSpawn(String path, String[] argv, String[] envp, int[] passFds) {
        return posixSpawn(path, argv, envp, passFds, false);
    }

    /**
     * The same, with Cryo's own stdin, stdout and stderr instead of /dev/null when
     * {@code inheritStdio} (a container run in the foreground talks to the user).
     */
    public static int posixSpawn(String path, String[] argv, String[] envp, int[] passFds, boolean inheritStdio) {
        try (Arena arena = Arena.ofConfined()) {
            // the JVM's own fds are not the child's business
            MemorySegment actions = arena.allocate(FILE_ACTIONS_SIZE, 16);
            MemorySegment devNull = arena.allocateFrom("/dev/null");
            check("posix_spawn_file_actions_init", (int) FA_INIT.invokeExact(actions));
            try {
                for (int fd = 0; fd < 3 && !inheritStdio; fd++) {
                    check("posix_spawn_file_actions_addopen", (int) FA_ADDOPEN.invokeExact(actions, fd, devNull, fd == 0 ? 0 : 1, 0));
                }
                for (int i = 0; i < passFds.length; i++) {
                    if (passFds[i] < 10) {
                        throw new IllegalArgumentException("fd " + passFds[i] + " to pass is below 10");
                    }
                    // dup2 clears close-on-exec on the copy: the child keeps it across exec
                    check("posix_spawn_file_actions_adddup2", (int) FA_ADDDUP2.invokeExact(actions, passFds[i], 3 + i));
                }
                check("posix_spawn_file_actions_addclosefrom_np", (int) FA_ADDCLOSEFROM.invokeExact(actions, 3 + passFds.length));
                MemorySegment pid = arena.allocate(JAVA_INT);
                int rc = (int) POSIX_SPAWN.invokeExact(pid, arena.allocateFrom(path), actions,
                        MemorySegment.NULL, stringArray(arena, argv), stringArray(arena, envp));
                if (rc != 0) {
                    throw new SysException("posix_spawn[" + path + "]", rc);
                }
                return pid.get(JAVA_INT, 0);
            } finally {
                int ignored = (int) FA_DESTROY.invokeExact(actions);
            }
        } catch (SysException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("downcall posix_spawn failed", t);
        }
    }

    private static void check(String call, int rc) {
        if (rc != 0) {
            throw new SysException(call, rc);
        }
    }

    private static MemorySegment stringArray(Arena arena, String[] strings) {
        MemorySegment array = arena.allocate(ADDRESS, strings.length + 1L);
        for (int i = 0; i < strings.length; i++) {
            array.setAtIndex(ADDRESS, i, arena.allocateFrom(strings[i]));
        }
        array.setAtIndex(ADDRESS, strings.length, MemorySegment.NULL);
        return array;
    }

    /**
     * Makes one harmless call through each kind of downcall Cryo uses first (syscall with and
     * without errno, the posix_spawn file actions), so their call sites are linked before the
     * work needs them.
     */
    public static void warmUp() {
        try {
            raw(Nr.GETPID);
            call("getppid", Nr.GETPPID);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment actions = arena.allocate(FILE_ACTIONS_SIZE, 16);
                if ((int) FA_INIT.invokeExact(actions) == 0) {
                    int ignored = (int) FA_DESTROY.invokeExact(actions);
                }
            }
        } catch (Throwable ignored) {
            // only a head start: the real call reports any problem
        }
    }

    // ---- typed wrappers for calls Cryo makes on its own behalf ----

    public static int getpid() {
        return (int) call("getpid", Nr.GETPID);
    }

    public static int geteuid() {
        return (int) call("geteuid", Nr.GETEUID);
    }

    public static void kill(int pid, int signal) {
        call("kill", Nr.KILL, pid, signal);
    }

    public static void close(int fd) {
        call("close", Nr.CLOSE, fd);
    }

    public static int pidfdOpen(int pid) {
        return (int) call("pidfd_open", Nr.PIDFD_OPEN, pid, 0);
    }

    public static int pidfdGetfd(int pidfd, int targetFd) {
        return (int) call("pidfd_getfd", Nr.PIDFD_GETFD, pidfd, targetFd, 0);
    }

    /** pidfd_send_signal(2): a signal to exactly the process the pidfd names, never to a reuser of its PID. */
    public static void pidfdSendSignal(int pidfd, int signal) {
        call("pidfd_send_signal", Nr.PIDFD_SEND_SIGNAL, pidfd, signal, 0, 0);
    }

    /** fcntl(F_DUPFD_CLOEXEC): a close-on-exec copy of {@code fd} numbered {@code min} or above. */
    public static int dupAbove(int fd, int min) {
        return (int) call("fcntl(F_DUPFD_CLOEXEC)", Nr.FCNTL, fd, 1030, min);
    }

    /** ioctl(2) with a pointer argument; returns the ioctl's non-negative result. */
    public static long ioctl(String name, int fd, long request, MemorySegment arg) {
        return call("ioctl(" + name + ")", Nr.IOCTL, fd, request, arg.address());
    }

    /** Like {@link #ioctl}, but returns {@code -errno} instead of throwing. */
    public static long ioctlRaw(int fd, long request, MemorySegment arg) {
        return raw(Nr.IOCTL, fd, request, arg.address());
    }

    /** mknod(2) at {@code path} (a whiteout of an overlay upper layer is a character device 0:0). */
    public static void mknod(String path, int mode, long dev) {
        try (Arena arena = Arena.ofConfined()) {
            call("mknod[" + path + "]", Nr.MKNOD, arena.allocateFrom(path).address(), mode, dev);
        }
    }

    /** lgetxattr(2): the value of extended attribute {@code name} of {@code path} itself, or null when it has none. */
    public static byte[] lgetxattr(String path, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(4096);
            long n = raw(Nr.LGETXATTR, arena.allocateFrom(path).address(), arena.allocateFrom(name).address(),
                    buf.address(), buf.byteSize());
            if (n == -Errno.ENODATA) {
                return null;
            }
            if (n < 0) {
                throw new SysException("lgetxattr[" + path + ", " + name + "]", (int) -n);
            }
            return buf.asSlice(0, n).toArray(JAVA_BYTE);
        }
    }

    /** lsetxattr(2) of {@code name} on {@code path} itself. */
    public static void lsetxattr(String path, String name, byte[] value) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(Math.max(1, value.length));
            v.asSlice(0, value.length).copyFrom(MemorySegment.ofArray(value));
            call("lsetxattr[" + path + ", " + name + "]", Nr.LSETXATTR, arena.allocateFrom(path).address(),
                    arena.allocateFrom(name).address(), v.address(), value.length, 0);
        }
    }

    public static int memfdCreate(String name, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            return (int) call("memfd_create", Nr.MEMFD_CREATE, arena.allocateFrom(name).address(), flags);
        }
    }

    public static void write(int fd, MemorySegment data) {
        long done = 0;
        while (done < data.byteSize()) {
            done += call("write", Nr.WRITE, fd, data.address() + done, data.byteSize() - done);
        }
    }

    /** pread(2) until {@code dst} is full or the file ends; returns the bytes read. */
    public static long pread(int fd, MemorySegment dst, long offset) {
        long done = 0;
        while (done < dst.byteSize()) {
            long n = call("pread64", Nr.PREAD64, fd, dst.address() + done, dst.byteSize() - done, offset + done);
            if (n == 0) {
                break;
            }
            done += n;
        }
        return done;
    }

    /** pwrite(2) of all of {@code src} at {@code offset}. */
    public static void pwrite(int fd, MemorySegment src, long offset) {
        long done = 0;
        while (done < src.byteSize()) {
            done += call("pwrite64", Nr.PWRITE64, fd, src.address() + done, src.byteSize() - done, offset + done);
        }
    }

    /** read(2) once into {@code dst}; returns the bytes read. */
    public static long read(int fd, MemorySegment dst) {
        return call("read", Nr.READ, fd, dst.address(), dst.byteSize());
    }

    /** A copy, in Cryo's own fd table, of fd {@code fd} of process {@code pid} (the same open file). Close it after use. */
    public static int fdOf(int pid, int fd) {
        int pidfd = pidfdOpen(pid);
        try {
            return pidfdGetfd(pidfd, fd);
        } finally {
            close(pidfd);
        }
    }

    /** wait4(2) with the given options; returns {pid, status} or {0, 0} for WNOHANG with nothing to report. */
    public static int[] wait4(int pid, int options) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment status = arena.allocate(JAVA_INT);
            while (true) {
                long r = raw(Nr.WAIT4, pid, status.address(), options, 0);
                if (r == -Errno.EINTR) {
                    continue;
                }
                if (r < 0) {
                    throw new SysException("wait4", (int) -r, pid, options);
                }
                return new int[] {(int) r, status.get(JAVA_INT, 0)};
            }
        }
    }

    /** process_vm_readv(2) of one contiguous range into {@code dst}; returns bytes read. */
    public static long processVmRead(int pid, MemorySegment dst, long remoteAddr, long length) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment local = Iovec.of(arena, dst.address(), length);
            MemorySegment remote = Iovec.of(arena, remoteAddr, length);
            return call("process_vm_readv", Nr.PROCESS_VM_READV, pid, local.address(), 1, remote.address(), 1, 0);
        }
    }

    /**
     * process_vm_readv(2) of {@code count} remote ranges into one contiguous local buffer, in order.
     * Returns the bytes read; the kernel stops at the first range it cannot read.
     */
    public static long processVmReadv(int pid, long localAddr, long localLen, long[] remoteAddrs, long[] remoteLens, int count) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment local = Iovec.of(arena, localAddr, localLen);
            MemorySegment remote = arena.allocate(Iovec.LAYOUT, count);
            for (int i = 0; i < count; i++) {
                remote.setAtIndex(JAVA_LONG, 2L * i, remoteAddrs[i]);
                remote.setAtIndex(JAVA_LONG, 2L * i + 1, remoteLens[i]);
            }
            long r = raw(Nr.PROCESS_VM_READV, pid, local.address(), 1, remote.address(), count, 0);
            if (r < 0 && r != -Errno.EFAULT) {
                throw new SysException("process_vm_readv", (int) -r, pid, localLen, count);
            }
            return Math.max(r, 0);
        }
    }

    /** process_vm_writev(2) of {@code src} to one contiguous range; returns bytes written. */
    public static long processVmWrite(int pid, long remoteAddr, MemorySegment src) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment local = Iovec.of(arena, src.address(), src.byteSize());
            MemorySegment remote = Iovec.of(arena, remoteAddr, src.byteSize());
            return call("process_vm_writev", Nr.PROCESS_VM_WRITEV, pid, local.address(), 1, remote.address(), 1, 0);
        }
    }

    public static int prctl(int option, long... args) {
        long[] all = new long[1 + args.length];
        all[0] = option;
        System.arraycopy(args, 0, all, 1, args.length);
        return (int) call("prctl", Nr.PRCTL, all);
    }
}
