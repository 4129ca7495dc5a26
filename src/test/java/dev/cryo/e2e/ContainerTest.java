package dev.cryo.e2e;

import dev.cryo.container.StateStore;
import dev.cryo.image.ImageKind;
import dev.cryo.image.ImageReader;
import dev.cryo.image.proto.LayerEntry;
import dev.cryo.image.proto.RootfsLayer;
import dev.cryo.ns.Mounts;
import dev.cryo.testing.CryoCli;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Containers as a user drives them: `cryo run` a shell script as pid 1 with a python3 program
 * beside it, both appending counters to files in an overlay root; checkpoint the container,
 * restore it twice side by side as two clones. Each clone continues from the same state, its
 * files rolled back to checkpoint time, with the same pids inside (the script is still pid 1)
 * and the same host name, while the host pids differ; the original, left running, goes on too.
 */
class ContainerTest extends TargetTest {
    private final List<String> containers = new ArrayList<>();
    private Path state;
    private Path rootfs;

    @BeforeEach
    void stateAndRootfs() throws IOException {
        Assumptions.assumeTrue(dev.cryo.check.Cgroups.v2Mount() != null, "containers need a cgroup v2 hierarchy");
        state = tmp.resolve("state");
        System.setProperty(StateStore.PROPERTY, state.toString());
        // the test's own files on top of /usr, which gives the root /bin/sh, /bin/python3 and their libraries
        rootfs = tmp.resolve("rootfs");
        Files.createDirectories(rootfs.resolve("app"));
        Files.createDirectories(rootfs.resolve("out"));
        for (String f : new String[] {"counter.sh", "writer.py", "talkers.py", "eth0talkers.py", "mounts.sh"}) {
            Path to = rootfs.resolve("app").resolve(f);
            Files.copy(Path.of("src/test/resources/container", f), to);
            to.toFile().setExecutable(true);
        }
        // python3 looks for its library under the prefix it was built with, /usr: here that is the root
        Files.createSymbolicLink(rootfs.resolve("usr"), Path.of("/"));
    }

    @AfterEach
    void killContainers() {
        for (String name : containers) {
            CryoCli.run("kill", name);
        }
        System.clearProperty(StateStore.PROPERTY);
    }

    @Test
    void restoredTwiceSideBySideAsClones() throws Exception {
        run("orig", "--hostname", "box", "--rootfs", rootfs + ":/usr", "--", "/app/counter.sh");
        Path origOut = state.resolve("orig/upper/out");
        awaitLines(origOut.resolve("python.log"), 10);
        awaitLines(origOut.resolve("shell.log"), 10);

        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "orig", "-D", images.toString(), "--leave-running");
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        assertThat(dump.out()).contains("Checkpointed container orig").contains("left running");
        CryoCli.Result inspect = CryoCli.run("inspect", images.toString());
        assertThat(inspect.out()).contains("Container orig: /app/counter.sh").contains("host name box")
                .containsPattern("\\d+ +1 +\\d+ +\\d+ +\\d+ +1  counter.sh ");
        List<String> shellAtCheckpoint = savedLines(images, "out/shell.log");
        List<String> pythonAtCheckpoint = savedLines(images, "out/python.log");

        for (String clone : new String[] {"clone1", "clone2"}) {
            CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", clone, "-d");
            assertThat(restore.exitCode()).as(restore.toString()).isZero();
            containers.add(clone);
        }
        CryoCli.Result ps = CryoCli.run("ps");
        assertThat(ps.out()).containsPattern("clone1 +\\d+ running").containsPattern("clone2 +\\d+ running");

