package dev.cryo.cli;

import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FileChecksum;
import dev.cryo.image.proto.FilesImage;
import dev.cryo.image.proto.Inventory;
import dev.cryo.image.proto.MmImage;
import dev.cryo.image.proto.PageRun;
import dev.cryo.image.proto.PagemapImage;
import dev.cryo.image.proto.SignalsImage;
import dev.cryo.image.proto.PstreeEntry;
import dev.cryo.image.proto.PstreeImage;
import dev.cryo.image.proto.TaskCore;
import dev.cryo.image.proto.ThreadCore;
import dev.cryo.image.proto.ThreadSignals;
import dev.cryo.image.proto.TimersImage;
import dev.cryo.image.proto.VmaEntry;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Describe an image: the process, its memory areas, fds, signal state and sizes.")
final class InspectCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "DIR", description = "Image directory.")
    Path dir;

    @Option(names = "--json", description = "Print all metadata as JSON instead.")
    boolean json;

    @Override
    public Integer call() throws Exception {
        ImageReader image = ImageReader.open(dir, false);
        Inventory inv = image.inventory();
        PstreeImage tree = image.read(ImageKind.PSTREE, 0, PstreeImage.parser());
        Map<Integer, Map<String, Message>> processes = new LinkedHashMap<>();
        for (PstreeEntry p : tree.getProcessesList()) {
            if (!p.getZombie()) {
                processes.put(p.getPid(), load(image, p.getPid(), inv.getPreDump()));
            }
        }
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            printJson(out, inv, tree, processes);
            return 0;
        }
        out.printf("Image %s (format %d, Cryo %s), taken %s on %s, kernel %s, xsave features 0x%x%n", dir,
                inv.getFormatVersion(), inv.getToolVersion(), Instant.ofEpochMilli(inv.getCreatedUnixMs()),
                inv.getHostname(), inv.getKernelRelease(), inv.getXfeatures());
        if (image.has(ImageKind.CONTAINER, 0)) {
            printContainer(out, image);
        }
        if (inv.getPreDump()) {
            String keeper = image.has(ImageKind.TRACKER, 0)
                    ? ", dirty tracking kept by process " + image.read(ImageKind.TRACKER, 0, dev.cryo.image.proto.TrackerImage.parser()).getKeeperPid()
                    : "";
            out.printf("Pre-dump: memory only, the parent of a later dump (not restorable by itself)%s%n", keeper);
        }
        if (!inv.getParentImage().isEmpty()) {
            long inParent = processes.values().stream().mapToLong(m -> ((MmImage) m.get("mm")).getPagesInParent()).sum();
            out.printf("Parent image: %s (id %s): %d pages (%s) are read from it (or from the copy made before the freeze)%n", dir.resolve(inv.getParentImage()).normalize(),
                    inv.getParentImageId(), inParent, Sizes.human(inParent * 4096));
        }
        out.printf("Process tree: %d process%s%n", tree.getProcessesCount(), tree.getProcessesCount() == 1 ? "" : "es");
        out.printf("  %7s %7s %7s %7s %7s %7s  %-16s %s%n", "PID", "INSIDE", "PPID", "PGID", "SID", "THREADS", "COMM", "STATE");
        for (PstreeEntry p : tree.getProcessesList()) {
            String comm = p.getZombie() || inv.getPreDump() ? "" : ((TaskCore) processes.get(p.getPid()).get("core")).getThreads(0).getComm();
            out.printf("  %7d %7s %7d %7d %7d %7d  %-16s %s%n", p.getPid(), p.getInOwnPidNs() ? Integer.toString(p.getNsPid()) : "-",
                    p.getPpid(), p.getPgid(), p.getSid(), p.getThreadsCount(), comm,
                    p.getZombie() ? "zombie, " + new dev.cryo.remote.WaitStatus(p.getExitStatus()) : "live");
        }
        for (Map.Entry<Integer, Map<String, Message>> e : processes.entrySet()) {
            out.println();
            if (inv.getPreDump()) {
                out.printf("Process %d%n", e.getKey());
                printMemory(out, (MmImage) e.getValue().get("mm"), (PagemapImage) e.getValue().get("pagemap"));
            } else {
                printProcess(out, e.getKey(), e.getValue());
            }
        }
        long total = 0;
        for (FileChecksum f : inv.getFilesList()) {
            total += f.getSize();
        }
        out.printf("%nImage size: %s in %d files%n", Sizes.human(total), inv.getFilesCount() + 1);
        return 0;
    }

    /** A container's image: its name, namespaces and what they held, its cgroup limits and saved file changes. */
    private static void printContainer(PrintWriter out, ImageReader image) {
        dev.cryo.image.proto.ContainerImage c = image.read(ImageKind.CONTAINER, 0, dev.cryo.image.proto.ContainerImage.parser());
        out.printf("Container %s: %s%n", c.getName(), String.join(" ", c.getCommandList()));
        out.printf("  namespaces %s%s%n", dev.cryo.ns.Namespaces.describe(c.getNamespaces()),
                c.hasUts() ? ", host name " + c.getUts().getHostname() + ", domain " + c.getUts().getDomainname() : "");
        if (c.hasUser()) {
            out.printf("  user namespace: uid map %s, gid map %s%s%n", c.getUser().getUidMap().replace('\n', ';'),
                    c.getUser().getGidMap().replace('\n', ';'), c.getUser().getSetgroupsDenied() ? ", setgroups denied" : "");
        }
        if (c.hasIpc()) {
            out.printf("  IPC: %d SysV shm segment(s), %d semaphore set(s), %d message queue(s); %d POSIX message queue(s)%s%n",
                    c.getIpc().getShmCount(), c.getIpc().getSemCount(), c.getIpc().getMsgCount(), c.getIpc().getMqueuesCount(),
                    c.getIpc().getMqueuesList().stream().map(q -> " /" + q.getName() + " (" + q.getMessagesCount() + " msg)")
                            .collect(java.util.stream.Collectors.joining(",")));
        }
        if (c.hasNet()) {
            out.printf("  network: %s%n", dev.cryo.ns.NetworkState.describe(c.getNet()));
        }
        java.util.Map<String, String> sysctls = new java.util.TreeMap<>(c.getNet().getSysctlsMap());
        sysctls.putAll(c.getIpc().getSysctlsMap());
        if (!sysctls.isEmpty()) {
            out.printf("  sysctls of its namespaces (those not at a new namespace's value): %s%n",
                    dev.cryo.ns.NamespaceSysctls.describe(sysctls));
        }
        if (c.getVolumesCount() > 0) {
            out.printf("  volumes: %s%n", String.join(", ", c.getVolumesList().stream().map(v -> v.getHostPath() + " at "
                    + v.getContainerPath() + (v.getReadOnly() ? " (ro)" : "")).toList()));
        }
        if (c.getMountsCount() > 0) {
            out.printf("  mounts of its own: %s%n", String.join(", ", c.getMountsList().stream().map(InspectCommand::describe).toList()));
        }
        out.printf("  cgroup limits %s%n", c.getCgroup().getFilesMap().isEmpty() ? "none" : c.getCgroup().getFilesMap());
        if (!c.getRootfs().isEmpty()) {
            int entries = c.getUpperSaved() ? image.read(ImageKind.ROOTFS_UPPER, 0,
                    dev.cryo.image.proto.RootfsLayer.parser()).getEntriesCount() : 0;
            out.printf("  root: overlay of %s, %d changed entries saved%n", c.getRootfs(), entries);
        }
        out.println();
    }

    /** "/srv (bind of /data)", "/sys (sysfs, ro)", "/scratch (tmpfs, 3 entries)", "/dev (tmpfs, flags changed, ro)". */
    private static String describe(dev.cryo.image.proto.ContainerMount m) {
        String what = switch (m.getKind()) {
            case BIND -> "bind of " + m.getSource();
            case TMPFS -> "tmpfs, " + m.getContents().getEntriesCount() + " entries";
            case REMOUNT -> m.getFsType() + ", flags changed";
            default -> m.getFsType();
        };
        return m.getMountPoint() + " (" + what + ((m.getFlags() & dev.cryo.ns.Mounts.MS_RDONLY) != 0 ? ", ro" : "") + ")";
    }

    private static Map<String, Message> load(ImageReader image, int pid, boolean preDump) {
        Map<String, Message> m = new LinkedHashMap<>();
        if (preDump) { // memory only
            m.put("mm", image.read(ImageKind.MM, pid, MmImage.parser()));
            m.put("pagemap", image.read(ImageKind.PAGEMAP, pid, PagemapImage.parser()));
            return m;
        }
        m.put("core", image.read(ImageKind.CORE, pid, TaskCore.parser()));
        m.put("mm", image.read(ImageKind.MM, pid, MmImage.parser()));
        m.put("pagemap", image.read(ImageKind.PAGEMAP, pid, PagemapImage.parser()));
        m.put("files", image.read(ImageKind.FILES, pid, FilesImage.parser()));
        m.put("signals", image.read(ImageKind.SIGNALS, pid, SignalsImage.parser()));
        m.put("timers", image.read(ImageKind.TIMERS, pid, TimersImage.parser()));
        if (image.has(ImageKind.CGROUPS, pid)) {
            m.put("cgroups", image.read(ImageKind.CGROUPS, pid, dev.cryo.image.proto.CgroupsImage.parser()));
        }
        if (image.has(ImageKind.SEM_UNDO, pid)) {
            m.put("semundo", image.read(ImageKind.SEM_UNDO, pid, dev.cryo.image.proto.SemUndoImage.parser()));
        }
        return m;
    }

    private static void printJson(PrintWriter out, Inventory inv, PstreeImage tree,
                                  Map<Integer, Map<String, Message>> processes) throws Exception {
        JsonFormat.Printer printer = JsonFormat.printer().preservingProtoFieldNames();
        out.println("{");
        out.println("  \"inventory\": " + printer.print(inv).replace("\n", "\n  ") + ",");
        out.println("  \"pstree\": " + printer.print(tree).replace("\n", "\n  ") + ",");
        out.println("  \"processes\": [");
        int n = 0;
        for (Map.Entry<Integer, Map<String, Message>> p : processes.entrySet()) {
            out.println("    {");
            out.println("      \"pid\": " + p.getKey() + ",");
            int i = 0;
            for (Map.Entry<String, Message> e : p.getValue().entrySet()) {
                out.print("      \"" + e.getKey() + "\": " + printer.print(e.getValue()).replace("\n", "\n      "));
                out.println(++i < p.getValue().size() ? "," : "");
            }
            out.println(++n < processes.size() ? "    }," : "    }");
        }
        out.println("  ]");
        out.println("}");
    }

    private static void printProcess(PrintWriter out, int pid, Map<String, Message> all) {
        TaskCore core = (TaskCore) all.get("core");
        MmImage mm = (MmImage) all.get("mm");
        PagemapImage pm = (PagemapImage) all.get("pagemap");
        FilesImage files = (FilesImage) all.get("files");
        SignalsImage sig = (SignalsImage) all.get("signals");
        TimersImage timers = (TimersImage) all.get("timers");
        out.printf("Process %d (%s) %s%n  ppid %d, pgid %d, sid %d, uid %d, gid %d%n", pid,
                core.getThreads(0).getComm(), mm.getExe(), core.getPpid(), core.getPgid(), core.getSid(),
                core.getCreds().getUid(), core.getCreds().getGid());
        out.printf("Threads: %d%n", core.getThreadsCount());
        for (ThreadCore t : core.getThreadsList()) {
            long blocked = sig.getThreadsList().stream().filter(x -> x.getTid() == t.getTid()).findFirst()
                    .map(ThreadSignals::getBlocked).orElse(0L);
            out.printf("  %7d %-16s rip 0x%x blocked 0x%x%n", t.getTid(), t.getComm(), t.getRegs().getRip(), blocked);
        }
        if (all.get("cgroups") instanceof dev.cryo.image.proto.CgroupsImage cg) {
            var own = cg.getMembersList().stream().filter(m -> !m.getPath().equals("/")).toList();
            out.printf("Cgroups: %s%n", own.isEmpty() ? "the root of every hierarchy"
                    : dev.cryo.cgroup.CgroupMembership.describe(own) + (own.size() < cg.getMembersCount() ? ", the root of the other hierarchies" : ""));
        }
        printMemory(out, mm, pm);
        out.printf("Files: %d fds, cwd %s, root %s, umask %03o%n", files.getFdsCount(), files.getCwd(), files.getRoot(), files.getUmask());
        for (FdEntry f : files.getFdsList()) {
            String kind = f.hasDupOf() ? "dup of " + f.getDupOf()
                    : f.getSharedPid() != 0 ? "shared " + f.getSharedPid() + ":" + f.getSharedFd() : f.getKind().toString();
            String what = f.hasInet() ? dev.cryo.net.InetSockets.describe(f.getInet()) : f.getPath();
            out.printf("  %4d %-11s %s flags 0%o pos %d%s%s%n", f.getFd(), kind, what, f.getFlags(), f.getPos(),
                    f.getCloexec() ? " cloexec" : "", f.getLocksCount() > 0 ? " locks " + f.getLocksCount() : "");
        }
        int pending = sig.getSharedPendingCount() + sig.getThreadsList().stream().mapToInt(ThreadSignals::getPendingCount).sum();
        out.printf("Signals: %d handlers, %d pending (%d process-wide)%n", dev.cryo.signal.Signals.handled(sig), pending,
                sig.getSharedPendingCount());
        out.printf("Timers: %d interval timers, %d POSIX timers%n", timers.getItimersCount(), timers.getPosixTimersCount());
    }

    private static void printMemory(PrintWriter out, MmImage mm, PagemapImage pm) {
        out.printf("Memory: %d areas, %d pages saved (%s)%s%n", mm.getVmasCount(), mm.getTotalPages(),
                Sizes.human(mm.getTotalPages() * 4096),
                mm.getPagesInParent() > 0 ? ", " + mm.getPagesInParent() + " pages in the parent image or the early copy" : "");
        for (VmaEntry v : mm.getVmasList()) {
            long saved = 0;
            long inParent = 0;
            for (PageRun r : pm.getRunsList()) {
                long end = r.getVaddr() + r.getNrPages() * 4096L;
                long n = Math.max(0, Math.min(end, v.getEnd()) - Math.max(r.getVaddr(), v.getStart())) / 4096;
                if (r.getInParent() || r.getEarly()) {
                    inParent += n;
                } else {
                    saved += n;
                }
            }
            out.printf("  %012x-%012x %s %10s %-12s %6d pages saved%s%s%s  %s%n", v.getStart(), v.getEnd(), prot(v.getProt(), v.getFlags()),
                    Sizes.human(v.getEnd() - v.getStart()), v.getKind(), saved, inParent > 0 ? ", " + inParent + " in parent or early copy" : "",
                    v.getDirtyTracked() ? " [tracked]" : "", v.getAppUserfaultfd() ? " [application's userfaultfd]" : "", v.getPath());
        }
    }

    private static String prot(int prot, int flags) {
        return ((prot & 1) != 0 ? "r" : "-") + ((prot & 2) != 0 ? "w" : "-") + ((prot & 4) != 0 ? "x" : "-")
                + ((flags & 1) != 0 ? "s" : "p");
    }
}
