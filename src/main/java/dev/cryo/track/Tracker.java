package dev.cryo.track;

import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;
import dev.cryo.sys.PagemapScan;
import dev.cryo.sys.Sys;
import dev.cryo.sys.Userfaultfd;

import java.lang.foreign.Arena;
import java.util.List;
import java.util.logging.Logger;

/**
 * Dirty tracking of one process: a userfaultfd created inside the process (a userfaultfd
 * belongs to the address space of whoever creates it), of which Cryo keeps the only copy. Its
 * areas are registered for write protection in async mode: a write to a protected page is
 * resolved by the kernel at once (the application sees nothing) and only clears the page's
 * protection, which PAGEMAP_SCAN then reports as PAGE_IS_WRITTEN. Closing the last copy ends
 * the tracking and the kernel unregisters every area.
 */
public final class Tracker implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger("track");

    private final int pid;
    private int uffd;

    private Tracker(int pid, int uffd) {
        this.pid = pid;
        this.uffd = uffd;
    }

    /**
     * Creates the userfaultfd inside the stopped process (injected userfaultfd(2)), copies it
     * into Cryo with pidfd_getfd and closes the process's own fd again: the task ends up with
     * no fd it did not have, and the tracking belongs to Cryo's copy.
     */
    public static Tracker create(RemoteSyscalls leader) {
        int pid = leader.task().pid();
        int remote = (int) leader.call("userfaultfd", Nr.USERFAULTFD, Userfaultfd.O_CLOEXEC | Userfaultfd.USER_MODE_ONLY);
        int local;
        try {
            local = Sys.fdOf(pid, remote);
        } finally {
            leader.closeFd(remote);
        }
        try {
            Userfaultfd.enableAsyncWriteProtect(local);
        } catch (RuntimeException e) {
            Sys.close(local);
            throw e;
        }
        LOG.fine(() -> "process " + pid + ": userfaultfd created for dirty tracking");
        return new Tracker(pid, local);
    }

    /** Tracking of process {@code pid} through {@code uffd}, an fd of Cryo's own (taken from a keeper). */
    static Tracker adopt(int pid, int uffd) {
        return new Tracker(pid, uffd);
    }

    public int pid() {
        return pid;
    }

    int fd() {
        return uffd;
    }

    /** What registering an area answered. */
    public enum Registration { OURS, APPLICATION, UNTRACKABLE }

    /**
     * Registers {@code [start, end)} for write protection. Registering a range again with the
     * same userfaultfd is accepted, and a range of another userfaultfd (the application's own)
     * is refused with EBUSY: so this also tells whose an area that is already registered is.
     */
    public Registration register(long start, long end) {
        long r = Userfaultfd.registerWriteProtect(uffd, start, end - start);
        if (r == 0) {
            return Registration.OURS;
        }
        if (r == -Errno.EBUSY) {
            return Registration.APPLICATION;
        }
        LOG.fine(() -> "process " + pid + ": area " + Long.toHexString(start) + "-" + Long.toHexString(end)
                + " cannot be tracked: " + Errno.name((int) -r));
        return Registration.UNTRACKABLE;
    }

    /** Write-protects every page of {@code [start, end)}: from now on a write to any of them is seen. */
    public void protect(long start, long end) {
        Userfaultfd.writeProtect(uffd, start, end - start);
    }

    /**
     * Ranges of {@code [start, end)} written since they were last protected. Only asks, so a
     * dump that fails after this leaves the tracking as it was.
     */
    public static List<long[]> written(int pagemapFd, long start, long end) {
        return PagemapScan.written(pagemapFd, start, end, false);
    }

    /** Ranges written since last protected, each protected again as it is reported: consumes what the tracking knew. */
    public static List<long[]> takeWritten(int pagemapFd, long start, long end) {
        return PagemapScan.written(pagemapFd, start, end, true);
    }

    /** /proc/PID/pagemap opened for PAGEMAP_SCAN; close with {@link Sys#close}. */
    public static int openPagemap(int pid) {
        try (Arena a = Arena.ofConfined()) {
            return (int) Sys.call("open(/proc/" + pid + "/pagemap)", Nr.OPEN,
                    a.allocateFrom("/proc/" + pid + "/pagemap").address(), 0 | 02000000);
        }
    }

    /** Cryo's copy closes; if no keeper holds another, the tracking of this process ends here. */
    @Override
    public void close() {
        if (uffd >= 0) {
            Sys.raw(Nr.CLOSE, uffd);
            uffd = -1;
        }
    }
}
