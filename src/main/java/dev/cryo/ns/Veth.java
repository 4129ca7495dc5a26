package dev.cryo.ns;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.cryo.CryoException;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.locks.ReentrantLock;
import java.util.logging.Logger;

/**
 * The uplink of a container run with `--net veth`: a veth pair whose host end,
 * {@code cryo-<name>-<4 hex>}, stays in Cryo's network namespace and whose other end is created
 * straight inside the container's as {@code eth0}. Each container gets a /30 of its own out of
 * 10.88.0.0/16: the host end holds .1 (the container's gateway), eth0 holds .2 with a default
 * route through .1.
 * <p>
 * The subnet belongs to the container and goes with its image: a restored container keeps
 * eth0's address (its sockets are bound to it) and gets a new pair whose host end holds the
 * same gateway address. Should the subnet still be routed to another interface of the host
 * (the original container, left running, beside its clone), the clone's host end gets the
 * gateway address as a /32 only: the clone's network works inside, and the host keeps
 * reaching the original at the shared address.
 * <p>
 * A free subnet is one that overlaps no address or route of the host, chosen under a file lock
 * (in the state directory) until the host end holds its address, so concurrent `cryo run`s
 * never take the same. The host end disappears by itself when the container's namespace goes
 * (deleting either end of a veth deletes both); Cryo still deletes it when it kills a
 * container, because namespaces are torn down asynchronously.
 * <p>
 * The host end is also a container's network lock: while it is down (from before a checkpoint
 * freezes the container until the restored tree's connections are back) no packet of a peer
 * outside gets in, so such a peer sees a pause and retransmits, never a reset.
 */
public final class Veth {
    private static final Logger LOG = Logger.getLogger("ns");
    private static final int BASE = (10 << 24) | (88 << 16), BLOCKS = 1 << 14; // 10.88.0.0/16 in /30 blocks
    private static final ReentrantLock IN_PROCESS = new ReentrantLock();

    /** A container's uplink: the host end's name and both ends' addresses with their prefix ("10.88.0.1/30"). */
    public record Uplink(String hostName, String hostAddress, String containerAddress) {
    }

    private Veth() {
    }

    /**
     * A new uplink for a container of ours being created: the pair, a free subnet, both ends
     * addressed and up, the default route inside. {@code holder} is in the new network namespace.
     */
    public static Uplink create(String container, int holder, Path lockDir) {
        try (Allocation lock = Allocation.take(lockDir)) {
            int block = freeBlock();
            String gateway = ipv4(BASE + 4 * block + 1), address = ipv4(BASE + 4 * block + 2);
            String host = newPair(container, holder, "eth0");
            try {
                IpRoute.batch(IpRoute.Where.HOST, List.of("addr add " + gateway + "/30 dev " + host, "link set dev " + host + " up"));
                IpRoute.batch(new IpRoute.Where(holder), List.of("addr add " + address + "/30 dev eth0", "link set dev eth0 up",
                        "route add default via " + gateway + " dev eth0"));
            } catch (RuntimeException e) {
                remove(host);
                throw e;
            }
            Uplink u = new Uplink(host, gateway + "/30", address + "/30");
            LOG.info(() -> "container " + container + ": veth " + host + " " + u.hostAddress() + " <-> eth0 " + u.containerAddress());
            return u;
        }
    }

    /**
     * A new pair for a restored container: its end is created inside as {@code inside} (the
     * caller sets its address, MAC and routes), the host end takes {@code hostAddress} (may be
     * empty: none) as described in the class comment and stays down: the caller sets it up once
     * the tree's connections are back ({@link #setUp}). Returns the host end's name.
     */
    public static String recreate(String container, int holder, String inside, String hostAddress, Path lockDir) {
        try (Allocation lock = Allocation.take(lockDir)) {
            String host = newPair(container, holder, inside);
            try {
                List<String> cmds = new ArrayList<>();
                if (!hostAddress.isEmpty()) {
                    String[] a = hostAddress.split("/");
                    int prefix = Integer.parseInt(a[1]);
                    boolean taken = overlapsHost(parseIpv4(a[0]) & mask(prefix), prefix);
                    if (taken) {
                        LOG.warning(() -> "container " + container + ": its subnet " + hostAddress + " is in use on the host (its original"
                                + " still running?); host end " + host + " gets " + a[0] + "/32 and the host keeps its route");
                    }
                    cmds.add("addr add " + (taken ? a[0] + "/32" : hostAddress) + " dev " + host);
                }
                IpRoute.batch(IpRoute.Where.HOST, cmds);
            } catch (RuntimeException e) {
                remove(host);
                throw e;
            }
            return host;
        }
    }

