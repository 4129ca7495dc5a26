package dev.cryo.container;

import dev.cryo.CryoException;
import dev.cryo.ns.Mounts;
import dev.cryo.image.proto.ContainerMount;
import dev.cryo.image.proto.Volume;
import dev.cryo.ns.Namespaces;
import dev.cryo.ns.Network;
import dev.cryo.ns.Uts;
import dev.cryo.remote.RemoteSyscalls;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;

/**
 * What a container's first process does in its new namespaces before anything else runs there,
 * both when `cryo run` starts it and when a restore recreates it: its mounts made private, the
 * overlay root entered with the volumes bound into it, a /proc of its own pid namespace, the
 * mounts it made itself (at restore, see {@link ContainerMounts}), its host name, loopback up in
 * a network namespace of its own.
 *
 * @param rootfs  overlay lower layers (colon-separated), or null to keep the host's root
 * @param volumes host directories bound in (-v)
 * @param mounts  mounts the container made itself, to make again (tmpfs with their contents)
 */
record RootSetup(long namespaces, String rootfs, Path upper, Path work, Path merged, Uts.Names uts,
                 List<Volume> volumes, List<ContainerMount> mounts) {

    /** The directories of an overlay root under the container's state directory. */
    static RootSetup of(long namespaces, String rootfs, Path stateDir, Uts.Names uts) {
        return of(namespaces, rootfs, stateDir, uts, List.of(), List.of());
    }

    static RootSetup of(long namespaces, String rootfs, Path stateDir, Uts.Names uts, List<Volume> volumes,
                        List<ContainerMount> mounts) {
        return new RootSetup(namespaces, rootfs, stateDir.resolve("upper"), stateDir.resolve("work"),
                stateDir.resolve("rootfs"), uts, volumes, mounts);
    }

    /**
     * Checks each lower layer and creates the upper, work and mount-point directories; on the
     * host's root, checks that each volume's place exists (making it would change the host's).
     */
    void prepareDirectories() {
        if (rootfs == null) {
            for (Volume v : volumes) {
                if (!Files.exists(Path.of(v.getContainerPath()))) {
                    throw new CryoException("volume " + v.getHostPath() + ": " + v.getContainerPath() + " does not exist, and a "
                            + "container on the host's root (no --rootfs) can only bind over what is there");
                }
            }
            return;
        }
        for (String layer : rootfs.split(":")) {
            if (!Files.isDirectory(Path.of(layer))) {
                throw new CryoException("rootfs " + layer + " is not a directory");
            }
        }
        try {
            Files.createDirectories(upper);
            Files.createDirectories(work);
            Files.createDirectories(merged);
        } catch (IOException e) {
            throw new CryoException("cannot create the overlay's directories under " + merged.getParent() + ": " + e.getMessage(), e);
        }
    }

    /**
     * Where Cryo finds a path of the container's file system while its overlay is not mounted on
     * Cryo's side: in the upper layer, else in the first lower layer that has it. A whiteout in a
     * higher layer hides it (the path returned then does not exist). Links inside the layers
     * are followed on the host, so this is a close look, not overlay's own.
     */
    Path hostView(String path) {
        return hostView(path, mounts.size());
    }

    /** {@link #hostView} as the first {@code made} own mounts left it (volumes and the root beneath). */
    private Path hostView(String path, int made) {
        for (int i = made - 1; i >= 0; i--) { // the last mount over a path is the one seen
            ContainerMount m = mounts.get(i);
            String rest = below(path, m.getMountPoint());
            if (rest != null && m.getKind() == ContainerMount.Kind.TMPFS) {
                return staged(i).resolve(rest);
            }
            if (rest != null && m.getKind() == ContainerMount.Kind.BIND) {
                return hostView(rest.isEmpty() ? m.getSource() : m.getSource() + "/" + rest, i);
            }
            if (rest != null && m.getKind() == ContainerMount.Kind.PSEUDO) {
                return Path.of(path); // proc, sysfs ...: the host has the same kind
            }
        }
        for (Volume v : volumes.reversed()) {
            String rest = below(path, v.getContainerPath());
            if (rest != null) {
                return Path.of(v.getHostPath()).resolve(rest);
            }
        }
        if (rootfs == null || path.startsWith("/dev/") || path.startsWith("/proc/")) {
            return Path.of(path); // the same devices; a /proc of the same kind
        }
        String relative = path.startsWith("/") ? path.substring(1) : path;
        List<Path> layers = new ArrayList<>(List.of(upper));
        for (String layer : rootfs.split(":")) {
            layers.add(Path.of(layer));
        }
        for (Path layer : layers) {
            Path candidate = layer.resolve(relative);
            try {
                BasicFileAttributes a = Files.readAttributes(candidate, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                return a.isOther() ? upper.resolve(".cryo-whiteout-of").resolve(relative) : candidate;
            } catch (IOException absent) {
                // not in this layer
            }
        }
        return upper.resolve(relative);
    }

    /** The part of {@code path} below {@code point} ("" for the point itself), or null if it is not under it. */
    private static String below(String path, String point) {
        return path.equals(point) ? "" : path.startsWith(point + "/") ? path.substring(point.length() + 1) : null;
    }

    /**
     * Puts the saved contents of the container's tmpfs mounts into directories of the state
     * directory, where the image's check finds the files by {@link #hostView} before the
     * container exists. {@link #dropStaged} removes them once it runs.
     */
    void stageTmpfs() {
        for (int i = 0; i < mounts.size(); i++) {
            if (mounts.get(i).getKind() != ContainerMount.Kind.TMPFS) {
                continue;
            }
            try {
                Files.createDirectories(staged(i));
            } catch (IOException e) {
                throw new CryoException("cannot create " + staged(i) + ": " + e.getMessage(), e);
            }
            RootfsLayers.restore(mounts.get(i).getContents(), staged(i));
        }
    }

    void dropStaged() {
        StateStore.deleteTree(merged.resolveSibling("tmpfs-staged"));
    }

    private Path staged(int i) {
        return merged.resolveSibling("tmpfs-staged").resolve(Integer.toString(i));
    }

    /**
     * Sets the root up in the container's first process.
     *
     * @return its mounts once the root is ready, before its own ({@link ContainerMounts#base})
     */
    List<String> apply(RemoteSyscalls sys) {
        List<String> base = List.of();
        if ((namespaces & Namespaces.NEWNS) != 0) {
            Mounts.makePrivate(sys);
            boolean proc = (namespaces & Namespaces.NEWPID) != 0;
            if (rootfs != null) {
                Mounts.overlayRoot(sys, rootfs, upper, work, merged, proc,
                        () -> ContainerMounts.bindVolumes(sys, volumes, merged.toString()));
            } else {
                ContainerMounts.bindVolumes(sys, volumes, "");
                if (proc) {
                    Mounts.mountProc(sys, "/proc");
                }
            }
            base = ContainerMounts.base(sys.task().pid());
            ContainerMounts.restore(sys, mounts);
        }
        if ((namespaces & Namespaces.NEWUTS) != 0 && uts != null) {
            Uts.apply(sys, uts);
        }
        if ((namespaces & Namespaces.NEWNET) != 0) {
            Network.loopbackUp(sys);
        }
        return base;
    }
}
