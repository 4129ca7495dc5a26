package dev.cryo.container;

import dev.cryo.core.Checkpoint;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Progress;
import dev.cryo.core.Refusal;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.CgroupLimits;
import dev.cryo.image.proto.ContainerImage;
import dev.cryo.image.proto.ContainerRecord;
import dev.cryo.image.proto.UtsNamespace;
import dev.cryo.ipc.IpcNamespaces;
import dev.cryo.ns.Mounts;
import dev.cryo.ns.Namespaces;
import dev.cryo.ns.Uts;
import dev.cryo.sys.Sys;

import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.logging.Logger;

/**
 * Checkpoints a whole container: its cgroup freezes every process at once while the tree is
 * seized, then the tree is saved as any other, its ids inside its pid namespace with it; from
 * inside its first process, what its namespaces hold (host and domain name), and from the host
 * its cgroup's limits and its overlay's upper layer (frozen, so consistent with the memory).
 */
public final class ContainerCheckpoint {
    private static final Logger LOG = Logger.getLogger("container");

    private ContainerCheckpoint() {
    }

    /**
     * A restore recreates the mounts `cryo run` made (overlay root, /dev, /proc), and a container
     * without a root of its own gets a copy of the host's: one the container added itself would
     * be missing after restore, so it is refused now, with its name.
     */
    private static void checkMounts(ContainerRecord r) {
        Set<String> known = new HashSet<>(List.of("/proc (proc)"));
        if (r.getRootfs().isEmpty()) {
            known.addAll(Mounts.table(Sys.getpid()));
        } else {
            known.addAll(List.of("/ (overlay)", "/dev (tmpfs)"));
        }
        List<String> extra = Mounts.table(r.getInitPid()).stream().filter(m -> !known.contains(m)).toList();
        if (!extra.isEmpty()) {
            throw new Refusal("container " + r.getName() + " has mounts of its own that restore cannot recreate yet: "
                    + String.join(", ", extra));
        }
    }

    public static Checkpoint.Result run(String name, Path dir, boolean leaveRunning, Progress progress) {
        ContainerRecord r = Containers.running(name);
        checkMounts(r);
        ContainerCgroup cgroup = new ContainerCgroup(Path.of(r.getCgroup()));
        long namespaces = Namespaces.ownOf(r.getInitPid(), Sys.getpid());
        Checkpoint.Container hook = new Checkpoint.Container() {
            @Override
            public Map<String, Object> options() {
                return (namespaces & Namespaces.NEWIPC) != 0 ? Map.of(Checkpoint.SYSV_SHM_IN_IMAGE, Boolean.TRUE)
                        : Map.of();
            }

            private boolean frozen;

            @Override
            public void freeze() {
                frozen = cgroup.freezeSeizable();
            }

            @Override
            public void thaw() {
                if (frozen) {
                    cgroup.thaw();
                }
            }

            @Override
            public void dumpNamespaces(DumpContext root) {
                ContainerImage.Builder image = ContainerImage.newBuilder().setName(name).addAllCommand(r.getCommandList())
                        .setNamespaces(namespaces).setCgroup(CgroupLimits.newBuilder().putAllFiles(cgroup.limits()))
                        .setRootfs(r.getRootfs());
                if ((namespaces & Namespaces.NEWUTS) != 0) {
                    Uts.Names uts = Uts.read(root.syscalls());
                    image.setUts(UtsNamespace.newBuilder().setHostname(uts.hostname()).setDomainname(uts.domainname()));
                }
                if ((namespaces & Namespaces.NEWIPC) != 0) {
                    image.setIpc(IpcNamespaces.save(root.syscalls()));
                }
                if (!r.getRootfs().isEmpty()) {
                    Path upper = RootSetup.of(namespaces, r.getRootfs(), StateStore.dir(name), null).upper();
                    root.image().write(ImageKind.ROOTFS_UPPER, 0, RootfsLayers.save(upper));
                    image.setUpperSaved(true);
                }
                root.image().write(ImageKind.CONTAINER, 0, image.build());
                LOG.info(() -> "container " + name + ": namespaces " + Namespaces.describe(namespaces)
                        + (image.hasUts() ? ", host name " + image.getUts().getHostname() : "") + ", cgroup limits "
                        + image.getCgroup().getFilesMap() + (image.getUpperSaved() ? ", overlay upper layer" : "") + " saved");
            }
        };
        return Checkpoint.run(new Checkpoint.Options(r.getInitPid(), dir, leaveRunning, false, false, progress, hook));
    }
}
