package id.edge.ledger.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.Test;

public class CoreTest {
    private static Path tmp() throws IOException {
        return Files.createTempDirectory("ledger-core").resolve("queue.jsonl");
    }

    @Test
    public void jsonRoundTripKeepsQuotesAndUnicode() {
        Entry e = new Entry("a1", "pengeluaran kopi \"tubruk\" 5.000 rupiah \u00e9\n", "2026-11-02T08:15:00+07:00");
        Entry back = Entry.fromJson(e.toJson());
        assertEquals(e, back);
        assertTrue(e.toJson().contains("\\\"tubruk\\\""));
    }

    @Test
    public void contractExamplesParseAndReserialise() throws IOException {
        Path p = Paths.get(System.getProperty("contract", "../contract/examples.jsonl"));
        int n = 0;
        for (String line : Files.readAllLines(p, StandardCharsets.UTF_8)) {
            Entry e = Entry.fromJson(line);
            Map<String, Object> original = Json.parseObject(line);
            Map<String, Object> again = Json.parseObject(e.toJson());
            assertEquals(original, again);
            n++;
        }
        assertEquals(6, n);
    }

    @Test
    public void badEntriesAreRefused() {
        String[] bad = {"", "   ", null};
        for (String t : bad) {
            try {
                new Entry("x", t, null);
                fail("accepted empty text");
            } catch (IllegalArgumentException expected) {
                // ok
            }
        }
        try {
            new Entry("has space", "pengeluaran x 5 rupiah", null);
            fail("accepted a bad id");
        } catch (IllegalArgumentException expected) {
            // ok
        }
        try {
            Json.parseObject("{\"id\": \"a\", \"text\": ");
            fail("accepted truncated JSON");
        } catch (IllegalArgumentException expected) {
            // ok
        }
    }

    @Test
    public void queueSurvivesRestartAndTornLine() throws IOException {
        Path f = tmp();
        OfflineQueue q = new OfflineQueue(f);
        q.add(new Entry("e1", "pengeluaran risol 5.000 rupiah", null));
        q.add(new Entry("e2", "pengeluaran mie 10.000 rupiah", null));
        q.add(new Entry("e1", "pengeluaran risol 5.000 rupiah", null)); // same id: queued once
        Files.write(f, "{\"id\":\"e3\",\"text\":\"peng".getBytes(StandardCharsets.UTF_8), StandardOpenOption.APPEND);
        OfflineQueue again = new OfflineQueue(f); // "after a restart"
        List<Entry> p = again.pending();
        assertEquals(2, p.size());
        assertEquals("e1", p.get(0).id);
        assertEquals(1, again.skippedLines());
        again.remove("e1");
        assertEquals(1, new OfflineQueue(f).size());
        assertFalse(Files.exists(f.resolveSibling(f.getFileName() + ".tmp")));
    }

    @Test
    public void backoffDoublesUpToTheCap() {
        RetryPolicy r = new RetryPolicy(500, 60000, new Random(1));
        assertEquals(500, r.ceiling(0));
        assertEquals(1000, r.ceiling(1));
        assertEquals(32000, r.ceiling(6));
        assertEquals(60000, r.ceiling(7));
        assertEquals(60000, r.ceiling(40));
        for (int i = 0; i < 100; i++) {
            long d = r.delay(3);
            assertTrue(d >= 0 && d <= 4000);
        }
        assertTrue(RetryPolicy.retryable(503));
        assertTrue(RetryPolicy.retryable(-1));
        assertFalse(RetryPolicy.retryable(400));
    }

    @Test
    public void syncRemovesOnlyAcknowledgedAndSetsAsideBadOnes() throws IOException {
        Path f = tmp();
        OfflineQueue q = new OfflineQueue(f);
        OfflineQueue rejected = new OfflineQueue(f.resolveSibling("rejected.jsonl"));
        for (int i = 0; i < 4; i++) {
            q.add(new Entry("s" + i, "pengeluaran item " + i + " 1.000 rupiah", null));
        }
        List<String> seen = new ArrayList<>();
        int[] answers = {201, 400, 200, 503};
        SyncClient.Transport fake = (url, token, json) -> {
            seen.add(Entry.fromJson(json).id);
            return answers[seen.size() - 1];
        };
        SyncClient.Result r = new SyncClient("http://hub/", "t", fake).syncOnce(q, rejected);
        assertEquals(2, r.sent);
        assertEquals(1, r.rejected);
        assertTrue(r.stopped);
        assertEquals(503, r.status);
        assertEquals(1, q.size());
        assertEquals("s3", q.pending().get(0).id);
        assertEquals("s1", rejected.pending().get(0).id);

        SyncClient.Transport down = (url, token, json) -> {
            throw new IOException("connection refused");
        };
        SyncClient.Result r2 = new SyncClient("http://hub", "t", down).syncOnce(q, rejected);
        assertEquals(-1, r2.status);
        assertEquals(1, q.size()); // nothing lost while the server is down
    }
}
