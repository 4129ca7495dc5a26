package dev.cryo.proc;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Small readers for the key/value and single-line files under /proc/pid. */
public final class ProcFiles {
    private ProcFiles() {
    }

    public static Path dir(int pid) {
        return Path.of("/proc", Integer.toString(pid));
    }

    public static String readString(int pid, String name) {
        try {
            return Files.readString(dir(pid).resolve(name));
        } catch (IOException e) {
            throw new UncheckedIOException("reading /proc/" + pid + "/" + name, e);
        }
    }

    public static byte[] readBytes(int pid, String name) {
        try {
            return Files.readAllBytes(dir(pid).resolve(name));
        } catch (IOException e) {
            throw new UncheckedIOException("reading /proc/" + pid + "/" + name, e);
        }
    }

    public static String readLink(int pid, String name) {
        try {
            return Files.readSymbolicLink(dir(pid).resolve(name)).toString();
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            throw new UncheckedIOException("reading link /proc/" + pid + "/" + name, e);
        }
    }

    /** "Key:\tvalue" lines, as in status and fdinfo. */
    public static Map<String, String> keyValues(String text) {
        Map<String, String> out = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            int colon = line.indexOf(':');
            if (colon > 0) {
                out.putIfAbsent(line.substring(0, colon).strip(), line.substring(colon + 1).strip());
            }
        }
        return out;
    }

    public static Map<String, String> status(int pid) {
        return keyValues(readString(pid, "status"));
    }

    /** Whether the task is on its way out: killed (SIGKILL pending), exiting (state X) or a zombie. */
    public static boolean dying(int pid) {
        try {
            Map<String, String> status = status(pid);
            String state = status.getOrDefault("State", "").strip();
            long pending = Long.parseUnsignedLong(status.getOrDefault("ShdPnd", "0").strip(), 16)
                    | Long.parseUnsignedLong(status.getOrDefault("SigPnd", "0").strip(), 16);
            return state.startsWith("X") || state.startsWith("Z") || (pending & (1L << (9 - 1))) != 0;
        } catch (RuntimeException gone) {
            return true;
        }
    }

    /** /proc/pid/task/tid/status: what differs between threads (seccomp, signal masks). */
    public static Map<String, String> status(int pid, int tid) {
        return keyValues(readString(pid, "task/" + tid + "/status"));
    }

    /**
     * The fields of /proc/pid/stat after the command name (which may hold spaces and parens), so
     * index 0 is field 3 (state) of proc(5).
     */
    public static List<String> statFields(int pid) {
        String stat = readString(pid, "stat");
        return List.of(stat.substring(stat.lastIndexOf(')') + 2).strip().split(" "));
    }

    /** proc(5) field number n (1-based) of /proc/pid/stat, for n >= 3. */
    public static long statField(List<String> fields, int n) {
        return Long.parseLong(fields.get(n - 3));
    }

    /**
     * A /proc/sys value, read with one large read: sysctl files answer a read at a non-zero
     * offset with nothing, and Files.readString's first small read cuts the value short.
     */
    public static String sysctl(String name) {
        try (java.io.InputStream in = Files.newInputStream(Path.of("/proc/sys", name))) {
            byte[] buf = new byte[4096];
            int n = in.read(buf);
            return n <= 0 ? "" : new String(buf, 0, n, java.nio.charset.StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            throw new UncheckedIOException("reading /proc/sys/" + name, e);
        }
    }

    /**
     * Where Cryo finds {@code path} as process {@code pid} sees it: through /proc/PID/root, as its
     * root may not be Cryo's (a container's overlay root holds files the host has nowhere else).
     */
    public static Path inRootOf(int pid, String path) {
        return dir(pid).resolve("root" + path);
    }

    /** The children of thread {@code tid} of process {@code pid}: a child belongs to the thread that forked it. */
    public static List<Integer> children(int pid, int tid) {
        List<Integer> out = new ArrayList<>();
        String list = readString(pid, "task/" + tid + "/children").strip();
        if (!list.isEmpty()) {
            for (String c : list.split("\\s+")) {
                out.add(Integer.parseInt(c));
            }
        }
        return out;
    }

    /**
     * {@code pid} and its descendants as they stand (a process forking meanwhile may be missed;
     * one exiting meanwhile is left out), parents before children.
     */
    public static List<Integer> tree(int pid) {
        List<Integer> out = new ArrayList<>();
        java.util.ArrayDeque<Integer> todo = new java.util.ArrayDeque<>(List.of(pid));
        while (!todo.isEmpty()) {
            int p = todo.poll();
            try (java.util.stream.Stream<Path> tasks = Files.list(dir(p).resolve("task"))) {
                for (Path t : tasks.toList()) {
                    todo.addAll(children(p, Integer.parseInt(t.getFileName().toString())));
                }
                out.add(p);
            } catch (IOException | UncheckedIOException gone) {
                // exited meanwhile
            }
        }
        return out;
    }

    public static boolean exists(int pid) {
        return Files.exists(dir(pid));
    }

    /** The state letter of /proc/pid/stat (R, S, D, Z, t, ...), or 0 if the process is gone. */
    public static char state(int pid) {
        try {
            return statFields(pid).get(0).charAt(0);
        } catch (UncheckedIOException e) {
            return 0;
        }
    }
}
