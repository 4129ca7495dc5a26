package dev.cryo.timer;

import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.files.FdHandler;
import dev.cryo.files.FdSource;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.image.proto.TimerfdState;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.sys.Nr;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * timerfd: clock, time left, interval and expirations not yet read, from fdinfo
 * ("clockid: 1", "ticks: 0", "settime flags: 01", "it_value: (0, 49406829)", "it_interval: (1, 0)").
 * Restore arms it relative to now with the time that was left, and puts the unread ticks back
 * with TFD_IOC_SET_TICKS.
 */
public final class TimerFds implements FdHandler {
    private static final long TFD_IOC_SET_TICKS = 0x40085400L;

    @Override
    public java.util.Set<FdKind> kinds() {
        return java.util.Set.of(FdKind.TIMERFD);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.anonInode("timerfd");
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        e.setKind(FdKind.TIMERFD).setPath(fd.link()).setTimerfd(TimerfdState.newBuilder()
                .setClock(Integer.parseInt(fd.info().get("clockid").strip()))
                .setTicks(Long.parseLong(fd.info().get("ticks").strip()))
                .setSettimeFlags(Integer.parseInt(fd.info().getOrDefault("settime flags", "0").strip(), 8))
                .setValueNs(nanos(fd.info().get("it_value")))
                .setIntervalNs(nanos(fd.info().get("it_interval"))));
    }

    /** "(sec, nsec)" as nanoseconds. */
    static long nanos(String pair) {
        String[] f = pair.replace("(", "").replace(")", "").split(",");
        return Long.parseLong(f[0].strip()) * 1_000_000_000L + Long.parseLong(f[1].strip());
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        var sys = ctx.syscalls();
        TimerfdState t = e.getTimerfd();
        int fd = (int) sys.call("timerfd_create", Nr.TIMERFD_CREATE, t.getClock(), e.getFlags() & FdSource.O_NONBLOCK);
        // A periodic timer shows no time left from its expiry until the task reads it (the kernel
        // moves it on only then): armed with nothing left, it would be disarmed and lose its
        // interval. Its next expiry is then taken as one interval from now.
        long value = t.getValueNs() == 0 ? t.getIntervalNs() : t.getValueNs();
        if (value != 0) {
            RemoteAddr spec = sys.scratch().put(ByteBuffer.allocate(32).order(ByteOrder.LITTLE_ENDIAN)
                    .putLong(t.getIntervalNs() / 1_000_000_000L).putLong(t.getIntervalNs() % 1_000_000_000L)
                    .putLong(value / 1_000_000_000L).putLong(value % 1_000_000_000L).array());
            sys.call("timerfd_settime", Nr.TIMERFD_SETTIME, fd, 0 /* relative: the time that was left */, spec.value(), 0);
            sys.scratch().reset();
        }
        if (t.getTicks() != 0) {
            RemoteAddr ticks = sys.scratch().put(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(t.getTicks()).array());
            sys.call("ioctl(TFD_IOC_SET_TICKS)", Nr.IOCTL, fd, TFD_IOC_SET_TICKS, ticks.value());
            sys.scratch().reset();
        }
        return fd;
    }
}
