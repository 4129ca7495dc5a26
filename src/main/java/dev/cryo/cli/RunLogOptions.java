package dev.cryo.cli;

import picocli.CommandLine.Option;

import java.nio.file.Path;

/**
 * {@link CommonOptions} for `cryo run`, where `-v` is docker's volume: the verbosity is only
 * spelled out (--verbosity), and there is no images directory for a relative log file.
 */
public final class RunLogOptions {
    @Option(names = {"-o", "--log-file"}, paramLabel = "FILE", description = "Write a log of what was set up to FILE.")
    Path logFile;

    @Option(names = "--verbosity", arity = "0..1", fallbackValue = "4", paramLabel = "N",
            description = "Log detail: 0 errors, 1 warnings, 2 info, 4 debug (alone means 4); logs go to stderr.")
    int verbosity = 0;
}
