package id.edge.ledger.core;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Sends queued entries to `edge voice serve`, oldest first. An entry leaves the queue only when the server
 * answered 200/201 (stored, or already stored: the server is idempotent by entry id). A network error, 5xx,
 * 408 or 429 stops the round (retry later with the RetryPolicy); 401 stops it too (fix the token); any other
 * 4xx sets that entry aside as rejected so one bad entry cannot block the queue.
 */
public final class SyncClient {
    /** How one HTTP POST is made; the watch uses HttpURLConnection, tests can use the same or a fake. */
    public interface Transport {
        int post(String url, String token, String json) throws IOException;
    }

    public static final class Result {
        public int sent;
        public int rejected;
        public int status; // last HTTP status, -1 for a network error, 0 when nothing was sent
        public boolean stopped;
        public final List<String> rejectedIds = new ArrayList<>();
    }

    private final String baseUrl;
    private final String token;
    private final Transport transport;

    public SyncClient(String baseUrl, String token, Transport transport) {
        this.baseUrl = baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl;
        this.token = token;
        this.transport = transport;
    }

    public Result syncOnce(OfflineQueue queue, OfflineQueue rejected) throws IOException {
        Result r = new Result();
        for (Entry e : queue.pending()) {
            int status;
            try {
                status = transport.post(baseUrl + "/api/entries", token, e.toJson());
            } catch (IOException io) {
                status = -1;
            }
            r.status = status;
            if (status == 200 || status == 201) {
                queue.remove(e.id);
                r.sent++;
            } else if (status == 401 || RetryPolicy.retryable(status)) {
                r.stopped = true;
                break;
            } else {
                if (rejected != null) {
                    rejected.add(e);
                }
                queue.remove(e.id);
                r.rejected++;
                r.rejectedIds.add(e.id);
            }
        }
        return r;
    }

    /** The real transport: HttpURLConnection, JSON body, bearer token, 10 s timeouts. */
    public static Transport http() {
        return (url, token, json) -> {
            HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
            c.setConnectTimeout(10000);
            c.setReadTimeout(10000);
            c.setRequestMethod("POST");
            c.setDoOutput(true);
            c.setRequestProperty("Content-Type", "application/json; charset=utf-8");
            c.setRequestProperty("Authorization", "Bearer " + token);
            try (OutputStream out = c.getOutputStream()) {
                out.write(json.getBytes(StandardCharsets.UTF_8));
            }
            int status = c.getResponseCode();
            InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream();
            if (in != null) {
                in.readAllBytes();
                in.close();
            }
            c.disconnect();
            return status;
        };
    }
}
