package id.edge.ledger.core;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Entries waiting to be synced, one JSON line each in a file on the watch. Adding appends (and fsyncs);
 * removing rewrites the file through a temporary file and an atomic rename, so a crash never loses an entry.
 * A torn last line (power lost mid-append) is skipped on reading and counted.
 */
public final class OfflineQueue {
    private final Path file;
    private int skippedLines;

    public OfflineQueue(Path file) {
        this.file = file;
    }

    public synchronized void add(Entry e) throws IOException {
        for (Entry old : pending()) {
            if (old.id.equals(e.id)) {
                return; // already queued
            }
        }
        Files.createDirectories(file.toAbsolutePath().getParent());
        byte[] line = (e.toJson() + "\n").getBytes(StandardCharsets.UTF_8);
        try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(file,
                StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND)) {
            ch.write(java.nio.ByteBuffer.wrap(line));
            ch.force(true);
        }
    }

    /** Queued entries, oldest first. */
    public synchronized List<Entry> pending() throws IOException {
        List<Entry> out = new ArrayList<>();
        skippedLines = 0;
        if (!Files.exists(file)) {
            return out;
        }
        Map<String, Entry> seen = new LinkedHashMap<>();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (line.trim().isEmpty()) {
                continue;
            }
            try {
                Entry e = Entry.fromJson(line);
                seen.putIfAbsent(e.id, e);
            } catch (IllegalArgumentException bad) {
                skippedLines++;
            }
        }
        out.addAll(seen.values());
        return out;
    }

    public synchronized int skippedLines() {
        return skippedLines;
    }

    public synchronized void remove(String id) throws IOException {
        List<Entry> keep = new ArrayList<>();
        for (Entry e : pending()) {
            if (!e.id.equals(id)) {
                keep.add(e);
            }
        }
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        StringBuilder sb = new StringBuilder();
        for (Entry e : keep) {
            sb.append(e.toJson()).append('\n');
        }
        Files.write(tmp, sb.toString().getBytes(StandardCharsets.UTF_8));
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    public synchronized int size() throws IOException {
        return pending().size();
    }
}
