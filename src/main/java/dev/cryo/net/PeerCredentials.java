package dev.cryo.net;

import dev.cryo.core.RestoreContext;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.Creds;
import dev.cryo.image.proto.TaskCore;
import dev.cryo.remote.RemoteSysException;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.function.LongSupplier;
import java.util.logging.Logger;

/**
 * SO_PEERCRED and SO_PEERGROUPS of unix sockets: the kernel records the credentials of the task
 * that makes a socketpair, listens, or connects, and the other end sees them for good. A restored
 * task is still root while its sockets are made (its own credentials come back last, since the
 * rest of the restore needs root), so these calls run with the task's saved effective uid, gid
 * and groups for the moment, and root again after. Only the effective ids change: the real and
 * saved ones stay 0, which is what lets the task become root again.
 */
final class PeerCredentials {
    private static final Logger LOG = Logger.getLogger("net");

    private PeerCredentials() {
    }

    /** Runs the injected call as the task's saved user; as root, with a warning, if that user may not (EACCES). */
    static void asSavedUser(RestoreContext ctx, LongSupplier call) {
        Creds c = saved(ctx);
        if (c.getEuid() == 0 && c.getEgid() == 0) {
            call.getAsLong();
            return;
        }
        RemoteSyscalls sys = ctx.syscalls();
        ByteBuffer groups = ByteBuffer.allocate(Math.max(4, 4 * c.getGroupsCount())).order(ByteOrder.LITTLE_ENDIAN);
        c.getGroupsList().forEach(groups::putInt);
        long mark = sys.scratch().mark();
        sys.call("setgroups", Nr.SETGROUPS, c.getGroupsCount(), sys.scratch().put(groups.array()).value());
        sys.scratch().resetTo(mark);
        sys.call("setresgid", Nr.SETRESGID, -1, c.getEgid(), -1);
        sys.call("setresuid", Nr.SETRESUID, -1, c.getEuid(), -1);
        RemoteSysException refused = null;
        try {
            call.getAsLong();
        } catch (RemoteSysException e) {
            if (e.errno() != Errno.EACCES && e.errno() != Errno.EPERM) {
                throw e;
            }
            refused = e;
        } finally {
            sys.call("setresuid", Nr.SETRESUID, -1, 0, -1); // the effective capabilities come back with euid 0
            sys.call("setresgid", Nr.SETRESGID, -1, 0, -1);
        }
        if (refused != null) {
            LOG.warning("process " + ctx.pid() + ": " + refused.getMessage() + " as uid " + c.getEuid()
                    + "; done as root, so the other end's SO_PEERCRED shows root");
            call.getAsLong();
        }
    }

    private static Creds saved(RestoreContext ctx) {
        return (Creds) ctx.shared().computeIfAbsent("net:creds:" + ctx.pid(),
                k -> ctx.image().read(ImageKind.CORE, ctx.pid(), TaskCore.parser()).getCreds());
    }
}
