package dev.cryo.ipc;

import dev.cryo.CryoException;
import dev.cryo.core.Checkpoint;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.core.TaskPart;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.SemUndo;
import dev.cryo.image.proto.SemUndoImage;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

/**
 * A process's SEM_UNDO adjustments (semadj): what its exit will add to each semaphore it
 * changed with SEM_UNDO. No call reads them. But unshare(CLONE_SYSVSEM) does to the caller's
 * undo list exactly what exit does: adds each adjustment to its semaphore (clamped to
 * 0..SEMVMX) and drops the list. So, injected into the stopped process between two reads of
 * every semaphore, it shows the adjustments as differences; a semop with SEM_UNDO of the
 * opposite amount puts value and adjustment back at once. So that no clamping hides an
 * adjustment, every semaphore is first moved to the middle of its range by a plain semop (which
 * leaves adjustments alone) and moved back after. The tree is stopped meanwhile, so nobody
 * waits on a semaphore to see the passing values; the semaphores keep their values and the
 * process its adjustments, only their last-operation pid and time change.
 *
 * <p>Whether a process has an undo list at all: kcmp(KCMP_SYSVSEM) against a task known to have
 * none (kthreadd, else a zombie of Cryo's own: exit drops the list). The threads of a process
 * share one list, which the kernel makes as soon as a thread is cloned with CLONE_SYSVSEM (glibc
 * always does), empty or not; an unshare in one thread would only detach it from that thread,
 * and nothing can attach it again. So the adjustments of a multi-threaded process are not saved
 * (nor can they be told apart from none). Those of a tree in the host's IPC namespace neither:
 * its semaphores stay on the host, where processes outside the tree may wait on them.
 *
 * <p>Restore, once the sets exist again with their saved values: in the restored process, per
 * adjusted semaphore, one semop of three operations: to the middle (plain), -semadj with
 * SEM_UNDO, back to the saved value (plain). (semctl SETVAL would clear every process's
 * adjustment of that semaphore.)
 * <pre>
 * struct sembuf (6 bytes): unsigned short sem_num at 0; short sem_op at 2; short sem_flg at 4
 * </pre>
 */
public final class SemaphoreUndo implements TaskPart {
    private static final Logger LOG = Logger.getLogger("semundo");
    private static final int KCMP_SYSVSEM = 6, KTHREADD = 2, CLONE_SYSVSEM = 0x40000, SEM_UNDO = 0x1000, IPC_NOWAIT = 04000,
            GETVAL = 12;
    private static final int SEMVMX = 32767, MIDDLE = 16384, SEMBUF = 6;

    @Override
    public String name() {
        return "semundo";
    }

    /**
     * Has process {@code pid} an undo list (it made a semop with SEM_UNDO, or cloned a thread)?
     * Compared with kthreadd where Cryo sees it and may compare with it (root), a kernel thread
     * never having one; else with a zombie of Cryo's (Cryo itself, multi-threaded, always has one).
     */
    public static boolean hasUndoList(int pid) {
        if (kthreaddVisible()) {
            long r = Sys.raw(Nr.KCMP, pid, KTHREADD, KCMP_SYSVSEM, 0, 0);
            if (r != -dev.cryo.sys.Errno.EPERM) { // a user other than root may not compare with a kernel thread
                if (r < 0) {
                    throw new dev.cryo.sys.SysException("kcmp(KCMP_SYSVSEM)", (int) -r, pid, KTHREADD);
                }
                return r != 0;
            }
        }
        int zombie = Sys.posixSpawn("/bin/true", new String[] {"true"}, new String[0]);
        try {
            while (!ProcFiles.statFields(zombie).get(0).equals("Z")) {
                Thread.onSpinWait();
            }
            return Sys.call("kcmp(KCMP_SYSVSEM)", Nr.KCMP, pid, zombie, KCMP_SYSVSEM, 0, 0) != 0;
        } finally {
            Sys.wait4(zombie, 0);
        }
    }

    private static boolean kthreaddVisible() {
        try {
            return java.nio.file.Files.readString(java.nio.file.Path.of("/proc/" + KTHREADD + "/comm")).strip().equals("kthreadd")
                    && ProcFiles.statFields(KTHREADD).get(1).equals("0");
        } catch (java.io.IOException | RuntimeException e) {
            return false;
        }
    }

