package dev.cryo.cli;

import picocli.CommandLine.Option;

import java.nio.file.Path;

/** Options every command takes, spelled as criu spells them. */
public final class CommonOptions {
    @Option(names = {"-o", "--log-file"}, paramLabel = "FILE",
            description = "Write a log of what was saved or restored to FILE; a relative FILE goes into the images directory, as with criu.")
    Path logFile;

    /** The log file, a relative one taken inside the images directory (criu's working directory defaults to it). */
    Path logFile(Path imagesDir) {
        return logFile == null || logFile.isAbsolute() || imagesDir == null ? logFile : imagesDir.resolve(logFile);
    }

    @Option(names = {"-v", "--verbosity"}, arity = "0..1", fallbackValue = "4", paramLabel = "N",
            description = "Log detail: 0 errors, 1 warnings, 2 info, 4 debug (-v alone means 4); logs go to stderr.")
    int verbosity = 0;

    @Option(names = "--no-default-config", description = "Accepted for criu compatibility; Cryo reads no config files.")
    boolean noDefaultConfig;
}
