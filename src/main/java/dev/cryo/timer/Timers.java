package dev.cryo.timer;

import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.core.TaskPart;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.ItimerEntry;
import dev.cryo.image.proto.PosixTimer;
import dev.cryo.image.proto.TimersImage;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.nio.ByteBuffer;

import static dev.cryo.sys.Structs.le;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Logger;

/**
 * Interval timers (setitimer) and POSIX timers (timer_create), with the time left until their
 * next expiry. /proc/pid/timers lists the POSIX timers but not their time, which only an
 * injected timer_gettime can read.
 */
public final class Timers implements TaskPart {
    private static final Logger LOG = Logger.getLogger("timer");
    private static final int ITIMERVAL_SIZE = 32, ITIMERSPEC_SIZE = 32, SIGEVENT_SIZE = 64;
    private static final int SIGEV_SIGNAL = 0, SIGEV_NONE = 1, SIGEV_THREAD_ID = 4;
    /** prctl(PR_TIMER_CREATE_RESTORE_IDS, ON): timer_create takes the wanted id from *timerid (Linux 6.17+). */
    private static final int PR_TIMER_CREATE_RESTORE_IDS = 77;

    @Override
    public String name() {
        return "timer";
    }

    @Override
    public void dump(DumpContext ctx) {
        RemoteSyscalls sys = ctx.syscalls();
        TimersImage.Builder image = TimersImage.newBuilder();
        RemoteAddr out = sys.scratch().alloc(ITIMERSPEC_SIZE);
        for (int which = 0; which < 3; which++) {
            sys.call("getitimer", Nr.GETITIMER, which, out.value());
            ByteBuffer v = le(sys.scratch().read(out, ITIMERVAL_SIZE));
            long interval = v.getLong() * 1_000_000 + v.getLong();
            long value = v.getLong() * 1_000_000 + v.getLong();
            if (value == 0 && interval != 0) {
                // Expired with its SIGALRM still pending: the kernel re-arms it only when that
                // signal is dequeued. Arm it one interval ahead, as that dequeue would have.
                value = interval;
            }
            if (value != 0) {
                image.addItimers(ItimerEntry.newBuilder().setWhich(which).setIntervalUs(interval).setValueUs(value));
            }
        }
        for (PosixTimer.Builder t : parseProcTimers(ctx.pid(), ProcFiles.readString(ctx.pid(), "timers"))) {
            sys.call("timer_gettime", Nr.TIMER_GETTIME, t.getId(), out.value());
            ByteBuffer v = le(sys.scratch().read(out, ITIMERSPEC_SIZE));
            t.setIntervalNs(v.getLong() * 1_000_000_000 + v.getLong()).setValueNs(v.getLong() * 1_000_000_000 + v.getLong());
            t.setOverrun((int) sys.call("timer_getoverrun", Nr.TIMER_GETOVERRUN, t.getId()));
            image.addPosixTimers(t);
        }
        sys.scratch().reset();
        ctx.image().write(ImageKind.TIMERS, ctx.pid(), image.build());
        LOG.info(() -> "process " + ctx.pid() + ": " + image.getItimersCount() + " interval timers, "
                + image.getPosixTimersCount() + " POSIX timers");
    }

