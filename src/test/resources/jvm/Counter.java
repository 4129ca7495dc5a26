import java.io.File;
import java.io.FileWriter;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The JVM workload of the tests: a pool of four threads updating a ConcurrentHashMap, and a
 * progress line written (atomically) to args[0] every 50 ms: "total t0 t1 t2 t3". Plain java.io:
 * on JDK 17 the first use of NIO file channels opens a socketpair, and sockets are not saved yet.
 */
public class Counter {
    public static void main(String[] args) throws Exception {
        File progress = new File(args[0]);
        File tmp = new File(args[0] + ".tmp");
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
            try (FileWriter out = new FileWriter(tmp)) {
                out.write(line.append('\n').toString());
            }
            if (!tmp.renameTo(progress)) {
                throw new IllegalStateException("cannot rename " + tmp);
            }
            Thread.sleep(50);
        }
    }
}
