package dev.cryo.container;

import dev.cryo.core.Checkpoint;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Progress;
import dev.cryo.core.Refusal;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.CgroupLimits;
import dev.cryo.image.proto.ContainerImage;
import dev.cryo.image.proto.ContainerRecord;
import dev.cryo.image.proto.TmpfsMount;
import dev.cryo.image.proto.UtsNamespace;
import dev.cryo.ipc.IpcNamespaces;
import dev.cryo.ns.Mounts;
import dev.cryo.ns.Namespaces;
import dev.cryo.ns.NetworkState;
import dev.cryo.ns.Uts;
import dev.cryo.ns.Veth;
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
     * The mounts the container made itself, which a restore must make again: the ones `cryo run`
     * made (overlay root, /dev, /proc) are made anyway, and a container without a root of its own
     * gets a copy of the host's. Only tmpfs mounts can be (with their contents); any other is
     * refused now, with its name.
     */
    private static List<Mounts.Mount> ownMounts(ContainerRecord r) {
        Set<String> known = new HashSet<>(List.of("/proc (proc)"));
        if (r.getRootfs().isEmpty()) {
            known.addAll(Mounts.table(Sys.getpid()));
        } else {
            known.addAll(List.of("/ (overlay)", "/dev (tmpfs)"));
        }
        List<Mounts.Mount> own = Mounts.of(r.getInitPid()).stream().filter(m -> !known.contains(m.describe())).toList();
        List<String> refused = own.stream().filter(m -> !m.type().equals("tmpfs")).map(Mounts.Mount::describe).toList();
        if (!refused.isEmpty()) {
            throw new Refusal("container " + r.getName() + " has mounts of its own that restore cannot recreate yet: "
                    + String.join(", ", refused));
        }
        return own;
    }

    /** A tmpfs mount of the container with its contents, read through its pid 1's view of its file system. */
    private static TmpfsMount tmpfs(int init, Mounts.Mount m) {
        return TmpfsMount.newBuilder().setMountPoint(m.point()).setFlags(m.flags()).setData(m.tmpfsData())
                .setContents(RootfsLayers.save(Path.of("/proc/" + init + "/root" + m.point()))).build();
    }

    /**
     * @param tcpEstablished also save TCP connections whose peer is outside the container
     *                       (across its veth); those wholly inside need no flag
     */
    public static Checkpoint.Result run(String name, Path dir, boolean leaveRunning, boolean tcpEstablished, Progress progress) {
        ContainerRecord r = Containers.running(name);
        List<Mounts.Mount> ownMounts = ownMounts(r);
        ContainerCgroup cgroup = ContainerCgroup.of(r);
        long namespaces = Namespaces.ownOf(r.getInitPid(), Sys.getpid());
        Checkpoint.Container hook = new Checkpoint.Container() {
            @Override
            public Map<String, Object> options() {
                return (namespaces & Namespaces.NEWIPC) != 0
                        ? Map.of(Checkpoint.SYSV_SHM_IN_IMAGE, Boolean.TRUE, Checkpoint.IPC_NAMESPACE_IN_IMAGE, Boolean.TRUE)
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
            public void treeSeized(List<Integer> pids) {
                List<Integer> outside = cgroup.procs().stream().filter(p -> !pids.contains(p)).toList();
                if (!outside.isEmpty()) {
                    throw new Refusal("container " + name + " has processes in its cgroup that are not descendants of its pid 1 "
                            + "(put there from outside?): " + outside + "; they would be lost");
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
                if ((namespaces & Namespaces.NEWNET) != 0) { // read while frozen, before the sockets
                    image.setNet(NetworkState.save(r.getInitPid(), name, r.getVethHostAddress()));
                }
                ownMounts.forEach(m -> image.addTmpfs(tmpfs(r.getInitPid(), m)));
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
        // The network lock of a container: its uplink's host end is down from before the freeze
        // until the end, so no packet of a peer outside reaches a connection being saved, nor
        // (once the tree is killed) meets a closed port and answers with a reset.
        Veth.setUp(r.getVethHost(), false);
        Checkpoint.Result result;
        try {
            result = Checkpoint.run(new Checkpoint.Options(r.getInitPid(), dir, leaveRunning, false, false, tcpEstablished,
                    false, progress, null, hook));
        } catch (RuntimeException e) {
            try {
                Veth.setUp(r.getVethHost(), true);
            } catch (RuntimeException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw e;
        }
        if (leaveRunning) {
            Veth.setUp(r.getVethHost(), true);
        } else {
            Veth.remove(r.getVethHost()); // at once: the killed namespace would take it along only later
        }
        return result;
    }
}
