package dev.cryo.signal;

import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.files.FdHandler;
import dev.cryo.files.FdSource;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.image.proto.SignalfdState;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.sys.Nr;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** signalfd: the set of signals it reads (fdinfo "sigmask"). The signals themselves are pending state, saved by {@link Signals}. */
public final class SignalFds implements FdHandler {
    @Override
    public java.util.Set<FdKind> kinds() {
        return java.util.Set.of(FdKind.SIGNALFD);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.anonInode("signalfd");
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        e.setKind(FdKind.SIGNALFD).setPath(fd.link())
                .setSignalfd(SignalfdState.newBuilder().setMask(Long.parseUnsignedLong(fd.info().get("sigmask").strip(), 16)));
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        var sys = ctx.syscalls();
        RemoteAddr mask = sys.scratch().put(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
                .putLong(e.getSignalfd().getMask()).array());
        int fd = (int) sys.call("signalfd4", Nr.SIGNALFD4, -1, mask.value(), 8, e.getFlags() & FdSource.O_NONBLOCK);
        sys.scratch().reset();
        return fd;
    }
}
