import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The JVM workload of the tests: a pool of four threads updating a ConcurrentHashMap, and a
 * progress line written (atomically) to args[0] every 50 ms: "total t0 t1 t2 t3". Through NIO,
 * which on JDK 17 keeps one end of a socketpair open: that has to survive too.
 */
public class Counter {
    public static void main(String[] args) throws Exception {
        Path progress = Path.of(args[0]);
        Path tmp = Path.of(args[0] + ".tmp");
        ConcurrentHashMap<Integer, Long> counts = new ConcurrentHashMap<>();
        AtomicLong total = new AtomicLong();
        ExecutorService pool = Executors.newFixedThreadPool(4);
        for (int i = 0; i < 4; i++) {
            int key = i;
            pool.submit(() -> {
                while (true) {
                    counts.merge(key, 1L, Long::sum);
                    total.incrementAndGet();
                    Thread.sleep(1);
                }
            });
        }
        while (true) {
            StringBuilder line = new StringBuilder().append(total.get());
            for (int i = 0; i < 4; i++) {
                line.append(' ').append(counts.getOrDefault(i, 0L));
            }
            Files.writeString(tmp, line.append('\n').toString());
            Files.move(tmp, progress, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            Thread.sleep(50);
        }
    }
}