    /** Sets the host end up or down (a container's network lock); none ("") is fine. */
    public static void setUp(String hostName, boolean up) {
        if (!hostName.isEmpty()) {
            IpRoute.exec(IpRoute.Where.HOST, "link", "set", "dev", hostName, up ? "up" : "down");
        }
    }

    /** Deletes the host end (and so the pair); one already gone is fine. */
    public static void remove(String hostName) {
        if (hostName.isEmpty() || !Files.exists(Path.of("/sys/class/net", hostName))) {
            return;
        }
        try {
            IpRoute.exec(IpRoute.Where.HOST, "link", "del", "dev", hostName);
            LOG.info(() -> "veth " + hostName + " deleted");
        } catch (CryoException e) {
            if (Files.exists(Path.of("/sys/class/net", hostName))) {
                throw e;
            }
        }
    }

    /** A pair named {@code cryo-<up to 5 of the name>-<4 hex>} on the host (IFNAMSIZ: 15 characters) and {@code inside} in holder's namespace. */
    private static String newPair(String container, int holder, String inside) {
        String stem = "cryo-" + container.substring(0, Math.min(5, container.length())) + "-";
        for (int attempt = 0; ; attempt++) {
            String host = stem + String.format("%04x", ThreadLocalRandom.current().nextInt(0x10000));
            if (Files.exists(Path.of("/sys/class/net", host))) {
                continue;
            }
            try {
                IpRoute.exec(IpRoute.Where.HOST, "link", "add", host, "type", "veth", "peer", "name", inside, "netns",
                        Integer.toString(holder));
                return host;
            } catch (CryoException e) {
                if (attempt > 8 || !Files.exists(Path.of("/sys/class/net", host))) {
                    throw e;
                }
                // another Cryo took the name between the check and the call: try another
            }
        }
    }

    private static int freeBlock() {
        for (int block = 0; block < BLOCKS; block++) {
            if (!overlapsHost(BASE + 4 * block, 30)) {
                return block;
            }
        }
        throw new CryoException("no free /30 left in 10.88.0.0/16 for a container's veth");
    }

    /** Does network {@code net}/{@code prefix} overlap an address or a route of the host? */
    private static boolean overlapsHost(int net, int prefix) {
        List<int[]> used = new ArrayList<>(); // {network, prefix}
        for (JsonElement link : IpRoute.json(IpRoute.Where.HOST, "-4", "addr", "show")) {
            JsonElement infos = link.getAsJsonObject().get("addr_info");
            if (infos != null) {
                for (JsonElement a : infos.getAsJsonArray()) {
                    JsonObject o = a.getAsJsonObject();
                    used.add(new int[] {parseIpv4(o.get("local").getAsString()), o.get("prefixlen").getAsInt()});
                }
            }
        }
        for (JsonElement r : IpRoute.json(IpRoute.Where.HOST, "-4", "route", "show", "table", "main")) {
            String dst = r.getAsJsonObject().get("dst").getAsString();
            if (!dst.equals("default")) {
                String[] d = dst.split("/");
                used.add(new int[] {parseIpv4(d[0]), d.length > 1 ? Integer.parseInt(d[1]) : 32});
            }
        }
        for (int[] u : used) {
            int common = Math.min(prefix, u[1]);
            if (((net ^ u[0]) & mask(common)) == 0) {
                return true;
            }
        }
        return false;
    }

    private static int mask(int prefix) {
        return prefix == 0 ? 0 : -1 << (32 - prefix);
    }

    static int parseIpv4(String s) {
        String[] p = s.split("\\.");
        return (Integer.parseInt(p[0]) << 24) | (Integer.parseInt(p[1]) << 16) | (Integer.parseInt(p[2]) << 8) | Integer.parseInt(p[3]);
    }

    static String ipv4(int a) {
        return (a >>> 24) + "." + ((a >>> 16) & 255) + "." + ((a >>> 8) & 255) + "." + (a & 255);
    }

    /** Held while a subnet is chosen and taken: a lock of this process's threads and one between Cryo processes. */
    private record Allocation(FileChannel channel, FileLock lock) implements AutoCloseable {
        static Allocation take(Path dir) {
            IN_PROCESS.lock();
            try {
                Files.createDirectories(dir);
                FileChannel ch = FileChannel.open(dir.resolve(".veth.lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                return new Allocation(ch, ch.lock());
            } catch (IOException | RuntimeException e) {
                IN_PROCESS.unlock();
                throw new CryoException("cannot lock " + dir.resolve(".veth.lock") + ": " + e.getMessage(), e);
            }
        }

        @Override
        public void close() {
            try {
                lock.release();
                channel.close();
            } catch (IOException ignored) {
                // closing the channel releases the lock anyway
            } finally {
                IN_PROCESS.unlock();
            }
        }
    }
}