        List<Set<Integer>> nsPids = new ArrayList<>();
        for (String clone : new String[] {"clone1", "clone2"}) {
            Path out = state.resolve(clone + "/upper/out");
            assertCountersContinue(clone, out, shellAtCheckpoint, pythonAtCheckpoint);
            nsPids.add(idsInside(clone));
        }
        // each clone sees its own pid namespace: the same pids inside, different ones on the host
        assertThat(nsPids.get(0)).contains(1, Integer.parseInt(pythonAtCheckpoint.getFirst().split(" ")[1]));
        assertThat(nsPids.get(1)).contains(1, Integer.parseInt(pythonAtCheckpoint.getFirst().split(" ")[1]));
        assertThat(hostPid("clone1")).isNotEqualTo(hostPid("clone2"));
        // the original went on from the same point, in its own files
        List<String> original = awaitLines(origOut.resolve("shell.log"), shellAtCheckpoint.size() + 20);
        assertThat(original.subList(0, shellAtCheckpoint.size())).isEqualTo(shellAtCheckpoint);
        assertCounts(original, "orig shell.log");
        assertThat(CryoCli.run("ps").out()).containsPattern("orig +\\d+ running");
    }

    @Test
    void tcpAndUnixConnectionsInsideTheContainerSurvive() throws Exception {
        run("talk", "--net", "none", "--rootfs", rootfs + ":/usr", "--", "/usr/bin/python3", "/app/talkers.py");
        awaitLines(state.resolve("talk/upper/out/tcp"), 5);
        awaitLines(state.resolve("talk/upper/out/unix"), 5);
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "talk", "-D", images.toString());
        assertThat(dump.exitCode()).as("no --tcp-established needed inside the container's own network: " + dump).isZero();
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "talk2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("talk2");
        for (String stream : new String[] {"tcp", "unix"}) {
            int before = savedLines(images, "out/" + stream).size();
            List<String> lines = awaitLines(state.resolve("talk2/upper/out/" + stream), before + 10);
            assertCounts(lines, "the " + stream + " stream");
            assertThat(lines).as(stream).allMatch(l -> l.endsWith(" ok"));
        }
        assertThat(state.resolve("talk2/upper/out/client-bad")).doesNotExist();
    }

    @Test
    void aVethContainerKeepsItsAddressAndItsConnectionsOverEth0() throws Exception {
        run("veth", "--net", "veth", "--rootfs", rootfs + ":/usr", "--", "/usr/bin/python3", "/app/eth0talkers.py");
        String address = recordField("veth", "vethAddress").replaceAll("/.*", "");
        String hostEnd = recordField("veth", "vethHost");
        assertThat(address).startsWith("10.88.");
        assertThat(hostEnd).startsWith("cryo-veth-").hasSizeLessThanOrEqualTo(15);
        assertThat(Path.of("/sys/class/net", hostEnd)).exists();
        awaitLines(state.resolve("veth/upper/out/tcp"), 5);
        assertThat(pong(address)).as("the host reaches the container through the veth").isEqualTo("pong");

        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "veth", "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        assertThat(Path.of("/sys/class/net", hostEnd)).as("removed with the killed container").doesNotExist();
        assertThat(CryoCli.run("inspect", images.toString()).out())
                .contains("network: lo up, eth0 (veth) up " + address + "/30; 1 route(s)");
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "veth2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("veth2");
        String newHostEnd = recordField("veth2", "vethHost");
        assertThat(newHostEnd).startsWith("cryo-veth2-").isNotEqualTo(hostEnd);
        assertThat(recordField("veth2", "vethAddress")).startsWith(address + "/");

        int before = savedLines(images, "out/tcp").size();
        List<String> lines = awaitLines(state.resolve("veth2/upper/out/tcp"), before + 10);
        assertCounts(lines, "the stream over eth0");
        assertThat(lines).allMatch(l -> l.endsWith(" ok " + address), "every line ok, from " + address);
        assertThat(state.resolve("veth2/upper/out/client-bad")).doesNotExist();
        assertThat(pong(address)).as("the host reaches the clone through its new veth").isEqualTo("pong");
        CryoCli.run("kill", "veth2");
        assertThat(Path.of("/sys/class/net", newHostEnd)).as("removed by cryo kill").doesNotExist();
    }

    /** Sysctls it tunes in its network and IPC namespaces, as "name=value" for /proc/sys/NAME. */
    private static final List<String> TUNED = List.of("net/core/somaxconn=777", "net/ipv4/ip_local_port_range=20000 30000",
            "net/ipv4/tcp_keepalive_time=600", "net/ipv4/conf/eth0/arp_ignore=1", "net/ipv6/conf/lo/hop_limit=33",
            "kernel/msgmnb=12345");

    @Test
    void sysctlsItTunedInItsNamespacesComeBackInTheClone() throws Exception {
        StringBuilder set = new StringBuilder();
        StringBuilder read = new StringBuilder();
        for (String t : TUNED) {
            String[] kv = t.split("=");
            set.append("echo '").append(kv[1]).append("' > /proc/sys/").append(kv[0]).append(" && ");
            read.append(" /proc/sys/").append(kv[0]);
        }
        // the container itself reports what its namespaces hold, so the restored process proves them
        run("tuned", "--net", "veth", "--rootfs", rootfs + ":/usr", "--", "/bin/sh", "-c", set
                + "n=0; while :; do n=$((n+1)); echo \"$n $(cat" + read + " | tr '\\t\\n' '  ')\" >> /out/sysctls; sleep 0.05; done");
        String tuned = String.join(" ", TUNED.stream().map(t -> t.split("=")[1]).toList());
        List<String> lines = awaitLines(state.resolve("tuned/upper/out/sysctls"), 3);
        assertThat(lines.getFirst()).as("set inside the container").isEqualTo("1 " + tuned + " ");
        // a fresh namespace of each kind has other values: the kernel's defaults
        String fresh = new String(new ProcessBuilder("unshare", "-n", "-i", "sh", "-c", "cat" + read.toString()
                .replace("/eth0/", "/default/") + " | tr '\\t\\n' '  '").start().getInputStream().readAllBytes());
        assertThat(fresh).startsWith("4096 32768 60999 7200 0 64 16384 ");

        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "tuned", "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        assertThat(CryoCli.run("inspect", images.toString()).out()).contains("net.core.somaxconn=777", "kernel.msgmnb=12345",
                "net.ipv4.conf.eth0.arp_ignore=1", "net.ipv4.ip_local_port_range=20000 30000");
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "tuned2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("tuned2");
        int before = savedLines(images, "out/sysctls").size();
        List<String> after = awaitLines(state.resolve("tuned2/upper/out/sysctls"), before + 3);
        assertCounts(after, "the clone's sysctls");
        assertThat(after.subList(before, after.size())).as("read by the restored process in its new namespaces")
                .allMatch(l -> l.endsWith(" " + tuned + " "), tuned);
    }

    @Test
    void anInterfaceKindRestoreCannotMakeIsRefusedByNameAndTheContainerRunsOn() throws Exception {
        run("bridger", "--net", "veth", "--rootfs", rootfs + ":/usr", "--", "/bin/sh", "-c",
                "ip link add br0 type bridge && echo ok > /out/made && exec sleep 100");
        awaitLines(state.resolve("bridger/upper/out/made"), 1);
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "bridger", "-D", tmp.resolve("img").toString());
        assertThat(dump.exitCode()).isEqualTo(1);
        assertThat(dump.err()).contains("container bridger has network interfaces restore cannot recreate yet: br0 (bridge)");
        assertThat(CryoCli.run("ps").out()).containsPattern("bridger +\\d+ running");
    }

    @Test
    void aVethCloneBesideItsRunningOriginalKeepsTheAddressInsideItsOwnNamespace() throws Exception {
        run("twin", "--net", "veth", "--rootfs", rootfs + ":/usr", "--", "/usr/bin/python3", "/app/eth0talkers.py");
        String address = recordField("twin", "vethAddress").replaceAll("/.*", "");
        String gateway = recordField("twin", "vethHostAddress").replaceAll("/.*", "");
        awaitLines(state.resolve("twin/upper/out/tcp"), 5);
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "twin", "-D", images.toString(), "--leave-running");
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "twin2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("twin2");
        int before = savedLines(images, "out/tcp").size();
        List<String> lines = awaitLines(state.resolve("twin2/upper/out/tcp"), before + 10);
        assertCounts(lines, "the clone's stream over eth0");
        assertThat(lines).allMatch(l -> l.endsWith(" ok " + address), "every line ok, from " + address);
        // the subnet stays routed to the original; the clone's host end holds only the gateway address
        String clonesEnd = recordField("twin2", "vethHost");
        String shown = new String(new ProcessBuilder("ip", "-o", "-4", "addr", "show", "dev", clonesEnd).start()
                .getInputStream().readAllBytes());
        assertThat(shown).contains(gateway + "/32");
        assertThat(pong(address)).as("the original still answers the host").isEqualTo("pong");
    }

    @Test
    void aConnectionFromTheHostThroughTheVethNeedsTcpEstablishedAndThenGoesOn() throws Exception {
        run("held", "--net", "veth", "--rootfs", rootfs + ":/usr", "--", "/usr/bin/python3", "/app/eth0talkers.py");
        String address = recordField("held", "vethAddress").replaceAll("/.*", "");
        try (java.net.Socket host = connectWhenListening(address, 7002)) {
            host.setSoTimeout(10_000);
            var in = new java.io.BufferedReader(new java.io.InputStreamReader(host.getInputStream()));
            var out = host.getOutputStream();
            out.write("1\n".getBytes());
            assertThat(in.readLine()).isEqualTo("2");
            Path images = tmp.resolve("img");
            CryoCli.Result refused = CryoCli.run("checkpoint", "--container", "held", "-D", images.toString());
            assertThat(refused.exitCode()).isEqualTo(1);
            assertThat(refused.err()).contains("an established TCP connection " + address + ":7002 -> ")
                    .contains("whose peer is outside the container's network namespace; give --tcp-established");
            assertThat(CryoCli.run("ps").out()).containsPattern("held +\\d+ running");
            out.write("2\n".getBytes());
            assertThat(in.readLine()).as("the refused checkpoint let the veth up again").isEqualTo("4");

            CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "held", "-D", images.toString(), "--tcp-established");
            assertThat(dump.exitCode()).as(dump.toString()).isZero();
            out.write("3\n".getBytes()); // sent while nothing listens: the host retransmits until the clone is back
            CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "held2", "-d");
            assertThat(restore.exitCode()).as(restore.toString()).isZero();
            containers.add("held2");
            assertThat(in.readLine()).as("the same connection, answered by the clone").isEqualTo("6");
            out.write("4\n".getBytes());
            assertThat(in.readLine()).isEqualTo("8");
        }
    }

    private static java.net.Socket connectWhenListening(String address, int port) throws Exception {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (true) {
            java.net.Socket s = new java.net.Socket();
            try {
                s.connect(new java.net.InetSocketAddress(address, port), 1000);
                return s;
            } catch (IOException notYet) {
                s.close();
                if (System.nanoTime() > deadline) {
                    throw notYet;
                }
                Thread.sleep(20);
            }
        }
    }

    /** What the container's "pong" port at {@code address} answers the host. */
    private static String pong(String address) throws IOException {
        try (java.net.Socket s = new java.net.Socket()) {
            s.connect(new java.net.InetSocketAddress(address, 7001), 3000);
            s.setSoTimeout(3000);
            return new String(s.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).strip();
        }
    }

    private String recordField(String name, String field) throws IOException {
        String json = Files.readString(state.resolve(name + "/container.json"));
        return json.replaceAll("(?s).*\"" + field + "\": \"([^\"]*)\".*", "$1");
    }

    @Test
    void aDamagedFileLayerIsRefusedBeforeAnyFileIsWritten() throws Exception {
        run("layer", "--rootfs", rootfs + ":/usr", "--", "/app/counter.sh");
        awaitLines(state.resolve("layer/upper/out/shell.log"), 3);
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "layer", "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        Path upper = images.resolve(ImageKind.ROOTFS_UPPER.fileName(0));
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(upper.toFile(), "rw")) {
            long at = f.length() - 10;
            f.seek(at);
            int b = f.read();
            f.seek(at);
            f.write(b ^ 0x01);
        }
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "layer2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isEqualTo(1);
        assertThat(restore.err()).contains("rootfs-upper.img").contains("damaged");
        assertThat(state.resolve("layer2/upper/out")).as("no file of the damaged layer written").doesNotExist();
        assertThat(CryoCli.run("ps").out()).doesNotContain("layer2");
    }

    @Test
    void volumesAndTheMountsItMadeComeBackAndWorkInside() throws Exception {
        Path vol = tmp.resolve("vol");
        Path in = tmp.resolve("in");
        Files.createDirectories(vol);
        Files.createDirectories(in);
        Files.writeString(vol.resolve("seed"), "seed\n");
        run("mnt", "--net", "none", "--rootfs", rootfs + ":/usr", "-v", vol + ":/vol", "--volume", in + ":/in:ro", "--",
                "/app/mounts.sh");
        Path log = vol.resolve("log");
        awaitLines(log, 5);
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "mnt", "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        assertThat(CryoCli.run("inspect", images.toString()).out())
                .contains("volumes: " + vol + " at /vol, " + in + " at /in (ro)")
                .contains("mounts of its own: /dev (tmpfs, flags changed, ro), /sys (sysfs), /srv (bind of /data/d), "
                        + "/ro (bind of /data/d, ro), /stack (tmpfs, ").contains("/stack/pts (devpts)");
        int before = Files.readAllLines(log).size();

        // a volume's host directory is the user's: gone, the restore is refused before anything is made
        Path moved = tmp.resolve("in-moved");
        Files.move(in, moved);
        CryoCli.Result missing = CryoCli.run("restore", "-D", images.toString(), "--name", "mnt2", "-d");
        assertThat(missing.exitCode()).isEqualTo(1);
        assertThat(missing.err()).contains("volume " + in + " (for /in) does not exist on the host");
        assertThat(state.resolve("mnt2")).doesNotExist();
        assertThat(CryoCli.run("ps").out()).doesNotContain("mnt2");
        Files.move(moved, in);

        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "mnt2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("mnt2");
        List<String> lines = awaitLines(log, before + 10);
        Files.writeString(vol.resolve("after"), ""); // seen through the restored volume at once
        lines = awaitLines(log, lines.size() + 10);
        assertCounts(lines, "the log in the volume, written through a restored fd");
        assertThat(lines).as("each line proves the volumes, the binds, read-only EROFS (also of /dev), /sys, /proc and devpts")
                .allMatch(l -> l.matches("\\d+ ok( after)?"));
        assertThat(lines.getLast()).endsWith(" ok after");
        int pid = hostPid("mnt2");
        assertThat(Mounts.of(pid).stream().map(m -> m.point() + " " + m.options().split(",")[0]))
                .containsExactly("/ rw", "/vol rw", "/in ro", "/dev ro", "/proc rw", "/sys rw", "/srv rw", "/ro ro", "/stack rw",
                        "/stack/pts rw");
        assertThat(Mounts.table(pid)).containsSubsequence("/sys (sysfs)", "/srv (overlay)", "/ro (overlay)", "/stack (tmpfs)",
                "/stack/pts (devpts)");
        // the restored container knows its own mounts from what restore made for every container
        CryoCli.Result again = CryoCli.run("checkpoint", "--container", "mnt2", "-D", tmp.resolve("img2").toString(), "-R");
        assertThat(again.exitCode()).as(again.toString()).isZero();
        assertThat(CryoCli.run("inspect", tmp.resolve("img2").toString()).out())
                .contains("volumes: " + vol + " at /vol, " + in + " at /in (ro)")
                .contains("mounts of its own: /dev (tmpfs, flags changed, ro), /sys (sysfs), /srv (bind of /data/d), "
                        + "/ro (bind of /data/d, ro), /stack (tmpfs, ");
    }

    @Test
    void onTheHostsRootOnlyTheMountsItMadeAreItsOwn() throws Exception {
        Path scratch = tmp.resolve("scratch");
        Path vol = tmp.resolve("vol");
        Path place = tmp.resolve("place");
        for (Path p : new Path[] {scratch, vol, place}) {
            Files.createDirectories(p);
        }
        Files.writeString(vol.resolve("f"), "hello\n");
        run("onhost", "-v", vol + ":" + place, "--", "/bin/sh", "-c",
                "mount -t tmpfs -o size=1m none " + scratch + " && echo x > " + scratch + "/x && exec sleep 100");
        awaitFile(Path.of("/proc/" + hostPid("onhost") + "/root" + scratch + "/x"));
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "onhost", "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        assertThat(CryoCli.run("inspect", images.toString()).out()).contains("volumes: " + vol + " at " + place + "\n")
                .as("the copies of the host's mounts are not the container's").contains("mounts of its own: " + scratch + " (tmpfs, 1 entries)\n");
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "onhost2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("onhost2");
        Path root = Path.of("/proc/" + hostPid("onhost2") + "/root");
        assertThat(Files.readString(root.resolve(scratch.toString().substring(1)).resolve("x"))).isEqualTo("x\n");
        assertThat(Files.readString(root.resolve(place.toString().substring(1)).resolve("f"))).isEqualTo("hello\n");
        assertThat(scratch.resolve("x")).as("the tmpfs is the container's, not the host's").doesNotExist();
    }

    @Test
    void aMountRestoreCannotMakeAgainIsRefusedByNameAndTheContainerRunsOn() throws Exception {
        run("mounter", "--rootfs", rootfs + ":/usr", "--", "/bin/sh", "-c",
                "mkdir -p /gone /x /y && mount --bind /gone /x && rmdir /gone && mount -t tmpfs none /y"
                        + " && mount --make-shared /y && echo ok > /out/mounted && exec sleep 100");
        awaitLines(state.resolve("mounter/upper/out/mounted"), 1);
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "mounter", "-D", tmp.resolve("img").toString());
        assertThat(dump.exitCode()).isEqualTo(1);
        assertThat(dump.err()).contains("container mounter has mounts restore cannot make again: "
                + "/x (overlay): a bind of /gone, a directory deleted since; /y (tmpfs): a shared mount (peer group ");
        assertThat(CryoCli.run("ps").out()).containsPattern("mounter +\\d+ running");
    }

    @Test
    void aTmpfsOfItsOwnComesBackWithItsFilesAndAnOpenOne() throws Exception {
        // the shell keeps /scratch/log open on fd 3 and appends to it; /scratch/keep just stays
        run("tmpfs", "--rootfs", rootfs + ":/usr", "--", "/bin/sh", "-c",
                "mkdir -p /scratch && mount -t tmpfs -o size=1m,mode=750 none /scratch && echo kept > /scratch/keep"
                        + " && exec 3>>/scratch/log && i=0 && while :; do i=$((i + 1)); echo \"$i x\" >&3;"
                        + " cp /scratch/log /out/copy.tmp; mv /out/copy.tmp /out/copy; sleep 0.02; done");
        awaitLines(state.resolve("tmpfs/upper/out/copy"), 5);
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "tmpfs", "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "tmpfs2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("tmpfs2");
        int before = savedLines(images, "out/copy").size();
        List<String> log = awaitLines(state.resolve("tmpfs2/upper/out/copy"), before + 10);
        assertCounts(log, "the tmpfs log, copied out");
        int pid = hostPid("tmpfs2");
        assertThat(Files.readString(Path.of("/proc/" + pid + "/root/scratch/keep"))).isEqualTo("kept\n");
        assertThat(Mounts.of(pid)).filteredOn(m -> m.point().equals("/scratch"))
                .singleElement().satisfies(m -> assertThat(m.superOptions()).contains("size=1024k", "mode=750"));
        assertThat(state.resolve("tmpfs2/tmpfs-staged")).doesNotExist();
    }

    @Test
    void sysvIpcObjectsOfItsNamespaceComeBackWithTheirIds() throws Exception {
        Path targetState = runTarget("shm", List.of(), "sysvipc");
        assertThat(check("shm", targetState)).isEqualTo("PASS");

        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "shm", "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "shm2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("shm2");
        assertThat(check("shm2", targetState)).isEqualTo("PASS");
    }

    @Test
    void posixMessageQueuesOfItsNamespaceComeBackWithTheirMessagesAndAreLeftAsTheyWere() throws Exception {
        Path targetState = runTarget("mq", List.of(), "mqueues");
        assertThat(check("mq", targetState)).isEqualTo("PASS");

        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "mq", "-D", images.toString(), "--leave-running");
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        assertThat(CryoCli.run("inspect", images.toString()).out()).contains("6 POSIX message queue(s) /cryo-again (0 msg),"
                + " /cryo-done (0 msg), /cryo-full (2 msg), /cryo-go (0 msg), /cryo-idle (2 msg), /cryo-work (5 msg)");
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "mq2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("mq2");
        // the clone's child receives exactly the five queued at checkpoint, in priority order, from its own copy
        assertThat(check("mq2", targetState)).isEqualTo("PASS");
        // and the original's queues, emptied to be saved, hold all their messages again
        assertThat(check("mq", targetState)).isEqualTo("PASS");
        assertThat(check("mq2", targetState)).isEqualTo("PASS");
    }

    @Test
    void aMessageQueueWithAnMqNotifyRegistrationIsRefusedByNameAndTheQueuesAreLeftAsTheyWere() throws Exception {
        Path targetState = runTarget("mqn", List.of(), "mqueues", "notify");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "mqn", "-D", tmp.resolve("img").toString());
        assertThat(dump.exitCode()).isEqualTo(1);
        assertThat(dump.err()).contains("POSIX message queue /cryo-zz-notify of the container has an mq_notify registration");
        assertThat(CryoCli.run("ps").out()).containsPattern("mqn +\\d+ running");
        assertThat(check("mqn", targetState)).as("the queues saved before the refusal hold their messages again").isEqualTo("PASS");
    }

    @Test
    void anOpenMessageQueueWithoutANameIsRefusedAndTheContainerRunsOn() throws Exception {
        Path targetState = runTarget("mqu", List.of(), "mqueues", "unlinked");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "mqu", "-D", tmp.resolve("img").toString());
        assertThat(dump.exitCode()).isEqualTo(1);
        assertThat(dump.err()).contains("(/cryo-gone (deleted)): a POSIX message queue that is not under this name in the container's IPC"
                + " namespace");
        assertThat(check("mqu", targetState)).isEqualTo("PASS");
    }

    @Test
    void aContainerWhosePid1GaveUpRootIsSavedWithItsQueues() throws Exception {
        // pid 1 makes a queue as root, then becomes nobody without capabilities: it may no longer
        // mount the queues' file system itself, so Cryo joins the namespace to do it
        Path flag = tmp.resolve("made");
        run("nobody", "--", "/bin/sh", "-c", "python3 -c \"import ctypes; l = ctypes.CDLL(None, use_errno=True);"
                + " assert l.mq_open(b'/kept', 0o100 | 1, 0o644, None) >= 0\" && touch " + flag
                + " && exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all sleep 100");
        awaitFile(flag);
        Path comm = Path.of("/proc/" + hostPid("nobody") + "/comm");
        for (long deadline = System.nanoTime() + 10_000_000_000L; !Files.readString(comm).strip().equals("sleep"); ) {
            assertThat(System.nanoTime()).as("pid 1 execs sleep").isLessThan(deadline);
            Thread.sleep(10);
        }
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "nobody", "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        assertThat(CryoCli.run("inspect", images.toString()).out()).contains("1 POSIX message queue(s) /kept (0 msg)");
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "nobody2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("nobody2");
        assertThat(CryoCli.run("ps").out()).containsPattern("nobody2 +\\d+ running");
    }

    @Test
    void cgroupLimitsComeBackInTheClonesOwnCgroupAndAForkAtPidsMaxStillFails() throws Exception {
        Assumptions.assumeTrue(Files.exists(Path.of("/sys/fs/cgroup/pids/cgroup.procs"))
                        && Files.exists(Path.of("/sys/fs/cgroup/memory/cgroup.procs")) && Files.exists(Path.of("/sys/fs/cgroup/cpu/cgroup.procs")),
                "this test checks the v1 hierarchies of memory, pids and cpu that a hybrid system mounts");
        Path targetState = runTarget("lim", List.of("--memory", "64m", "--pids", "5", "--cpus", "0.5"), "pidlimit");
        assertThat(Files.readString(targetState.resolve("children")).strip()).as("pid 1 and its children fill pids.max").isEqualTo("4");
        assertThat(check("lim", targetState)).isEqualTo("PASS");
        List<Path> original = v1Cgroups("lim");
        assertThat(original).hasSize(3);

        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "lim", "-D", images.toString(), "--leave-running");
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        assertThat(CryoCli.run("inspect", images.toString()).out())
                .contains("cgroup limits {cpu.max=50000 100000, memory.max=67108864, pids.max=5}");
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "lim2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("lim2");
        assertThat(check("lim2", targetState)).as("the clone at its pids.max").isEqualTo("PASS");
        assertThat(check("lim", targetState)).isEqualTo("PASS");

        List<Path> clone = v1Cgroups("lim2");
        assertThat(clone).hasSize(3).doesNotContainAnyElementsOf(original);
        Set<String> restored = new TreeSet<>(Files.readAllLines(cgroupOf("lim2").resolve("cgroup.procs")));
        assertThat(restored).hasSize(5);
        for (Path d : clone) {
            assertThat(new TreeSet<>(Files.readAllLines(d.resolve("cgroup.procs")))).as(d + " holds the clone's processes")
                    .isEqualTo(restored);
        }
        assertThat(limit(clone, "memory.limit_in_bytes")).isEqualTo("67108864");
        assertThat(limit(clone, "pids.max")).isEqualTo("5");
        assertThat(limit(clone, "cpu.cfs_quota_us")).isEqualTo("50000");
        assertThat(limit(clone, "cpu.cfs_period_us")).isEqualTo("100000");
        assertThat(CryoCli.run("ps").out()).containsPattern("lim2 +\\d+ running +\\d");

        assertThat(CryoCli.run("kill", "lim2").exitCode()).isZero();
        assertThat(clone).as("removed with the container").allMatch(d -> !Files.exists(d));
    }

    @Test
    void badLimitsAreRefusedClearly() {
        CryoCli.Result memory = CryoCli.run("run", "-d", "--name", "badmem", "--memory", "lots", "--", "/bin/true");
        assertThat(memory.exitCode()).isNotZero();
        assertThat(memory.err()).contains("--memory takes a number of bytes, optionally with k, m or g: not 'lots'");
        CryoCli.Result cpus = CryoCli.run("run", "-d", "--name", "badcpu", "--cpus", "0.001", "--", "/bin/true");
        assertThat(cpus.err()).contains("--cpus must be at least 0.01");
        assertThat(CryoCli.run("ps").out()).doesNotContain("badmem").doesNotContain("badcpu");
    }

    private List<Path> v1Cgroups(String name) throws IOException {
        String json = Files.readString(state.resolve(name + "/container.json"));
        java.util.regex.Matcher list = java.util.regex.Pattern.compile("\"v1Cgroups\": \\[([^\\]]*)\\]").matcher(json);
        List<Path> dirs = new ArrayList<>();
        if (list.find()) {
            java.util.regex.Matcher dir = java.util.regex.Pattern.compile("\"([^\"]+)\"").matcher(list.group(1));
            while (dir.find()) {
                dirs.add(Path.of(dir.group(1)));
            }
        }
        return dirs;
    }

    private Path cgroupOf(String name) throws IOException {
        return Path.of(Files.readString(state.resolve(name + "/container.json")).replaceAll("(?s).*\"cgroup\": \"([^\"]+)\".*", "$1"));
    }

    /** The content of the one {@code file} among the cgroups {@code dirs}. */
    private static String limit(List<Path> dirs, String file) throws IOException {
        for (Path d : dirs) {
            if (Files.exists(d.resolve(file))) {
                return Files.readString(d.resolve(file)).strip();
            }
        }
        throw new AssertionError("no cgroup of " + dirs + " has " + file);
    }

    @Test
    void semUndoAdjustmentsAreMeasuredWithoutChangeAndComeBackWithTheProcess() throws Exception {
        Path targetState = runTarget("undo", List.of(), "semundo");
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "undo", "-D", images.toString(), "--leave-running");
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        // the child's: +2 on semaphore 0, -3 on semaphore 1 of set 0 (zeros are left out of JSON)
        String json = CryoCli.run("inspect", images.toString(), "--json").out().replaceAll("\\s+", "");
        assertThat(json.contains("\"semundo\":{\"adjustments\":[{\"semadj\":2},{\"semnum\":1,\"semadj\":-3}]}"))
                .as("inspect --json shows the adjustments").isTrue();
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "undo2", "-d");
        assertThat(restore.exitCode()).as(restore.toString()).isZero();
        containers.add("undo2");
        // the clone's child still holds adjustments +2 and -3: its exit undoes its operations
        assertThat(check("undo2", targetState)).isEqualTo("PASS");
        // the original's child, measured at checkpoint, still holds them too
        assertThat(check("undo", targetState)).isEqualTo("PASS");
    }

    /** Asks the target, pid 1 of container {@code name}, to check itself (SIGUSR2); its verdict. */
    private String check(String name, Path targetState) throws Exception {
        Files.deleteIfExists(targetState.resolve("result"));
        dev.cryo.sys.Sys.kill(hostPid(name), 12);
        return awaitFile(targetState.resolve("result")).strip();
    }

    static String awaitFile(Path file) throws InterruptedException, IOException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!Files.exists(file)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(file + " did not appear");
            }
            Thread.sleep(10);
        }
        return Files.readString(file);
    }

    /** The lines of a file of the container's overlay upper layer, as the image saved it. */
    static List<String> savedLines(Path images, String path) {
        RootfsLayer layer = ImageReader.open(images, true).read(ImageKind.ROOTFS_UPPER, 0, RootfsLayer.parser());
        for (LayerEntry e : layer.getEntriesList()) {
            if (e.getPath().equals(path)) {
                String text = e.getData().toStringUtf8();
                return List.of(text.substring(0, text.lastIndexOf('\n') + 1).split("\n"));
            }
        }
        throw new AssertionError("the image's upper layer has no " + path);
    }

    @Test
    void runWaitsForTheCommandAndGivesItsExitCode() {
        CryoCli.Result r = CryoCli.run("run", "--name", "fg", "--hostname", "inside", "--",
                "/bin/sh", "-c", "test $$ = 1 && test \"$(hostname)\" = inside && test -r /proc/1/cmdline && exit 7");
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(7);
        assertThat(Files.exists(state.resolve("fg"))).as("a foreground container is removed when it exits").isFalse();
    }

    @Test
    void aUserNamespaceWithItsOwnRootGetsProcAndDevices() {
        // proc can be mounted in a user namespace only while a proc is in sight: before pivot_root
        CryoCli.Result r = CryoCli.run("run", "--name", "userfg", "--user", "--rootfs", rootfs + ":/usr", "--", "/bin/sh", "-c",
                "test $$ = 1 && test -r /proc/1/cmdline && test -c /dev/null && echo x > /dev/null"
                        + " && test \"$(cat /proc/self/uid_map | tr -s ' ')\" = ' 0 0 4294967295' && exit 7");
        assertThat(r.exitCode()).as(r.toString()).isEqualTo(7);
    }

    @Test
    void restoreInTheForegroundWaitsForTheContainer() throws Exception {
        run("short", "--", "/bin/sh", "-c", "i=0; while [ $i -lt 30 ]; do i=$((i + 1)); sleep 0.02; done; exit 5");
        Path images = tmp.resolve("img");
        CryoCli.Result dump = CryoCli.run("checkpoint", "--container", "short", "-D", images.toString());
        assertThat(dump.exitCode()).as(dump.toString()).isZero();
        CryoCli.Result restore = CryoCli.run("restore", "-D", images.toString(), "--name", "short2");
        assertThat(restore.exitCode()).as(restore.toString()).isEqualTo(5);
        assertThat(restore.err()).contains("Restored container short2");
        assertThat(Files.exists(state.resolve("short2"))).as("removed once it exited").isFalse();
    }

    @Test
    void clearErrors() throws IOException {
        run("busy", "--", "/bin/sleep", "100");
        CryoCli.Result taken = CryoCli.run("run", "-d", "--name", "busy", "--", "/bin/true");
        assertThat(taken.exitCode()).isEqualTo(1);
        assertThat(taken.err()).contains("container name busy is taken by a running container");
        CryoCli.Result badRoot = CryoCli.run("run", "-d", "--name", "x", "--rootfs", tmp.resolve("nope").toString(), "--", "/bin/true");
        assertThat(badRoot.err()).contains("is not a directory");
        CryoCli.Result notFound = CryoCli.run("run", "-d", "--name", "y", "--", "no-such-command");
        assertThat(notFound.err()).contains("no-such-command: not found in the container");
        CryoCli.Result badVolume = CryoCli.run("run", "-d", "--name", "v", "-v", "data", "--", "/bin/true");
        assertThat(badVolume.err()).contains("volume data is not HOSTDIR:CTRDIR[:ro] with an absolute CTRDIR");
        CryoCli.Result underDev = CryoCli.run("run", "-d", "--name", "v", "-v", tmp + ":/dev/shm", "--", "/bin/true");
        assertThat(underDev.err()).contains("would be hidden under the container's own /dev");
        CryoCli.Result noHostDir = CryoCli.run("run", "-d", "--name", "v", "-v", tmp.resolve("nope") + ":/data", "--", "/bin/true");
        assertThat(noHostDir.err()).contains("volume " + tmp.resolve("nope") + " (for /data) does not exist on the host");
        CryoCli.Result noPlace = CryoCli.run("run", "-d", "--name", "v", "-v", tmp + ":/no-such-dir", "--", "/bin/true");
        assertThat(noPlace.err()).contains("/no-such-dir does not exist, and a container on the host's root (no --rootfs)");
        assertThat(Path.of("/no-such-dir")).doesNotExist();
        CryoCli.Result none = CryoCli.run("checkpoint", "--container", "ghost", "-D", tmp.resolve("i").toString());
        assertThat(none.err()).contains("no container named ghost");

        Path cgroup = Path.of(Files.readString(state.resolve("busy/container.json")).replaceAll("(?s).*\"cgroup\": \"([^\"]+)\".*", "$1"));
        assertThat(cgroup).isDirectory();
        CryoCli.Result kill = CryoCli.run("kill", "busy");
        assertThat(kill.exitCode()).as(kill.toString()).isZero();
        assertThat(cgroup).doesNotExist();
        assertThat(CryoCli.run("ps").out()).doesNotContain("busy");
    }

    /**
     * Runs C target {@code program} as container {@code name} (with {@code runOptions} before
     * "--"), its state directory and then {@code args} as arguments, and waits until it is ready.
     * Returns the state directory, which the check reads through.
     */
    private Path runTarget(String name, List<String> runOptions, String program, String... args) throws IOException, InterruptedException {
        Path binary = dev.cryo.testing.TargetBuilder.build(program);
        Path targetState = tmp.resolve(name + "-state");
        Files.createDirectories(targetState);
        List<String> argv = new ArrayList<>(runOptions);
        argv.addAll(List.of("--", binary.toString(), targetState.toString()));
        argv.addAll(List.of(args));
        run(name, argv.toArray(String[]::new));
        awaitFile(targetState.resolve("ready"));
        return targetState;
    }

    private void run(String name, String... args) {
        List<String> argv = new ArrayList<>(List.of("run", "-d", "--name", name));
        argv.addAll(List.of(args));
        CryoCli.Result r = CryoCli.run(argv.toArray(String[]::new));
        assertThat(r.exitCode()).as(r.toString()).isZero();
        containers.add(name);
    }

    private int hostPid(String name) throws IOException {
        String json = Files.readString(state.resolve(name + "/container.json"));
        return Integer.parseInt(json.replaceAll("(?s).*\"initPid\": (\\d+).*", "$1"));
    }

    /** The pids of the container's processes as its own pid namespace numbers them. */
    private Set<Integer> idsInside(String name) throws IOException {
        String json = Files.readString(state.resolve(name + "/container.json"));
        Path cgroup = Path.of(json.replaceAll("(?s).*\"cgroup\": \"([^\"]+)\".*", "$1"));
        Set<Integer> ids = new TreeSet<>();
        for (String pid : Files.readAllLines(cgroup.resolve("cgroup.procs"))) {
            try {
                for (String line : Files.readAllLines(Path.of("/proc", pid, "status"))) {
                    if (line.startsWith("NSpid:")) {
                        String[] f = line.split("\\s+");
                        ids.add(Integer.parseInt(f[f.length - 1]));
                    }
                }
            } catch (NoSuchFileException exited) {
                // a sleep that ended meanwhile
            }
        }
        return ids;
    }

    /** Lines "N ..." with N = 1, 2, 3 ... in order. */
    /**
     * The counter script and python program of a restored clone (their logs in {@code out})
     * continue from what they had logged at checkpoint time, rolled back to it with the files:
     * no gap, no repeat; the script is still pid 1 in a UTS namespace called box, and python
     * keeps its pid.
     */
    static void assertCountersContinue(String clone, Path out, List<String> shellAtCheckpoint, List<String> pythonAtCheckpoint)
            throws InterruptedException {
        List<String> shell = awaitLines(out.resolve("shell.log"), shellAtCheckpoint.size() + 20);
        List<String> python = awaitLines(out.resolve("python.log"), pythonAtCheckpoint.size() + 20);
        assertThat(shell.subList(0, shellAtCheckpoint.size())).isEqualTo(shellAtCheckpoint);
        assertThat(python.subList(0, pythonAtCheckpoint.size())).isEqualTo(pythonAtCheckpoint);
        assertCounts(shell, clone + " shell.log");
        assertCounts(python, clone + " python.log");
        assertThat(shell).allMatch(l -> l.endsWith(" 1 box"), "every shell line says pid 1, host box");
        String pythonPid = pythonAtCheckpoint.getFirst().split(" ")[1];
        assertThat(python).allMatch(l -> l.endsWith(" " + pythonPid + " /app/counter.sh"),
                "python keeps its pid " + pythonPid + " and sees the script as pid 1");
    }

    static void assertCounts(List<String> lines, String what) {
        for (int i = 0; i < lines.size(); i++) {
            assertThat(lines.get(i)).as(what + " line " + (i + 1)).startsWith((i + 1) + " ");
        }
    }

    /** Waits until {@code file} has at least {@code min} complete lines; returns the complete ones. */
    static List<String> awaitLines(Path file, int min) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        List<String> lines = List.of();
        while (System.nanoTime() < deadline) {
            try {
                String text = Files.readString(file);
                lines = List.of(text.substring(0, text.lastIndexOf('\n') + 1).split("\n"));
                if (!text.isEmpty() && lines.size() >= min) {
                    return lines;
                }
            } catch (NoSuchFileException notYet) {
                // the container has not written it yet
            } catch (IOException e) {
                throw new AssertionError(e);
            }
            Thread.sleep(20);
        }
        throw new AssertionError(file + " has " + lines.size() + " lines, expected " + min);
    }
}
