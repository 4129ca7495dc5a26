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

    @Option(names = {"-d", "--detach"}, description = "Return once the command runs, printing the name; its stdin, stdout and stderr are /dev/null.")
    boolean detach;

    @Parameters(arity = "1..*", paramLabel = "CMD", description = "Command and arguments (after --).")
    List<String> command;

    @Override
    public Integer call() {
        Logs.configure(common.logFile, common.verbosity, spec.commandLine().getErr());
        String root = rootfs == null ? null : absolute(rootfs);
        Run.Started s = Run.start(new Run.Options(name, hostname, root, net, user, detach, command,
                volumes.stream().map(Volumes::parse).toList()));
        if (detach) {
            spec.commandLine().getOut().println(s.name());
            spec.commandLine().getOut().flush();
            return 0;
        }
        return s.waitForExit();
    }

    /** Overlay wants absolute layer paths. */
    private static String absolute(String layers) {
        return String.join(":", java.util.Arrays.stream(layers.split(":")).map(l -> Path.of(l).toAbsolutePath().normalize().toString()).toList());
    }
}
