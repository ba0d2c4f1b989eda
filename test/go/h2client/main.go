// Command h2client is Go's HTTP/2 client, driven by test/test_593_go_client.py.
//
// It runs one scenario against a base URL and prints one JSON object on
// stdout: per request the status, protocol, body length and sha256, the
// headers and trailers, the error string and timings.  https:// URLs use
// net/http's Transport (its bundled HTTP/2, ALPN, the -ca certificate
// verified); http:// URLs use golang.org/x/net/http2's Transport with prior
// knowledge (h2c).  Compression is off: bodies arrive as the server sent them.
//
// Build (GOPATH mode, Debian's golang-golang-x-net-dev, no network):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE=/tmp/x go build -o h2client main.go
package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Result is what the client saw of one request.
type Result struct {
	Label     string              `json:"label"`
	Status    int                 `json:"status"`
	Proto     string              `json:"proto"`
	Bytes     int64               `json:"bytes"`
	SHA256    string              `json:"sha256"`
	Text      string              `json:"text,omitempty"` // the body if it is short
	Header    map[string][]string `json:"header,omitempty"`
	Trailer   map[string][]string `json:"trailer,omitempty"`
	Error     string              `json:"error"`
	Conns     []string            `json:"conns"` // local address per attempt
	StartMs   float64             `json:"start_ms"`
	HeadersMs float64             `json:"headers_ms"`
	EndMs     float64             `json:"end_ms"`
}

var (
	base   = flag.String("url", "", "base URL: https://host:port (h2) or http://host:port (h2c)")
	caFile = flag.String("ca", "", "PEM certificate to trust (https)")
	paths  = flag.String("paths", "", "comma-separated request paths")
	sizes  = flag.String("sizes", "", "comma-separated upload sizes")
	modes  = flag.String("modes", "length,pipe", "upload modes: length, pipe")
	count  = flag.Int("count", 1, "number of requests")
	conc   = flag.Int("concurrency", 1, "requests in flight at once")
	tmo    = flag.Duration("timeout", time.Second, "client-side deadline (cancel)")
	pause  = flag.Duration("pause", 0, "pause of each worker between its requests (loop)")
	t0     = time.Now()
)

func ms() float64 { return float64(time.Since(t0).Microseconds()) / 1000 }

// newClient returns an HTTP/2 client for *base.
func newClient() *http.Client {
	if strings.HasPrefix(*base, "https://") {
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(*caFile)
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			fatal(fmt.Errorf("cannot use -ca %q: %v", *caFile, err))
		}
		return &http.Client{Transport: &http.Transport{
			TLSClientConfig:    &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2:  true,
			DisableCompression: true,
		}}
	}
	return &http.Client{Transport: &http2.Transport{
		AllowHTTP:          true,
		DisableCompression: true,
		DialTLS: func(network, addr string, _ *tls.Config) (net.Conn, error) {
			return net.Dial(network, addr)
		},
	}}
}

// do sends req, reads the whole body and fills a Result.  Everything that
// goes wrong ends up in Result.Error; do never fails.
func do(c *http.Client, label string, req *http.Request) *Result {
	r := &Result{Label: label, StartMs: ms(), Conns: []string{}}
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			mu.Lock()
			r.Conns = append(r.Conns, info.Conn.LocalAddr().String())
			mu.Unlock()
		},
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := c.Do(req)
	r.HeadersMs = ms()
	defer func() { r.EndMs = ms() }()
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer resp.Body.Close()
	r.Status, r.Proto, r.Header = resp.StatusCode, resp.Proto, resp.Header
	h := sha256.New()
	var text bytes.Buffer
	n, err := io.Copy(io.MultiWriter(h, &limitWriter{&text, 512}), resp.Body)
	r.Bytes, r.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	if n <= 512 {
		r.Text = text.String()
	}
	if err != nil {
		r.Error = err.Error()
	}
	r.Trailer = resp.Trailer // complete once the body is read
	return r
}

type limitWriter struct {
	buf *bytes.Buffer
	max int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func get(c *http.Client, path string) *Result {
	req, err := http.NewRequest("GET", *base+path, nil)
	if err != nil {
		fatal(err)
	}
	return do(c, path, req)
}

// uploadBody is the deterministic upload of `size` bytes: the
// concatenation of sha256("h2x-593-<seed>-<i>") for i = 0, 1, ...
// (test_593 computes the same).
func uploadBody(seed string, size int) []byte {
	out := make([]byte, 0, size+32)
	for i := 0; len(out) < size; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("h2x-593-%s-%d", seed, i)))
		out = append(out, sum[:]...)
	}
	return out[:size]
}

// Scenario "gets": one warm-up GET (so the connection exists), then
// -count GETs of -paths (round robin), -concurrency at once, on the same
// Transport: Go multiplexes them as streams of that connection.
func scenarioGets(c *http.Client) interface{} {
	list := splitList(*paths)
	warm := get(c, list[0])
	return map[string]interface{}{"warm": warm, "results": runMany(c, list, *count, *conc, 0)}
}

// runMany GETs paths[i % len] for i < n, `workers` at a time.  After each
// request it prints "done <k>" on stderr, so the test can act mid-run.
func runMany(c *http.Client, list []string, n, workers int, pause time.Duration) []*Result {
	results := make([]*Result, n)
	next := int64(-1)
	var done int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= n {
					return
				}
				results[i] = get(c, list[i%len(list)])
				fmt.Fprintf(os.Stderr, "done %d\n", atomic.AddInt64(&done, 1))
				time.Sleep(pause)
			}
		}()
	}
	wg.Wait()
	return results
}

