package dev.cryo.cli;

import dev.cryo.container.Containers;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "kill", mixinStandardHelpOptions = true,
        description = {"Stop containers (SIGKILL to their pid 1 ends every process inside) and remove their state:",
                "record, cgroup, overlay upper layer. An exited container's leftovers are removed the same way."})
final class KillCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(arity = "1..*", paramLabel = "NAME", description = "Containers to stop.")
    List<String> names;

    @Override
    public Integer call() {
        for (String n : names) {
            Containers.kill(n);
            spec.commandLine().getOut().println(n);
        }
        spec.commandLine().getOut().flush();
        return 0;
    }
}
