package dev.cryo.files;

import dev.cryo.core.Checkpoint;
import dev.cryo.core.DumpContext;
import dev.cryo.core.Refusal;
import dev.cryo.core.RestoreContext;
import dev.cryo.image.ImageException;
import dev.cryo.image.proto.FdEntry;
import dev.cryo.image.proto.FdKind;
import dev.cryo.proc.ProcFiles;

import java.util.Set;

/**
 * The terminal of a shell job (criu's --shell-job): a process started from a shell has a pty
 * (or tty) as stdin/out/err. It is saved only with --shell-job, and restore (also with
 * --shell-job) gives the process the terminal restore itself runs in, reopened with the saved
 * flags. A pty pair both of whose ends are in the tree is {@link dev.cryo.tty.Ptys}'s; it hands
 * the slaves whose master is outside the tree on to this handler.
 */
public final class Terminals implements FdHandler {
    @Override
    public Set<FdKind> kinds() {
        return Set.of(FdKind.TTY);
    }

    @Override
    public boolean handles(FdSource fd) {
        return isTerminal(fd.link());
    }

    static boolean isTerminal(String path) {
        return path.startsWith("/dev/pts/") && !path.equals("/dev/pts/ptmx") || path.equals("/dev/tty")
                || path.equals("/dev/console") || path.matches("/dev/tty(S)?[0-9]+");
    }

    @Override
    public void dump(FdSource fd, FdEntry.Builder e, DumpContext ctx) {
        if (!ctx.shared().containsKey(Checkpoint.SHELL_JOB)) {
            throw new Refusal(fd.where() + ": a terminal; if the process is a job of the shell it runs in, checkpoint"
                    + " with --shell-job and restore with --shell-job to give it the restoring terminal");
        }
        e.setKind(FdKind.TTY).setPath(fd.link());
    }

    @Override
    public void verify(FdEntry e, int pid, java.util.Map<String, Object> options) {
        if (!options.containsKey(Checkpoint.SHELL_JOB)) {
            throw new ImageException("fd " + e.getFd() + " of process " + pid + " was the terminal " + e.getPath()
                    + "; restore with --shell-job to give it this terminal");
        }
        ownTerminal();
    }

    @Override
    public int open(FdEntry e, RestoreContext ctx) {
        if (!ctx.shared().containsKey(Checkpoint.SHELL_JOB)) {
            throw new ImageException("fd " + e.getFd() + " of process " + ctx.pid() + " was the terminal " + e.getPath()
                    + "; restore with --shell-job to give it this terminal");
        }
        String mine = ownTerminal();
        return ctx.syscalls().open(mine, (e.getFlags() & ~(0100 | 0200 | 01000)) | 0400 /* O_NOCTTY */ | FdSource.O_CLOEXEC, 0);
    }

    /** The terminal Cryo runs in: the first of its stdin, stdout, stderr that is one. */
    private static String ownTerminal() {
        int self = (int) ProcessHandle.current().pid();
        for (int fd = 0; fd < 3; fd++) {
            String link = ProcFiles.readLink(self, "fd/" + fd);
            if (link != null && isTerminal(link)) {
                return link;
            }
        }
        throw new ImageException("restore --shell-job needs a terminal, but none of cryo's stdin, stdout, stderr is one");
    }
}
