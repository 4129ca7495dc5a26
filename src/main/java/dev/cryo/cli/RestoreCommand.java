package dev.cryo.cli;

import dev.cryo.container.ContainerRestore;
import dev.cryo.core.Restore;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "restore", mixinStandardHelpOptions = true,
        description = {"Bring a checkpointed process tree (or container) back, with its saved PIDs, from where it was saved.",
                "",
                "By default Cryo waits for it and exits with its exit code; with -d it returns once the process runs."
                        + " The whole image is checked first; a damaged image or a PID in use is refused before anything"
                        + " starts, and a restore that fails midway leaves nothing behind."})
final class RestoreCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    CommonOptions common;

    @Option(names = {"-D", "--images-dir"}, required = true, paramLabel = "DIR", description = "Image directory written by checkpoint.")
    Path dir;

    @Option(names = {"-d", "--detach", "--restore-detached"}, description = "Return as soon as the process runs and print its PID.")
    boolean detach;

    @Option(names = "--pidfile", paramLabel = "FILE", description = "Write the restored PID to FILE.")
    Path pidfile;

    @Option(names = "--tcp-established", description = "Accepted for criu compatibility: established TCP connections in the"
            + " image are always restored, and the network lock taken at checkpoint is lifted once they are back.")
    boolean tcpEstablished;

    @Option(names = {"-j", "--shell-job"}, description = "Put a process that used its terminal onto the terminal restore runs in, in its session and foreground group.")
    boolean shellJob;

    @Option(names = "--name", paramLabel = "NAME", description = "For a container's image: the restored container's name"
            + " (default: the saved one). Another name clones the container, also while the original runs.")
    String name;

    @Override
    public Integer call() throws IOException {
        Logs.configure(common.logFile(dir), common.verbosity, spec.commandLine().getErr());
        if (ContainerRestore.isContainerImage(dir)) {
            return restoreContainer();
        }
        if (name != null) {
            throw new dev.cryo.CryoException("--name is for container images; " + dir + " holds a process tree's");
        }
        Restore.Restored r = Restore.run(new Restore.Options(dir, shellJob));
        if (pidfile != null) {
            Files.writeString(pidfile, r.pid() + "\n");
        }
        if (detach) {
            spec.commandLine().getOut().println(r.pid());
            spec.commandLine().getOut().flush();
            return 0;
        }
        spec.commandLine().getErr().printf("Restored process %d (%d ms); waiting for it to exit%n", r.pid(), r.nanos() / 1_000_000);
        spec.commandLine().getErr().flush();
        return r.waitForExit();
    }

    private int restoreContainer() throws IOException {
        ContainerRestore.Restored c = ContainerRestore.run(dir, name);
        if (pidfile != null) {
            Files.writeString(pidfile, c.tree().pid() + "\n");
        }
        if (detach) {
            spec.commandLine().getOut().println(c.tree().pid());
            spec.commandLine().getOut().flush();
            return 0;
        }
        spec.commandLine().getErr().printf("Restored container %s (pid %d, %d processes, %d ms); waiting for it to exit%n",
                c.name(), c.tree().pid(), c.tree().processes(), c.tree().nanos() / 1_000_000);
        spec.commandLine().getErr().flush();
        return c.waitForExit();
    }
}
