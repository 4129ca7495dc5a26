package dev.cryo.net;

import dev.cryo.CryoException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.logging.Logger;

/**
 * Keeps the peers of checkpointed TCP connections from being answered with a reset: from the
 * moment the connections are frozen until they are restored, every packet sent to them is
 * dropped by an nftables table of their own (the peer just retransmits). A checkpoint that
 * kills the tree leaves the table in place on purpose; restore deletes it once the sockets are
 * back, and a failed or leave-running checkpoint deletes it at once.
 * <p>
 * nftables is driven through the nft(8) program: its netlink protocol is large and private to
 * it. The JDK's process reaper waits for that one child by its pid, so it cannot take the
 * ptrace stops of Cryo's tracees.
 */
public final class NetworkLock {
    private static final Logger LOG = Logger.getLogger("net");
    private static final String NFT = "/usr/sbin/nft";

    /** One direction of a connection to block: packets from {@code peer} to {@code local}. */
    public record Flow(InetAddress local, InetAddress peer) {
        String rule() {
            String ip = local.ipv4() ? "ip" : "ip6";
            return ip + " saddr " + peer.host() + " tcp sport " + peer.port() + " " + ip + " daddr " + local.host()
                    + " tcp dport " + local.port() + " drop";
        }
    }

    private NetworkLock() {
    }

    public static boolean available() {
        return Files.isExecutable(Path.of(NFT));
    }

    /** Starts dropping what peers send to {@code flows}; returns the name of the table that does it. */
    public static String lock(int rootPid, List<Flow> flows) {
        if (!available()) {
            throw new CryoException("--tcp-established needs nftables (" + NFT + ") to keep the peers' packets away while"
                    + " the connections are frozen; install the nftables package");
        }
        String table = "cryo_" + rootPid + "_" + Long.toHexString(System.currentTimeMillis());
        StringBuilder script = new StringBuilder("add table inet " + table + "\n")
                .append("add chain inet ").append(table).append(" input { type filter hook input priority -150 ; policy accept ; }\n");
        for (Flow f : flows) {
            script.append("add rule inet ").append(table).append(" input ").append(f.rule()).append('\n');
        }
        nft(script.toString());
        LOG.info(() -> "network locked: table inet " + table + " drops packets to " + flows.size() + " connection(s)");
        return table;
    }

    /** Drops the packets of one more connection, in an existing lock table. */
    public static void add(String table, Flow flow) {
        nft("add rule inet " + table + " input " + flow.rule() + "\n");
        LOG.info(() -> "network lock " + table + ": also drops packets to " + flow.local());
    }

    /** Lets packets through again. A table already gone (a restore after a reboot, say) is fine. */
    public static void unlock(String table) {
        if (!available()) {
            return;
        }
        try {
            nft("delete table inet " + table + "\n");
            LOG.info(() -> "network unlocked: table inet " + table + " deleted");
        } catch (CryoException e) {
            LOG.fine(() -> "network lock " + table + " was not there: " + e.getMessage());
        }
    }

    private static void nft(String script) {
        Path file = null;
        try {
            file = Files.createTempFile("cryo-nft", ".nft");
            Files.writeString(file, script, StandardCharsets.UTF_8);
            Process p = new ProcessBuilder(NFT, "-f", file.toString()).redirectErrorStream(true)
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
            if (p.waitFor() != 0) {
                throw new CryoException("nft failed: " + out + " (script: " + script.strip().replace('\n', ';') + ")");
            }
        } catch (IOException e) {
            throw new CryoException("running nft: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CryoException("interrupted while running nft", e);
        } finally {
            if (file != null) {
                try {
                    Files.deleteIfExists(file);
                } catch (IOException ignored) {
                    // a temporary file; nothing depends on it
                }
            }
        }
    }
}
