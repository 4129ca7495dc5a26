package dev.cryo.cli;

import dev.cryo.container.Run;
import dev.cryo.container.Volumes;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "run", mixinStandardHelpOptions = true,
        description = {"Run a command as pid 1 of a new container: new pid, mount, IPC and UTS namespaces (and network and",
                "user ones when asked), a cgroup v2 of its own named after it, a fresh /proc, optionally an overlay root.",
                "By default Cryo waits for the command and exits with its exit code; with -d it prints the name and returns.",
                "A user other than root needs --user; its containers have no cgroup and no veth, and their state lives under",
                "$CRYO_STATE_DIR, else $XDG_RUNTIME_DIR/cryo, else /tmp/cryo-UID (root's: /run/cryo)."})
final class RunCommand implements java.util.concurrent.Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    RunLogOptions common;

    @Option(names = "--name", paramLabel = "NAME", description = "Container name (default: generated).")
    String name;

    @Option(names = "--hostname", paramLabel = "HOST", description = "Host name inside (default: the name).")
    String hostname;

    @Option(names = "--rootfs", paramLabel = "DIR[:DIR...]", description = "Root file system: an overlay of DIR (several are"
            + " stacked, the first on top) with its changes kept in Cryo's state directory, entered with pivot_root.")
    String rootfs;

    @Option(names = "--net", paramLabel = "MODE", description = "none (a network namespace with loopback only), host (default) or veth (also eth0,"
            + " paired with a host interface cryo-NAME-XXXX: a /30 of 10.88.0.0/16 of its own, the host end its gateway).")
    Run.Net net = Run.Net.HOST;

    @Option(names = "--user", description = "Also a user namespace: for root every id mapped to itself (root inside is root"
            + " outside); for another user, root inside is that user outside, and no other id is mapped.")
    boolean user;

    @Option(names = {"-v", "--volume"}, paramLabel = "HOSTDIR:CTRDIR[:ro]", description = "Bind the host's HOSTDIR at CTRDIR"
            + " (read-only with :ro); may be repeated. A checkpoint records the bind, not the files: they stay the host's.")
    List<String> volumes = List.of();

    @Option(names = "--memory", paramLabel = "SIZE", description = "Memory limit: bytes, or with a suffix k, m, g (memory.max,"
            + " or memory.limit_in_bytes of a v1 hierarchy where cgroup v2 lacks the memory controller).")
    String memory;

    @Option(names = "--pids", paramLabel = "N", description = "At most N tasks (processes and threads) in the container (pids.max).")
    Integer pids;

    @Option(names = "--cpus", paramLabel = "F", description = "CPU time: F CPUs' worth per 100 ms period (cpu.max, or cpu.cfs_quota_us"
            + " and cpu.cfs_period_us of a v1 hierarchy).")
    Double cpus;

    @Option(names = {"-d", "--detach"}, description = "Return once the command runs, printing the name; its stdin, stdout and stderr are /dev/null.")
    boolean detach;

    @Parameters(arity = "1..*", paramLabel = "CMD", description = "Command and arguments (after --).")
    List<String> command;

    @Override
    public Integer call() {
        Logs.configure(common.logFile, common.verbosity, spec.commandLine().getErr());
        String root = rootfs == null ? null : absolute(rootfs);
        Run.Started s = Run.start(new Run.Options(name, hostname, root, net, user, detach, command,
                volumes.stream().map(Volumes::parse).toList(), limits()));
        if (detach) {
            spec.commandLine().getOut().println(s.name());
            spec.commandLine().getOut().flush();
            return 0;
        }
        return s.waitForExit();
    }

    /** The limits asked for, in their cgroup v2 form. */
    private java.util.Map<String, String> limits() {
        java.util.Map<String, String> limits = new java.util.TreeMap<>();
        if (memory != null) {
            limits.put("memory.max", Long.toString(bytes(memory)));
        }
        if (pids != null) {
            if (pids < 1) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--pids must be at least 1, not " + pids);
            }
            limits.put("pids.max", Integer.toString(pids));
        }
        if (cpus != null) {
            long quota = Math.round(cpus * CPU_PERIOD_US);
            if (quota < 1000) { // the kernel's smallest quota is 1 ms
                throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--cpus must be at least 0.01, not " + cpus);
            }
            limits.put("cpu.max", quota + " " + CPU_PERIOD_US);
        }
        return limits;
    }

    private static final long CPU_PERIOD_US = 100_000;

    /** "64m" -> 67108864. */
    private long bytes(String size) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(?i)(\\d+)([kmg]?)").matcher(size.strip());
        if (!m.matches() || Long.parseLong(m.group(1)) == 0) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                    "--memory takes a number of bytes, optionally with k, m or g: not '" + size + "'");
        }
        int shift = switch (m.group(2).toLowerCase()) {
            case "k" -> 10;
            case "m" -> 20;
            case "g" -> 30;
            default -> 0;
        };
        return Long.parseLong(m.group(1)) << shift;
    }

    /** Overlay wants absolute layer paths. */
    private static String absolute(String layers) {
        return String.join(":", java.util.Arrays.stream(layers.split(":")).map(l -> Path.of(l).toAbsolutePath().normalize().toString()).toList());
    }
}
