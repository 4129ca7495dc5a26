package dev.cryo.core;

import java.nio.file.Path;
import java.util.Map;
import java.util.function.Function;

/**
 * Where Cryo, checking an image before a restore, finds a file the tree names by path: the same
 * path, unless the tree has a root of its own (a container's overlay root, which only exists
 * inside the container once it is made), which the restore options then say how to look into.
 */
public final class HostPaths {
    /** Key in the restore options: a {@code Function<String, Path>} from the tree's path to Cryo's. */
    public static final String KEY = "option:host-paths";

    private HostPaths() {
    }

    @SuppressWarnings("unchecked")
    public static Path of(Map<String, Object> options, String path) {
        Object view = options.get(KEY);
        return view == null ? Path.of(path) : ((Function<String, Path>) view).apply(path);
    }
}
