package dev.cryo.ipc;

import dev.cryo.remote.RemoteAddr;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Nr;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * /proc files that show the IPC namespace of whoever reads them (/proc/sysvipc/*,
 * /proc/sys/kernel/*_next_id), read and written by calls injected into a task of that namespace.
 */
final class NamespaceFiles {
    private static final int O_RDONLY = 0, O_WRONLY = 1, O_CLOEXEC = 0x80000;
    private static final int CHUNK = 16 * 1024;

    private NamespaceFiles() {
    }

    /** The rows of a /proc/sysvipc table, split into fields, header left out. */
    static List<String[]> table(RemoteSyscalls sys, String name) {
        List<String[]> rows = new ArrayList<>();
        for (String line : read(sys, "/proc/sysvipc/" + name).split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length > 3 && !f[0].equals("key")) {
                rows.add(f);
            }
        }
        return rows;
    }

    /** The next IPC object of kind {@code kind} ("shm", "sem", "msg") the namespace creates gets {@code id}. */
    static void nextId(RemoteSyscalls sys, String kind, int id) {
        write(sys, "/proc/sys/kernel/" + kind + "_next_id", Integer.toString(id));
    }

    static String read(RemoteSyscalls sys, String path) {
        int fd = sys.open(path, O_RDONLY | O_CLOEXEC, 0);
        try {
            RemoteAddr buf = sys.scratch().alloc(CHUNK);
            StringBuilder out = new StringBuilder();
            while (true) {
                long n = sys.call("read(" + path + ")", Nr.READ, fd, buf.value(), CHUNK);
                if (n == 0) {
                    return out.toString();
                }
                out.append(new String(sys.scratch().read(buf, (int) n), StandardCharsets.UTF_8));
            }
        } finally {
            sys.scratch().reset();
            sys.closeFd(fd);
        }
    }

    static void write(RemoteSyscalls sys, String path, String value) {
        int fd = sys.open(path, O_WRONLY | O_CLOEXEC, 0);
        try {
            byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
            RemoteAddr at = sys.scratch().put(bytes);
            sys.call("write(" + path + ")", Nr.WRITE, fd, at.value(), bytes.length);
        } finally {
            sys.scratch().reset();
            sys.closeFd(fd);
        }
    }
}
