// H2Client: Java's built-in HTTP/2 client (java.net.http.HttpClient, JDK 17),
// driven by test/test_594_java_client.py.
//
// It runs one scenario against a base URL and prints one JSON object on
// stdout (written by hand: no libraries beyond the JDK).  Per request: the
// status, HttpClient.Version, body length and sha256, a few headers, the
// error (exception class and message, with causes), timings in ms since the
// start, and the HTTP/2 stream id the client used (from its own header log,
// see below).
//
// The client is HttpClient.Version.HTTP_2.  https:// URLs: ALPN h2, the -ca
// certificate trusted (hostname verification off with
// -Djdk.internal.httpclient.disableHostnameVerification=true).  http://
// URLs: the JDK sends its first request as HTTP/1.1 with "Upgrade: h2c" and
// goes on with HTTP/2 on that connection after the 101.  No Accept-Encoding
// is sent, so bodies arrive as the server sent them.
//
// The wire: run with
// -Djdk.httpclient.HttpClient.log=errors,requests,headers,frames:control
// the JDK logs every frame but DATA and WINDOW_UPDATE it sends or
// receives, the header block of each stream it opens, and each response
// with the local port of its connection.  A java.util.logging handler keeps
// what matters: "wire" in the output lists the RST_STREAM (the JDK says
// RESET), GOAWAY and other frames (not HEADERS, SETTINGS, PING) and the
// "GOAWAY received" errors as "<ms> t<thread> <text>"; each result's
// "stream" is the stream id whose :path was that request's (-1 if none:
// the h2c Upgrade request is stream 1 but goes out as HTTP/1.1),
// "sent_content_length" the content-length in that header block ("none"
// without one) and "port" the local port its response came on (-1 if no
// response came).
//
// Every wait is bounded: --timeout (15) seconds per request, the body
// included (the JDK's own request timeout stops at the response headers).
//
// Build: javac -d <dir> H2Client.java; run: java -cp <dir> H2Client --url=... scenario
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpRequest.BodyPublisher;
import java.net.http.HttpRequest.BodyPublishers;
import java.net.http.HttpResponse;
import java.net.http.HttpResponse.BodyHandlers;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class H2Client {
    static final long T0 = System.nanoTime();
    static final Map<String, String> OPTS = new HashMap<>();
    static String base;
    static HttpClient client;

    static double ms() {
        return Math.round((System.nanoTime() - T0) / 1e5) / 10.0;
    }

    static String opt(String name, String dflt) {
        String v = OPTS.get(name);
        return v == null ? dflt : v;
    }

    static int intOpt(String name, int dflt) {
        return Integer.parseInt(opt(name, String.valueOf(dflt)));
    }

    static List<String> listOpt(String name) {
        String v = OPTS.get(name);
        if (v == null || v.isEmpty()) {
            throw new IllegalArgumentException("--" + name + " is needed");
        }
        List<String> out = new ArrayList<>();
        for (String s : v.split(",")) {
            out.add(s);
        }
        return out;
    }

    // -- what the JDK logs about the wire --------------------------------

    static final List<String> WIRE = Collections.synchronizedList(new ArrayList<>());
    static final Map<String, Integer> STREAM_OF_PATH =
            Collections.synchronizedMap(new HashMap<>());
    static final Map<String, String> SENT_CL_OF_PATH =
            Collections.synchronizedMap(new HashMap<>());
    static final Pattern CONTENT_LENGTH = Pattern.compile("\\n\\s*content-length: (\\d+)");
    static final Map<String, Integer> PORT_OF_URI = Collections.synchronizedMap(new HashMap<>());
    static final Pattern RESPONSE = Pattern.compile(
            "^RESPONSE: \\((\\S+) (\\S+)\\) (\\d+) (\\S+) Local port:\\s+(\\d+)");
    static final Pattern HEADERS_OUT = Pattern.compile(
            "HEADERS FRAME \\(stream=(\\d+)\\)[\\s\\S]*?\\n\\s*:path: ([^\\n]*)");
    // Kept in a field: java.util.logging holds loggers weakly.
    static Logger jdkLog;

    static final class WireHandler extends Handler {
        @Override
        public void publish(LogRecord rec) {
            String msg = getFormatter() == null ? rec.getMessage()
                    : getFormatter().formatMessage(rec);
            if (msg == null) {
                return;
            }
            if (msg.startsWith("RESPONSE: ")) {
                Matcher m = RESPONSE.matcher(msg);
                if (m.find()) {
                    PORT_OF_URI.put(m.group(2), Integer.parseInt(m.group(5)));
                }
                return;
            }
            if (msg.startsWith("HEADERS: ")) {
                Matcher m = HEADERS_OUT.matcher(msg);
                if (m.find()) {
                    String path = m.group(2).trim();
                    STREAM_OF_PATH.put(path, Integer.parseInt(m.group(1)));
                    Matcher cl = CONTENT_LENGTH.matcher(msg);
                    SENT_CL_OF_PATH.put(path, cl.find() ? cl.group(1) : "none");
                }
                return;
            }
            boolean keep = msg.startsWith("FRAME: ")
                    && !msg.contains(": HEADERS:") && !msg.contains(": SETTINGS:")
                    && !msg.contains(": PING:") && !msg.contains(": CONTINUATION:");
            keep |= msg.startsWith("ERROR: ") && msg.contains("GOAWAY");
            if (keep) {
                String first = msg.split("\n", 2)[0];
                WIRE.add(ms() + " t" + rec.getLongThreadID() + " " + first);
            }
        }

        @Override
        public void flush() {
        }

        @Override
        public void close() {
        }
    }

    static void setUpWireLog() {
        jdkLog = Logger.getLogger("jdk.httpclient.HttpClient");
        jdkLog.setUseParentHandlers(false);
        jdkLog.setLevel(Level.ALL);
        WireHandler h = new WireHandler();
        h.setFormatter(new java.util.logging.SimpleFormatter());
        jdkLog.addHandler(h);
    }

    // -- the client -------------------------------------------------------

    static HttpClient newClient() throws Exception {
        HttpClient.Builder b = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_2)
                .followRedirects(HttpClient.Redirect.NEVER)
                .connectTimeout(Duration.ofSeconds(10));
        if (base.startsWith("https://")) {
            KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
            ks.load(null, null);
            CertificateFactory cf = CertificateFactory.getInstance("X.509");
            int i = 0;
            try (InputStream in = Files.newInputStream(Path.of(opt("ca", "")))) {
                for (Certificate c : cf.generateCertificates(in)) {
                    ks.setCertificateEntry("ca" + i++, c);
                }
            }
            if (i == 0) {
                throw new IllegalArgumentException("no certificate in --ca " + opt("ca", ""));
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(
                    TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(ks);
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(null, tmf.getTrustManagers(), null);
            b.sslContext(ctx);
        }
        return b.build();
    }

    static HttpRequest.Builder request(String path) {
        return HttpRequest.newBuilder(URI.create(base + path))
                .timeout(Duration.ofSeconds(timeout));
    }

    /** --timeout: seconds any one request may take, body included (the
     *  JDK's own request timeout stops at the response headers). */
    static int timeout = 15;
    static final java.util.concurrent.ScheduledExecutorService WATCHDOG =
            java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "watchdog");
                t.setDaemon(true);
                return t;
            });

    /** sendAsync, waited for at most --timeout s, the body included; on
     *  expiry the exchange is cancelled and a TimeoutException thrown. */
    static <T> HttpResponse<T> exchange(HttpRequest req, HttpResponse.BodyHandler<T> h, Result r)
            throws Exception {
        HttpClient c = OWN_CLIENT.get();
        CompletableFuture<HttpResponse<T>> cf = (c != null ? c : client).sendAsync(req, info -> {
            r.headersMs = ms();
            return h.apply(info);
        });
        try {
            return cf.get(timeout, TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            cf.cancel(true);
            throw new java.util.concurrent.TimeoutException("no complete response within "
                    + timeout + " s (" + (r.headersMs > 0 ? "headers came" : "no headers") + ")");
        }
    }

    /** Closes `in` if it is still being read after --timeout s (the read
     *  then fails); cancel the returned future when done. */
    static java.util.concurrent.ScheduledFuture<?> guard(InputStream in, Result r) {
        return WATCHDOG.schedule(() -> {
            r.extra.put("watchdog", "closed the body after " + timeout + " s");
            try {
                in.close();
            } catch (IOException e) {
                // closing is all we want
            }
        }, timeout, TimeUnit.SECONDS);
    }

    // -- results ----------------------------------------------------------

    static final class Result {
        String label;
        String path;
        int status;
        String version = "";
        long bytes;
        String sha256 = "";
        String text = "";
        Map<String, String> headers = new LinkedHashMap<>();
        String error = "";
        double startMs;
        double headersMs;
        double endMs;
        Map<String, Object> extra = new LinkedHashMap<>();

        Result(String label, String path) {
            this.label = label;
            this.path = path;
            this.startMs = ms();
        }

        void response(HttpResponse<?> resp) {
            if (headersMs == 0) {
                headersMs = ms();
            }
            status = resp.statusCode();
            version = resp.version().toString();
            HttpHeaders h = resp.headers();
            for (String name : new String[] {"content-length", "etag", "content-type", "x-only"}) {
                h.firstValue(name).ifPresent(v -> headers.put(name, v));
            }
        }

        void body(byte[] data) {
            bytes = data.length;
            sha256 = hex(sha("SHA-256").digest(data));
            if (data.length <= 512) {
                text = new String(data, StandardCharsets.ISO_8859_1);
            }
        }

        String json() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("label", label);
            m.put("path", path);
            m.put("status", status);
            m.put("version", version);
            m.put("bytes", bytes);
            m.put("sha256", sha256);
            m.put("text", text);
            m.put("headers", headers);
            m.put("error", error);
            m.put("start_ms", startMs);
            m.put("headers_ms", headersMs);
            m.put("end_ms", endMs);
            Integer sid = STREAM_OF_PATH.get(path);
            m.put("stream", sid == null ? -1 : sid);
            m.put("sent_content_length", SENT_CL_OF_PATH.getOrDefault(path, ""));
            Integer port = PORT_OF_URI.get(base + path);
            m.put("port", port == null ? -1 : port);
            m.putAll(extra);
            return Json.of(m);
        }
    }

    static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (int depth = 0; t != null && depth < 5; t = t.getCause(), depth++) {
            if (t instanceof java.util.concurrent.CompletionException
                    || t instanceof java.util.concurrent.ExecutionException) {
                continue;
            }
            if (sb.length() > 0) {
                sb.append(" <- ");
            }
            sb.append(t.getClass().getName()).append(": ").append(t.getMessage());
        }
        return sb.toString();
    }

    static MessageDigest sha(String alg) {
        try {
            return MessageDigest.getInstance(alg);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) {
            sb.append(String.format("%02x", x));
        }
        return sb.toString();
    }

    /** GET (or "HEAD /p", "INM /p" with If-None-Match), the whole body read. */
    static Result fetch(String item, Map<String, String> etags) {
        String method = "GET";
        String path = item;
        int sp = item.indexOf(' ');
        if (sp > 0) {
            method = item.substring(0, sp);
            path = item.substring(sp + 1);
        }
        HttpRequest.Builder rb = request(path);
        if (method.equals("HEAD")) {
            rb.method("HEAD", BodyPublishers.noBody());
        } else if (method.equals("INM")) {
            rb.header("If-None-Match", etags.getOrDefault(path, "\"none\""));
        }
        Result r = new Result(item, path);
        try {
            HttpResponse<byte[]> resp = exchange(rb.build(), BodyHandlers.ofByteArray(), r);
            r.response(resp);
            r.body(resp.body());
            String etag = r.headers.get("etag");
            if (etag != null && etags != null) {
                etags.put(path, etag);
            }
        } catch (Exception e) {
            r.error = describe(e);
        }
        r.endMs = ms();
        return r;
    }

    /** A GET sent with sendAsync; the future completes with its Result, never fails. */
    static CompletableFuture<Result> getAsync(String path) {
        return getAsync(path, request(path).build());
    }

    static CompletableFuture<Result> getAsync(String path, HttpRequest req) {
        Result r = new Result(path, path);
        return client.sendAsync(req, BodyHandlers.ofByteArray())
                .orTimeout(timeout, TimeUnit.SECONDS)
                .handle((resp, ex) -> {
                    if (ex != null) {
                        r.error = describe(ex);
                    } else {
                        r.response(resp);
                        r.body(resp.body());
                    }
                    r.endMs = ms();
                    return r;
                });
    }

    static String results(List<Result> list) {
        List<Object> out = new ArrayList<>();
        for (Result r : list) {
            out.add(new Json.Raw(r.json()));
        }
        return Json.of(out);
    }

    // -- scenarios ----------------------------------------------------------

    /** gets: a warm-up GET of paths[0] (it makes the connection, for h2c by
     *  the Upgrade), then --count GETs of --paths (round robin), all sent at
     *  once with sendAsync. */
    static Map<String, Object> scenarioGets() throws Exception {
        List<String> paths = listOpt("paths");
        int count = intOpt("count", 50);
        Result warm = fetch(paths.get(0), null);
        List<String> each = new ArrayList<>();
        List<HttpRequest> reqs = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            String p = paths.get(i % paths.size());
            each.add(indexed(p, i));
            reqs.add(request(each.get(i)).build());
        }
        List<CompletableFuture<Result>> cfs = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            cfs.add(getAsync(each.get(i), reqs.get(i)));
        }
        List<Result> results = new ArrayList<>();
        for (CompletableFuture<Result> cf : cfs) {
            results.add(cf.get(60, TimeUnit.SECONDS));
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("warm", new Json.Raw(warm.json()));
        out.put("results", new Json.Raw(results(results)));
        return out;
    }

    /** The upload body of `size` bytes: sha256("h2x-594-<size>-<i>") for i = 0, 1, ... */
    static byte[] uploadBody(int size) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(size + 32);
        for (int i = 0; out.size() < size; i++) {
            out.writeBytes(sha("SHA-256").digest(
                    ("h2x-594-" + size + "-" + i).getBytes(StandardCharsets.US_ASCII)));
        }
        byte[] all = out.toByteArray();
        byte[] body = new byte[size];
        System.arraycopy(all, 0, body, 0, size);
        return body;
    }

    /** An InputStream that hands out `body` in odd-sized reads. */
    static final class OddChunks extends InputStream {
        static final int[] STEPS = {1, 7, 333, 4099, 16385, 65537, 12345};
        final byte[] body;
        int pos;
        int k;

        OddChunks(byte[] body) {
            this.body = body;
        }

        @Override
        public int read() {
            return pos < body.length ? body[pos++] & 0xff : -1;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (pos >= body.length) {
                return -1;
            }
            int n = Math.min(Math.min(len, STEPS[k++ % STEPS.length]), body.length - pos);
            System.arraycopy(body, pos, b, off, n);
            pos += n;
            return n;
        }
    }

    /** upload: a warm-up GET of --warm, then a POST to --path for each of
     *  --sizes and --modes: "length" (BodyPublishers.ofByteArray: a known
     *  length, content-length sent) and "stream" (BodyPublishers.ofInputStream
     *  of odd-sized reads: contentLength() -1, no content-length). */
    static Map<String, Object> scenarioUpload() throws Exception {
        String path = opt("path", "/h2x/echo?md5=1");
        Result warm = fetch(opt("warm", "/"), null);
        List<Object> uploads = new ArrayList<>();
        for (String s : listOpt("sizes")) {
            int size = Integer.parseInt(s);
            byte[] body = uploadBody(size);
            for (String mode : listOpt("modes")) {
                BodyPublisher pub = mode.equals("length") ? BodyPublishers.ofByteArray(body)
                        : BodyPublishers.ofInputStream(() -> new OddChunks(body));
                Result r = new Result(mode + " " + size, path);
                r.extra.put("size", size);
                r.extra.put("mode", mode);
                r.extra.put("sent_length", pub.contentLength());
                r.extra.put("sent_md5", hex(sha("MD5").digest(body)));
                try {
                    HttpResponse<byte[]> resp = exchange(request(path).POST(pub).build(),
                            BodyHandlers.ofByteArray(), r);
                    r.response(resp);
                    r.body(resp.body());
                } catch (Exception e) {
                    r.error = describe(e);
                }
                r.endMs = ms();
                uploads.add(new Json.Raw(r.json()));
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("warm", new Json.Raw(warm.json()));
        out.put("uploads", uploads);
        return out;
    }

    /** sequence: --paths one after the other ("HEAD /p"; "INM /p": a GET
     *  with If-None-Match: the ETag of the previous response for /p). */
    static Map<String, Object> scenarioSequence() {
        Map<String, String> etags = new HashMap<>();
        List<Result> results = new ArrayList<>();
        for (String item : listOpt("paths")) {
            results.add(fetch(item, etags));
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("results", new Json.Raw(results(results)));
        return out;
    }

    /** `path` with the query parameter i=<i> added (one URL per request). */
    static String indexed(String path, int i) {
        return path + (path.contains("?") ? "&" : "?") + "i=" + i;
    }

    /** A thread's own client (scenario fresh); exchange() uses it if set. */
    static final ThreadLocal<HttpClient> OWN_CLIENT = new ThreadLocal<>();

    /** fresh: --count GETs of the --paths in turn, --concurrency (1) at a
     *  time, each with a new client, so each on a new connection (for
     *  http://, each an h2c Upgrade whose own request gets the response). */
    static Map<String, Object> scenarioFresh() throws Exception {
        List<String> paths = listOpt("paths");
        int count = intOpt("count", 10);
        int lanes = intOpt("concurrency", 1);
        Result[] results = new Result[count];
        AtomicInteger next = new AtomicInteger();
        List<Thread> threads = new ArrayList<>();
        for (int l = 0; l < lanes; l++) {
            Thread t = new Thread(() -> {
                for (int i = next.getAndIncrement(); i < count; i = next.getAndIncrement()) {
                    String p = paths.get(i % paths.size());
                    String item = indexed(p, i);
                    try {
                        OWN_CLIENT.set(newClient());
                        results[i] = fetch(item, null);
                    } catch (Exception e) {
                        results[i] = new Result(item, item);
                        results[i].error = describe(e);
                    }
                }
            }, "fresh-" + l);
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join();
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("results", new Json.Raw(results(Arrays.asList(results))));
        return out;
    }

    /** stream: a warm-up GET of --warm, then GET --path with
     *  BodyHandlers.ofInputStream, noting when each line arrives. */
    static Map<String, Object> scenarioStream() throws Exception {
        Result warm = fetch(opt("warm", "/"), null);
        String path = opt("path", "/");
        Result r = new Result(path, path);
        List<Object> arrivals = new ArrayList<>();
        try {
            HttpResponse<InputStream> resp = client.send(request(path).build(),
                    BodyHandlers.ofInputStream());
            r.response(resp);
            ByteArrayOutputStream all = new ByteArrayOutputStream();
            try (InputStream in = resp.body()) {
                java.util.concurrent.ScheduledFuture<?> dog = guard(in, r);
                int c;
                while ((c = in.read()) != -1) {      // buffered by the JDK
                    all.write(c);
                    if (c == '\n') {
                        arrivals.add(ms());
                    }
                }
                dog.cancel(false);
            }
            r.body(all.toByteArray());
        } catch (Exception e) {
            r.error = describe(e);
        }
        r.endMs = ms();
        r.extra.put("line_ms", arrivals);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("warm", new Json.Raw(warm.json()));
        out.put("result", new Json.Raw(r.json()));
        return out;
    }

    /** cancel: a warm-up GET of --warm (paths[0]); then paths[1] read with
     *  ofInputStream until --lines lines came, and the InputStream closed
     *  ("close"); then paths[2] sent with sendAsync and
     *  BodyHandlers.fromLineSubscriber, cancelled with
     *  CompletableFuture.cancel(true) once --lines lines came ("cancel").
     *  After each, --after GETs of paths[0], one after the other. */
    static Map<String, Object> scenarioCancel() throws Exception {
        List<String> paths = listOpt("paths");
        int lines = intOpt("lines", 3);
        int after = intOpt("after", 3);
        String small = paths.get(0);
        Result warm = fetch(opt("warm", small), null);
        List<Object> out = new ArrayList<>();

        // 1. close the InputStream of ofInputStream mid-body
        Result c1 = new Result("close", paths.get(1));
        try {
            HttpResponse<InputStream> resp = client.send(request(paths.get(1)).build(),
                    BodyHandlers.ofInputStream());
            c1.response(resp);
            InputStream in = resp.body();
            java.util.concurrent.ScheduledFuture<?> dog = guard(in, c1);
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            int seen = 0;
            int c;
            while (seen < lines && (c = in.read()) != -1) {
                got.write(c);
                if (c == '\n') {
                    seen++;
                }
            }
            dog.cancel(false);
            c1.body(got.toByteArray());
            c1.extra.put("cancel_ms", ms());
            in.close();
        } catch (Exception e) {
            c1.error = describe(e);
        }
        c1.endMs = ms();
        out.add(cancelled(c1, small, after));

        // 2. CompletableFuture.cancel(true) while the body is coming
        Result c2 = new Result("cancel", paths.get(2));
        List<String> got = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch enough = new CountDownLatch(1);
        Flow.Subscriber<String> sub = new Flow.Subscriber<>() {
            @Override
            public void onSubscribe(Flow.Subscription s) {
                s.request(Long.MAX_VALUE);
            }

            @Override
            public void onNext(String line) {
                got.add(line);
                if (got.size() >= lines) {
                    enough.countDown();
                }
            }

            @Override
            public void onError(Throwable t) {
                enough.countDown();
            }

            @Override
            public void onComplete() {
                enough.countDown();
            }
        };
        CompletableFuture<HttpResponse<Void>> cf = client.sendAsync(
                request(paths.get(2)).build(), BodyHandlers.fromLineSubscriber(sub));
        boolean arrived = enough.await(timeout, TimeUnit.SECONDS);
        c2.extra.put("lines_arrived", arrived);
        c2.extra.put("cancel_ms", ms());
        c2.extra.put("cancel_returned", cf.cancel(true));
        try {
            HttpResponse<Void> resp = cf.get(10, TimeUnit.SECONDS);
            c2.response(resp);
            c2.error = "";
        } catch (Exception e) {
            c2.error = describe(e);
        }
        StringBuilder sb = new StringBuilder();
        synchronized (got) {
            for (String l : got) {
                sb.append(l).append('\n');
            }
        }
        c2.body(sb.toString().getBytes(StandardCharsets.ISO_8859_1));
        c2.endMs = ms();
        out.add(cancelled(c2, small, after));

        Map<String, Object> m = new LinkedHashMap<>();
        m.put("warm", new Json.Raw(warm.json()));
        m.put("cancelled", out);
        return m;
    }

    static Json.Raw cancelled(Result r, String small, int after) {
        List<Result> next = new ArrayList<>();
        for (int i = 0; i < after; i++) {
            next.add(fetch(small + (small.contains("?") ? "&" : "?") + "after=" + r.label + i,
                    null));
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("result", new Json.Raw(r.json()));
        m.put("after", new Json.Raw(results(next)));
        return new Json.Raw(Json.of(m));
    }

    /** loop: a warm-up GET, then --count GETs of --paths (round robin, each
     *  with a unique ?i=), --concurrency at a time with sendAsync, each lane
     *  pausing --pause ms between its requests.  "done <k>" on stderr after
     *  each, for the test to act on mid-run. */
    static Map<String, Object> scenarioLoop() throws Exception {
        List<String> paths = listOpt("paths");
        int count = intOpt("count", 100);
        int lanes = intOpt("concurrency", 8);
        long pause = intOpt("pause", 20);
        Result warm = fetch(paths.get(0), null);
        Result[] results = new Result[count];
        AtomicInteger next = new AtomicInteger();
        AtomicInteger done = new AtomicInteger();
        CountDownLatch finished = new CountDownLatch(lanes);
        java.util.concurrent.Executor later =
                CompletableFuture.delayedExecutor(pause, TimeUnit.MILLISECONDS);
        for (int l = 0; l < lanes; l++) {
            new Object() {
                void step() {
                    int i = next.getAndIncrement();
                    if (i >= count) {
                        finished.countDown();
                        return;
                    }
                    String p = paths.get(i % paths.size());
                    getAsync(indexed(p, i)).thenAccept(r -> {
                        results[i] = r;
                        System.err.println("done " + done.incrementAndGet());
                        System.err.flush();
                        CompletableFuture.runAsync(this::step, later);
                    });
                }
            }.step();
        }
        if (!finished.await(count * (long) timeout, TimeUnit.SECONDS)) {
            throw new IllegalStateException("loop did not finish");
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("warm", new Json.Raw(warm.json()));
        List<Result> list = new ArrayList<>();
        Collections.addAll(list, results);
        out.put("results", new Json.Raw(results(list)));
        return out;
    }

    /** True if this JDK has the fix for JDK-8335181 (GOAWAY handled per
     *  RFC 9113 §6.8: streams above last-stream-id retried, the others left
     *  to finish).  The fix added ExchangeImpl.isUnprocessedByPeer(). */
    static boolean hasGoawayFix() {
        try {
            Class<?> c = Class.forName("jdk.internal.net.http.ExchangeImpl");
            for (java.lang.reflect.Method m : c.getDeclaredMethods()) {
                if (m.getName().equals("isUnprocessedByPeer")) {
                    return true;
                }
            }
        } catch (Throwable t) {
            // not visible: say no
        }
        return false;
    }

    public static void main(String[] args) throws Exception {
        String scenario = null;
        for (String a : args) {
            if (a.startsWith("--") && a.contains("=")) {
                int eq = a.indexOf('=');
                OPTS.put(a.substring(2, eq), a.substring(eq + 1));
            } else if (scenario == null) {
                scenario = a;
            } else {
                usage();
            }
        }
        base = OPTS.get("url");
        if (scenario == null || base == null) {
            usage();
        }
        timeout = intOpt("timeout", timeout);
        setUpWireLog();
        client = newClient();
        Map<String, Object> out;
        switch (scenario) {
            case "gets": out = scenarioGets(); break;
            case "upload": out = scenarioUpload(); break;
            case "sequence": out = scenarioSequence(); break;
            case "stream": out = scenarioStream(); break;
            case "cancel": out = scenarioCancel(); break;
            case "loop": out = scenarioLoop(); break;
            case "fresh": out = scenarioFresh(); break;
            default: usage(); return;
        }
        // --linger=ms: time for late frames to be logged before the report.
        Thread.sleep(intOpt("linger", 0));
        out.put("jdk", System.getProperty("java.runtime.version"));
        out.put("goaway_fix", hasGoawayFix());
        synchronized (WIRE) {
            out.put("wire", new ArrayList<Object>(WIRE));
        }
        System.out.println(Json.of(out));
        System.out.flush();
        System.exit(0);
    }

    static void usage() {
        System.err.println("usage: java H2Client --url=http(s)://host:port [--ca=pem] "
                + "[--paths=a,b] [--count=N] ... gets|upload|sequence|stream|cancel|loop|fresh");
        System.exit(2);
    }

    /** JSON by hand: maps, lists, strings, numbers, booleans, and Raw (already JSON). */
    static final class Json {
        record Raw(String json) {
        }

        static String of(Object o) {
            StringBuilder sb = new StringBuilder();
            write(sb, o);
            return sb.toString();
        }

        static void write(StringBuilder sb, Object o) {
            if (o == null) {
                sb.append("null");
            } else if (o instanceof Raw r) {
                sb.append(r.json());
            } else if (o instanceof String s) {
                str(sb, s);
            } else if (o instanceof Number || o instanceof Boolean) {
                sb.append(o);
            } else if (o instanceof Map<?, ?> m) {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!first) {
                        sb.append(',');
                    }
                    first = false;
                    str(sb, String.valueOf(e.getKey()));
                    sb.append(':');
                    write(sb, e.getValue());
                }
                sb.append('}');
            } else if (o instanceof List<?> l) {
                sb.append('[');
                for (int i = 0; i < l.size(); i++) {
                    if (i > 0) {
                        sb.append(',');
                    }
                    write(sb, l.get(i));
                }
                sb.append(']');
            } else {
                str(sb, o.toString());
            }
        }

        static void str(StringBuilder sb, String s) {
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (c < 0x20 || c > 0x7e) {
                            sb.append(String.format("\\u%04x", (int) c));
                        } else {
                            sb.append(c);
                        }
                }
            }
            sb.append('"');
        }
    }
}
