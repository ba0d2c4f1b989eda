#!/usr/bin/env node
// A gRPC client on @grpc/grpc-js for test_595 (through httpd to
// test/h2x/grpc_backend.py).  No .proto files: every message is a raw
// Buffer (identity serializers), as the backend's `h2x.Test` service
// expects.
//
//     node grpc_client.js '<plan as JSON>'
//
// Plan:
//   target       "localhost:PORT" (h2, TLS) or "127.0.0.1:PORT" (h2c)
//   ca           PEM file the server's certificate is checked against
//                (TLS); absent or null: h2c with prior knowledge
//                (grpc.credentials.createInsecure())
//   scenario     "unary" | "server" | "client" | "bidi"
//   method       "/h2x.Test/<Method>"
//   deadline_ms  per call (default 30000)
//   metadata     {name: value} sent with every call of the scenario
//   unary:  calls [{text | size}] (size: the next `size` bytes of
//           payload_file), concurrent (all at once, else one by one)
//   server: text (the request), cancel_after (cancel the call once this
//           many messages have arrived)
//   client: sizes (the messages: consecutive slices of payload_file)
//   bidi:   rounds (lock step: "ping <i>" is sent when the answer to
//           "ping <i-1>" has arrived)
//   before  ["text", ...]: unary Echo calls before the scenario, one by
//           one (a warm channel: the connection is up when it starts)
//   pause   after the scenario: write "paused" to stderr and wait for a
//           line on stdin (the test looks at the backend meanwhile)
//   then    ["text", ...]: unary Echo calls afterwards, one by one, on the
//           same channel
//
// Output: one JSON object on stdout: the calls (status code and name,
// details, initial and trailing metadata, the messages received with
// their sizes, sha256, text (up to 256 bytes) and arrival times in ms
// since the call started),
// the HTTP/2 sessions grpc-js opened (ALPN protocol) and the streams it
// opened on them (response headers and whether they ended the stream,
// trailers, the RST_STREAM code at close).  Exit status 0 when the
// client ran (whatever the gRPC statuses), 2 on a usage or internal error.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http2 = require('http2');
const { performance } = require('perf_hooks');

const now = () => Math.round(performance.now() * 1000) / 1000;

// -- what grpc-js does on the wire: wrap http2.connect before loading it ---

const sessions = [];
const streams = [];

