package dev.cryo.container;

import dev.cryo.CryoException;
import dev.cryo.core.Checkpoint;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Progress;
import dev.cryo.core.Refusal;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.CgroupLimits;
import dev.cryo.image.proto.ContainerImage;
import dev.cryo.image.proto.ContainerRecord;
import dev.cryo.image.proto.ContainerMount;
import dev.cryo.image.proto.NetNamespace;
import dev.cryo.image.proto.UtsNamespace;
import dev.cryo.ipc.IpcNamespaces;
import dev.cryo.ns.Mounts;
import dev.cryo.ns.NamespaceSysctls;
import dev.cryo.ns.Namespaces;
import dev.cryo.ns.NetworkState;
import dev.cryo.ns.UserNamespace;
import dev.cryo.ns.Uts;
import dev.cryo.ns.Veth;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.Clone3;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.nio.file.Files;
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
 * its cgroup's limits, its overlay's upper layer and its own mounts' files (frozen, so consistent
 * with the memory), and where its volumes and own mounts were ({@link ContainerMounts}).
 */
public final class ContainerCheckpoint {
    private static final Logger LOG = Logger.getLogger("container");

    private ContainerCheckpoint() {
    }

    /**
     * Without a cgroup, the container's own /proc (seen through its pid 1's root) lists every
     * process of its pid namespace: one that is not among pid 1's descendants joined it from
     * outside (setns) and would be lost.
     */
    private static void refuseJoinedFromOutside(ContainerRecord r, List<Integer> pids) {
        Set<Integer> tree = new HashSet<>();
        pids.forEach(p -> tree.add(Clone3.innermostId(p)));
        List<Integer> outside;
        try (java.util.stream.Stream<Path> procs = Files.list(ProcFiles.inRootOf(r.getInitPid(), "/proc"))) {
            outside = procs.map(p -> p.getFileName().toString()).filter(n -> n.matches("\\d+")).map(Integer::valueOf)
                    .filter(p -> !tree.contains(p)).sorted().toList();
        } catch (IOException e) {
            throw new CryoException("cannot list the processes of container " + r.getName() + ": " + e.getMessage(), e);
        }
        if (!outside.isEmpty()) {
            throw new Refusal("container " + r.getName() + " has processes that joined it from outside (not descendants of its"
                    + " pid 1), with pids " + outside + " inside; they would be lost");
        }
    }

    /**
     * @param tcpEstablished also save TCP connections whose peer is outside the container
     *                       (across its veth); those wholly inside need no flag
     */
    public static Checkpoint.Result run(String name, Path dir, boolean leaveRunning, boolean tcpEstablished, Progress progress) {
        ContainerRecord r = Containers.running(name);
        List<Mounts.Mount> table = Mounts.of(r.getInitPid());
        List<ContainerMount> ownMounts = ContainerMounts.own(r, table); // refused now, before anything is frozen
        ContainerCgroup cgroup = ContainerCgroup.of(r); // null: held through ptrace alone
        long namespaces = Namespaces.ownOf(r.getInitPid(), Sys.getpid());
        NamespaceSysctls.Defaults newNamespaces = NamespaceSysctls.Defaults.measure(namespaces); // outside the frozen window
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
                frozen = cgroup != null && cgroup.freezeSeizable();
            }

            @Override
            public void thaw() {
                if (frozen) {
                    cgroup.thaw();
                }
            }

            @Override
            public void treeSeized(List<Integer> pids) {
                if (cgroup == null) {
                    refuseJoinedFromOutside(r, pids);
                    return;
                }
                List<Integer> outside = cgroup.procs().stream().filter(p -> !pids.contains(p)).toList();
                if (!outside.isEmpty()) {
                    throw new Refusal("container " + name + " has processes in its cgroup that are not descendants of its pid 1 "
                            + "(put there from outside?): " + outside + "; they would be lost");
                }
            }

            @Override
            public void dumpNamespaces(DumpContext root) {
                ContainerImage.Builder image = ContainerImage.newBuilder().setName(name).addAllCommand(r.getCommandList())
                        .setNamespaces(namespaces).setCgroup(CgroupLimits.newBuilder().putAllFiles(cgroup == null ? Map.of() : cgroup.limits()))
                        .setRootfs(r.getRootfs());
                if ((namespaces & Namespaces.NEWUSER) != 0) {
                    image.setUser(UserNamespace.of(r.getInitPid()));
                }
                if ((namespaces & Namespaces.NEWUTS) != 0) {
                    Uts.Names uts = Uts.read(root.syscalls());
                    image.setUts(UtsNamespace.newBuilder().setHostname(uts.hostname()).setDomainname(uts.domainname()));
                }
                if ((namespaces & Namespaces.NEWIPC) != 0) {
                    image.setIpc(IpcNamespaces.save(root.syscalls()).toBuilder()
                            .putAllSysctls(NamespaceSysctls.saveIpc(r.getInitPid(), name, newNamespaces)));
                }
                if ((namespaces & Namespaces.NEWNET) != 0) { // read while frozen, before the sockets
                    NetNamespace net = NetworkState.save(r.getInitPid(), name, r.getVethHostAddress());
                    Set<String> interfaces = new HashSet<>();
                    net.getInterfacesList().forEach(i -> interfaces.add(i.getName()));
                    image.setNet(net.toBuilder().putAllSysctls(NamespaceSysctls.saveNet(r.getInitPid(), name, interfaces, newNamespaces)));
                }
                ownMounts.forEach(m -> image.addMounts(ContainerMounts.withContents(r.getInitPid(), m)));
                image.addAllVolumes(r.getVolumesList());
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
