package dev.cryo.e2e;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/** What the tests read about a process from /proc, to compare it before and after Cryo touched it. */
final class Procs {
    /** status fields that no checkpoint attempt may change (signal state, identity, threads, tracer). */
    static final List<String> STABLE_STATUS = List.of("Tgid", "PPid", "TracerPid", "Uid", "Gid", "Threads", "Umask",
            "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "CapEff", "NoNewPrivs", "Seccomp");

    private Procs() {
    }

    /**
     * What a process looks like from outside: its memory map, each fd with what it points to,
     * its flags and offset, and the {@link #STABLE_STATUS} fields of its status.
     */
    record Snapshot(List<String> maps, Map<Integer, String> fds, Map<String, String> status) {
    }

    static Snapshot snapshot(long pid) {
        Path proc = Path.of("/proc", Long.toString(pid));
        Map<Integer, String> fds = new TreeMap<>();
        try (Stream<Path> s = Files.list(proc.resolve("fd"))) {
            for (Path fd : s.toList()) {
                int n = Integer.parseInt(fd.getFileName().toString());
                Map<String, String> info = keyValues(Files.readString(proc.resolve("fdinfo/" + n)));
                fds.put(n, Files.readSymbolicLink(fd) + " flags " + info.get("flags") + " pos " + info.get("pos"));
            }
            Map<String, String> status = new LinkedHashMap<>();
            Map<String, String> all = status(pid);
            for (String key : STABLE_STATUS) {
                status.put(key, all.get(key));
            }
            return new Snapshot(Files.readAllLines(proc.resolve("maps")), fds, status);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read /proc/" + pid + ": " + e, e);
        }
    }

    static int fdCount(long pid) {
        try (Stream<Path> s = Files.list(Path.of("/proc", Long.toString(pid), "fd"))) {
            return (int) s.count();
        } catch (IOException e) {
            throw new IllegalStateException("cannot list /proc/" + pid + "/fd: " + e, e);
        }
    }

    static Map<String, String> status(long pid) {
        try {
            return keyValues(Files.readString(Path.of("/proc", Long.toString(pid), "status")));
        } catch (IOException e) {
            throw new IllegalStateException("cannot read /proc/" + pid + "/status: " + e, e);
        }
    }

    /** The state letter of /proc/PID/stat (R, S, t, T, Z...). */
    static char state(long pid) {
        return status(pid).get("State").charAt(0);
    }

    static boolean exists(long pid) {
        return Files.exists(Path.of("/proc", Long.toString(pid)));
    }

    /** The command line of a process as its arguments, or null once it is gone. */
    static List<String> cmdline(long pid) {
        try {
            byte[] raw = Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline"));
            List<String> args = new ArrayList<>();
            int from = 0;
            for (int i = 0; i < raw.length; i++) {
                if (raw[i] == 0) {
                    args.add(new String(raw, from, i - from, StandardCharsets.UTF_8));
                    from = i + 1;
                }
            }
            return args;
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            return null; // raced with its exit
        }
    }

    /** Pids of every process whose command line is exactly {@code args}. */
    static List<Long> withCmdline(List<String> args) {
        List<Long> out = new ArrayList<>();
        try (Stream<Path> s = Files.list(Path.of("/proc"))) {
            for (Path p : s.toList()) {
                String name = p.getFileName().toString();
                if (name.chars().allMatch(Character::isDigit)) {
                    long pid = Long.parseLong(name);
                    if (args.equals(cmdline(pid))) {
                        out.add(pid);
                    }
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot list /proc: " + e, e);
        }
        return out;
    }

    /** Pids of the processes whose parent is this JVM. */
    static List<Long> childrenOfThisJvm() {
        long self = ProcessHandle.current().pid();
        List<Long> out = new ArrayList<>();
        try (Stream<Path> s = Files.list(Path.of("/proc", Long.toString(self), "task"))) {
            for (Path task : s.toList()) {
                String children;
                try {
                    children = Files.readString(task.resolve("children")).strip();
                } catch (IOException e) {
                    continue; // the thread ended
                }
                for (String c : children.isEmpty() ? new String[0] : children.split(" ")) {
                    out.add(Long.parseLong(c));
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot list this JVM's threads: " + e, e);
        }
        return out;
    }

    /** A pid that no process uses right now, counting down from the top of the pid space. */
    static long unusedPid() {
        // One large read: a sysctl file answers a second, offset read with nothing.
        try (java.io.InputStream in = Files.newInputStream(Path.of("/proc/sys/kernel/pid_max"))) {
            byte[] buf = new byte[64];
            int n = in.read(buf);
            long max = Long.parseLong(new String(buf, 0, n, StandardCharsets.US_ASCII).strip());
            for (long pid = max - 1; pid > 300; pid--) {
                if (!exists(pid)) {
                    return pid;
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        throw new IllegalStateException("every pid is in use");
    }

    private static Map<String, String> keyValues(String text) {
        Map<String, String> out = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            int colon = line.indexOf(':');
            if (colon > 0) {
                out.putIfAbsent(line.substring(0, colon).strip(), line.substring(colon + 1).strip());
            }
        }
        return out;
    }
}