function headerObject(h) {
  const out = {};
  for (const [k, v] of Object.entries(h || {})) {
    if (k === 'date') continue;
    out[k] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

const realConnect = http2.connect;
http2.connect = function connect(...args) {
  const session = realConnect.apply(this, args);
  const rec = { authority: String(args[0]), opened_ms: now(), alpn: null, goaway: null,
                closed_ms: null };
  sessions.push(rec);
  session.once('connect', () => { rec.alpn = session.alpnProtocol || null; });
  session.on('goaway', (code, lastStreamId) => {
    rec.goaway = { code, last_stream_id: lastStreamId };
  });
  session.once('close', () => { rec.closed_ms = now(); });
  const realRequest = session.request;
  session.request = function request(...rargs) {
    const stream = realRequest.apply(this, rargs);
    const s = { session: sessions.indexOf(rec), path: (rargs[0] || {})[':path'] || null,
                opened_ms: now(), response: null, headers_end_stream: null,
                trailers: null, rst_code: null, closed_ms: null };
    streams.push(s);
    stream.on('response', (headers, flags) => {
      s.response = headerObject(headers);
      s.headers_end_stream = Boolean(flags & 0x1);
    });
    stream.on('trailers', (headers) => { s.trailers = headerObject(headers); });
    stream.on('close', () => { s.rst_code = stream.rstCode; s.closed_ms = now(); });
    return stream;
  };
  return session;
};

const grpc = require('@grpc/grpc-js');

const CODE_NAMES = {};
for (const [name, code] of Object.entries(grpc.status)) CODE_NAMES[code] = name;

const identity = (b) => b;

function metadataObject(md) {
  if (!md) return null;
  const out = {};
  for (const [k, v] of Object.entries(md.getMap())) {
    out[k] = Buffer.isBuffer(v) ? v.toString('base64') : String(v);
  }
  return out;
}

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function messageRecord(buf, t0) {
  const m = { t_ms: Math.round((performance.now() - t0) * 1000) / 1000, len: buf.length,
              sha256: sha256(buf) };
  if (buf.length <= 256) m.text = buf.toString('latin1');
  return m;
}

// One call's record; finish() fills in the status.
function newCall(method) {
  return { method, start_ms: now(), end_ms: null, code: null, code_name: null, details: null,
           metadata: null, trailers: null, messages: [], sent: { count: 0, bytes: 0 },
           _t0: performance.now() };
}

function finish(call, status) {
  call.end_ms = now();
  call.code = status.code;
  call.code_name = CODE_NAMES[status.code] || String(status.code);
  call.details = status.details;
  call.trailers = metadataObject(status.metadata);
}

// -- the plan -----------------------------------------------------------------

let plan;
try {
  plan = JSON.parse(process.argv[2] || '');
} catch (e) {
  process.stderr.write('usage: node grpc_client.js \'<plan as JSON>\' (' + e.message + ')\n');
  process.exit(2);
}

const options = {
  'grpc.max_send_message_length': 64 << 20,
  'grpc.max_receive_message_length': 64 << 20,
};
const credentials = plan.ca
  ? grpc.credentials.createSsl(fs.readFileSync(plan.ca))
  : grpc.credentials.createInsecure();
const client = new grpc.Client(plan.target, credentials, options);

const payload = plan.payload_file ? fs.readFileSync(plan.payload_file) : Buffer.alloc(0);
let payloadOffset = 0;
function nextPayload(size) {
  const b = payload.subarray(payloadOffset, payloadOffset + size);
  if (b.length !== size) throw new Error(`payload_file too short for ${size} more bytes`);
  payloadOffset += size;
  return b;
}

function callOptions() {
  return { deadline: Date.now() + (plan.deadline_ms || 30000) };
}

function metadata() {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(plan.metadata || {})) md.set(k, v);
  return md;
}

function unaryCall(method, buf) {
  return new Promise((resolve) => {
    const rec = newCall(method);
    rec.sent = { count: 1, bytes: buf.length, sha256: sha256(buf) };
    const call = client.makeUnaryRequest(method, identity, identity, buf, metadata(),
                                         callOptions(), (err, value) => {
      if (!err && value) rec.messages.push(messageRecord(value, rec._t0));
    });
    call.on('metadata', (md) => { rec.metadata = metadataObject(md); });
    call.on('status', (status) => { finish(rec, status); resolve(rec); });
  });
}

function serverCall(method, buf, cancelAfter) {
  return new Promise((resolve) => {
    const rec = newCall(method);
    rec.sent = { count: 1, bytes: buf.length };
    const call = client.makeServerStreamRequest(method, identity, identity, buf, metadata(),
                                                callOptions());
    call.on('metadata', (md) => { rec.metadata = metadataObject(md); });
    call.on('data', (m) => {
      rec.messages.push(messageRecord(m, rec._t0));
      if (cancelAfter && rec.messages.length === cancelAfter) {
        rec.cancelled_ms = now();
        call.cancel();
      }
    });
    call.on('error', () => {});      // the status says it all
    call.on('status', (status) => { finish(rec, status); resolve(rec); });
  });
}

function clientCall(method, sizes) {
  return new Promise((resolve) => {
    const rec = newCall(method);
    const hash = crypto.createHash('sha256');
    const call = client.makeClientStreamRequest(method, identity, identity, metadata(),
                                                callOptions(), (err, value) => {
      if (!err && value) rec.messages.push(messageRecord(value, rec._t0));
    });
    call.on('metadata', (md) => { rec.metadata = metadataObject(md); });
    call.on('error', () => {});
    let i = 0;
    let done = false;           // ended, or the call is over (an early status)
    call.on('status', (status) => {
      done = true;
      rec.sent.sha256 = hash.digest('hex');
      finish(rec, status);
      resolve(rec);
    });
    const pump = () => {
      while (i < sizes.length && !done) {
        const m = nextPayload(sizes[i++]);
        hash.update(m);
        rec.sent.count++;
        rec.sent.bytes += m.length;
        if (!call.write(m)) {
          call.once('drain', pump);
          return;
        }
      }
      if (!done) {
        done = true;
        rec.sent_end_ms = now();
        call.end();
      }
    };
    pump();
  });
}

function bidiCall(method, rounds) {
  return new Promise((resolve) => {
    const rec = newCall(method);
    const call = client.makeBidiStreamRequest(method, identity, identity, metadata(),
                                              callOptions());
    let sent = 0;
    const send = () => {
      const m = Buffer.from(`ping ${sent}`);
      sent++;
      rec.sent.count++;
      rec.sent.bytes += m.length;
      call.write(m);
    };
    call.on('metadata', (md) => { rec.metadata = metadataObject(md); });
    call.on('data', (m) => {
      rec.messages.push(messageRecord(m, rec._t0));
      if (sent < rounds) {
        send();
      } else if (rec.messages.length === rounds) {
        rec.last_answer_ms = now();
        call.end();
      }
    });
    call.on('error', () => {});
    call.on('status', (status) => { finish(rec, status); resolve(rec); });
    if (rounds > 0) send(); else call.end();
  });
}

function waitForStdinLine() {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (d) => {
      buf += d;
      if (buf.includes('\n')) { process.stdin.off('data', onData); process.stdin.pause(); resolve(); }
    };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', onData);
    process.stdin.once('end', resolve);
  });
}

