package dev.cryo.ns;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.cryo.core.Refusal;
import dev.cryo.image.proto.NetAddress;
import dev.cryo.image.proto.NetInterface;
import dev.cryo.image.proto.NetNamespace;
import dev.cryo.image.proto.NetRoute;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.logging.Logger;

/**
 * What a container's network namespace holds besides its sockets: interfaces (loopback and the
 * veth uplink), their addresses, up/down state, MTU and MAC, and the routes that are not the
 * kernel's own. Read with ip(8) in the namespace at checkpoint; at restore, recreated in the new
 * namespace before any process of the tree exists, so sockets bound to the addresses can be.
 * <p>
 * Interfaces of other kinds are refused by name. The fallback tunnel devices the kernel makes
 * in every namespace once their module is loaded (tunl0, sit0, gre0 ...) are left to it while
 * they are down and have no address.
 */
public final class NetworkState {
    private static final Logger LOG = Logger.getLogger("ns");
    private static final Set<String> FALLBACK_DEVICES = Set.of("tunl0", "sit0", "gre0", "gretap0", "erspan0", "ip6tnl0",
            "ip6gre0", "ip6gretap0", "ip_vti0", "ip6_vti0");

    private NetworkState() {
    }

    /** The network of process {@code pid}'s namespace; {@code hostAddress} is the uplink's host end address, if known. */
    public static NetNamespace save(int pid, String container, String hostAddress) {
        IpRoute.Where where = new IpRoute.Where(pid);
        NetNamespace net = of(IpRoute.json(where, "-details", "addr", "show"), IpRoute.json(where, "-4", "route", "show", "table", "main"),
                IpRoute.json(where, "-6", "route", "show", "table", "main"), container, hostAddress);
        LOG.info(() -> "container " + container + ": network " + describe(net));
        return net;
    }

    /** The namespace as ip -json -details addr, ip -json -4/-6 route show table main print it. */
    static NetNamespace of(JsonArray links, JsonArray routes4, JsonArray routes6, String container, String hostAddress) {
        NetNamespace.Builder net = NetNamespace.newBuilder().setHostAddress(hostAddress);
        List<String> refused = new ArrayList<>();
        int uplinks = 0;
        for (JsonElement e : links) {
            JsonObject link = e.getAsJsonObject();
            String name = link.get("ifname").getAsString();
            String kind = link.has("linkinfo") && link.getAsJsonObject("linkinfo").has("info_kind")
                    ? link.getAsJsonObject("linkinfo").get("info_kind").getAsString()
                    : link.get("link_type").getAsString();
            boolean up = flags(link).contains("UP");
            JsonArray addrs = link.has("addr_info") ? link.getAsJsonArray("addr_info") : new JsonArray();
            NetInterface.Builder i = NetInterface.newBuilder().setName(name).setUp(up).setMtu(link.get("mtu").getAsInt())
                    .setMac(link.has("address") ? link.get("address").getAsString() : "");
            if (kind.equals("loopback")) {
                i.setKind(NetInterface.Kind.LOOPBACK);
            } else if (kind.equals("veth") && link.has("link_netnsid")) {
                i.setKind(NetInterface.Kind.VETH);
                uplinks++;
            } else if (FALLBACK_DEVICES.contains(name) && !up && addrs.isEmpty()) {
                continue;
            } else {
                refused.add(name + " (" + kind + (kind.equals("veth") ? " with both ends inside" : "") + ")");
                continue;
            }
            for (JsonElement a : addrs) {
                JsonObject o = a.getAsJsonObject();
                String address = o.get("local").getAsString();
                String scope = o.has("scope") ? o.get("scope").getAsString() : "global";
                if (kind.equals("loopback") && (address.equals("127.0.0.1") || address.equals("::1"))
                        || address.startsWith("fe80:") && scope.equals("link")) {
                    continue; // the kernel makes them: lo's when it is up, link-local ones from the MAC
                }
                i.addAddresses(NetAddress.newBuilder().setAddress(address).setPrefixLen(o.get("prefixlen").getAsInt()).setScope(scope));
            }
            net.addInterfaces(i);
        }
        if (uplinks > 1) {
            refused.add(uplinks + " veth uplinks (one is supported)");
        }
        if (!refused.isEmpty()) {
            throw new Refusal("container " + container + " has network interfaces restore cannot recreate yet: " + String.join(", ", refused));
        }
        for (JsonArray routes : List.of(routes4, routes6)) {
            for (JsonElement e : routes) {
                JsonObject r = e.getAsJsonObject();
                String protocol = string(r, "protocol");
                if (protocol.equals("kernel") || protocol.equals("ra")) {
                    continue; // made by the kernel for an address, or learnt from a router: they come back by themselves
                }
                net.addRoutes(NetRoute.newBuilder().setIpv6(routes == routes6).setDestination(string(r, "dst"))
                        .setGateway(string(r, "gateway")).setDevice(string(r, "dev")).setType(string(r, "type"))
                        .setMetric(r.has("metric") ? r.get("metric").getAsInt() : 0).setProtocol(protocol.equals("boot") ? "" : protocol)
                        .setScope(string(r, "scope")).setPreferredSource(string(r, "prefsrc")));
            }
        }
        return net.build();
    }

