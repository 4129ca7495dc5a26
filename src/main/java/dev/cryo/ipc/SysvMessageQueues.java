package dev.cryo.ipc;

import com.google.protobuf.ByteString;
import dev.cryo.CryoException;
import dev.cryo.image.proto.IpcNamespace;
import dev.cryo.image.proto.SysvMessage;
import dev.cryo.image.proto.SysvMessageQueue;
import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.logging.Logger;

/**
 * The SysV message queues of a container's own IPC namespace. msgrcv with MSG_COPY (a
 * CONFIG_CHECKPOINT_RESTORE feature) copies the message at an index without taking it, so the
 * queue is saved untouched; restore sends the messages again, in order, into a queue made with
 * its id (msg_next_id).
 * <pre>
 * struct msgbuf: long mtype at 0; char mtext[] at 8
 * </pre>
 */
final class SysvMessageQueues {
    private static final Logger LOG = Logger.getLogger("ipc");
    private static final int IPC_CREAT = 01000, IPC_EXCL = 02000, IPC_NOWAIT = 04000, MSG_NOERROR = 010000,
            MSG_COPY = 040000;
    /** Larger than any message (msgmax defaults to 8 KiB); the scratch area holds it. */
    private static final int TEXT_MAX = 16 * 1024;

    private SysvMessageQueues() {
    }

    static void save(RemoteSyscalls sys, IpcNamespace.Builder ns) {
        for (String[] f : NamespaceFiles.table(sys, "msg")) {
            int id = Integer.parseInt(f[1]);
            int count = Integer.parseInt(f[4]);
            SysvMessageQueue.Builder q = SysvMessageQueue.newBuilder().setKey((int) Long.parseLong(f[0])).setId(id)
                    .setMode(Integer.parseInt(f[2], 8) & 0777);
            RemoteAddr buf = sys.scratch().alloc(8 + TEXT_MAX);
            try {
                for (int i = 0; i < count; i++) {
                    long n = sys.raw(Nr.MSGRCV, id, buf.value(), TEXT_MAX, i, IPC_NOWAIT | MSG_COPY | MSG_NOERROR);
                    if (n == -Errno.ENOSYS) {
                        throw new dev.cryo.core.Refusal("SysV message queue " + id + " holds messages, and this kernel cannot"
                                + " copy them out (msgrcv MSG_COPY needs CONFIG_CHECKPOINT_RESTORE)");
                    }
                    if (n < 0) {
                        throw new dev.cryo.remote.RemoteSysException(sys.task().pid(), "msgrcv(" + id + ", MSG_COPY " + i + ")",
                                (int) -n);
                    }
                    ByteBuffer b = ByteBuffer.wrap(sys.scratch().read(buf, 8 + (int) n)).order(ByteOrder.LITTLE_ENDIAN);
                    q.addMessages(SysvMessage.newBuilder().setType(b.getLong(0)).setText(ByteString.copyFrom(b.array(), 8, (int) n)));
                }
            } finally {
                sys.scratch().reset();
            }
            ns.addMsg(q);
        }
        LOG.info(() -> ns.getMsgCount() + " SysV message queue(s) of the IPC namespace saved");
    }

    static void restore(RemoteSyscalls sys, IpcNamespace ns) {
        for (SysvMessageQueue q : ns.getMsgList()) {
            NamespaceFiles.nextId(sys, "msg", q.getId());
            long id = sys.call("msgget(" + q.getKey() + ")", Nr.MSGGET, q.getKey(), IPC_CREAT | IPC_EXCL | q.getMode());
            if (id != q.getId()) {
                throw new CryoException("SysV message queue " + q.getId() + " came back as " + id);
            }
            for (SysvMessage m : q.getMessagesList()) {
                ByteBuffer b = ByteBuffer.allocate(8 + m.getText().size()).order(ByteOrder.LITTLE_ENDIAN);
                b.putLong(m.getType()).put(m.getText().toByteArray());
                try {
                    RemoteAddr at = sys.scratch().put(b.array());
                    sys.call("msgsnd(" + id + ")", Nr.MSGSND, id, at.value(), m.getText().size(), IPC_NOWAIT);
                } finally {
                    sys.scratch().reset();
                }
            }
        }
        LOG.info(() -> ns.getMsgCount() + " SysV message queue(s) of the IPC namespace recreated");
    }
}
