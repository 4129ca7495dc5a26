package dev.cryo.files;

import dev.cryo.image.proto.FdEntry;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Structs;
import dev.cryo.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Who an open file signals when it becomes ready (O_ASYNC: SIGIO; sockets also SIGURG): the
 * owner set with F_SETOWN/F_SETOWN_EX and the signal chosen with F_SETSIG. It belongs to the
 * open file, so it is read through Cryo's copy, and set again inside the task, whose
 * credentials the kernel records with it.
 */
final class SignalOwner {
    private static final int F_SETSIG = 10, F_GETSIG = 11, F_SETOWN_EX = 15, F_GETOWN_EX = 16;

    private SignalOwner() {
    }

    static void dump(FdSource src, FdEntry.Builder e) {
        int copy = src.copy();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment owner = arena.allocate(8, 4); // struct f_owner_ex { int type; pid_t pid; }
            if (Sys.raw(Nr.FCNTL, copy, F_GETOWN_EX, owner.address()) < 0) {
                return; // an O_PATH fd has no owner to ask about
            }
            e.setOwnerType(owner.get(JAVA_INT, 0)).setOwnerPid(owner.get(JAVA_INT, 4))
                    .setOwnerSignal((int) Sys.call("fcntl(F_GETSIG)", Nr.FCNTL, copy, F_GETSIG));
        } finally {
            Sys.close(copy);
        }
    }

    /** @param inNamespace the owner (a tid, pid or group saved as Cryo saw it) as the restored task's pid namespace names it */
    static void restore(FdEntry e, int fd, RemoteSyscalls sys, java.util.function.IntUnaryOperator inNamespace) {
        if (e.getOwnerPid() != 0) {
            int ownerId = inNamespace.applyAsInt(e.getOwnerPid());
            byte[] owner = Structs.le(new byte[8]).putInt(e.getOwnerType()).putInt(ownerId).array();
            sys.call("fcntl(F_SETOWN_EX)", Nr.FCNTL, fd, F_SETOWN_EX, sys.scratch().put(owner).value());
            sys.scratch().reset();
        }
        if (e.getOwnerSignal() != 0) {
            sys.call("fcntl(F_SETSIG)", Nr.FCNTL, fd, F_SETSIG, e.getOwnerSignal());
        }
    }
}
