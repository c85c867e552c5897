package id.edge.ledger;

import android.Manifest;
import android.app.Activity;
import android.content.Intent;
import android.content.pm.PackageManager;
import android.os.Bundle;
import android.os.Handler;
import android.os.Looper;
import android.speech.RecognitionListener;
import android.speech.RecognizerIntent;
import android.speech.SpeechRecognizer;
import android.widget.Button;
import android.widget.TextView;
import id.edge.ledger.core.Entry;
import id.edge.ledger.core.OfflineQueue;
import id.edge.ledger.core.RetryPolicy;
import id.edge.ledger.core.SyncClient;
import java.io.File;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Tap to speak -> Android SpeechRecognizer (id-ID) -> the transcript is queued on the watch (OfflineQueue)
 * and synced to `edge voice serve`; the server parses it and its answer is shown as the preview.
 * All queue/sync logic lives in the :core module, which CI tests without the Android SDK.
 */
public class MainActivity extends Activity {
    private final ExecutorService io = Executors.newSingleThreadExecutor();
    private final Handler main = new Handler(Looper.getMainLooper());
    private final RetryPolicy retry = new RetryPolicy(2000, 300000, new Random());
    private OfflineQueue queue;
    private OfflineQueue rejected;
    private SpeechRecognizer recognizer;
    private TextView preview;
    private TextView queueView;
    private int failures;

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        setContentView(R.layout.activity_main);
        preview = findViewById(R.id.preview);
        queueView = findViewById(R.id.queue);
        queue = new OfflineQueue(new File(getFilesDir(), "queue.jsonl").toPath());
        rejected = new OfflineQueue(new File(getFilesDir(), "rejected.jsonl").toPath());
        Button speak = findViewById(R.id.speak);
        speak.setOnClickListener(v -> listen());
        if (checkSelfPermission(Manifest.permission.RECORD_AUDIO) != PackageManager.PERMISSION_GRANTED) {
            requestPermissions(new String[] {Manifest.permission.RECORD_AUDIO}, 1);
        }
        sync();
    }

    private void listen() {
        if (!SpeechRecognizer.isRecognitionAvailable(this)) {
            preview.setText("No speech recogniser on this watch");
            return;
        }
        if (recognizer == null) {
            recognizer = SpeechRecognizer.createSpeechRecognizer(this);
        }
        recognizer.setRecognitionListener(new RecognitionListener() {
            @Override public void onResults(Bundle results) {
                ArrayList<String> texts = results.getStringArrayList(SpeechRecognizer.RESULTS_RECOGNITION);
                if (texts == null || texts.isEmpty()) {
                    preview.setText("Heard nothing, try again");
                    return;
                }
                enqueue(texts.get(0));
            }
            @Override public void onError(int error) { preview.setText("Speech error " + error); }
            @Override public void onReadyForSpeech(Bundle p) { preview.setText("Listening..."); }
            @Override public void onBeginningOfSpeech() {}
            @Override public void onRmsChanged(float rms) {}
            @Override public void onBufferReceived(byte[] b) {}
            @Override public void onEndOfSpeech() {}
            @Override public void onPartialResults(Bundle p) {}
            @Override public void onEvent(int t, Bundle p) {}
        });
        Intent intent = new Intent(RecognizerIntent.ACTION_RECOGNIZE_SPEECH);
        intent.putExtra(RecognizerIntent.EXTRA_LANGUAGE_MODEL, RecognizerIntent.LANGUAGE_MODEL_FREE_FORM);
        intent.putExtra(RecognizerIntent.EXTRA_LANGUAGE, "id-ID");
        recognizer.startListening(intent);
    }

    private void enqueue(String text) {
        preview.setText(text);
        io.execute(() -> {
            try {
                queue.add(Entry.create(text, OffsetDateTime.now().toString()));
            } catch (Exception e) {
                main.post(() -> preview.setText("Could not queue: " + e.getMessage()));
                return;
            }
            main.post(this::sync);
        });
    }

    private void sync() {
        io.execute(() -> {
            try {
                SyncClient client = new SyncClient(BuildConfig.LEDGER_URL, BuildConfig.LEDGER_TOKEN, SyncClient.http());
                SyncClient.Result r = client.syncOnce(queue, rejected);
                int left = queue.size();
                main.post(() -> queueView.setText("synced " + r.sent + ", waiting " + left
                        + (r.rejected > 0 ? ", rejected " + r.rejected : "")));
                if (left > 0) {
                    long wait = retry.delay(failures++);
                    main.postDelayed(this::sync, wait);
                } else {
                    failures = 0;
                }
            } catch (Exception e) {
                main.post(() -> queueView.setText("sync failed: " + e.getMessage()));
            }
        });
    }

    @Override
    protected void onDestroy() {
        if (recognizer != null) {
            recognizer.destroy();
        }
        io.shutdown();
        super.onDestroy();
    }
}
