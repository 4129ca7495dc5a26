package dev.cryo.mem;

import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.core.TaskPart;
import dev.cryo.image.ImageException;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.PageFileWriter;
import dev.cryo.image.proto.MmImage;
import dev.cryo.image.proto.PageRun;
import dev.cryo.image.proto.PagemapImage;
import dev.cryo.image.proto.VmaEntry;
import dev.cryo.image.proto.VmaKind;
import dev.cryo.proc.Pagemap;
import dev.cryo.proc.ProcFiles;
import dev.cryo.proc.ProcMaps;
import dev.cryo.proc.Vma;
import dev.cryo.remote.InjectionException;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/**
 * The address space: every mapping at its address with its protection and flags, the pages
 * that hold data of the task's own, the vDSO where it was, and the mm fields (brk, arg/env
 * area, exe) that /proc and the kernel keep per process.
 */
public final class Memory implements TaskPart {
    private static final Logger LOG = Logger.getLogger("mem");
    private static final int PAGE = Pagemap.PAGE_SIZE;
    private static final int O_RDONLY = 0, O_RDWR = 2, O_CLOEXEC = 0x80000;
    private static final int ARCH_MAP_VDSO_64 = 0x2003;
    private static final int PR_SET_MM = 35, PR_SET_MM_MAP = 14, PRCTL_MM_MAP_SIZE = 104;
    private static final long MAX_MEMFD = 256L << 20;
    private static final int MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2;
    private static final int MADV_DONTNEED = 4, MADV_DONTFORK = 10, MADV_DONTDUMP = 16, MADV_WIPEONFORK = 18, MADV_HUGEPAGE = 14,
            MADV_NOHUGEPAGE = 15;

    @Override
    public String name() {
        return "mem";
    }

    @Override
    public boolean beforeFork() {
        return true;
    }

    // ------------------------------------------------------------------ dump

    @Override
    public void dump(DumpContext ctx) {
        int pid = ctx.pid();
        int ppid = (int) ProcFiles.statField(ProcFiles.statFields(pid), 4);
        boolean parentDumped = ctx.earlier().contains(ppid);
        List<Vma> parentVmas = parentDumped ? ProcMaps.read(ppid) : List.of();
        List<VmaEntry> vmas = new ArrayList<>();
        for (Vma vma : ProcMaps.read(pid)) {
            if (vma.start() != ctx.cryoArea()) {
                VmaEntry e = Vmas.entry(pid, vma);
                vmas.add(Vmas.inheritable(e) && parentVmas.stream().anyMatch(p -> Vmas.sameArea(p, vma))
                        ? e.toBuilder().setInherited(true).build() : e);
            }
        }
        java.util.Set<Long> memfdsSeen = new java.util.HashSet<>();
        for (int i = 0; i < vmas.size(); i++) {
            VmaEntry v = vmas.get(i);
            if (v.getKind() == VmaKind.MEMFD_AREA && memfdsSeen.add(v.getFileInode())) {
                vmas.set(i, v.toBuilder().setFileContents(memfdContents(pid, v)).build());
            }
        }
        PageSaver.Plan plan;
        try (Pagemap pagemap = new Pagemap(pid); Pagemap parent = parentDumped ? new Pagemap(ppid) : null) {
            plan = PageSaver.plan(vmas, pagemap, parent);
        }
        List<PageRun> runs = plan.saved();
        long pages = PageSaver.pages(runs);
        try (PageFileWriter out = ctx.image().pages(pid);
             PageSaver saver = new PageSaver(ctx.task(), out, ctx.progress())) {
            saver.save(runs, plan.cowShared());
            LOG.fine(() -> "pages shared copy-on-write, read without pinning: " + PageSaver.pages(plan.cowShared()));
            LOG.fine(() -> "pages: process_vm_readv " + saver.readNanos / 1000 + " us, write " + saver.writeNanos / 1000 + " us");
        }
        List<String> stat = ProcFiles.statFields(pid);
        long brk = ctx.syscalls().call("brk", Nr.BRK, 0);
        MmImage mm = MmImage.newBuilder().addAllVmas(vmas)
                .setStartCode(ProcFiles.statField(stat, 26)).setEndCode(ProcFiles.statField(stat, 27))
                .setStartStack(ProcFiles.statField(stat, 28))
                .setStartData(ProcFiles.statField(stat, 45)).setEndData(ProcFiles.statField(stat, 46))
                .setStartBrk(ProcFiles.statField(stat, 47)).setBrk(brk)
                .setArgStart(ProcFiles.statField(stat, 48)).setArgEnd(ProcFiles.statField(stat, 49))
                .setEnvStart(ProcFiles.statField(stat, 50)).setEnvEnd(ProcFiles.statField(stat, 51))
                .setAuxv(com.google.protobuf.ByteString.copyFrom(ProcFiles.readBytes(pid, "auxv")))
                .setExe(ProcFiles.readLink(pid, "exe"))
                .setTotalPages(pages).addAllZap(plan.zap()).build();
        ctx.image().write(ImageKind.MM, pid, mm);
        ctx.image().write(ImageKind.PAGEMAP, pid, PagemapImage.newBuilder().addAllRuns(runs).build());
        ctx.stats().areas.addAndGet(vmas.size());
        ctx.stats().pages.addAndGet(pages);
        ctx.stats().bytes.addAndGet(pages * PAGE);
        LOG.info(() -> "process " + pid + ": " + vmas.size() + " memory areas, " + pages + " pages saved in "
                + runs.size() + " runs");
    }

