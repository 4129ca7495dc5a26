package dev.cryo.container;

import dev.cryo.CryoException;
import dev.cryo.ns.Mounts;
import dev.cryo.image.proto.TmpfsMount;
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
 * overlay root entered, a /proc of its own pid namespace, the tmpfs mounts it made itself with
 * their contents (at restore), its host name, loopback up in a network namespace of its own.
 *
 * @param rootfs overlay lower layers (colon-separated), or null to keep the host's root
 */
record RootSetup(long namespaces, String rootfs, Path upper, Path work, Path merged, Uts.Names uts,
                 List<TmpfsMount> tmpfs) {

    /** The directories of an overlay root under the container's state directory. */
    static RootSetup of(long namespaces, String rootfs, Path stateDir, Uts.Names uts) {
        return of(namespaces, rootfs, stateDir, uts, List.of());
    }

    /** @param tmpfs mounts the container made itself, to make again with their contents */
    static RootSetup of(long namespaces, String rootfs, Path stateDir, Uts.Names uts, List<TmpfsMount> tmpfs) {
        return new RootSetup(namespaces, rootfs, stateDir.resolve("upper"), stateDir.resolve("work"),
                stateDir.resolve("rootfs"), uts, tmpfs);
    }

    /** Checks each lower layer and creates the upper, work and mount-point directories. */
    void prepareDirectories() {
        if (rootfs == null) {
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
        for (int i = tmpfs.size() - 1; i >= 0; i--) { // the last mount over a path is the one seen
            String point = tmpfs.get(i).getMountPoint();
            if (path.startsWith(point + "/")) {
                return staged(i).resolve(path.substring(point.length() + 1));
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

    /**
     * Puts the saved contents of the container's tmpfs mounts into directories of the state
     * directory, where the image's check finds the files by {@link #hostView} before the
     * container exists. {@link #dropStaged} removes them once it runs.
     */
    void stageTmpfs() {
        for (int i = 0; i < tmpfs.size(); i++) {
            try {
                Files.createDirectories(staged(i));
            } catch (IOException e) {
                throw new CryoException("cannot create " + staged(i) + ": " + e.getMessage(), e);
            }
            RootfsLayers.restore(tmpfs.get(i).getContents(), staged(i));
        }
    }

    void dropStaged() {
        StateStore.deleteTree(merged.resolveSibling("tmpfs-staged"));
    }

    private Path staged(int i) {
        return merged.resolveSibling("tmpfs-staged").resolve(Integer.toString(i));
    }

    void apply(RemoteSyscalls sys) {
        if ((namespaces & Namespaces.NEWNS) != 0) {
            Mounts.makePrivate(sys);
            boolean proc = (namespaces & Namespaces.NEWPID) != 0;
            if (rootfs != null) {
                Mounts.overlayRoot(sys, rootfs, upper, work, merged, proc);
            } else if (proc) {
                Mounts.mountProc(sys, "/proc");
            }
            for (TmpfsMount t : tmpfs) {
                Mounts.mountTmpfs(sys, t.getMountPoint(), t.getFlags(), t.getData());
                // filled from Cryo's side through the task's view of its own mounts
                RootfsLayers.restore(t.getContents(), Path.of("/proc/" + sys.task().pid() + "/root" + t.getMountPoint()));
                if ((t.getFlags() & 1 /* MS_RDONLY */) != 0) {
                    Mounts.remountReadOnly(sys, t.getMountPoint(), t.getFlags());
                }
            }
        }
        if ((namespaces & Namespaces.NEWUTS) != 0 && uts != null) {
            Uts.apply(sys, uts);
        }
        if ((namespaces & Namespaces.NEWNET) != 0) {
            Network.loopbackUp(sys);
        }
    }
}
