package dev.cryo.cli;

import dev.cryo.core.Checkpoint;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "checkpoint", aliases = "dump", mixinStandardHelpOptions = true,
        description = {"Save a running process and all its descendants to an image directory, then kill them (or leave them running).",
                "",
                "The processes are stopped only while they are saved. What Cryo cannot save faithfully is refused with the"
                        + " reason (the fd, its kind and the process), and the processes keep running as they were."})
final class CheckpointCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    CommonOptions common;

    @Parameters(index = "0", arity = "0..1", paramLabel = "PID", description = "Process to checkpoint.")
    Integer pid;

    @Option(names = {"-t", "--tree"}, paramLabel = "PID", description = "Same as PID (criu's spelling).")
    Integer tree;

    @Option(names = {"-D", "--images-dir"}, required = true, paramLabel = "DIR", description = "Directory to write the image to.")
    Path dir;

    @Option(names = {"-R", "--leave-running"}, description = "Resume the process after saving it instead of killing it.")
    boolean leaveRunning;

    @Option(names = {"-j", "--shell-job"}, description = "The process uses the terminal it runs in; restore (with --shell-job) puts it on restore's terminal.")
    boolean shellJob;

    @Option(names = "--ipc-host", description = "The process uses SysV shared memory or POSIX message queues of the host:"
            + " leave them there and attach to them again at restore (they must still exist).")
    boolean ipcHost;

    @Option(names = "--tcp-established", description = "Save established TCP connections too (TCP_REPAIR). Their peers' packets"
            + " are dropped from the checkpoint until restore (an nftables table; for a container, its veth is down), so a"
            + " peer sees a pause, not a reset. Connections wholly inside a container's network need no flag.")
    boolean tcpEstablished;

    @Option(names = "--ext-unix-sk", description = "Allow unix datagram sockets connected to a named socket outside the tree"
            + " (such as /dev/log): restore connects them to that name again. Stream connections to outside processes are"
            + " still refused.")
    boolean extUnixSk;

    @Option(names = "--timeout", paramLabel = "SECONDS", description = "Accepted for criu compatibility (freezing a lone process is immediate).")
    Integer timeout;

    @Option(names = "--pidfile", paramLabel = "FILE", description = "Write the checkpointed PID to FILE.")
    Path pidfile;

    @Option(names = "--container", paramLabel = "NAME", description = "Checkpoint container NAME (started by cryo run):"
            + " frozen through its cgroup, saved with its namespaces, cgroup limits and overlay upper layer.")
    String container;

    @Mixin
    ParentOptions parent;

    @Override
    public Integer call() throws IOException {
        if (container != null) {
            if (pid != null || tree != null) {
                throw new ParameterException(spec.commandLine(), "Give either a PID or --container, not both");
            }
            java.nio.file.Files.createDirectories(dir);
            Logs.configure(common.logFile(dir), common.verbosity, spec.commandLine().getErr());
            Checkpoint.Result r = dev.cryo.container.ContainerCheckpoint.run(container, dir, leaveRunning,
                    tcpEstablished, new ProgressLine(spec.commandLine().getErr()));
            spec.commandLine().getOut().printf("Checkpointed container %s (%d processes, %d threads) to %s: %d pages (%s); "
                            + "frozen %d ms, total %d ms; %s%n", container, r.processes(), r.threads(), dir, r.pages(),
                    Sizes.human(r.bytes()), r.frozenNanos() / 1_000_000, r.totalNanos() / 1_000_000,
                    leaveRunning ? "left running" : "killed");
            return 0;
        }
        if (pid == null && tree == null) {
            throw new ParameterException(spec.commandLine(), "Missing the PID to checkpoint (cryo checkpoint PID -D DIR)");
        }
        if (pid != null && tree != null && !pid.equals(tree)) {
            throw new ParameterException(spec.commandLine(), "Two different PIDs given: " + pid + " and --tree " + tree);
        }
        int target = pid != null ? pid : tree;
        java.nio.file.Files.createDirectories(dir); // the log may live in it
        Logs.configure(common.logFile(dir), common.verbosity, spec.commandLine().getErr());
        Checkpoint.Result r = Checkpoint.run(new Checkpoint.Options(target, dir, leaveRunning, shellJob, ipcHost, tcpEstablished,
                extUnixSk, new ProgressLine(spec.commandLine().getErr()), parent.parentDir(spec, dir)));
        if (pidfile != null) {
            Files.writeString(pidfile, target + "\n");
        }
        spec.commandLine().getOut().printf("Checkpointed process %d (%s%d thread%s) to %s: %d memory areas, %d pages (%s), %d fds; "
                        + "frozen %d ms, total %d ms; %s%n", r.pid(),
                r.processes() > 1 ? r.processes() + " processes, " : "", r.threads(), r.threads() == 1 ? "" : "s", dir,
                r.areas(), r.pages(), Sizes.human(r.bytes()),
                r.fds(), r.frozenNanos() / 1_000_000, r.totalNanos() / 1_000_000,
                leaveRunning ? "left running" : "killed");
        if (parent.parentDir(spec, dir) != null) {
            spec.commandLine().getOut().printf(java.util.Locale.ROOT, "Incremental: %d pages (%s) taken from the parent image %s instead of copied;"
                            + " %d pages written since it copied before the freeze; CPU time while frozen %.1f ms%n",
                    r.pagesInParent(), Sizes.human(r.pagesInParent() * 4096), parent.parentDir(spec, dir), r.pagesEarly(),
                    r.frozenCpuNanos() / 1e6);
        }
        return 0;
    }
}
