package dev.cryo.cli;

import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;

import java.nio.file.Files;
import java.nio.file.Path;

/** The image an incremental dump builds on, spelled Cryo's way (--parent) or criu's (--prev-images-dir). */
public final class ParentOptions {
    @Option(names = "--parent", paramLabel = "DIR",
            description = "Build on the pre-dump in DIR: copy only the pages written since it (tracked by `cryo pre-dump`);"
                    + " the others stay in DIR, which restore reads through. DIR must be kept as long as this image is.")
    Path parent;

    @Option(names = "--prev-images-dir", paramLabel = "DIR",
            description = "criu's spelling of --parent; as with criu, a relative DIR is taken from the images directory (-D).")
    Path prevImagesDir;

    @Option(names = "--track-mem", description = "Accepted for criu compatibility: Cryo's pre-dumps always track memory changes.")
    boolean trackMem;

    /** The parent image directory, or null; checked to exist and to differ from {@code dir}. */
    Path parentDir(CommandSpec spec, Path dir) {
        if (parent != null && prevImagesDir != null) {
            throw new ParameterException(spec.commandLine(), "Give the parent image once: --parent or --prev-images-dir");
        }
        Path p = parent != null ? parent : prevImagesDir == null ? null
                : prevImagesDir.isAbsolute() ? prevImagesDir : dir.resolve(prevImagesDir);
        if (p == null) {
            return null;
        }
        if (!Files.isDirectory(p)) {
            throw new ParameterException(spec.commandLine(), "The parent image " + p + " does not exist");
        }
        if (p.toAbsolutePath().normalize().equals(dir.toAbsolutePath().normalize())) {
            throw new ParameterException(spec.commandLine(), "The parent image must be another directory than -D " + dir
                    + ": writing the new image would replace it");
        }
        return p;
    }
}
