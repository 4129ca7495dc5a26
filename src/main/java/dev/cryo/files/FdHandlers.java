package dev.cryo.files;

import dev.cryo.ipc.MessageQueues;
import dev.cryo.net.InetSockets;
import dev.cryo.net.UnixSockets;
import dev.cryo.pipes.Fifos;
import dev.cryo.pipes.Pipes;
import dev.cryo.signal.SignalFds;
import dev.cryo.timer.TimerFds;

import java.util.List;

/** Every kind of open file Cryo can save, asked in this order. Adding one is a handler and a line here. */
public final class FdHandlers {
    public static final List<FdHandler> ALL = List.of(new MessageQueues(), new RegularFiles(), new DeletedFiles(), new Memfds(), new Pipes(), new Fifos(),
            new EventFds(), new Epolls(), new Inotifies(), new Terminals(), new SignalFds(), new TimerFds(), new UnixSockets(), new InetSockets());

    private FdHandlers() {
    }

    static FdHandler find(FdSource fd) {
        for (FdHandler h : ALL) {
            if (h.handles(fd)) {
                return h;
            }
        }
        throw RegularFiles.refuse(fd);
    }

    static FdHandler of(dev.cryo.image.proto.FdEntry e) {
        for (FdHandler h : ALL) {
            if (h.kinds().contains(e.getKind())) {
                return h;
            }
        }
        throw new dev.cryo.image.ImageException("fd " + e.getFd() + " has kind " + e.getKind() + ", which this Cryo cannot restore");
    }
}
