package dev.cryo.container;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import dev.cryo.CryoException;
import dev.cryo.image.proto.ContainerRecord;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Where Cryo keeps its containers: one directory per container under {@link #root()} holding its record (container.json), its console log and its overlay's upper and
 * work directories.
 */
public final class StateStore {
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    private static final String RECORD = "container.json";

    private StateStore() {
    }

    /** System property that overrides $CRYO_STATE_DIR, for a JVM that runs Cryo's commands in-process (tests). */
    public static final String PROPERTY = "cryo.state.dir";

    /**
     * $CRYO_STATE_DIR; else /run/cryo for root; else, for a user who may not write there,
     * $XDG_RUNTIME_DIR/cryo (the user's own run directory), or /tmp/cryo-UID without one.
     */
    public static Path root() {
        String dir = System.getProperty(PROPERTY);
        if (dir == null || dir.isEmpty()) {
            dir = System.getenv("CRYO_STATE_DIR");
        }
        if (dir != null && !dir.isEmpty()) {
            return Path.of(dir);
        }
        int euid = Sys.geteuid();
        if (euid == 0) {
            return Path.of("/run/cryo");
        }
        String runtime = System.getenv("XDG_RUNTIME_DIR");
        if (runtime != null && !runtime.isEmpty()) {
            return Path.of(runtime, "cryo");
        }
        Path shared = Path.of("/tmp/cryo-" + euid); // where anyone could have made it first
        try {
            if (Files.exists(shared, LinkOption.NOFOLLOW_LINKS)
                    && ((Number) Files.getAttribute(shared, "unix:uid", LinkOption.NOFOLLOW_LINKS)).intValue() != euid) {
                throw new CryoException(shared + " belongs to another user; set CRYO_STATE_DIR to a directory of your own");
            }
        } catch (IOException e) {
            throw new CryoException("cannot check " + shared + ": " + e.getMessage(), e);
        }
        return shared;
    }

    public static Path dir(String name) {
        checkName(name);
        return root().resolve(name);
    }

    public static void checkName(String name) {
        if (!NAME.matcher(name).matches()) {
            throw new CryoException("invalid container name '" + name + "': letters, digits, '_', '.' and '-', 64 at most");
        }
    }

    public static Optional<ContainerRecord> read(String name) {
        Path file = dir(name).resolve(RECORD);
        if (!Files.exists(file)) {
            return Optional.empty();
        }
        try {
            ContainerRecord.Builder b = ContainerRecord.newBuilder();
            JsonFormat.parser().merge(Files.readString(file), b);
            return Optional.of(b.build());
        } catch (IOException e) {
            throw new CryoException("cannot read the record of container " + name + " (" + file + "): " + e.getMessage(), e);
        }
    }

    /** Every container with a record, by name. */
    public static List<ContainerRecord> all() {
        List<ContainerRecord> out = new ArrayList<>();
        if (!Files.isDirectory(root())) {
            return out;
        }
        try (Stream<Path> dirs = Files.list(root())) {
            for (Path d : dirs.sorted().toList()) {
                String name = d.getFileName().toString();
                if (NAME.matcher(name).matches() && Files.exists(d.resolve(RECORD))) {
                    read(name).ifPresent(out::add);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out;
    }

    /** Writes the record whole (a new file renamed over the old one, so a reader never sees half of it). */
    public static void write(ContainerRecord record) {
        Path dir = dir(record.getName());
        try {
            Files.createDirectories(dir);
            Path tmp = dir.resolve(RECORD + ".new");
            Files.writeString(tmp, JsonFormat.printer().print(record) + "\n");
            Files.move(tmp, dir.resolve(RECORD), StandardCopyOption.ATOMIC_MOVE);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException(e);
        } catch (IOException e) {
            throw new CryoException("cannot write the record of container " + record.getName() + " in " + dir + ": "
                    + e.getMessage(), e);
        }
    }

    /** Removes the container's directory and everything in it. */
    public static void remove(String name) {
        deleteTree(dir(name));
    }

    static void deleteTree(Path top) {
        if (!Files.exists(top, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        try {
            Files.walkFileTree(top, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                    Files.delete(file);
                    return FileVisitResult.CONTINUE;
                }

                /**
                 * Overlay leaves its work directory's "work" with mode 0; root reads it anyway, its
                 * owner must first give itself the right (the only failure retried).
                 */
                @Override
                public FileVisitResult visitFileFailed(Path file, IOException exc) throws IOException {
                    if (!(exc instanceof AccessDeniedException) || !Files.isDirectory(file, LinkOption.NOFOLLOW_LINKS)
                            || Files.isReadable(file)) {
                        throw exc;
                    }
                    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rwx------"));
                    deleteTree(file);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
                    Files.delete(dir);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException e) {
            throw new CryoException("cannot remove " + top + ": " + e.getMessage(), e);
        }
    }
}
