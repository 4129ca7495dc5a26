package dev.cryo.container;

import com.google.protobuf.ByteString;
import dev.cryo.CryoException;
import dev.cryo.image.proto.LayerEntry;
import dev.cryo.image.proto.RootfsLayer;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * The upper layer of a container's overlay root, saved with a checkpoint and put back as the
 * upper layer of the restored container: what it changed in its file system is rolled back to
 * the checkpoint, and each restored copy changes its own. Overlay marks a deleted lower file with
 * a 0:0 character device (a whiteout) and a directory that hides the lower one with the
 * trusted.overlay.opaque attribute; both are kept.
 */
final class RootfsLayers {
    private static final String OPAQUE = "trusted.overlay.opaque";
    private static final int S_IFCHR = 0020000;

    private RootfsLayers() {
    }

    /**
     * The files under {@code upper}, staying on its file system: a mount under it (a tmpfs of the
     * container holding a mount point) is kept as an empty directory or file, since whatever is
     * mounted there is saved, or made again, on its own.
     */
    static RootfsLayer save(Path upper) {
        RootfsLayer.Builder layer = RootfsLayer.newBuilder();
        try {
            Object device = Files.getAttribute(upper, "unix:dev");
            Files.walkFileTree(upper, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attrs) throws IOException {
                    if (dir.equals(upper)) {
                        return FileVisitResult.CONTINUE;
                    }
                    boolean mountPoint = !device.equals(Files.getAttribute(dir, "unix:dev"));
                    layer.addEntries(entry(upper, dir, mountPoint));
                    return mountPoint ? FileVisitResult.SKIP_SUBTREE : FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                    boolean mountPoint = !attrs.isSymbolicLink()
                            && !device.equals(Files.getAttribute(file, "unix:dev", LinkOption.NOFOLLOW_LINKS));
                    layer.addEntries(entry(upper, file, mountPoint));
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException e) {
            throw new CryoException("cannot save the container's file system changes in " + upper + ": " + e.getMessage(), e);
        }
        return layer.build();
    }

    private static LayerEntry entry(Path upper, Path p, boolean mountPoint) throws IOException {
        PosixFileAttributes a = Files.readAttributes(p, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        LayerEntry.Builder e = LayerEntry.newBuilder().setPath(upper.relativize(p).toString())
                .setMode(mode(a.permissions())).setMtimeNs(a.lastModifiedTime().to(TimeUnit.NANOSECONDS));
        if (a.isSymbolicLink()) {
            return e.setKind(LayerEntry.Kind.SYMLINK).setTarget(Files.readSymbolicLink(p).toString()).build();
        }
        if (a.isDirectory()) {
            byte[] opaque = mountPoint ? null : Sys.lgetxattr(p.toString(), OPAQUE);
            return e.setKind(LayerEntry.Kind.DIRECTORY).setOpaque(opaque != null && opaque.length > 0 && opaque[0] == 'y').build();
        }
        if (mountPoint) {
            return e.setKind(LayerEntry.Kind.FILE).build();
        }
        if (a.isRegularFile()) {
            return e.setKind(LayerEntry.Kind.FILE).setData(ByteString.copyFrom(Files.readAllBytes(p))).build();
        }
        if (a.isOther() && a.size() == 0) {
            return e.setKind(LayerEntry.Kind.WHITEOUT).build(); // the only device overlay leaves in an upper layer
        }
        throw new CryoException("the container's file system changes hold " + p + ", neither file, directory, link nor"
                + " whiteout; it cannot be saved");
    }

    /** Recreates the saved layer in the empty directory {@code upper}. */
    static void restore(RootfsLayer layer, Path upper) {
        try {
            for (LayerEntry e : layer.getEntriesList()) {
                Path p = upper.resolve(e.getPath()).normalize();
                if (!p.startsWith(upper)) {
                    throw new CryoException("the image's file system layer names " + e.getPath() + ", outside the layer");
                }
                switch (e.getKind()) {
                    case DIRECTORY -> {
                        Files.createDirectories(p);
                        if (e.getOpaque()) {
                            Sys.lsetxattr(p.toString(), OPAQUE, new byte[] {'y'});
                        }
                    }
                    case FILE -> Files.write(p, e.getData().toByteArray());
                    case SYMLINK -> Files.createSymbolicLink(p, Path.of(e.getTarget()));
                    case WHITEOUT -> Sys.mknod(p.toString(), S_IFCHR, 0);
                    default -> throw new CryoException("unknown kind of entry " + e.getKind() + " in the image's file system layer");
                }
                if (e.getKind() != LayerEntry.Kind.SYMLINK && e.getKind() != LayerEntry.Kind.WHITEOUT) {
                    Files.setPosixFilePermissions(p, permissions(e.getMode()));
                }
            }
            // times last, children first: creating an entry changes its directory's mtime
            for (LayerEntry e : layer.getEntriesList().reversed()) {
                if (e.getKind() != LayerEntry.Kind.SYMLINK && e.getKind() != LayerEntry.Kind.WHITEOUT) {
                    Files.setLastModifiedTime(upper.resolve(e.getPath()), FileTime.from(e.getMtimeNs(), TimeUnit.NANOSECONDS));
                }
            }
        } catch (IOException e) {
            throw new CryoException("cannot put the container's file system changes back into " + upper + ": " + e.getMessage(), e);
        }
    }

    private static final List<PosixFilePermission> BITS = List.of(PosixFilePermission.OTHERS_EXECUTE,
            PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_READ, PosixFilePermission.GROUP_EXECUTE,
            PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ, PosixFilePermission.OWNER_EXECUTE,
            PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_READ);

    private static int mode(Set<PosixFilePermission> perms) {
        int m = 0;
        for (int i = 0; i < BITS.size(); i++) {
            if (perms.contains(BITS.get(i))) {
                m |= 1 << i;
            }
        }
        return m;
    }

    private static Set<PosixFilePermission> permissions(int mode) {
        Set<PosixFilePermission> out = EnumSet.noneOf(PosixFilePermission.class);
        for (int i = 0; i < BITS.size(); i++) {
            if ((mode & (1 << i)) != 0) {
                out.add(BITS.get(i));
            }
        }
        return out;
    }
}
