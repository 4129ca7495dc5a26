package dev.cryo.files;

import dev.cryo.core.DumpContext;
import dev.cryo.core.RestoreContext;
import dev.cryo.image.proto.EpollState;
import dev.cryo.image.proto.EpollWatch;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.sys.Nr;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * epoll: every registered fd with its events and data, from the "tfd:" lines of fdinfo. The
 * registrations are made again once all fds of the process exist (an epoll may watch another).
 */
final class Epolls implements FdHandler {
    private static final int EPOLL_CTL_ADD = 1;

    @Override
    public java.util.Set<FdKind> kinds() {
        return java.util.Set.of(FdKind.EPOLL);
    }

    @Override
    public boolean handles(FdSource fd) {
        return fd.anonInode("eventpoll");
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        EpollState.Builder state = EpollState.newBuilder();
        // tfd:        5 events:       19 data:       1234567890  pos:0 ino:... sdev:...
        for (String line : fd.rawInfo().split("\n")) {
            if (line.startsWith("tfd:")) {
                String[] f = line.trim().split("\\s+");
                state.addWatches(EpollWatch.newBuilder().setFd(Integer.parseInt(f[1]))
                        .setEvents((int) Long.parseLong(f[3], 16)).setData(Long.parseUnsignedLong(f[5], 16)));
            }
        }
        e.setKind(FdKind.EPOLL).setPath(fd.link()).setEpoll(state);
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        return (int) ctx.syscalls().call("epoll_create1", Nr.EPOLL_CREATE1, 0);
    }

    @Override
    public void afterAll(FdEntry e, RestoreContext ctx) {
        var sys = ctx.syscalls();
        for (EpollWatch w : e.getEpoll().getWatchesList()) {
            // struct epoll_event is packed on x86_64: u32 events, u64 data
            RemoteAddr ev = sys.scratch().put(ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN)
                    .putInt(w.getEvents()).putLong(w.getData()).array());
            sys.call("epoll_ctl(ADD " + w.getFd() + ")", Nr.EPOLL_CTL, e.getFd(), EPOLL_CTL_ADD, w.getFd(), ev.value());
            sys.scratch().reset();
        }
    }
}
