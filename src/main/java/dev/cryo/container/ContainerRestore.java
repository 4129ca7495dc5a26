package dev.cryo.container;

import dev.cryo.CryoException;
import dev.cryo.core.Checkpoint;
import dev.cryo.core.HostPaths;
import dev.cryo.core.Restore;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.ContainerImage;
import dev.cryo.image.proto.ContainerRecord;
import dev.cryo.image.proto.NetInterface;
import dev.cryo.image.proto.RootfsLayer;
import dev.cryo.ipc.IpcNamespaces;
import dev.cryo.ns.NamespaceSysctls;
import dev.cryo.ns.Namespaces;
import dev.cryo.ns.NetworkState;
import dev.cryo.ns.UserNamespace;
import dev.cryo.ns.Uts;
import dev.cryo.ns.Veth;
import dev.cryo.proc.ProcFiles;
import dev.cryo.remote.RemoteSyscalls;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.logging.Logger;

/**
 * Restores a checkpointed container, under its own name or another: a new cgroup with the saved
 * limits, the saved upper layer as its overlay's, new namespaces set up in the new first process
 * (mounts, /proc, host name; its network, see {@link NetworkState}), then the tree with the pids it had inside. Nothing is shared with
 * the original, which may still run: restoring under another name clones the container.
 */
public final class ContainerRestore {
    private static final Logger LOG = Logger.getLogger("container");

    private ContainerRestore() {
    }

    /** Whether {@code dir} holds the checkpoint of a container rather than of a plain process tree. */
    public static boolean isContainerImage(Path dir) {
        return Files.exists(dir.resolve(ImageKind.CONTAINER.fileName(0)));
    }

    /** A restored container: its name and the host pid of its first process (a child of Cryo's). */
    public record Restored(String name, Restore.Restored tree) {
        /** Waits for the container's first process to exit, removes the container, and gives the exit code as a shell would. */
        public int waitForExit() {
            return Containers.waitInForeground(name, tree.pid());
        }
    }

    /** The address/prefix the uplink's inside end had (the first IPv4 one), for the record. */
    private static String vethAddress(ContainerImage saved) {
        return saved.getNet().getInterfacesList().stream().filter(i -> i.getKind() == NetInterface.Kind.VETH)
                .flatMap(i -> i.getAddressesList().stream()).filter(a -> !a.getAddress().contains(":"))
                .map(a -> a.getAddress() + "/" + a.getPrefixLen()).findFirst().orElse("");
    }

    /** A user other than root makes namespaces only inside a user namespace of its own, and no veth. */
    private static void checkMayRestore(ContainerImage saved) {
        int euid = Sys.geteuid();
        if (euid == 0) {
            return;
        }
        if ((saved.getNamespaces() & Namespaces.NEWUSER) == 0) {
            throw new CryoException("container " + saved.getName() + " had no user namespace of its own (run without --user):"
                    + " only root can restore it");
        }
        if (saved.getNet().getInterfacesList().stream().anyMatch(i -> i.getKind() == NetInterface.Kind.VETH)) {
            throw new CryoException("container " + saved.getName() + " had a veth uplink, which only root can make");
        }
    }

