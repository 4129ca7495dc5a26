package dev.cryo.cli;

import dev.cryo.CryoException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Cryo's command line. {@link #commandLine} builds it around given streams so tests see exactly
 * what a user sees; failures print one line (the stack trace only with -v).
 */
@Command(name = "cryo", mixinStandardHelpOptions = true, version = "cryo " + dev.cryo.Version.VERSION,
        description = {"Checkpoint a running Linux process to an image, and restore it later from exactly that point.", ""},
        footer = {"", "criu spellings work too: cryo dump -t PID -D DIR, cryo restore -D DIR -d, cryo check --feature F."})
public final class Main implements Runnable {
    public static final int EXIT_FAILURE = 1;
    public static final int EXIT_USAGE = 2;

    /**
     * The subcommands, in the order --help lists them. Not in the annotation: picocli would build
     * every one's model (reflection, annotation proxies, a parser each), ~half of a short
     * command's start, where one command needs only its own.
     */
    private static final List<Class<?>> COMMANDS = List.of(CheckCommand.class, PreDumpCommand.class, CheckpointCommand.class,
            RestoreCommand.class, InspectCommand.class, RunCommand.class, PsCommand.class, KillCommand.class);

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "Missing command: say what Cryo should do");
    }

    /**
     * The command line for these arguments: with only the subcommand they name when the first
     * one names it (what a user types is parsed the same), else (no arguments too) with all of
     * them: --help lists them, a misspelt name gets its suggestions.
     */
    public static CommandLine commandLine(PrintWriter out, PrintWriter err, String... args) {
        List<Class<?>> named = args.length == 0 ? List.of() : COMMANDS.stream().filter(c -> names(c).contains(args[0])).toList();
        return build(out, err, named.isEmpty() ? COMMANDS : named);
    }

    private static List<String> names(Class<?> command) {
        Command c = command.getAnnotation(Command.class);
        List<String> names = new ArrayList<>(List.of(c.aliases()));
        names.add(c.name());
        return names;
    }

    private static CommandLine build(PrintWriter out, PrintWriter err, List<Class<?>> commands) {
        CommandLine cl = new CommandLine(new Main());
        commands.forEach(cl::addSubcommand); // before the settings below, which reach the subcommands there are
        cl.setOut(out);
        cl.setErr(err);
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        // Logging is only what the command sets up (Logs.configure): not the JVM's default console
        // handler, which would print a failure a second time, stamped, on the real stderr. And it
        // ends with the command (a failure's, in the handler below, after its last line), so a JVM
        // that runs several commands gets each log file whole and closed.
        cl.setExecutionStrategy(parse -> {
            Logs.close();
            int code = new CommandLine.RunLast().execute(parse);
            Logs.close();
            return code;
        });
        cl.setExecutionExceptionHandler((ex, line, parse) -> {
            boolean run = parse.hasSubcommand() && parse.subcommand().commandSpec().name().equals("run"); // -v: a volume
            boolean verbose = parse.originalArgs().stream().anyMatch(a -> (!run && a.startsWith("-v")) || a.startsWith("--verbosity"));
            PrintWriter e = line.getErr();
            if (ex instanceof CryoException || ex instanceof UncheckedIOException || ex instanceof IllegalStateException) {
                e.println("Error: " + ex.getMessage());
                if (verbose) {
                    ex.printStackTrace(e);
                }
            } else {
                e.println("Error: internal failure: " + ex);
                ex.printStackTrace(e);
            }
            e.flush();
            java.util.logging.Logger.getLogger("cryo").severe("Error: " + ex.getMessage());
            Logs.close();
            return EXIT_FAILURE;
        });
        cl.setParameterExceptionHandler((ex, args) -> {
            PrintWriter e = ex.getCommandLine().getErr();
            e.println("Error: " + ex.getMessage());
            e.println("Run '" + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help' for usage.");
            e.flush();
            return EXIT_USAGE;
        });
        return cl;
    }

    public static void main(String[] args) {
        // The first downcalls of a JVM link their call sites, tens of ms that the work would
        // otherwise wait for (the restore stub's start, the first ptrace): done meanwhile, on the
        // other core, while the command line and the image are read.
        Thread.ofPlatform().daemon().name("cryo-warm-up").start(dev.cryo.sys.Sys::warmUp);
        PrintWriter out = new PrintWriter(System.out, true);
        PrintWriter err = new PrintWriter(System.err, true);
        int code = commandLine(out, err, args).execute(args);
        Logs.close();
        out.flush();
        err.flush();
        System.exit(code);
    }
}
