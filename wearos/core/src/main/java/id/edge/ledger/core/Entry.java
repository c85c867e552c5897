package id.edge.ledger.core;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;

/** One spoken ledger entry as the watch queues and posts it: a client id, the transcript, when it was said. */
public final class Entry {
    public final String id;
    public final String text;
    public final String createdAt;

    public Entry(String id, String text, String createdAt) {
        if (id == null || !id.matches("[A-Za-z0-9_.:-]{1,64}")) {
            throw new IllegalArgumentException("entry id must be 1-64 characters of letters, digits, _ . : -");
        }
        if (text == null || text.trim().isEmpty()) {
            throw new IllegalArgumentException("entry text must not be empty");
        }
        if (text.length() > 1000) {
            throw new IllegalArgumentException("entry text longer than 1000 characters");
        }
        this.id = id;
        this.text = text.trim();
        this.createdAt = createdAt;
    }

    /** A new entry with a random id (the id makes re-sending idempotent on the server). */
    public static Entry create(String text, String createdAt) {
        return new Entry(UUID.randomUUID().toString().replace("-", ""), text, createdAt);
    }

    public String toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("text", text);
        if (createdAt != null) {
            m.put("created_at", createdAt);
        }
        m.put("source", "watch");
        return Json.write(m);
    }

    public static Entry fromJson(String json) {
        Map<String, Object> m = Json.parseObject(json);
        Object id = m.get("id");
        Object text = m.get("text");
        Object at = m.get("created_at");
        return new Entry(id instanceof String ? (String) id : null, text instanceof String ? (String) text : null,
                at instanceof String ? (String) at : null);
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Entry)) {
            return false;
        }
        Entry e = (Entry) o;
        return id.equals(e.id) && text.equals(e.text) && Objects.equals(createdAt, e.createdAt);
    }

    @Override
    public int hashCode() {
        return Objects.hash(id, text, createdAt);
    }
}