    /** The whole memfd behind a mapping, read through /proc/PID/map_files (the memfd need not be open as an fd). */
    private static com.google.protobuf.ByteString memfdContents(int pid, VmaEntry vma) {
        Path file = ProcFiles.dir(pid).resolve("map_files/" + Long.toHexString(vma.getStart()) + "-" + Long.toHexString(vma.getEnd()));
        try {
            long size = Files.size(file);
            if (size > MAX_MEMFD) {
                throw new dev.cryo.core.Refusal("process " + pid + " maps " + Vmas.describe(vma) + ", a memfd of " + size
                        + " bytes; memfds over " + (MAX_MEMFD >> 20) + " MiB are not saved");
            }
            return com.google.protobuf.ByteString.copyFrom(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new dev.cryo.core.Refusal("process " + pid + " maps " + Vmas.describe(vma) + ": cannot read the memfd: " + e.getMessage());
        }
    }

    // ------------------------------------------------------------------ verify

    @Override
    public void verify(ImageReader image, int pid, Map<String, Object> options) {
        MmImage mm = image.read(ImageKind.MM, pid, MmImage.parser());
        for (VmaEntry vma : mm.getVmasList()) {
            if (Vmas.fileBacked(vma) && !recreatable(vma)) {
                checkUnchanged(vma);
            }
        }
        if (!Files.isRegularFile(Path.of(mm.getExe()))) {
            throw new ImageException("the program " + mm.getExe() + " of process " + pid + " no longer exists");
        }
    }

    /** A small shared file that is gone now and whose saved bytes can stand in for it. */
    private static boolean recreatable(VmaEntry vma) {
        return vma.getKind() == VmaKind.SHARED_FILE && !vma.getFileContents().isEmpty()
                && !Files.exists(Path.of(vma.getPath()));
    }

    /** Puts a gone small shared file back with the bytes, owner and mode it had at checkpoint. */
    private static void recreate(VmaEntry vma) {
        Path file = Path.of(vma.getPath());
        try {
            Files.createDirectories(file.getParent());
            Files.write(file, vma.getFileContents().toByteArray());
            Files.setPosixFilePermissions(file, FileModes.from(vma.getFileMode()));
            Files.setAttribute(file, "unix:uid", vma.getFileUid());
            Files.setAttribute(file, "unix:gid", vma.getFileGid());
            LOG.info(() -> "recreated " + file + " (" + vma.getFileContents().size() + " bytes) from the image");
        } catch (IOException e) {
            throw new ImageException("cannot recreate the mapped file " + file + ": " + e.getMessage(), e);
        }
    }

    private static void checkUnchanged(VmaEntry vma) {
        Path file = Path.of(vma.getPath());
        BasicFileAttributes a;
        try {
            a = Files.readAttributes(file, BasicFileAttributes.class);
        } catch (IOException e) {
            throw new ImageException("mapped file " + file + " is gone: " + e.getMessage());
        }
        if (a.size() != vma.getFileSize() || a.lastModifiedTime().to(TimeUnit.NANOSECONDS) != vma.getFileMtimeNs()) {
            throw new ImageException("mapped file " + file + " changed since the checkpoint (size " + vma.getFileSize()
                    + " -> " + a.size() + "); restoring over it would corrupt the process");
        }
    }

    // ------------------------------------------------------------------ restore

    @Override
    public void restore(RestoreContext ctx) {
        int pid = ctx.pid();
        RemoteSyscalls sys = ctx.syscalls();
        MmImage mm = ctx.image().read(ImageKind.MM, pid, MmImage.parser());
        PagemapImage pagemap = ctx.image().read(ImageKind.PAGEMAP, pid, PagemapImage.parser());

        boolean vdsoInPlace = clearSlate(ctx, mm);
        if (!vdsoInPlace) {
            placeVdso(ctx, mm);
        }
        Map<String, Integer> files = new HashMap<>();
        List<VmaEntry> needProtect = new ArrayList<>();
        try {
            for (VmaEntry vma : mm.getVmasList()) {
                if (Vmas.special(vma)) {
                    continue;
                }
                if (vma.getInherited()) {
                    if (keepInherited(sys, vma, hasPages(vma, pagemap))) {
                        needProtect.add(vma);
                    }
                    continue;
                }
                if (vma.getKind() == VmaKind.SHARED_ANON) {
                    sharedAnon(ctx, vma, files);
                }
                if (vma.getKind() == VmaKind.MEMFD_AREA) {
                    memfd(ctx, vma, files);
                }
                if (map(sys, vma, files, hasPages(vma, pagemap))) {
                    needProtect.add(vma);
                }
            }
        } finally {
            for (int fd : files.values()) {
                sys.closeFd(fd);
            }
        }
        loadPages(ctx, pagemap);
        for (PageRun zap : mm.getZapList()) {
            sys.call("madvise(MADV_DONTNEED)", Nr.MADVISE, zap.getVaddr(), (long) zap.getNrPages() * PAGE, MADV_DONTNEED);
        }
        for (VmaEntry vma : needProtect) {
            sys.call("mprotect", Nr.MPROTECT, vma.getStart(), vma.getEnd() - vma.getStart(), vma.getProt());
        }
        for (VmaEntry vma : mm.getVmasList()) {
            adviseLikeBefore(sys, vma);
        }
        setMmFields(sys, mm);
        LOG.info(() -> "process " + pid + ": " + mm.getVmasCount() + " memory areas mapped, " + mm.getTotalPages()
                + " pages loaded");
    }

    /**
     * Unmaps whatever the task has that is not to stay: everything but Cryo's own trampoline, the
     * areas it inherited from its restored parent, [vsyscall], and the vDSO if it already sits
     * where the image wants it (a forked child's does). Returns whether the vDSO is in place.
     */
    private static boolean clearSlate(RestoreContext ctx, MmImage mm) {
        List<long[]> keep = new ArrayList<>();
        keep.add(new long[] {ctx.cryoArea()[0], ctx.cryoArea()[1]});
        mm.getVmasList().stream().filter(VmaEntry::getInherited).forEach(v -> keep.add(new long[] {v.getStart(), v.getEnd()}));
        List<Vma> current = ProcMaps.read(ctx.task().pid());
        boolean vdsoInPlace = vdsoMatches(mm, current);
        for (Vma v : current) {
            boolean vdso = v.path().equals("[vdso]") || v.path().equals("[vvar]") || v.path().equals("[vvar_vclock]");
            if (v.path().equals("[vsyscall]") || (vdso && vdsoInPlace)) {
                continue;
            }
            for (long[] hole : subtract(v.start(), v.end(), keep)) {
                ctx.syscalls().munmap(hole[0], hole[1] - hole[0]);
            }
        }
        return vdsoInPlace;
    }

    /** {@code [start, end)} minus the ranges in {@code keep}. */
    static List<long[]> subtract(long start, long end, List<long[]> keep) {
        List<long[]> out = new ArrayList<>();
        long at = start;
        List<long[]> sorted = new ArrayList<>(keep);
        sorted.sort(java.util.Comparator.comparingLong(r -> r[0]));
        for (long[] k : sorted) {
            if (k[1] <= at || k[0] >= end) {
                continue;
            }
            if (k[0] > at) {
                out.add(new long[] {at, k[0]});
            }
            at = Math.max(at, k[1]);
        }
        if (at < end) {
            out.add(new long[] {at, end});
        }
        return out;
    }

    private static boolean vdsoMatches(MmImage mm, List<Vma> current) {
        List<VmaEntry> saved = mm.getVmasList().stream()
                .filter(v -> v.getKind() == VmaKind.VDSO || v.getKind() == VmaKind.VVAR || v.getKind() == VmaKind.VVAR_VCLOCK)
                .toList();
        for (VmaEntry v : saved) {
            if (current.stream().noneMatch(c -> c.path().equals(v.getPath()) && c.start() == v.getStart() && c.end() == v.getEnd())) {
                return false;
            }
        }
        return !saved.isEmpty();
    }

    /** An area the task already has from its parent: only made writable for loading its own pages. */
    private static boolean keepInherited(RemoteSyscalls sys, VmaEntry vma, boolean hasPages) {
        if (!hasPages || (vma.getProt() & RemoteSyscalls.PROT_WRITE) != 0) {
            return false;
        }
        sys.call("mprotect", Nr.MPROTECT, vma.getStart(), vma.getEnd() - vma.getStart(), vma.getProt() | RemoteSyscalls.PROT_WRITE);
        return true;
    }

    private static boolean hasPages(VmaEntry vma, PagemapImage pagemap) {
        for (PageRun run : pagemap.getRunsList()) {
            long end = run.getVaddr() + (long) run.getNrPages() * PAGE;
            if (run.getVaddr() < vma.getEnd() && end > vma.getStart()) {
                return true;
            }
        }
        return false;
    }

    /**
     * Shared anonymous memory is one object however many processes map it. The first process to
     * restore it creates it; the others open it through that process's /proc/PID/map_files and
     * map the very same object (an fd registered under "file:" + path for {@link #map}).
     */
    private static void sharedAnon(RestoreContext ctx, VmaEntry vma, Map<String, Integer> files) {
        String key = "shmem:" + vma.getFileInode();
        String[] first = (String[]) ctx.shared().get(key);
        if (first == null) {
            if (vma.getPgoff() != 0) {
                throw new ImageException("shared memory at " + Vmas.describe(vma) + " starts at offset " + vma.getPgoff()
                        + " of its object; only whole objects can be recreated");
            }
            ctx.shared().put(key, new String[] {Integer.toString(ctx.pid()), Long.toHexString(vma.getStart()) + "-"
                    + Long.toHexString(vma.getEnd())});
            return;
        }
        String path = "/proc/" + first[0] + "/map_files/" + first[1];
        files.put("rw:" + vma.getPath() + "#" + vma.getFileInode(),
                ctx.syscalls().open(path, O_RDWR | O_CLOEXEC, 0));
    }

    /**
     * A memfd is one object for every area that maps it and every fd that holds it, in any
     * process: the first to need it creates it (with its bytes) and leaves it hidden under
     * "memfd:INODE" for the others, and for the files part of whoever also has it as an fd.
     */
    private static void memfd(RestoreContext ctx, VmaEntry vma, Map<String, Integer> files) {
        String key = "memfd:" + vma.getFileInode();
        dev.cryo.files.HiddenFds.Place place = dev.cryo.files.HiddenFds.find(ctx, key);
        if (place == null) {
            RemoteSyscalls sys = ctx.syscalls();
            int fd = (int) sys.call("memfd_create", Nr.MEMFD_CREATE, sys.scratch().putString(Vmas.memfdName(vma.getPath())).value(),
                    MFD_CLOEXEC | MFD_ALLOW_SEALING);
            sys.scratch().reset();
            sys.call("ftruncate", Nr.FTRUNCATE, fd, vma.getFileContents().size());
            int copy = dev.cryo.sys.Sys.fdOf(ctx.task().pid(), fd);
            try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
                java.lang.foreign.MemorySegment buf = arena.allocate(Math.max(1, vma.getFileContents().size()));
                buf.asSlice(0, vma.getFileContents().size()).copyFrom(java.lang.foreign.MemorySegment.ofArray(vma.getFileContents().toByteArray()));
                dev.cryo.sys.Sys.pwrite(copy, buf.asSlice(0, vma.getFileContents().size()), 0);
            } finally {
                dev.cryo.sys.Sys.close(copy);
            }
            dev.cryo.files.HiddenFds.hide(ctx, key, fd);
            place = dev.cryo.files.HiddenFds.find(ctx, key);
        }
        files.put("memfd:" + vma.getFileInode(), dev.cryo.files.HiddenFds.fetch(ctx, place));
    }

