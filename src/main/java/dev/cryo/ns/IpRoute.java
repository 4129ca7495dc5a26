package dev.cryo.ns;

import com.google.gson.JsonArray;
import com.google.gson.JsonParser;
import dev.cryo.CryoException;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.logging.Logger;

/**
 * iproute2's ip(8), run as a short-lived helper in Cryo's network namespace or, through
 * nsenter(1) --net, in the one of a process (a container's). ip speaks rtnetlink for every
 * kind of link, address and route and prints them as JSON (-json), so Cryo reads and writes a
 * namespace's network with it rather than with rtnetlink messages of its own: the same reason
 * the network lock drives nft(8). The JDK's reaper waits for that one child by its pid, so it
 * cannot take the ptrace stops of Cryo's tracees.
 */
public final class IpRoute {
    private static final Logger LOG = Logger.getLogger("ns");
    private static final String NSENTER = "/usr/bin/nsenter";

    /** Which network namespace a command runs in: Cryo's own ({@code pid} 0) or process {@code pid}'s. */
    public record Where(int pid) {
        public static final Where HOST = new Where(0);

        /**
         * Joining a network namespace needs CAP_SYS_ADMIN both over it and in the joiner's own
         * user namespace: a user other than root first joins the container's user namespace
         * (which it made, so it may), keeping its ids (mapped to root there).
         */
        List<String> prefix() {
            if (pid == 0) {
                return List.of(ip());
            }
            String ns = "/proc/" + pid + "/ns/";
            return Sys.geteuid() == 0 ? List.of(NSENTER, "--net=" + ns + "net", ip())
                    : List.of(NSENTER, "--user=" + ns + "user", "--preserve-credentials", "--net=" + ns + "net", ip());
        }

        @Override
        public String toString() {
            return pid == 0 ? "the host's network namespace" : "the network namespace of process " + pid;
        }
    }

    private IpRoute() {
    }

    private static String ip() {
        for (String p : new String[] {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
            if (Files.isExecutable(Path.of(p))) {
                return p;
            }
        }
        throw new CryoException("ip(8) not found: a container's network needs iproute2 (apt-get install iproute2)");
    }

    /** ip's JSON answer to {@code args} (e.g. "-details", "addr", "show"). */
    public static JsonArray json(Where where, String... args) {
        List<String> cmd = new ArrayList<>(List.of("-json"));
        cmd.addAll(List.of(args));
        String out = run(where, cmd, null);
        return out.isBlank() ? new JsonArray() : JsonParser.parseString(out).getAsJsonArray();
    }

    /** One ip command, e.g. "link", "del", "cryo-x". */
    public static void exec(Where where, String... args) {
        run(where, List.of(args), null);
    }

    /** Several ip commands in one process (ip -batch), stopping at the first that fails. */
    public static void batch(Where where, List<String> commands) {
        if (!commands.isEmpty()) {
            run(where, List.of("-batch", "-"), String.join("\n", commands) + "\n");
        }
    }

    private static String run(Where where, List<String> args, String input) {
        List<String> cmd = new ArrayList<>(where.prefix());
        cmd.addAll(args);
        try {
            Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.PIPE).start();
            CompletableFuture<byte[]> err = CompletableFuture.supplyAsync(() -> {
                try {
                    return p.getErrorStream().readAllBytes();
                } catch (IOException e) {
                    return new byte[0];
                }
            });
            try (OutputStream in = p.getOutputStream()) {
                if (input != null) {
                    in.write(input.getBytes(StandardCharsets.UTF_8));
                }
            }
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            int code = p.waitFor();
            String errors = new String(err.join(), StandardCharsets.UTF_8).strip();
            if (code != 0) {
                throw new CryoException("ip " + String.join(" ", args) + " failed in " + where + ": " + errors
                        + (input != null ? " (commands: " + input.strip().replace('\n', ';') + ")" : ""));
            }
            LOG.fine(() -> "ip " + String.join(" ", args) + (input != null ? " <<" + input.strip().replace('\n', ';') : "")
                    + " in " + where);
            return out;
        } catch (IOException e) {
            throw new CryoException("running ip(8): " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CryoException("interrupted while running ip(8)", e);
        }
    }
}