// Scenario "upload": POSTs to -paths (the echo handler), for each of
// -sizes and -modes: "length", a known length (bytes.Reader,
// Content-Length set), and "pipe", an unknown length (io.Pipe written in
// odd chunks, ContentLength -1: Go ends the body with an empty DATA frame
// carrying END_STREAM).  sent_sha256/sent_md5 describe what
// was sent; the test compares them with what came back.
func scenarioUpload(c *http.Client) interface{} {
	type upload struct {
		Size       int     `json:"size"`
		Mode       string  `json:"mode"`
		SentSHA256 string  `json:"sent_sha256"`
		SentMD5    string  `json:"sent_md5"`
		Result     *Result `json:"result"`
	}
	path := *paths
	var out []upload
	for _, size := range splitInts(*sizes) {
		body := uploadBody(strconv.Itoa(size), size)
		sum, m := sha256.Sum256(body), md5.Sum(body)
		for _, mode := range splitList(*modes) {
			var req *http.Request
			var err error
			if mode == "length" {
				req, err = http.NewRequest("POST", *base+path, bytes.NewReader(body))
			} else {
				pr, pw := io.Pipe()
				go writeOddChunks(pw, body)
				req, err = http.NewRequest("POST", *base+path, pr)
				req.ContentLength = -1
			}
			if err != nil {
				fatal(err)
			}
			out = append(out, upload{size, mode, hex.EncodeToString(sum[:]),
				hex.EncodeToString(m[:]), do(c, fmt.Sprintf("%s %d", mode, size), req)})
		}
	}
	return map[string]interface{}{"uploads": out}
}

func writeOddChunks(pw *io.PipeWriter, body []byte) {
	steps := []int{1, 7, 333, 4099, 16385, 65537, 12345}
	for pos, k := 0, 0; pos < len(body); k++ {
		n := min(steps[k%len(steps)], len(body)-pos)
		if _, err := pw.Write(body[pos : pos+n]); err != nil {
			return
		}
		pos += n
	}
	pw.Close()
}

// Scenario "sequence": requests -paths one after the other on one client
// (trailers, header-only and empty responses).  "HEAD /p" sends a HEAD;
// "INM /p" a GET with If-None-Match: the ETag of the previous response
// to /p.
func scenarioSequence(c *http.Client) interface{} {
	var out []*Result
	etags := map[string]string{}
	for _, item := range splitList(*paths) {
		method, p := "GET", item
		if f := strings.SplitN(item, " ", 2); len(f) == 2 {
			method, p = f[0], f[1]
		}
		req, err := http.NewRequest(strings.Replace(method, "INM", "GET", 1), *base+p, nil)
		if err != nil {
			fatal(err)
		}
		if method == "INM" {
			req.Header.Set("If-None-Match", etags[p])
		}
		res := do(c, item, req)
		if e := res.Header["Etag"]; len(e) > 0 {
			etags[p] = e[0]
		}
		out = append(out, res)
	}
	return map[string]interface{}{"results": out}
}

// Scenario "cancel": a warm-up GET, then for each of -paths a GET whose
// context expires after -timeout while the response is still coming (or
// has not started): Go resets the stream (RST_STREAM CANCEL).  Right after
// each, the same client GETs paths[0] -count times: it must be served at
// once, on the same connection.
func scenarioCancel(c *http.Client) interface{} {
	list := splitList(*paths)
	type cancelled struct {
		Result *Result   `json:"result"`
		After  []*Result `json:"after"`
	}
	warm := get(c, list[0])
	var out []cancelled
	for _, p := range list[1:] {
		ctx, cancel := context.WithTimeout(context.Background(), *tmo)
		req, err := http.NewRequestWithContext(ctx, "GET", *base+p, nil)
		if err != nil {
			fatal(err)
		}
		res := do(c, p, req)
		cancel()
		var after []*Result
		for i := 0; i < *count; i++ {
			after = append(after, get(c, list[0]))
		}
		out = append(out, cancelled{res, after})
	}
	return map[string]interface{}{"warm": warm, "cancelled": out}
}

// Scenario "loop": a warm-up GET, then -count GETs of -paths with
// -concurrency workers, each pausing -pause between its requests; the
// test restarts the server gracefully meanwhile (it follows "done <k>"
// on stderr).  Every request must end 200 with the exact body: Go retries
// what the server's GOAWAY says it did not process.
func scenarioLoop(c *http.Client) interface{} {
	list := splitList(*paths)
	warm := get(c, list[0])
	return map[string]interface{}{"warm": warm, "results": runMany(c, list, *count, *conc, *pause)}
}

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [flags] gets|upload|sequence|cancel|loop\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *base == "" {
		flag.Usage()
		os.Exit(2)
	}
	scenarios := map[string]func(*http.Client) interface{}{
		"gets": scenarioGets, "upload": scenarioUpload, "sequence": scenarioSequence,
		"cancel": scenarioCancel, "loop": scenarioLoop,
	}
	run, ok := scenarios[flag.Arg(0)]
	if !ok {
		flag.Usage()
		os.Exit(2)
	}
	out := run(newClient())
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fatal(err)
	}
}

func splitList(s string) []string {
	if s == "" {
		fatal(errors.New("an empty list flag"))
	}
	return strings.Split(s, ",")
}

func splitInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "h2client:", err)
	os.Exit(1)
}