    /**
     * Recreates {@code saved} in the new, empty network namespace held by {@code holder}: a new
     * veth pair for the uplink (see {@link Veth}), then MAC, MTU, addresses, up/down state, and
     * last the routes. Returns the uplink's host end name, or "" without one; that end is still
     * down: {@link Veth#setUp} once the tree's connections are restored.
     */
    public static String restore(int holder, String container, NetNamespace saved, Path lockDir) {
        IpRoute.Where inside = new IpRoute.Where(holder);
        String host = "";
        List<String> cmds = new ArrayList<>();
        try {
            for (NetInterface i : saved.getInterfacesList()) {
                if (i.getKind() == NetInterface.Kind.VETH) {
                    host = Veth.recreate(container, holder, i.getName(), saved.getHostAddress(), lockDir);
                    cmds.add("link set dev " + i.getName() + (i.getMac().isEmpty() ? "" : " address " + i.getMac()) + " mtu " + i.getMtu());
                } else if (i.getMtu() != 0) {
                    cmds.add("link set dev " + i.getName() + " mtu " + i.getMtu());
                }
                for (NetAddress a : i.getAddressesList()) {
                    boolean v6 = a.getAddress().contains(":");
                    cmds.add("addr add " + a.getAddress() + "/" + a.getPrefixLen() + " dev " + i.getName()
                            + (a.getScope().equals("global") ? "" : " scope " + a.getScope())
                            + (v6 ? " nodad" : "")); // no duplicate address detection: sockets are bound to it at once
                }
                cmds.add("link set dev " + i.getName() + (i.getUp() ? " up" : " down"));
            }
            for (NetRoute r : saved.getRoutesList()) {
                StringBuilder c = new StringBuilder("route replace ");
                if (!r.getType().isEmpty()) {
                    c.append(r.getType()).append(' ');
                }
                // a batch line takes no -6: an IPv6 destination must say its family itself
                c.append(r.getIpv6() && r.getDestination().equals("default") ? "::/0" : r.getDestination());
                append(c, "via", r.getGateway());
                append(c, "dev", r.getDevice());
                append(c, "metric", r.getMetric() == 0 ? "" : Integer.toString(r.getMetric()));
                append(c, "proto", r.getProtocol());
                append(c, "scope", r.getScope());
                append(c, "src", r.getPreferredSource());
                cmds.add(c.toString());
            }
            IpRoute.batch(inside, cmds);
        } catch (RuntimeException e) {
            try {
                Veth.remove(host);
            } catch (RuntimeException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw e;
        }
        String h = host;
        LOG.info(() -> "container " + container + ": network " + describe(saved) + " recreated" + (h.isEmpty() ? "" : ", host end " + h));
        return host;
    }

    /** "lo up, eth0 (veth) up 10.88.0.2/30; 1 route". */
    public static String describe(NetNamespace net) {
        List<String> parts = new ArrayList<>();
        for (NetInterface i : net.getInterfacesList()) {
            StringBuilder s = new StringBuilder(i.getName());
            if (i.getKind() == NetInterface.Kind.VETH) {
                s.append(" (veth)");
            }
            s.append(i.getUp() ? " up" : " down");
            i.getAddressesList().forEach(a -> s.append(' ').append(a.getAddress()).append('/').append(a.getPrefixLen()));
            parts.add(s.toString());
        }
        return String.join(", ", parts) + "; " + net.getRoutesCount() + " route(s)";
    }

    private static void append(StringBuilder c, String keyword, String value) {
        if (!value.isEmpty()) {
            c.append(' ').append(keyword).append(' ').append(value);
        }
    }

    private static String string(JsonObject o, String key) {
        return o.has(key) && !o.get(key).isJsonNull() ? o.get(key).getAsString() : "";
    }

    private static List<String> flags(JsonObject link) {
        List<String> out = new ArrayList<>();
        if (link.has("flags")) {
            link.getAsJsonArray("flags").forEach(f -> out.add(f.getAsString()));
        }
        return out;
    }
}
