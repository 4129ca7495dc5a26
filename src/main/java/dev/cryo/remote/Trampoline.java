package dev.cryo.remote;

import dev.cryo.proc.ProcMaps;
import dev.cryo.proc.Vma;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * A small RWX area Cryo maps into a task under restore, holding a {@code syscall} instruction to
 * inject through and scratch memory for arguments. It sits in a hole of the saved address space,
 * so it stays put while everything else is torn down and rebuilt, and is the last thing unmapped.
 */
public final class Trampoline {
    public static final long SIZE = 64 * 1024;
    private static final long LOWEST = 0x100000L;
    private static final long HIGHEST = 0x7ff000000000L;
    private static final byte[] SYSCALL = {0x0f, 0x05};

    private final RemoteAddr base;

    private Trampoline(RemoteAddr base) {
        this.base = base;
    }

    public RemoteAddr base() {
        return base;
    }

    /**
     * Maps the trampoline where neither the task's current mappings nor {@code saved} (the image's)
     * are, and moves the session's injection point and scratch memory onto it. Everything else
     * the task has (the stub's code, stack and vDSO) can go now.
     */
    public static Trampoline install(RemoteSyscalls sys, List<long[]> saved) {
        Tracee task = sys.task();
        List<Vma> current = ProcMaps.read(task.pid());
        List<long[]> taken = new ArrayList<>(saved);
        current.forEach(v -> taken.add(new long[] {v.start(), v.end()}));
        long at = findHole(taken);
        RemoteAddr base = sys.mmap(at, SIZE, RemoteSyscalls.PROT_READ | RemoteSyscalls.PROT_WRITE | RemoteSyscalls.PROT_EXEC,
                RemoteSyscalls.MAP_PRIVATE | RemoteSyscalls.MAP_ANONYMOUS | RemoteSyscalls.MAP_FIXED_NOREPLACE, -1, 0);
        task.write(base, SYSCALL);
        sys.useSyscallAt(base);
        sys.attachScratch(new RemoteScratch(task, base.plus(64), SIZE - 64));
        return new Trampoline(base);
    }

    static long findHole(List<long[]> taken) {
        List<long[]> sorted = new ArrayList<>(taken);
        sorted.sort(Comparator.comparingLong(r -> r[0]));
        long candidate = LOWEST;
        for (long[] r : sorted) {
            if (r[0] >= candidate + SIZE) {
                break;
            }
            candidate = Math.max(candidate, (r[1] + 0xffff) & ~0xffffL);
        }
        if (candidate + SIZE > HIGHEST) {
            throw new InjectionException("no room for the restore trampoline in the saved address space");
        }
        return candidate;
    }
}
