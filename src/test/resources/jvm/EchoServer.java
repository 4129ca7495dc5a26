import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A JVM TCP server, unaware of Cryo: listens on a port the kernel picks (a dual-stack socket, so
 * IPv4 clients arrive as ::ffff:127.0.0.1), writes it to the file given, and answers every line
 * "N" of every connection with "N+1 served=TOTAL", TOTAL counting the lines of all connections.
 */
public class EchoServer {
    public static void main(String[] args) throws Exception {
        AtomicLong served = new AtomicLong();
        try (ServerSocket server = new ServerSocket(0)) {
            Path port = Path.of(args[0]);
            Files.writeString(Path.of(args[0] + ".tmp"), server.getLocalPort() + "\n");
            Files.move(Path.of(args[0] + ".tmp"), port);
            while (true) {
                Socket s = server.accept();
                Thread.ofPlatform().start(() -> {
                    try (s; BufferedReader in = new BufferedReader(new InputStreamReader(s.getInputStream()));
                         PrintWriter out = new PrintWriter(s.getOutputStream(), true)) {
                        for (String line; (line = in.readLine()) != null; ) {
                            out.println((Long.parseLong(line.strip()) + 1) + " served=" + served.incrementAndGet());
                        }
                    } catch (Exception e) {
                        System.err.println("connection ended: " + e);
                    }
                });
            }
        }
    }
}
