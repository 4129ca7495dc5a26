package dev.cryo.cli;

import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The training run for the JVM's ahead-of-time cache (bin/build): one JVM that checks,
 * checkpoints, inspects and restores a throwaway process, so the cache holds every class a real
 * command loads and a short-lived `cryo` starts in a fraction of the time.
 * Usage: Training PROGRAM WORKDIR. PROGRAM must run without arguments until killed.
 */
public final class Training {
    private Training() {
    }

    public static void main(String[] args) throws Exception {
        Path work = Path.of(args[1]);
        Files.createDirectories(work);
        int pid = Sys.posixSpawn(args[0], new String[] {args[0]}, new String[0]);
        try {
            Thread.sleep(100);
            cryo("check");
            cryo("checkpoint", "-R", Integer.toString(pid), "-D", work.resolve("a").toString(), "-v4", "-o", work.resolve("log").toString());
            cryo("inspect", work.resolve("a").toString());
            cryo("inspect", "--json", work.resolve("a").toString());
            // incremental: the classes of pre-dump, dirty tracking and a checkpoint on top
            cryo("pre-dump", Integer.toString(pid), "-D", work.resolve("p1").toString());
            cryo("pre-dump", Integer.toString(pid), "-D", work.resolve("p2").toString(), "--parent", work.resolve("p1").toString());
            cryo("checkpoint", "-R", Integer.toString(pid), "-D", work.resolve("c").toString(), "--parent", work.resolve("p2").toString());
            cryo("inspect", work.resolve("c").toString());
            cryo("checkpoint", Integer.toString(pid), "-D", work.resolve("b").toString());
            cryo("restore", "-D", work.resolve("b").toString(), "-d");
        } finally {
            Sys.raw(Nr.KILL, pid, 9);
            Sys.raw(Nr.WAIT4, pid, 0, 0, 0);
        }
    }

    private static void cryo(String... args) {
        StringWriter sink = new StringWriter();
        int code = Main.commandLine(new PrintWriter(sink), new PrintWriter(sink), args).execute(args);
        if (code != 0) {
            throw new IllegalStateException("training step " + String.join(" ", args) + " failed: " + sink);
        }
    }
}
