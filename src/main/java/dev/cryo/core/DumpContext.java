package dev.cryo.core;

import dev.cryo.image.ImageWriter;
import dev.cryo.image.proto.Inventory;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.Tracee;

import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * What a {@link TaskPart} gets while dumping: the frozen process and its threads, each with a
 * syscall session inside it, the image being written, the inventory (for facts about the
 * machine), counters for the summary and a progress sink for long work.
 *
 * @param threads  every thread, the leader first
 * @param earlier  the processes of the tree dumped before this one (its ancestors among them),
 *                 with which it may share kernel objects
 * @param shared   what parts keep across the processes of the tree (a pipe seen from both ends)
 * @param cryoArea start address of the scratch mapping Cryo added to the process for this dump;
 *                 not part of the process's own memory
 */
public record DumpContext(int pid, List<ThreadHandle> threads, List<Integer> earlier, ImageWriter image, long cryoArea,
                          Inventory.Builder inventory, Stats stats, Progress progress, Map<String, Object> shared) {

    /** The thread group leader. */
    public Tracee task() {
        return threads.getFirst().task();
    }

    /** A session in the leader, for calls that act on the whole process. */
    public RemoteSyscalls syscalls() {
        return threads.getFirst().syscalls();
    }

    /** What the checkpoint saved, for the summary line. */
    public static final class Stats {
        public final AtomicLong areas = new AtomicLong();
        public final AtomicLong pages = new AtomicLong();
        public final AtomicLong bytes = new AtomicLong();
        public final AtomicLong fds = new AtomicLong();
        public final AtomicLong threads = new AtomicLong();
    }
}
