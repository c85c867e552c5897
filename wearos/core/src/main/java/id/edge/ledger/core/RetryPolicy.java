package id.edge.ledger.core;

import java.util.Random;

/** Exponential backoff with full jitter, capped: delay(n) is uniform in [0, min(cap, base * 2^n)]. */
public final class RetryPolicy {
    public final long baseMillis;
    public final long capMillis;
    private final Random random;

    public RetryPolicy(long baseMillis, long capMillis, Random random) {
        if (baseMillis <= 0 || capMillis < baseMillis) {
            throw new IllegalArgumentException("need 0 < base <= cap");
        }
        this.baseMillis = baseMillis;
        this.capMillis = capMillis;
        this.random = random;
    }

    public long ceiling(int attempt) {
        if (attempt < 0) {
            throw new IllegalArgumentException("attempt must be >= 0");
        }
        long c = baseMillis;
        for (int i = 0; i < attempt && c < capMillis; i++) {
            c *= 2;
        }
        return Math.min(c, capMillis);
    }

    public long delay(int attempt) {
        return (long) (random.nextDouble() * ceiling(attempt));
    }

    /** Status codes worth retrying later; other 4xx mean the entry itself is bad and is set aside. */
    public static boolean retryable(int status) {
        return status <= 0 || status == 408 || status == 429 || status >= 500;
    }
}