    /** Maps one area; returns true when it was mapped writable for loading and needs its final protection. */
    private static boolean map(RemoteSyscalls sys, VmaEntry vma, Map<String, Integer> files, boolean hasPages) {
        int prot = vma.getProt();
        boolean addWrite = hasPages && (prot & RemoteSyscalls.PROT_WRITE) == 0;
        if (addWrite) {
            prot |= RemoteSyscalls.PROT_WRITE;
        }
        int fd = -1;
        int flags = vma.getFlags();
        long offset = Vmas.fileBacked(vma) ? vma.getPgoff() : 0;
        Integer sharedObject = files.get("rw:" + vma.getPath() + "#" + vma.getFileInode());
        if (vma.getKind() == VmaKind.SHARED_ANON && sharedObject != null) {
            fd = sharedObject;
            flags &= ~RemoteSyscalls.MAP_ANONYMOUS;
            offset = vma.getPgoff();
        }
        if (vma.getKind() == VmaKind.MEMFD_AREA) {
            fd = files.get("memfd:" + vma.getFileInode());
            offset = vma.getPgoff();
        }
        if (recreatable(vma)) {
            recreate(vma);
        }
        if (Vmas.fileBacked(vma)) {
            boolean rw = vma.getKind() == VmaKind.SHARED_FILE && vma.getVmFlagsList().contains("mw");
            String key = (rw ? "rw:" : "ro:") + vma.getPath();
            fd = files.computeIfAbsent(key, k -> sys.open(vma.getPath(), (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0));
        }
        long length = vma.getEnd() - vma.getStart();
        RemoteAddr at = sys.mmap(vma.getStart(), length, prot, flags | RemoteSyscalls.MAP_FIXED, fd, offset);
        if (at.value() != vma.getStart()) {
            throw new InjectionException("mmap of " + Vmas.describe(vma) + " landed at " + at);
        }
        return addWrite;
    }

    /** The task reads its own pages from the image file: one pread per run, the copy done in the kernel. */
    private static void loadPages(RestoreContext ctx, PagemapImage pagemap) {
        if (pagemap.getRunsCount() == 0) {
            return;
        }
        RemoteSyscalls sys = ctx.syscalls();
        String pagesFile = ctx.image().path(ImageKind.PAGES, ctx.pid()).toAbsolutePath().toString();
        int fd = sys.open(pagesFile, O_RDONLY | O_CLOEXEC, 0);
        try {
            long offset = 0;
            for (PageRun run : pagemap.getRunsList()) {
                long length = (long) run.getNrPages() * PAGE;
                long done = 0;
                while (done < length) {
                    long n = sys.call("pread64", Nr.PREAD64, fd, run.getVaddr() + done, length - done, offset + done);
                    if (n == 0) {
                        throw new ImageException(pagesFile + ": ends before the page run at 0x"
                                + Long.toHexString(run.getVaddr()));
                    }
                    done += n;
                }
                offset += length;
            }
        } finally {
            sys.closeFd(fd);
        }
    }

    /**
     * vvar, vvar_vclock and vdso move together: arch_prctl(ARCH_MAP_VDSO_64) maps the set at the
     * saved address once the stub's own copies are gone. glibc caches pointers into the vDSO, so
     * the addresses must be exact.
     */
    private static void placeVdso(RestoreContext ctx, MmImage mm) {
        List<VmaEntry> saved = mm.getVmasList().stream()
                .filter(v -> v.getKind() == VmaKind.VDSO || v.getKind() == VmaKind.VVAR || v.getKind() == VmaKind.VVAR_VCLOCK)
                .toList();
        if (saved.isEmpty()) {
            return;
        }
        long base = saved.getFirst().getStart();
        ctx.syscalls().call("arch_prctl(ARCH_MAP_VDSO_64)", Nr.ARCH_PRCTL, ARCH_MAP_VDSO_64, base);
        Map<String, Vma> now = new HashMap<>();
        for (Vma vma : ProcMaps.read(ctx.task().pid())) {
            now.put(vma.path(), vma);
        }
        for (VmaEntry v : saved) {
            Vma actual = now.get(v.getPath());
            if (actual == null || actual.start() != v.getStart() || actual.end() != v.getEnd()) {
                throw new ImageException("the vDSO of this kernel is laid out differently from the checkpointed one ("
                        + v.getPath() + " was " + Vmas.describe(v) + ", now " + actual + "); restore on the same kernel");
            }
        }
    }

    private static void adviseLikeBefore(RemoteSyscalls sys, VmaEntry vma) {
        if (Vmas.special(vma)) {
            return;
        }
        Map<String, Integer> advice = Map.of("dd", MADV_DONTDUMP, "dc", MADV_DONTFORK, "wf", MADV_WIPEONFORK,
                "hg", MADV_HUGEPAGE, "nh", MADV_NOHUGEPAGE);
        for (String flag : vma.getVmFlagsList()) {
            Integer advise = advice.get(flag);
            if (advise != null) {
                sys.call("madvise", Nr.MADVISE, vma.getStart(), vma.getEnd() - vma.getStart(), advise);
            }
        }
    }

    /**
     * PR_SET_MM_MAP: code/data/brk/stack/arg/env bounds, auxv and exe in one call (the single-field
     * PR_SET_MM calls need CAP_SYS_RESOURCE, which root lacks on these machines).
     * struct prctl_mm_map: 11 u64 addresses, u64 auxv pointer, u32 auxv_size, u32 exe_fd.
     */
    private static void setMmFields(RemoteSyscalls sys, MmImage mm) {
        // A child forked from its restored parent already runs the right program; the kernel
        // refuses (EBUSY) to swap an exe file that is still mapped, so it is left as it is.
        boolean exeInPlace = mm.getExe().equals(ProcFiles.readLink(sys.task().pid(), "exe"));
        int exeFd = exeInPlace ? -1 : sys.open(mm.getExe(), O_RDONLY | O_CLOEXEC, 0);
        try {
            byte[] auxv = mm.getAuxv().toByteArray();
            RemoteAddr auxvAt = sys.scratch().put(auxv);
            ByteBuffer map = ByteBuffer.allocate(PRCTL_MM_MAP_SIZE).order(ByteOrder.LITTLE_ENDIAN);
            map.putLong(mm.getStartCode()).putLong(mm.getEndCode()).putLong(mm.getStartData()).putLong(mm.getEndData())
                    .putLong(mm.getStartBrk()).putLong(mm.getBrk()).putLong(mm.getStartStack())
                    .putLong(mm.getArgStart()).putLong(mm.getArgEnd()).putLong(mm.getEnvStart()).putLong(mm.getEnvEnd())
                    .putLong(auxvAt.value()).putInt(auxv.length).putInt(exeFd);
            RemoteAddr mapAt = sys.scratch().put(map.array());
            sys.call("prctl(PR_SET_MM_MAP)", Nr.PRCTL, PR_SET_MM, PR_SET_MM_MAP, mapAt.value(), PRCTL_MM_MAP_SIZE, 0);
        } finally {
            sys.scratch().reset();
            if (exeFd >= 0) {
                sys.closeFd(exeFd);
            }
        }
    }

    /** The saved mappings of one process, for the restore trampoline to keep out of their way. */
    public static List<long[]> savedRanges(ImageReader image, int pid) {
        MmImage mm = image.read(ImageKind.MM, pid, MmImage.parser());
        return mm.getVmasList().stream().map(v -> new long[] {v.getStart(), v.getEnd()}).toList();
    }
}
