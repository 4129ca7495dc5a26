package dev.cryo.container;

import dev.cryo.CryoException;
import dev.cryo.image.proto.Volume;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Host directories bound into a container, docker's `-v HOSTDIR:CTRDIR[:ro]`. They are the
 * user's data: a checkpoint records where they were bound, never what they hold, and a restore
 * binds the same host paths again (refusing, before anything is made, if one is gone).
 */
public final class Volumes {
    private Volumes() {
    }

    /** "HOSTDIR:CTRDIR[:ro|:rw]" with HOSTDIR made absolute; an existing host path and an absolute CTRDIR. */
    public static Volume parse(String spec) {
        String[] parts = spec.split(":", -1);
        if (parts.length < 2 || parts.length > 3 || parts[0].isEmpty() || !parts[1].startsWith("/")
                || (parts.length == 3 && !parts[2].equals("ro") && !parts[2].equals("rw"))) {
            throw new CryoException("volume " + spec + " is not HOSTDIR:CTRDIR[:ro] with an absolute CTRDIR");
        }
        Path host = Path.of(parts[0]).toAbsolutePath().normalize();
        String inside = Path.of(parts[1]).normalize().toString();
        if (inside.equals("/")) {
            throw new CryoException("volume " + spec + " would cover the container's whole root");
        }
        for (String hidden : new String[] {"/dev", "/proc"}) { // bound before pivot_root, they would end up under these
            if (inside.equals(hidden) || inside.startsWith(hidden + "/")) {
                throw new CryoException("volume " + spec + " would be hidden under the container's own " + hidden);
            }
        }
        Volume v = Volume.newBuilder().setHostPath(host.toString()).setContainerPath(inside)
                .setReadOnly(parts.length == 3 && parts[2].equals("ro")).build();
        check(List.of(v));
        return v;
    }

    /** Every volume's host path exists. */
    static void check(List<Volume> volumes) {
        for (Volume v : volumes) {
            if (!Files.exists(Path.of(v.getHostPath()))) {
                throw new CryoException("volume " + v.getHostPath() + " (for " + v.getContainerPath() + ") does not exist on the host");
            }
        }
    }
}
