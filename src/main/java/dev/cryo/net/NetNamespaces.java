package dev.cryo.net;

import dev.cryo.CryoException;
import dev.cryo.ns.NamespaceThread;
import dev.cryo.remote.RestoreStub;
import dev.cryo.sys.Nr;
import dev.cryo.sys.Sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;

/**
 * Sockets of Cryo's own made in the network namespace of a task (a container's): sock_diag
 * answers only about sockets of the namespace its netlink socket lives in. The socket is made by
 * a short-lived platform thread that first joins that namespace with setns(2), which moves only
 * the calling thread; the socket keeps its namespace after the thread has gone.
 */
final class NetNamespaces {
    private static final int CLONE_NEWNET = 0x40000000;

    private NetNamespaces() {
    }

    /** Is process {@code pid} in a network namespace other than Cryo's? */
    static boolean ownNetwork(int pid) {
        try {
            return !Files.readSymbolicLink(Path.of("/proc", Integer.toString(pid), "ns/net"))
                    .equals(Files.readSymbolicLink(Path.of("/proc/self/ns/net")));
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * Is {@code a} an address of process {@code pid}'s network namespace, so that a connection to
     * it stays inside? Loopback always is; others are read from the namespace's own view in /proc:
     * the "host LOCAL" entries of net/fib_trie (IPv4) and net/if_inet6 (IPv6, 32 hex digits).
     */
    static boolean isLocal(int pid, InetAddress a) {
        String host = a.host();
        if (a.ipv4() ? host.startsWith("127.") : host.equals("::1")) {
            return true;
        }
        Path net = Path.of("/proc", Integer.toString(pid), "net");
        try {
            if (a.ipv4()) {
                List<String> lines = Files.readAllLines(net.resolve("fib_trie"));
                for (int i = 0; i + 1 < lines.size(); i++) {
                    if (lines.get(i).strip().equals("|-- " + host) && lines.get(i + 1).strip().endsWith("host LOCAL")) {
                        return true;
                    }
                }
                return false;
            }
            String hex = HexFormat.of().formatHex(a.address());
            return Files.readAllLines(net.resolve("if_inet6")).stream().anyMatch(l -> l.startsWith(hex + " "));
        } catch (IOException e) {
            throw new CryoException("cannot read the addresses of the network namespace of process " + pid + ": " + e.getMessage(), e);
        }
    }

    /**
     * socket(2) in the network namespace of process {@code pid}. Joining it takes CAP_SYS_ADMIN
     * in Cryo's own user namespace too: a user other than root has a restore stub join the
     * container's user namespace and then its network one, make the socket there and hand it over.
     */
    static int socket(int pid, int domain, int type, int protocol) {
        if (!ownNetwork(pid)) {
            return (int) Sys.call("socket", Nr.SOCKET, domain, type, protocol);
        }
        if (Sys.geteuid() != 0) {
            try (RestoreStub helper = RestoreStub.spawn()) {
                helper.joinNamespaces(pid, List.of("user", "net"));
                return helper.socket(domain, type, protocol);
            } catch (RuntimeException e) {
                throw new CryoException("cannot make a socket in the network namespace of process " + pid + ": " + e.getMessage(), e);
            }
        }
        try {
            return NamespaceThread.call(pid, "net", CLONE_NEWNET, () -> (int) Sys.call("socket", Nr.SOCKET, domain, type, protocol));
        } catch (RuntimeException e) {
            throw new CryoException("cannot make a socket in the network namespace of process " + pid + ": " + e.getMessage(), e);
        }
    }
}
