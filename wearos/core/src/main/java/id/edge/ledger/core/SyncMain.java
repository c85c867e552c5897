package id.edge.ledger.core;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/**
 * Command-line driver of the watch core (used by the cross-language contract test and handy on a desktop):
 * java id.edge.ledger.core.SyncMain QUEUE_FILE URL TOKEN [ENTRIES_JSONL]
 * queues each line of ENTRIES_JSONL (if given), syncs once, prints sent/rejected/left as JSON.
 */
public final class SyncMain {
    private SyncMain() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: SyncMain QUEUE_FILE URL TOKEN [ENTRIES_JSONL]");
            System.exit(2);
        }
        OfflineQueue q = new OfflineQueue(Paths.get(args[0]));
        OfflineQueue rejected = new OfflineQueue(Paths.get(args[0] + ".rejected"));
        if (args.length > 3) {
            Path src = Paths.get(args[3]);
            for (String line : Files.readAllLines(src, StandardCharsets.UTF_8)) {
                if (!line.trim().isEmpty()) {
                    q.add(Entry.fromJson(line));
                }
            }
        }
        SyncClient.Result r = new SyncClient(args[1], args[2], SyncClient.http()).syncOnce(q, rejected);
        System.out.println("{\"sent\":" + r.sent + ",\"rejected\":" + r.rejected + ",\"left\":" + q.size()
                + ",\"status\":" + r.status + ",\"stopped\":" + r.stopped + "}");
    }
}
