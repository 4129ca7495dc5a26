package dev.cryo.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Compiles the C test targets, {@code src/test/c/NAME.c}, into {@code target/test-bin/NAME}.
 *
 * <p>Each program is compiled at most once per JVM, and not at all while the binary is newer than
 * both its source and the shared {@code target.h}. The binary is written under a temporary name
 * and renamed into place, so forked test JVMs building the same target never run a half-written
 * file.
 */
public final class TargetBuilder {
    /** Maven runs tests in the project directory and also passes it as {@code basedir}. */
    private static final Path PROJECT = Path.of(System.getProperty("basedir", "")).toAbsolutePath();
    private static final Path SOURCES = PROJECT.resolve("src/test/c");
    private static final Path BINARIES = PROJECT.resolve("target/test-bin");
    private static final String GCC = "/usr/bin/gcc";
    private static final long GCC_TIMEOUT_SECONDS = 120;

    /** Flags beyond the common ones, by target name. */
    private static final Map<String, List<String>> EXTRA_FLAGS = Map.of(
            "avx512", List.of("-mavx512f"),
            "cgroupcheck", List.of("-pthread"),
            "manythreads", List.of("-pthread"),
            "signals", List.of("-lrt"),
            "taskattrs", List.of("-pthread"));

    private static final Map<String, Path> BUILT = new ConcurrentHashMap<>();

    private TargetBuilder() {
    }

    /**
     * Returns the binary of target {@code name}, compiling it first if needed.
     *
     * @throws IllegalStateException with gcc's output if compiling fails
     */
    public static Path build(String name) {
        return BUILT.computeIfAbsent(name, TargetBuilder::compile);
    }

    private static Path compile(String name) {
        Path source = SOURCES.resolve(name + ".c");
        Path binary = BINARIES.resolve(name);
        try {
            if (!Files.exists(source)) {
                throw new IllegalStateException("no target source " + source);
            }
            if (upToDate(binary, source, SOURCES.resolve("target.h"))) {
                return binary;
            }
            Files.createDirectories(BINARIES);
            Path temporary = BINARIES.resolve("." + name + ".tmp-" + ProcessHandle.current().pid());
            List<String> command = new ArrayList<>(List.of(
                    GCC, "-O1", "-g", "-Wall", "-o", temporary.toString(), source.toString()));
            command.addAll(EXTRA_FLAGS.getOrDefault(name, List.of()));
            Process gcc = new ProcessBuilder(command).redirectErrorStream(true).start();
            gcc.getOutputStream().close();
            String output = new String(gcc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!gcc.waitFor(GCC_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                gcc.destroyForcibly();
                throw new IllegalStateException("gcc timed out compiling " + source + "\n" + output);
            }
            if (gcc.exitValue() != 0) {
                Files.deleteIfExists(temporary);
                throw new IllegalStateException("gcc failed compiling " + source + " (exit "
                        + gcc.exitValue() + "): " + String.join(" ", command) + "\n" + output);
            }
            Files.move(temporary, binary, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            return binary;
        } catch (IOException e) {
            throw new IllegalStateException("cannot build target " + name + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while building target " + name, e);
        }
    }

    private static boolean upToDate(Path binary, Path... inputs) throws IOException {
        FileTime built;
        try {
            built = Files.getLastModifiedTime(binary);
        } catch (NoSuchFileException e) {
            return false;
        }
        for (Path input : inputs) {
            if (Files.getLastModifiedTime(input).compareTo(built) >= 0) {
                return false;
            }
        }
        return true;
    }
}
