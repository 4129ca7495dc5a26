package dev.cryo.cli;

import dev.cryo.container.ContainerCgroup;
import dev.cryo.container.Containers;
import dev.cryo.image.proto.ContainerRecord;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "ps", mixinStandardHelpOptions = true,
        description = {"List containers: name, host pid of their first process, state, memory, command.",
                "State lives under $CRYO_STATE_DIR, else /run/cryo."})
final class PsCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        out.printf("%-20s %8s %-8s %10s  %s%n", "NAME", "PID", "STATE", "MEMORY", "COMMAND");
        for (ContainerRecord r : Containers.list()) {
            Containers.State state = Containers.state(r);
            String memory = state == Containers.State.EXITED ? "-"
                    : Sizes.human(ContainerCgroup.of(r).memoryBytes());
            out.printf("%-20s %8d %-8s %10s  %s%n", r.getName(), r.getInitPid(), state.name().toLowerCase(), memory,
                    String.join(" ", r.getCommandList()));
        }
        out.flush();
        return 0;
    }
}
