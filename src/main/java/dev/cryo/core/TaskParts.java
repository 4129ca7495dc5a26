package dev.cryo.core;

import dev.cryo.cgroup.CgroupMembership;
import dev.cryo.files.Files;
import dev.cryo.mem.Memory;
import dev.cryo.seccomp.SeccompFilters;
import dev.cryo.signal.Signals;
import dev.cryo.task.TaskState;
import dev.cryo.timer.Timers;

import java.util.List;

/**
 * The registry of per-task state, in restore order: cgroup membership first (so that what is
 * loaded next is charged to the process's own cgroups), memory (everything else lives in
 * it), then files, signals, timers and SEM_UNDO adjustments, seccomp filters (installed while
 * the task is still root), and the task's own state last because it drops privileges, after
 * which the rest could no longer be done.
 */
public final class TaskParts {
    public static final List<TaskPart> ALL = List.of(new CgroupMembership(), new Memory(), new Files(), new Signals(), new Timers(),
            new dev.cryo.ipc.SemaphoreUndo(), new SeccompFilters(), new TaskState());

    private TaskParts() {
    }
}