async function main() {
  const out = { scenario: plan.scenario, target: plan.target, tls: Boolean(plan.ca),
                grpc_js: require('@grpc/grpc-js/package.json').version,
                node: process.versions.node, calls: [], then: [] };
  const method = plan.method;
  out.before = [];
  for (const text of plan.before || []) {
    out.before.push(await unaryCall('/h2x.Test/Echo', Buffer.from(text)));
  }
  const t0 = performance.now();
  if (plan.scenario === 'unary') {
    const bufs = (plan.calls || []).map(
      (c) => (c.text !== undefined ? Buffer.from(c.text) : nextPayload(c.size)));
    if (plan.concurrent) {
      out.calls = await Promise.all(bufs.map((b) => unaryCall(method, b)));
    } else {
      for (const b of bufs) out.calls.push(await unaryCall(method, b));
    }
  } else if (plan.scenario === 'server') {
    out.calls.push(await serverCall(method, Buffer.from(plan.text || ''), plan.cancel_after));
  } else if (plan.scenario === 'client') {
    out.calls.push(await clientCall(method, plan.sizes || []));
  } else if (plan.scenario === 'bidi') {
    out.calls.push(await bidiCall(method, plan.rounds || 0));
  } else {
    throw new Error(`unknown scenario ${plan.scenario}`);
  }
  out.duration_ms = Math.round((performance.now() - t0) * 1000) / 1000;
  if (plan.pause) {
    process.stderr.write('paused\n');
    await waitForStdinLine();
  }
  for (const text of plan.then || []) {
    out.then.push(await unaryCall('/h2x.Test/Echo', Buffer.from(text)));
  }
  for (const c of [...out.before, ...out.calls, ...out.then]) delete c._t0;
  // Let the streams' close events come in (their RST_STREAM codes).
  const until = performance.now() + 500;
  while (streams.some((s) => s.closed_ms === null) && performance.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  out.sessions = sessions;
  out.streams = streams;
  client.close();
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
}

main().catch((e) => {
  process.stderr.write(`grpc_client: ${e && e.stack ? e.stack : e}\n`);
  process.exit(2);
});
