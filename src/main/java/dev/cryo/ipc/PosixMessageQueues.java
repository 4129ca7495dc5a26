package dev.cryo.ipc;

import com.google.protobuf.ByteString;
import dev.cryo.CryoException;
import dev.cryo.core.Refusal;
import dev.cryo.image.proto.IpcNamespace;
import dev.cryo.image.proto.PosixMessage;
import dev.cryo.image.proto.PosixMessageQueue;
import dev.cryo.remote.RemoteSysException;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.MessageQueueCalls;
import dev.cryo.sys.MessageQueueCalls.Message;
import dev.cryo.sys.Errno;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The POSIX message queues of a container's own IPC namespace, every one its mqueue file system
 * lists, open or not (see {@link MqueueMount} for how Cryo reaches them), and the namespace's
 * limits (/proc/sys/fs/mqueue, read and written from inside: they show the reader's namespace).
 *
 * <p>No call copies a message out of a POSIX queue without taking it (nothing like SysV's
 * MSG_COPY), so each queue is emptied with mq_receive and at once filled again with the same
 * messages in the same order. The kernel keeps a queue sorted by priority, oldest first within
 * one, so sending them back in the order received rebuilds it exactly. This is safe because the
 * tree is held in ptrace stops meanwhile: a stopped task is out of any mq wait (it left with
 * ERESTARTSYS to stop), so no receiver is handed a message and no blocked sender slips its own
 * into the room the draining makes. A registration of mq_notify would fire on the first message
 * sent back into the emptied queue; as its sigevent cannot be read, such a queue is refused.
 */
final class PosixMessageQueues {
    private static final Logger LOG = Logger.getLogger("ipc");
    private static final String LIMITS = "/proc/sys/fs/mqueue/";
    private static final List<String> LIMIT_FILES = List.of("queues_max", "msg_max", "msgsize_max", "msg_default", "msgsize_default");
    private static final int O_RDWR = 2, O_CREAT = 0100, O_EXCL = 0200, O_NONBLOCK = 04000, O_CLOEXEC = 02000000;
    private static final Pattern NOTIFY = Pattern.compile("NOTIFY:(\\d+)\\s+SIGNO:(\\d+)\\s+NOTIFY_PID:(\\d+)");

    private PosixMessageQueues() {
    }

    /** Saves the queues of the IPC namespace of the task {@code sys} drives (a frozen container's) and its mqueue limits. */
    static void save(RemoteSyscalls sys, IpcNamespace.Builder ns) {
        for (String limit : LIMIT_FILES) {
            ns.putMqueueLimits(limit, limit(sys, limit));
        }
        try (MqueueMount mount = MqueueMount.of(sys); Stream<Path> files = Files.list(mount.root())) {
            for (Path queue : files.sorted().toList()) {
                ns.addMqueues(save(queue));
            }
        } catch (IOException e) {
            throw new CryoException("cannot list the POSIX message queues of the container: " + e.getMessage(), e);
        }
        LOG.info(() -> ns.getMqueuesCount() + " POSIX message queue(s) of the IPC namespace saved");
    }

    private static PosixMessageQueue save(Path queue) throws IOException {
        String name = queue.getFileName().toString();
        // read(2) of a queue's file: "QSIZE:n NOTIFY:n SIGNO:n NOTIFY_PID:n"
        Matcher notify = NOTIFY.matcher(Files.readString(queue));
        if (notify.find() && !notify.group(3).equals("0")) {
            throw new Refusal("POSIX message queue /" + name + " of the container has an mq_notify registration (process "
                    + notify.group(3) + ", signal " + notify.group(2) + "), which restore cannot make again");
        }
        Map<String, Object> stat = Files.readAttributes(queue, "unix:mode,uid,gid");
        int fd = MessageQueueCalls.open(queue.toString(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
        try {
            MessageQueueCalls.Attr attr = MessageQueueCalls.getattr(fd);
            PosixMessageQueue.Builder q = PosixMessageQueue.newBuilder().setName(name).setMode((int) stat.get("mode") & 07777)
                    .setUid((int) stat.get("uid")).setGid((int) stat.get("gid")).setMaxMessages(attr.maxMessages())
                    .setMessageSize(attr.messageSize());
            for (Message m : takeAndPutBack(fd, name, attr.messageSize())) {
                q.addMessages(PosixMessage.newBuilder().setPriority(m.priority()).setData(ByteString.copyFrom(m.data())));
            }
            return q.build();
        } finally {
            Sys.close(fd);
        }
    }

    /** Every message of the queue, in the order received; the queue holds them again afterwards, whatever happens. */
    private static List<Message> takeAndPutBack(int fd, String name, long messageSize) {
        List<Message> taken = new ArrayList<>();
        RuntimeException failure = null;
        try {
            for (Message m; (m = MessageQueueCalls.receiveNow(fd, messageSize)) != null; ) {
                taken.add(m);
            }
        } catch (RuntimeException e) {
            failure = e;
        }
        int back = 0;
        try {
            for (Message m : taken) {
                MessageQueueCalls.sendNow(fd, m);
                back++;
            }
        } catch (RuntimeException e) {
            CryoException lost = new CryoException("POSIX message queue /" + name + ": " + (taken.size() - back)
                    + " message(s) taken to be saved could not be put back: " + e.getMessage(), e);
            if (failure != null) {
                lost.addSuppressed(failure);
            }
            throw lost;
        }
        if (failure != null) {
            throw failure;
        }
        return taken;
    }

    /**
     * Makes the saved queues in the new IPC namespace of the task {@code sys} drives, before any
     * process of the tree runs in it: its limits first raised to admit every saved queue (Cryo
     * lacks CAP_SYS_RESOURCE, which would bypass them; a queue may have been made while they
     * were higher), the queues (mq_open in the task, the rest through Cryo's copy of its fd) with
     * their sizes, owner, mode and messages, then the saved limits.
     */
    static void restore(RemoteSyscalls sys, IpcNamespace ns) {
        if (ns.getMqueuesCount() == 0 && ns.getMqueueLimitsCount() == 0) {
            return;
        }
        long maxMessages = ns.getMqueuesList().stream().mapToLong(PosixMessageQueue::getMaxMessages).max().orElse(0);
        long messageSize = ns.getMqueuesList().stream().mapToLong(PosixMessageQueue::getMessageSize).max().orElse(0);
        raise(sys, "msg_max", maxMessages);
        raise(sys, "msgsize_max", messageSize);
        raise(sys, "queues_max", ns.getMqueuesCount());
        for (PosixMessageQueue q : ns.getMqueuesList()) {
            restore(sys, q);
        }
        for (Map.Entry<String, String> limit : ns.getMqueueLimitsMap().entrySet()) {
            if (!limit(sys, limit.getKey()).equals(limit.getValue())) {
                NamespaceFiles.write(sys, LIMITS + limit.getKey(), limit.getValue());
            }
        }
        LOG.info(() -> ns.getMqueuesCount() + " POSIX message queue(s) of the IPC namespace recreated");
    }

    /**
     * A limit of the namespace, read in the task by one read(2) of 16 KiB: an integer sysctl
     * answers a read at an offset other than 0 with end of file (Files.readString, whose first
     * read of a file of size 0 asks for one byte, would see "2" for "20").
     */
    private static String limit(RemoteSyscalls sys, String name) {
        return NamespaceFiles.read(sys, LIMITS + name).strip();
    }

    private static void raise(RemoteSyscalls sys, String limit, long atLeast) {
        if (Long.parseLong(limit(sys, limit)) < atLeast) {
            NamespaceFiles.write(sys, LIMITS + limit, Long.toString(atLeast));
        }
    }

    private static void restore(RemoteSyscalls sys, PosixMessageQueue q) {
        int fd = create(sys, q);
        try {
            Sys.call("fchown(/" + q.getName() + ")", Nr.FCHOWN, fd, q.getUid(), q.getGid());
            Sys.call("fchmod(/" + q.getName() + ")", Nr.FCHMOD, fd, q.getMode()); // after chown, which may clear set-id bits
            for (PosixMessage m : q.getMessagesList()) {
                MessageQueueCalls.sendNow(fd, new Message(m.getPriority(), m.getData().toByteArray()));
            }
        } finally {
            Sys.close(fd);
        }
    }

    /** mq_open(O_CREAT|O_EXCL) of the queue in the task, with its sizes; Cryo's copy of the fd, which the task closes. */
    private static int create(RemoteSyscalls sys, PosixMessageQueue q) {
        ByteBuffer attr = ByteBuffer.allocate(MessageQueueCalls.ATTR_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        attr.putLong(MessageQueueCalls.ATTR_MAXMSG, q.getMaxMessages()).putLong(MessageQueueCalls.ATTR_MSGSIZE, q.getMessageSize());
        long r;
        try {
            long name = sys.scratch().putString(q.getName()).value(); // mq_open(2) takes the name without its slash
            r = sys.raw(Nr.MQ_OPEN, name, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK | O_CLOEXEC, 0600,
                    sys.scratch().put(attr.array()).value());
        } finally {
            sys.scratch().reset();
        }
        if (r == -Errno.EMFILE) {
            throw new CryoException("cannot make POSIX message queue /" + q.getName() + " again (" + q.getMaxMessages()
                    + " messages of " + q.getMessageSize() + " bytes): the RLIMIT_MSGQUEUE of its creator's user (the bytes all"
                    + " its queues may take, in every namespace) is used up");
        }
        if (r < 0) {
            throw new RemoteSysException(sys.task().pid(), "mq_open(" + q.getName() + ")", (int) -r);
        }
        try {
            return Sys.fdOf(sys.task().pid(), (int) r);
        } finally {
            sys.closeFd((int) r);
        }
    }

    /**
     * The queues of the IPC namespace of the task {@code sys} drives, by name, each as its
     * file's "dev:ino", to tell whether a queue a process has open is one of them under its name.
     */
    static Map<String, String> identities(RemoteSyscalls sys) {
        Map<String, String> ids = new java.util.HashMap<>();
        try (MqueueMount mount = MqueueMount.of(sys); Stream<Path> files = Files.list(mount.root())) {
            for (Path queue : files.toList()) {
                ids.put(queue.getFileName().toString(), identity(queue));
            }
        } catch (IOException e) {
            throw new CryoException("cannot list the POSIX message queues of process " + sys.task().pid() + ": " + e.getMessage(), e);
        }
        return ids;
    }

    /** "dev:ino" of a file. */
    static String identity(Path file) throws IOException {
        return Files.getAttribute(file, "unix:dev") + ":" + Files.getAttribute(file, "unix:ino");
    }
}
