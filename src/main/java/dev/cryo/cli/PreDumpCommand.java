package dev.cryo.cli;

import dev.cryo.core.PreDump;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

import java.util.concurrent.Callable;

@Command(name = "pre-dump", mixinStandardHelpOptions = true,
        description = {"Copy a process's memory while it keeps running, and track what it writes from then on.", "",
                "The process is stopped only for the moment it takes to arm the tracking (userfaultfd write protection"
                        + " in async mode: the process sees no fault and no extra fd). A small process named cryo-tracker"
                        + " keeps the tracking alive after this command exits.", "",
                "Then `cryo checkpoint PID -D DIR2 --parent DIR` copies the pages written since, first while the"
                        + " process runs, and stops it only to copy what was written after that. Pre-dumps can repeat,"
                        + " each with --parent the previous one. The images chain: restore reads pages through the"
                        + " parents, so keep them. A pre-dump alone cannot be restored.", "",
                "Areas the application registered with a userfaultfd of its own are left alone and reported; every"
                        + " dump copies them whole."})
final class PreDumpCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    CommonOptions common;

    @Parameters(index = "0", arity = "0..1", paramLabel = "PID", description = "Process (tree) to pre-dump.")
    Integer pid;

    @Option(names = {"-t", "--tree"}, paramLabel = "PID", description = "Same as PID (criu's spelling).")
    Integer tree;

    @Option(names = {"-D", "--images-dir"}, required = true, paramLabel = "DIR", description = "Directory to write the pre-dump to.")
    java.nio.file.Path dir;

    @Mixin
    ParentOptions parent;

    @Override
    public Integer call() throws Exception {
        if (pid == null && tree == null) {
            throw new ParameterException(spec.commandLine(), "Missing the PID to pre-dump (cryo pre-dump PID -D DIR)");
        }
        if (pid != null && tree != null && !pid.equals(tree)) {
            throw new ParameterException(spec.commandLine(), "Two different PIDs given: " + pid + " and --tree " + tree);
        }
        int target = pid != null ? pid : tree;
        java.nio.file.Path parentDir = parent.parentDir(spec, dir);
        java.nio.file.Files.createDirectories(dir);
        Logs.configure(common.logFile(dir), common.verbosity, spec.commandLine().getErr());
        PreDump.Result r = PreDump.run(new PreDump.Options(target, dir, parentDir, new ProgressLine(spec.commandLine().getErr())));
        java.io.PrintWriter out = spec.commandLine().getOut();
        out.printf("Pre-dumped process %d%s to %s: %d pages (%s) copied%s; frozen %d ms, total %d ms; tracking kept by process %d%n",
                r.pid(), r.processes() > 1 ? " (" + r.processes() + " processes)" : "", dir, r.pages(), Sizes.human(r.bytes()),
                parentDir == null ? "" : ", " + r.pagesInParent() + " unchanged in " + parentDir,
                r.frozenNanos() / 1_000_000, r.totalNanos() / 1_000_000, r.keeperPid());
        for (String area : r.areasLeftAlone()) {
            out.println("Not tracked (registered with the application's own userfaultfd, copied whole by every dump): process " + area);
        }
        return 0;
    }
}
