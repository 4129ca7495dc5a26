package dev.cryo.files;

import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.image.proto.EventfdState;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.sys.Nr;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** eventfd: its counter and semaphore mode (fdinfo: eventfd-count in hex, eventfd-semaphore). */
final class EventFds implements FdHandler {
    private static final int EFD_SEMAPHORE = 1;

    @Override
    public java.util.Set<FdKind> kinds() {
        return java.util.Set.of(FdKind.EVENTFD);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.anonInode("eventfd");
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        e.setKind(FdKind.EVENTFD).setPath(fd.link()).setEventfd(EventfdState.newBuilder()
                .setCount(Long.parseUnsignedLong(fd.info().get("eventfd-count").strip(), 16))
                .setSemaphore("1".equals(fd.info().getOrDefault("eventfd-semaphore", "0").strip())));
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        var sys = ctx.syscalls();
        int flags = (e.getEventfd().getSemaphore() ? EFD_SEMAPHORE : 0) | (e.getFlags() & FdSource.O_NONBLOCK);
        int fd = (int) sys.call("eventfd2", Nr.EVENTFD2, 0, flags);
        if (e.getEventfd().getCount() != 0) {
            // the counter is 64 bits, eventfd2's initial value only 32: write it instead
            RemoteAddr v = sys.scratch().put(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
                    .putLong(e.getEventfd().getCount()).array());
            sys.call("write(eventfd)", Nr.WRITE, fd, v.value(), 8);
            sys.scratch().reset();
        }
        return fd;
    }
}
