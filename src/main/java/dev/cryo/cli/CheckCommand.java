package dev.cryo.cli;

import dev.cryo.check.Feature;
import dev.cryo.check.Features;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "check", mixinStandardHelpOptions = true,
        description = {"Probe the kernel features Cryo relies on and print OK or missing for each.",
                "Exit code 0 when everything checkpoint/restore needs is there (for a user other than root: what",
                "checkpoint/restore of its containers needs). With --feature: 0 when that feature is there."})
final class CheckCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--feature", paramLabel = "NAME", description = "Check only this feature.")
    String feature;

    @Option(names = "--no-default-config", hidden = true)
    boolean noDefaultConfig;

    @Override
    public Integer call() {
        List<Feature> features = Features.probeAll();
        if (feature != null) {
            features = features.stream().filter(f -> f.name().equals(feature)).toList();
            if (features.isEmpty()) {
                throw new ParameterException(spec.commandLine(), "Unknown feature '" + feature + "'; known: "
                        + String.join(", ", Features.names()));
            }
        }
        PrintWriter out = spec.commandLine().getOut();
        boolean ok = true;
        for (Feature f : features) {
            out.printf("%-24s %-8s %s%n", f.name(), f.available() ? "OK" : "missing", f.detail());
            ok &= f.available() || (!f.required() && feature == null); // one feature asked for: is it there
        }
        if (feature == null) { // criu's --feature answers with the feature's line alone
            int euid = dev.cryo.sys.Sys.geteuid();
            if (!ok && euid != 0 && features.stream().anyMatch(f -> f.name().equals("unprivileged_containers") && f.available())) {
                // what a user lacks is root's: say what it can do instead
                out.println("As user " + euid + ": containers run with `cryo run --user` can be checkpointed and restored;"
                        + " plain processes need root.");
                return 0;
            }
            out.println(ok ? "Looks good." : "Some feature checkpoint/restore needs is missing.");
        }
        return ok ? 0 : 1;
    }
}
