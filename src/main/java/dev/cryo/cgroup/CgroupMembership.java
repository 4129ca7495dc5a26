package dev.cryo.cgroup;

import dev.cryo.CryoException;
import dev.cryo.core.Checkpoint;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.core.TaskPart;
import dev.cryo.core.ThreadHandle;
import dev.cryo.image.ImageKind;
import dev.cryo.image.proto.CgroupMember;
import dev.cryo.image.proto.CgroupsImage;
import dev.cryo.proc.ProcFiles;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.logging.Logger;

/**
 * The cgroups a process of a plain tree is in, one per hierarchy (v2 and every v1 one), saved
 * from /proc/PID/cgroup and put back by writing the restored process's pid to cgroup.procs of
 * the same cgroup here. Without it a restored process stays in the cgroups of whoever ran
 * {@code cryo restore} (the stub is forked from Cryo), out of its service's limits and
 * accounting.
 * <p>
 * Put back first, before memory, so that the pages loaded into the process are charged to its
 * own memory cgroup (a v1 memcg does not move charges along with a task by default), and a
 * child forked from it starts where its parent is. Cgroups are never created: a saved one
 * missing here (another machine, a service since stopped) is named in a warning and the process
 * stays where it is, since an empty one made by Cryo would hold none of the owner's limits. A
 * frozen freezer cgroup is skipped with a warning (the restored process would freeze in it).
 * Writing cgroup.procs without the right (an unprivileged restore) leaves the process where it
 * is with a warning; any other refusal by the kernel fails the restore, so a process does not
 * silently escape a limit.
 * <p>
 * Only the leader's membership is saved: a process whose threads are in different cgroups
 * (possible in v1, and in a threaded v2 subtree) is refused, naming the thread and both paths.
 * A container's tree is left alone: the container code makes and joins its cgroup itself.
 * <p>
 * Paths are as Cryo reads them, relative to the root of Cryo's own cgroup namespace: Cryo is
 * expected to run in the initial one, so they are the host's full paths, on both sides. A
 * process with a cgroup namespace of its own is saved that way too, with a warning: its
 * namespace is not restored for a plain tree (it comes back in Cryo's), so it would then see
 * full paths in its own /proc/self/cgroup.
 */
public final class CgroupMembership implements TaskPart {
    private static final Logger LOG = Logger.getLogger("cgroup");
    /** Key in the restore's tree-wide map: this machine's hierarchies, read once per restore. */
    private static final String HIERARCHIES = "cgroup:hierarchies";

    @Override
    public String name() {
        return "cgroup";
    }

    @Override
    public void dump(DumpContext ctx) {
        if (ctx.shared().containsKey(Checkpoint.CONTAINER)) {
            return;
        }
        int pid = ctx.pid();
        String leader = ProcFiles.readString(pid, "cgroup");
        Map<String, String> saved = Hierarchies.membership(leader);
        for (ThreadHandle t : ctx.threads()) {
            if (t.tid() == pid) {
                continue;
            }
            Map<String, String> thread = Hierarchies.membership(ProcFiles.readString(pid, "task/" + t.tid() + "/cgroup"));
            for (Map.Entry<String, String> e : saved.entrySet()) {
                String theirs = thread.get(e.getKey());
                if (!e.getValue().equals(theirs)) {
                    String hierarchy = describe(e.getKey());
                    throw new Refusal("thread " + t.tid() + " of process " + pid + " is in " + hierarchy + " cgroup " + theirs
                            + " but the process in " + hierarchy + " cgroup " + e.getValue()
                            + "; Cryo saves one cgroup per process and hierarchy");
                }
            }
        }
        if (!ProcFiles.readLink(pid, "ns/cgroup").equals(ProcFiles.readLink(Sys.getpid(), "ns/cgroup"))) {
            LOG.warning(() -> "process " + pid + " has a cgroup namespace of its own, which is not restored for a plain tree:"
                    + " its cgroups are saved as the host names them, and it will see those full paths after the restore");
        }
        CgroupsImage.Builder image = CgroupsImage.newBuilder();
        saved.forEach((controllers, path) -> image.addMembers(CgroupMember.newBuilder().setControllers(controllers).setPath(path)));
        ctx.image().write(ImageKind.CGROUPS, pid, image.build());
        LOG.info(() -> "process " + pid + ": in " + describe(image.getMembersList()));
    }

    @Override
    public boolean beforeFork() {
        return true; // first of all: before its memory is loaded, and before its children are forked from it
    }