    @Override
    public void dump(DumpContext ctx) {
        if (!ctx.shared().containsKey(Checkpoint.IPC_NAMESPACE_IN_IMAGE) || ctx.threads().size() > 1
                || !hasUndoList(ctx.pid())) {
            return;
        }
        RemoteSyscalls sys = ctx.syscalls();
        Map<Integer, int[]> before = SysvSemaphores.allValues(sys);
        moveToMiddle(ctx.pid(), sys, before);
        sys.call("unshare(CLONE_SYSVSEM)", Nr.UNSHARE, CLONE_SYSVSEM); // applies the adjustments, as exit would
        Map<Integer, int[]> applied = SysvSemaphores.allValues(sys);
        SemUndoImage.Builder image = SemUndoImage.newBuilder();
        StringBuilder clamped = new StringBuilder();
        before.forEach((id, values) -> {
            int[] now = applied.get(id);
            for (int i = 0; i < values.length; i++) {
                int adj = now[i] - MIDDLE;
                if (now[i] == 0 || now[i] == SEMVMX) {
                    clamped.append(" ").append(id).append(":").append(i);
                }
                if (adj != 0) {
                    image.addAdjustments(SemUndo.newBuilder().setSemid(id).setSemnum(i).setSemadj(adj));
                }
                // the adjustment taken again, and the value back where it was
                semop(sys, id, op(i, -adj, SEM_UNDO), op(i, values[i] - MIDDLE, 0));
            }
        });
        if (!Arrays.deepEquals(SysvSemaphores.allValues(sys).values().toArray(), before.values().toArray())) {
            throw new CryoException("process " + ctx.pid() + ": the semaphores did not return to their values after measuring"
                    + " its SEM_UNDO adjustments");
        }
        if (!clamped.isEmpty()) {
            throw new Refusal("process " + ctx.pid() + " holds SEM_UNDO adjustments beyond what Cryo can measure (semaphore"
                    + clamped + ")");
        }
        ctx.image().write(ImageKind.SEM_UNDO, ctx.pid(), image.build());
        LOG.info(() -> "process " + ctx.pid() + ": " + image.getAdjustmentsCount() + " SEM_UNDO adjustment(s) saved");
    }

    /**
     * Every semaphore to {@link #MIDDLE} by a plain semop of the process's own. Should one be
     * refused (a set the process may not alter), those moved already go back and the process
     * is refused: its adjustments cannot be measured.
     */
    private static void moveToMiddle(int pid, RemoteSyscalls sys, Map<Integer, int[]> before) {
        List<int[]> moved = new java.util.ArrayList<>(); // {id, semnum}
        try {
            before.forEach((id, values) -> {
                for (int i = 0; i < values.length; i++) {
                    semop(sys, id, op(i, MIDDLE - values[i], 0));
                    moved.add(new int[] {id, i});
                }
            });
        } catch (RuntimeException e) {
            for (int[] m : moved) {
                semop(sys, m[0], op(m[1], before.get(m[0])[m[1]] - MIDDLE, 0));
            }
            throw new Refusal("process " + pid + " has a SEM_UNDO list, and its adjustments cannot be measured: "
                    + e.getMessage());
        }
    }

    @Override
    public void restore(RestoreContext ctx) {
        if (!ctx.image().has(ImageKind.SEM_UNDO, ctx.pid())) {
            return;
        }
        RemoteSyscalls sys = ctx.syscalls();
        for (SemUndo u : ctx.image().read(ImageKind.SEM_UNDO, ctx.pid(), SemUndoImage.parser()).getAdjustmentsList()) {
            int value = (int) sys.call("semctl(" + u.getSemid() + ", GETVAL)", Nr.SEMCTL, u.getSemid(), u.getSemnum(), GETVAL);
            semop(sys, u.getSemid(), op(u.getSemnum(), MIDDLE - value, 0), op(u.getSemnum(), -u.getSemadj(), SEM_UNDO),
                    op(u.getSemnum(), value - MIDDLE + u.getSemadj(), 0));
        }
    }

    /** One struct sembuf; null for a zero change (a sem_op of 0 would wait for zero instead). */
    private static byte[] op(int semnum, int change, int flags) {
        if (change == 0) {
            return null;
        }
        return ByteBuffer.allocate(SEMBUF).order(ByteOrder.LITTLE_ENDIAN).putShort((short) semnum).putShort((short) change)
                .putShort((short) (flags | IPC_NOWAIT)).array();
    }

    /** semop(2) of the operations given (nulls left out), atomically, injected into the process. */
    private static void semop(RemoteSyscalls sys, int id, byte[]... ops) {
        List<byte[]> real = Arrays.stream(ops).filter(o -> o != null).toList();
        if (real.isEmpty()) {
            return;
        }
        ByteBuffer all = ByteBuffer.allocate(SEMBUF * real.size());
        real.forEach(all::put);
        try {
            RemoteAddr at = sys.scratch().put(all.array());
            sys.call("semop(" + id + ")", Nr.SEMOP, id, at.value(), real.size());
        } finally {
            sys.scratch().reset();
        }
    }
}
