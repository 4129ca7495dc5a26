package dev.cryo.core;

import dev.cryo.image.ImageWriter;
import dev.cryo.image.proto.Inventory;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.remote.Tracee;

import java.util.concurrent.atomic.AtomicLong;

/**
 * What a {@link TaskPart} gets while dumping: the frozen task, a syscall session inside it, the
 * image being written, the inventory (for facts about the machine), counters for the summary and
 * a progress sink for long work.
 *
 * @param cryoArea start address of the scratch mapping Cryo added to the task for this dump;
 *                 not part of the task's own memory
 */
public record DumpContext(int pid, Tracee task, RemoteSyscalls syscalls, ImageWriter image, long cryoArea,
                          Inventory.Builder inventory, Stats stats, Progress progress) {

    /** What the checkpoint saved, for the summary line. */
    public static final class Stats {
        public final AtomicLong areas = new AtomicLong();
        public final AtomicLong pages = new AtomicLong();
        public final AtomicLong bytes = new AtomicLong();
        public final AtomicLong fds = new AtomicLong();
    }
}