    /** Blocks of "ID: n / signal: sig/sigval / notify: kind/pid.N / ClockID: c". */
    static List<PosixTimer.Builder> parseProcTimers(int pid, String text) {
        List<PosixTimer.Builder> out = new ArrayList<>();
        PosixTimer.Builder cur = null;
        for (String line : text.split("\n")) {
            String[] kv = line.split(":\\s*", 2);
            if (kv.length < 2) {
                continue;
            }
            switch (kv[0]) {
                case "ID" -> {
                    cur = PosixTimer.newBuilder().setId(Integer.parseInt(kv[1].trim()));
                    out.add(cur);
                }
                case "signal" -> {
                    String[] s = kv[1].trim().split("/");
                    cur.setSignal(Integer.parseInt(s[0])).setSigval(Long.parseUnsignedLong(s[1], 16));
                }
                case "notify" -> {
                    String[] s = kv[1].trim().split("/");
                    int notify = switch (s[0]) {
                        case "signal" -> SIGEV_SIGNAL;
                        case "none" -> SIGEV_NONE;
                        case "thread" -> SIGEV_THREAD_ID;
                        default -> throw new Refusal("process " + pid + " has a POSIX timer with notification '" + s[0]
                                + "' that Cryo cannot restore");
                    };
                    cur.setNotify(notify);
                    if (s.length > 1 && s[1].contains(".")) {
                        cur.setNotifyTid(Integer.parseInt(s[1].substring(s[1].indexOf('.') + 1)));
                    }
                }
                case "ClockID" -> cur.setClock(Integer.parseInt(kv[1].trim()));
                default -> { }
            }
        }
        return out;
    }

    @Override
    public void restore(RestoreContext ctx) {
        RemoteSyscalls sys = ctx.syscalls();
        TimersImage image = ctx.image().read(ImageKind.TIMERS, ctx.pid(), TimersImage.parser());
        for (ItimerEntry t : image.getItimersList()) {
            RemoteAddr v = sys.scratch().put(le(new byte[ITIMERVAL_SIZE])
                    .putLong(t.getIntervalUs() / 1_000_000).putLong(t.getIntervalUs() % 1_000_000)
                    .putLong(t.getValueUs() / 1_000_000).putLong(t.getValueUs() % 1_000_000).array());
            sys.call("setitimer", Nr.SETITIMER, t.getWhich(), v.value(), 0);
            sys.scratch().reset();
        }
        if (image.getPosixTimersCount() > 0) {
            restorePosixTimers(ctx, image.getPosixTimersList());
        }
        LOG.info(() -> "process " + ctx.pid() + ": " + image.getItimersCount() + " interval timers, "
                + image.getPosixTimersCount() + " POSIX timers restored");
    }

    private static void restorePosixTimers(RestoreContext ctx, List<PosixTimer> timers) {
        RemoteSyscalls sys = ctx.syscalls();
        long r = sys.raw(Nr.PRCTL, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0);
        if (r < 0) {
            throw new Refusal("this kernel cannot create POSIX timers with given ids (PR_TIMER_CREATE_RESTORE_IDS,"
                    + " Linux 6.17+); process " + ctx.pid() + " has " + timers.size());
        }
        try {
            for (PosixTimer t : timers) {
                ByteBuffer ev = le(new byte[SIGEVENT_SIZE]).putLong(t.getSigval()).putInt(t.getSignal())
                        .putInt(t.getNotify()).putInt(t.getNotify() == SIGEV_THREAD_ID ? t.getNotifyTid() : 0);
                RemoteAddr evAt = sys.scratch().put(ev.array());
                RemoteAddr idAt = sys.scratch().put(le(new byte[4]).putInt(t.getId()).array());
                sys.call("timer_create(id " + t.getId() + ")", Nr.TIMER_CREATE, t.getClock(), evAt.value(), idAt.value());
                int got = le(sys.scratch().read(idAt, 4)).getInt();
                if (got != t.getId()) {
                    throw new Refusal("timer_create gave id " + got + " instead of " + t.getId());
                }
                RemoteAddr spec = sys.scratch().put(le(new byte[ITIMERSPEC_SIZE])
                        .putLong(t.getIntervalNs() / 1_000_000_000).putLong(t.getIntervalNs() % 1_000_000_000)
                        .putLong(t.getValueNs() / 1_000_000_000).putLong(t.getValueNs() % 1_000_000_000).array());
                sys.call("timer_settime", Nr.TIMER_SETTIME, t.getId(), 0, spec.value(), 0);
                sys.scratch().reset();
            }
        } finally {
            sys.raw(Nr.PRCTL, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
        }
    }

}