    public static Restored run(Path dir, String newName) {
        ContainerImage saved = ImageReader.open(dir, false).read(ImageKind.CONTAINER, 0, ContainerImage.parser());
        if ((saved.getNamespaces() & Namespaces.NEWPID) == 0) {
            throw new CryoException("the image's container had no pid namespace of its own; it cannot be restored as a container");
        }
        checkMayRestore(saved);
        String name = newName != null ? newName : saved.getName();
        Volumes.check(saved.getVolumesList()); // the user's data, not in the image: refused before anything is made
        Containers.claimName(name);
        Path state = StateStore.dir(name);
        Uts.Names uts = saved.hasUts() ? new Uts.Names(saved.getUts().getHostname(), saved.getUts().getDomainname()) : null;
        RootSetup setup = RootSetup.of(saved.getNamespaces(), saved.getRootfs().isEmpty() ? null : saved.getRootfs(), state, uts,
                saved.getVolumesList(), saved.getMountsList());
        ContainerCgroup cgroup = null;
        String[] vethHost = {""}; // set once the new network namespace has its uplink
        List<String> baseMounts = new ArrayList<>();
        Restore.Restored tree;
        try {
            Files.createDirectories(state);
            setup.prepareDirectories();
            setup.stageTmpfs();
            if (saved.getUpperSaved()) {
                RootfsLayers.restore(ImageReader.open(dir, false).read(ImageKind.ROOTFS_UPPER, 0, RootfsLayer.parser()), setup.upper());
            }
            cgroup = ContainerCgroup.create(name, saved.getCgroup().getFilesMap().keySet());
            if (cgroup != null) {
                cgroup.applyLimits(saved.getCgroup().getFilesMap(), false);
            } else if (saved.getCgroup().getFilesCount() > 0) {
                LOG.warning(() -> "container " + name + " runs without a cgroup, so without its saved limits "
                        + saved.getCgroup().getFilesMap() + " (only root can create one)");
            }
            ContainerCgroup joined = cgroup;
            tree = Restore.run(new Restore.Options(dir, false, new Restore.Container() {
                @Override
                public long namespaces() {
                    return saved.getNamespaces();
                }

                @Override
                public void namespacesCreated(int holder) {
                    if ((saved.getNamespaces() & Namespaces.NEWUSER) != 0) {
                        // images made before the maps were saved were root's: every id to itself
                        UserNamespace.write(holder, saved.hasUser() ? saved.getUser() : UserNamespace.forCaller());
                    }
                    if (saved.hasNet()) { // before any process, so its sockets find their addresses
                        vethHost[0] = NetworkState.restore(holder, name, saved.getNet(), StateStore.root());
                        NamespaceSysctls.restoreNet(holder, name, saved.getNet().getSysctlsMap()); // conf/eth0 needs eth0
                    }
                    if (saved.hasIpc()) { // before the IPC objects, which the limits (msgmnb, shmmni ...) may concern
                        NamespaceSysctls.restoreIpc(holder, name, saved.getIpc().getSysctlsMap());
                    }
                }

                @Override
                public Map<String, Object> options() {
                    Function<String, Path> view = setup::hostView;
                    return saved.hasIpc() ? Map.of(HostPaths.KEY, view, Checkpoint.SYSV_SHM_IN_IMAGE, Boolean.TRUE)
                            : Map.of(HostPaths.KEY, view);
                }

                @Override
                public void setUpRoot(RemoteSyscalls root) {
                    if (joined != null) {
                        joined.join(root.task().pid());
                    }
                    baseMounts.addAll(setup.apply(root));
                    if (saved.hasIpc()) {
                        IpcNamespaces.restore(root, saved.getIpc());
                    }
                }

                @Override
                public void beforeWakeUp(RemoteSyscalls root) {
                    if (saved.hasIpc()) {
                        IpcNamespaces.afterTreeRestore(root, saved.getIpc());
                    }
                    Veth.setUp(vethHost[0], true); // the network lock lifted: the connections are back
                }
            }));
        } catch (IOException | RuntimeException e) {
            throw Containers.undoPrepare(name, cgroup, vethHost[0], e);
        }
        setup.dropStaged();
        StateStore.write(ContainerRecord.newBuilder().setName(name).setInitPid(tree.pid())
                .setInitStartTime(ProcFiles.statField(ProcFiles.statFields(tree.pid()), 22))
                .setCgroup(cgroup == null ? "" : cgroup.dir().toString()).addAllV1Cgroups(cgroup == null ? List.of() : cgroup.v1Dirs())
                .addAllCommand(saved.getCommandList()).setRootfs(saved.getRootfs())
                .setHostname(uts == null ? "" : uts.hostname()).setNamespaces(saved.getNamespaces())
                .setCreatedUnixMs(System.currentTimeMillis()).setRestoredFrom(dir.toAbsolutePath().toString())
                .setVethHost(vethHost[0]).setVethHostAddress(vethHost[0].isEmpty() ? "" : saved.getNet().getHostAddress())
                .setVethAddress(vethAddress(saved)).addAllVolumes(saved.getVolumesList()).addAllBaseMounts(baseMounts).build());
        return new Restored(name, tree);
    }
}
