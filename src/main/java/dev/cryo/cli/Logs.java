package dev.cryo.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.logging.Formatter;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.logging.StreamHandler;

/**
 * Routes Cryo's logs: each class logs under its own short prefix ("mem", "files", ...). Lines go
 * to the log file when one is given, and to stderr when verbose. The log file is exactly the
 * file named, written afresh: not a {@code FileHandler}, whose file name is a pattern ("%t",
 * "%h", "%u" expand), which leaves a ".lck" file beside the log, and which writes to "F.1"
 * when F is still held by an earlier command in the same JVM.
 */
final class Logs {
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");

    private Logs() {
    }

    static final class LineFormatter extends Formatter {
        @Override
        public String format(LogRecord r) {
            String level = r.getLevel() == Level.SEVERE ? "" : r.getLevel() == Level.WARNING ? "Warn: " : "";
            return "(" + LocalTime.now().format(TIME) + ") " + r.getLoggerName() + ": " + level + formatMessage(r) + "\n";
        }
    }

    /** verbosity as criu counts it: 0 errors only, 1 + warnings, 2 + info... 4 + debug. */
    static void configure(Path logFile, int verbosity, PrintWriter err) {
        close();
        Logger root = Logger.getLogger("");
        Level level = verbosity >= 4 ? Level.FINE : verbosity >= 2 ? Level.INFO : verbosity == 1 ? Level.WARNING : Level.SEVERE;
        root.setLevel(logFile != null ? (verbosity >= 4 ? Level.FINE : Level.INFO) : level);
        if (logFile != null) {
            try {
                StreamHandler fh = new StreamHandler(Files.newOutputStream(logFile), new LineFormatter()) {
                    @Override
                    public synchronized void publish(LogRecord r) {
                        super.publish(r);
                        flush(); // a crash or a kill must not lose the last lines
                    }
                };
                fh.setEncoding(StandardCharsets.UTF_8.name());
                fh.setLevel(verbosity >= 4 ? Level.FINE : Level.INFO);
                root.addHandler(fh);
            } catch (IOException e) {
                err.println("Error: cannot open log file " + logFile + ": " + e.getMessage());
            }
        }
        if (verbosity >= 2) {
            Handler console = new Handler() {
                private final Formatter f = new LineFormatter();

                @Override
                public void publish(LogRecord r) {
                    if (isLoggable(r)) {
                        err.print(f.format(r));
                        err.flush();
                    }
                }

                @Override
                public void flush() {
                    err.flush();
                }

                @Override
                public void close() {
                }
            };
            console.setLevel(level);
            root.addHandler(console);
        }
        if (logFile != null || verbosity >= 2) {
            // the first time stamp loads the time zone rules, ~5 ms: here, not in the first line
            // logged while a checkpoint holds the processes frozen
            new LineFormatter().format(new LogRecord(Level.INFO, ""));
        }
    }

    /** Ends the command's logging: its handlers are flushed, closed and removed. */
    static void close() {
        Logger root = Logger.getLogger("");
        for (Handler h : root.getHandlers()) {
            root.removeHandler(h);
            h.flush();
            h.close();
        }
    }
}
