package dev.cryo.ns;

import com.google.gson.JsonArray;
import com.google.gson.JsonParser;
import dev.cryo.core.Refusal;
import dev.cryo.image.proto.NetInterface;
import dev.cryo.image.proto.NetNamespace;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** What a container's network namespace keeps, from ip(8)'s JSON as recorded on kernel 6.18 / iproute2 6.1. */
class NetworkStateTest {
    private static final String LO = """
            {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"link_type":"loopback",
             "address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"},
             {"family":"inet6","local":"::1","prefixlen":128,"scope":"host"}]}""";
    private static final String ETH0 = """
            {"ifindex":2,"link_index":7,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,
             "link_type":"ether","address":"6a:eb:01:00:8b:27","link_netnsid":0,"linkinfo":{"info_kind":"veth"},
             "addr_info":[{"family":"inet","local":"10.88.0.2","prefixlen":30,"scope":"global","label":"eth0"},
             {"family":"inet6","local":"fd00::2","prefixlen":64,"scope":"global","nodad":true},
             {"family":"inet6","local":"fe80::68eb:1ff:fe00:8b27","prefixlen":64,"scope":"link"}]}""";
    private static final String ROUTES4 = """
            [{"dst":"default","gateway":"10.88.0.1","dev":"eth0","flags":[]},
             {"dst":"10.88.0.0/30","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.88.0.2","flags":[]}]""";
    private static final String ROUTES6 = """
            [{"dst":"fd00::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},
             {"dst":"fe80::/64","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},
             {"dst":"fd01::/64","gateway":"fd00::1","dev":"eth0","metric":1024,"flags":[],"pref":"medium"}]""";

    private static JsonArray json(String s) {
        return JsonParser.parseString(s).getAsJsonArray();
    }

    @Test
    void keepsInterfacesAddressesAndRoutesButNotWhatTheKernelMakes() {
        NetNamespace net = NetworkState.of(json("[" + LO + "," + ETH0 + "]"), json(ROUTES4), json(ROUTES6), "c", "10.88.0.1/30");
        assertThat(net.getHostAddress()).isEqualTo("10.88.0.1/30");
        assertThat(net.getInterfaces(0).getKind()).isEqualTo(NetInterface.Kind.LOOPBACK);
        assertThat(net.getInterfaces(0).getAddressesList()).as("lo's own addresses come back with it").isEmpty();
        NetInterface eth0 = net.getInterfaces(1);
        assertThat(eth0.getKind()).isEqualTo(NetInterface.Kind.VETH);
        assertThat(eth0.getUp()).isTrue();
        assertThat(eth0.getMac()).isEqualTo("6a:eb:01:00:8b:27");
        assertThat(eth0.getAddressesList()).extracting(a -> a.getAddress() + "/" + a.getPrefixLen())
                .containsExactly("10.88.0.2/30", "fd00::2/64");
        assertThat(net.getRoutesList()).extracting(r -> (r.getIpv6() ? "6 " : "4 ") + r.getDestination() + " via " + r.getGateway()
                + " metric " + r.getMetric()).containsExactly("4 default via 10.88.0.1 metric 0", "6 fd01::/64 via fd00::1 metric 1024");
        assertThat(NetworkState.describe(net)).isEqualTo("lo up, eth0 (veth) up 10.88.0.2/30 fd00::2/64; 2 route(s)");
    }

    @Test
    void refusesByNameWhatRestoreCannotMake() {
        String bridge = """
                {"ifindex":3,"ifname":"br0","flags":["BROADCAST","MULTICAST"],"mtu":1500,"link_type":"ether",
                 "address":"c6:c6:92:8f:b0:ee","linkinfo":{"info_kind":"bridge"},"addr_info":[]}""";
        String innerVeth = """
                {"ifindex":4,"link":"v1","ifname":"v0","flags":["BROADCAST","MULTICAST"],"mtu":1500,"link_type":"ether",
                 "address":"ca:26:58:2b:71:63","linkinfo":{"info_kind":"veth"},"addr_info":[]}""";
        String fallback = """
                {"ifindex":5,"ifname":"sit0","flags":["NOARP"],"mtu":1480,"link_type":"sit","address":"0.0.0.0",
                 "linkinfo":{"info_kind":"sit"},"addr_info":[]}""";
        assertThatThrownBy(() -> NetworkState.of(json("[" + LO + "," + bridge + "," + innerVeth + "," + fallback + "]"),
                json("[]"), json("[]"), "box", ""))
                .isInstanceOf(Refusal.class)
                .hasMessage("container box has network interfaces restore cannot recreate yet: br0 (bridge), v0 (veth with both"
                        + " ends inside)");
    }
}
