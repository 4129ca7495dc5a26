package dev.cryo.mem;

import dev.cryo.core.RestoreContext;
import dev.cryo.image.ImageException;
import dev.cryo.image.proto.MmImage;
import dev.cryo.image.proto.VmaEntry;
import dev.cryo.image.proto.VmaKind;
import dev.cryo.proc.ProcMaps;
import dev.cryo.proc.Vma;
import dev.cryo.sys.Nr;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The address space of a task under restore before its areas are mapped: what of the current
 * one may stay (Cryo's trampoline, areas a forked child shares with its parent, a vDSO already
 * in place) and where the vDSO goes.
 */
final class AddressSpace {
    private static final int ARCH_MAP_VDSO_64 = 0x2003;

    private AddressSpace() {
    }

    /**
     * Unmaps whatever the task has that is not to stay: everything but Cryo's own trampoline, the
     * areas it inherited from its restored parent, [vsyscall], and the vDSO if it already sits
     * where the image wants it (a forked child's does). Returns whether the vDSO is in place.
     */
    static boolean clearSlate(RestoreContext ctx, MmImage mm) {
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

    /**
     * vvar, vvar_vclock and vdso move together: arch_prctl(ARCH_MAP_VDSO_64) maps the set at the
     * saved address once the stub's own copies are gone. glibc caches pointers into the vDSO, so
     * the addresses must be exact.
     */
    static void placeVdso(RestoreContext ctx, MmImage mm) {
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

}