    @Override
    public void restore(RestoreContext ctx) {
        if (ctx.shared().containsKey(Checkpoint.CONTAINER) || !ctx.image().has(ImageKind.CGROUPS, ctx.pid())) {
            return; // a container's tree, or an image from before cgroups were saved
        }
        CgroupsImage saved = ctx.image().read(ImageKind.CGROUPS, ctx.pid(), CgroupsImage.parser());
        int host = ctx.task().pid();
        Map<String, String> now = Hierarchies.membership(ProcFiles.readString(host, "cgroup"));
        if (saved.getMembersList().stream().allMatch(m -> m.getPath().equals(now.get(m.getControllers())))) {
            LOG.fine(() -> "process " + ctx.pid() + ": already in every cgroup it was saved in");
            return; // the common case, a restore where the checkpoint was taken: no mountinfo to read
        }
        Hierarchies here = (Hierarchies) ctx.shared().computeIfAbsent(HIERARCHIES, k -> Hierarchies.here());
        List<CgroupMember> joined = new ArrayList<>();
        int alreadyIn = 0;
        for (CgroupMember m : saved.getMembersList()) {
            String where = describe(m.getControllers()) + ":" + m.getPath();
            if (m.getPath().equals(now.get(m.getControllers()))) {
                alreadyIn++;
                continue;
            }
            Path dir = here.directory(m.getControllers(), m.getPath());
            String stays = "; process " + ctx.pid() + " stays in " + describe(m.getControllers()) + ":"
                    + Objects.requireNonNullElse(now.get(m.getControllers()), "(none)");
            if (dir == null) {
                LOG.warning("cgroup " + where + ": this machine mounts no hierarchy that shows it" + stays);
            } else if (!Files.isDirectory(dir)) {
                LOG.warning("cgroup " + where + " (" + dir + ") does not exist here, and Cryo does not create it (its limits"
                        + " belong to whoever made it)" + stays);
            } else if (frozen(dir, m.getControllers())) {
                LOG.warning("cgroup " + where + " (" + dir + ") is frozen: joining it would freeze the restored process" + stays);
            } else if (join(dir, host, ctx.pid(), where, stays)) {
                joined.add(m);
            }
        }
        int already = alreadyIn;
        LOG.info(() -> "process " + ctx.pid() + (host != ctx.pid() ? " (pid " + host + ")" : "") + ": put back into " + (joined.isEmpty() ? "no cgroup" : describe(joined))
                + (already > 0 ? "; already in the saved cgroup of " + already + " hierarchies" : ""));
    }

    /**
     * Moves process {@code host} (every thread) into cgroup {@code dir}. Without the right to
     * (EACCES, EPERM: not the cgroup's owner) it stays where it is; any other refusal (a v1
     * memcg that cannot take its charges, a cpuset without CPUs, a v2 cgroup with controllers
     * for its children) fails the restore.
     */
    private static boolean join(Path dir, int host, int pid, String where, String stays) {
        Path procs = dir.resolve("cgroup.procs");
        try {
            Files.writeString(procs, Integer.toString(host), StandardOpenOption.WRITE);
            return true;
        } catch (AccessDeniedException e) {
            LOG.warning("cgroup " + where + ": no permission to write " + procs + stays);
            return false;
        } catch (IOException e) {
            String why = Objects.requireNonNullElse(e.getMessage(), e.toString());
            if (why.contains("Permission denied") || why.contains("Operation not permitted")) {
                LOG.warning("cgroup " + where + ": " + procs + ": " + why + stays);
                return false;
            }
            throw new CryoException("process " + pid + " cannot go back into cgroup " + where + ": writing " + host + " to "
                    + procs + ": " + why, e);
        }
    }

    /** Whether a freezer cgroup (v1 freezer.state, v2 cgroup.freeze) holds its tasks frozen, or is freezing them. */
    private static boolean frozen(Path dir, String controllers) {
        try {
            if (controllers.isEmpty()) {
                Path freeze = dir.resolve("cgroup.freeze"); // not in the root cgroup
                return Files.exists(freeze) && Files.readString(freeze).strip().equals("1");
            }
            if (List.of(controllers.split(",")).contains("freezer")) {
                Path state = dir.resolve("freezer.state"); // not in the root cgroup
                return Files.exists(state) && !Files.readString(state).strip().equals("THAWED");
            }
            return false;
        } catch (IOException e) {
            throw new CryoException("reading the freezer state of cgroup " + dir + ": " + e.getMessage(), e);
        }
    }

    /** "memory:/a, pids:/a, v2:/" */
    public static String describe(List<CgroupMember> members) {
        return String.join(", ", members.stream().map(m -> describe(m.getControllers()) + ":" + m.getPath()).toList());
    }

    private static String describe(String controllers) {
        return controllers.isEmpty() ? "v2" : controllers;
    }
}
