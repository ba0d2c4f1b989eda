"""Summaries, the markdown table, the target check and the ratio chart.

summarize() turns the raw per-run records of bench.py into one row per
(workload, transport) with, per series, the median (min-max) of requests/s
and CPU time per request, the median of h2load's mean latency, the largest
max latency, the failed requests over all repetitions, and the ratios
mod_h2x / mod_http2 of each figure.  With a reference series (nginx, static
workloads only), also mod_h2x / reference of CPU time per request and of
requests/s.
"""

import statistics
from typing import Dict, List, Optional

NOISE_BAND = (0.84, 1.2)   # mod_http2 against itself, run to run


def _stats(values: List[Optional[float]]) -> Optional[Dict[str, float]]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals)}


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


def summarize(raw: List[Dict], memory: List[Dict], meta: Dict, mod_a: str, mod_b: str,
              h1: str, ref: Optional[str] = None) -> Dict:
    """ref: the label of the reference server's series (nginx), if any."""
    servers = (mod_a, mod_b) + ((ref,) if ref else ())
    rows = []
    for wl in meta["workloads"]:
        for transport in ("h2c", "h2"):
            runs = [r for r in raw if r["workload"] == wl["key"] and r["transport"] == transport]
            if not runs:
                continue
            series = {}
            for name in servers + (h1,):
                rs = [r for r in runs if r["series"] == name]
                if not rs:
                    continue
                lat_max = [r["lat_max_ms"] for r in rs if r.get("lat_max_ms") is not None]
                series[name] = {
                    "rps": _stats([r.get("rps") for r in rs]),
                    "cpu_us_per_req": _stats([r.get("cpu_us_per_req") for r in rs]),
                    "lat_mean_ms": _stats([r.get("lat_mean_ms") for r in rs]),
                    "lat_max_ms": max(lat_max) if lat_max else None,
                    "failed": sum(r.get("failed") or 0 for r in rs),
                    "requests": sum(r.get("n") or 0 for r in rs),
                    "errors": [r["error"] for r in rs if r.get("error")],
                }
            a, b = series.get(mod_a), series.get(mod_b)

            def med(s, key):
                return s[key]["median"] if s and s.get(key) else None

            ratios = {
                "rps": _ratio(med(a, "rps"), med(b, "rps")),
                "cpu_us_per_req": _ratio(med(a, "cpu_us_per_req"), med(b, "cpu_us_per_req")),
                "lat_mean_ms": _ratio(med(a, "lat_mean_ms"), med(b, "lat_mean_ms")),
                "lat_max_ms": _ratio(a and a["lat_max_ms"], b and b["lat_max_ms"]),
            }
            if h1 in series:
                ratios["cpu_vs_h1"] = _ratio(med(a, "cpu_us_per_req"),
                                             med(series[h1], "cpu_us_per_req"))
            if ref in series:
                ratios["cpu_vs_ref"] = _ratio(med(a, "cpu_us_per_req"),
                                              med(series[ref], "cpu_us_per_req"))
                ratios["rps_vs_ref"] = _ratio(med(a, "rps"), med(series[ref], "rps"))
            rows.append({"workload": wl["key"], "title": wl["title"], "transport": transport,
                         "series": series, "ratios": ratios})

    mem_rows = []
    for transport in ("h2c", "h2"):
        per, state = {}, {}
        for module in servers:
            mine = [m for m in memory if m["module"] == module and m["transport"] == transport]
            per[module] = _stats([m["bytes_per_conn"] for m in mine])
            # (runs before 2026-12-02 have no stack figure)
            state[module] = _stats([m["state_bytes_per_conn"] for m in mine
                                    if "state_bytes_per_conn" in m])
        if per[mod_a] or per[mod_b]:
            median = {k: v and v["median"] for k, v in per.items()}
            smedian = {k: v and v["median"] for k, v in state.items()}
            mrow = {"transport": transport, "bytes_per_conn": per,
                    "ratio": _ratio(median[mod_a], median[mod_b]),
                    "state_bytes_per_conn": state,
                    "state_ratio": _ratio(smedian[mod_a], smedian[mod_b])}
            if ref:
                mrow["ratio_vs_ref"] = _ratio(median[mod_a], median[ref])
            mem_rows.append(mrow)
    summary = {"meta": meta, "rows": rows, "memory": mem_rows, "mod_a": mod_a,
               "mod_b": mod_b, "h1": h1, "ref": ref}
    summary["targets"] = targets(summary)
    return summary


def targets(summary: Dict) -> List[Dict]:
    """The issue's performance goals, checked against this run."""
    out = []
    a, b, h1 = summary["mod_a"], summary["mod_b"], summary["h1"]

    def add(name, where, value, goal, met, note=""):
        out.append({"target": name, "where": where, "value": value, "goal": goal,
                    "met": met, "note": note})

    def noise_note(v, above):
        """A miss that mod_http2 against itself could show as well."""
        if v is None:
            return ""
        missed_inside = (NOISE_BAND[0] <= v < 1.0) if above else (1.0 < v <= NOISE_BAND[1])
        return "within the noise band" if missed_inside else ""

    def nginx_aim(r, where, what):
        """Issue 11 point 5: an aim, not a target of points 1-4."""
        v = r.get("cpu_vs_ref")
        if v is not None:
            add(f"{what}: CPU/request within 2 x nginx (aim)", where, f"{v:.2f} x nginx",
                "<= 2.00", v <= 2.0)

    for row in summary["rows"]:
        r, where = row["ratios"], f"{row['title']}, {row['transport']}"
        if row["workload"] == "1k":
            v = r.get("cpu_vs_h1")
            add("1 KB: CPU/request <= httpd HTTP/1.1", where,
                None if v is None else f"{v:.2f} x HTTP/1.1", "<= 1.00",
                v is not None and v <= 1.0)
            v = r["cpu_us_per_req"]
            add("1 KB: CPU/request <= 0.5 x mod_http2", where, _fmt_ratio(v), "<= 0.50",
                v is not None and v <= 0.5)
            nginx_aim(r, where, "1 KB")
        elif row["workload"] in ("c200", "c1000"):
            failed = row["series"].get(a, {}).get("failed")
            add("many connections: zero failed requests", where, f"{failed} failed", "0",
                failed == 0)
            v = r["cpu_us_per_req"]
            add("many connections: CPU/request <= 0.5 x mod_http2", where, _fmt_ratio(v),
                "<= 0.50", v is not None and v <= 0.5)
            v = r.get("cpu_vs_h1")
            if v is not None:
                add("many connections: CPU/request <= httpd HTTP/1.1", where,
                    f"{v:.2f} x HTTP/1.1", "<= 1.00", v <= 1.0)
            v = r["lat_max_ms"]
            add("many connections: max latency <= mod_http2", where, _fmt_ratio(v), "<= 1.00",
                v is not None and v <= 1.0)
            if row["workload"] == "c200":
                nginx_aim(r, where, "200 connections")
        elif row["workload"] == "cgi":
            v = r["cpu_us_per_req"]
            add("CGI: CPU/request <= 0.9 x mod_http2", where, _fmt_ratio(v), "<= 0.90",
                v is not None and v <= 0.9)
        elif row["workload"] == "100k":
            v = r["rps"]
            add("100 KB files: req/s >= 1.2 x mod_http2", where,
                None if v is None else f"{v:.2f} x req/s", ">= 1.20",
                v is not None and v >= 1.2)
        elif row["workload"] == "10m":
            v = r["rps"]
            add("10 MB files: req/s >= mod_http2", where,
                None if v is None else f"{v:.2f} x req/s", ">= 1.00",
                v is not None and v >= 1.0, noise_note(v, above=True))
            v = r["cpu_us_per_req"]
            add("10 MB files: CPU/request <= mod_http2", where, _fmt_ratio(v), "<= 1.00",
                v is not None and v <= 1.0, noise_note(v, above=False))
    for m in summary["memory"]:
        v = m["ratio"]
        add("memory per idle connection <= 0.5 x mod_http2", f"idle connections, {m['transport']}",
            _fmt_ratio(v), "<= 0.50", v is not None and v <= 0.5)
        v = m.get("state_ratio")
        if v is not None:
            add("memory per idle connection <= 0.5 x mod_http2, threads' stack growth left out",
                f"idle connections, {m['transport']}", _fmt_ratio(v), "<= 0.50", v <= 0.5)
    del h1, b
    return out


# -- markdown ------------------------------------------------------------------------

def _fmt_ratio(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _num(v: Optional[float]) -> str:
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _range(s: Optional[Dict]) -> str:
    if not s:
        return "n/a"
    if s["n"] == 1:
        return _num(s["median"])
    return f"{_num(s['median'])} ({_num(s['min'])}–{_num(s['max'])})"


def _ms(v: Optional[float]) -> str:
    if v is None:
        return "n/a"
    return f"{v * 1000:.0f} µs" if v < 1 else f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s"


def _reference_line(summary: Dict) -> str:
    """The header line on the reference server: what it is, or why it is missing."""
    reference = summary["meta"].get("reference") or {}
    if summary["ref"]:
        return (f"- \"{summary['ref']}\": {reference['version']} (Debian), one worker "
                "process pinned to CPU 0, bench/nginx.conf.tmpl (sendfile off, no access log), "
                "same document root and certificate; static workloads and idle memory only, "
                "its CPU read like httpd's")
    return f"- no nginx reference: {reference.get('note') or 'not run'}"


def markdown(summary: Dict) -> str:
    meta, a, b, ref = summary["meta"], summary["mod_a"], summary["mod_b"], summary["ref"]
    m = meta["machine"]
    lines = [
        f"# mod_h2x vs mod_http2 ({meta['date']})",
        "",
        f"- command: `{meta['command']}` ({meta['reps']} repetition(s), "
        f"{'quick' if meta['quick'] else 'full'} mode, {meta['duration_s']:.0f} s)",
        f"- machine: {m['cores']} cores, {m['cpu_model']}, Linux {m['kernel']}; "
        f"servers pinned to CPU 0, h2load to CPU 1: {m['taskset']}",
        f"- {m['httpd']} (apache2-bin {m['mod_http2']}, its mod_http2), {m['h2load']}, "
        f"mod_h2x at {m['commit']}",
        f"- httpd configuration profile: {meta.get('profile', 'minimal')} "
        + ("(Debian's stock module set and configuration files, access log on)"
           if meta.get("profile") == "debian" else "(only the modules the workloads need)"),
        f"- server CPU from: {meta['cpu_source']} (all server processes and their children); "
        f"CPU/request = server CPU time / requests with a 2xx",
        f"- \"{summary['h1']}\" is h2load --h1 (keep-alive, no pipelining) against the "
        f"{meta['h1_server']} instance; uploads go to {meta['discard_handler']}",
        _reference_line(summary),
        "",
        "## Per workload",
        "",
        "req/s and CPU/request: median (min–max) over the repetitions; latency: median of "
        "h2load's mean, and the largest max; failed: requests without a 2xx, all repetitions.",
        "",
        "| workload | transport | server | req/s | CPU µs/request | mean latency | "
        "max latency | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["rows"]:
        for name, s in row["series"].items():
            lines.append(
                f"| {row['title']} | {row['transport']} | {name} | {_range(s['rps'])} | "
                f"{_range(s['cpu_us_per_req'])} | "
                f"{_ms(s['lat_mean_ms'] and s['lat_mean_ms']['median'])} | "
                f"{_ms(s['lat_max_ms'])} | {s['failed']} of {s['requests']} |")
    lines += [
        "",
        f"## Ratios {a} / {b}",
        "",
        "Below 1 is better for CPU and latency, above 1 is better for req/s. "
        f"Noise band (mod_http2 against itself): {NOISE_BAND[0]}–{NOISE_BAND[1]}."
        + (f" CPU vs HTTP/1.1, CPU vs nginx and req/s vs nginx are {a} / that series."
           if ref else f" CPU vs HTTP/1.1 is {a} / that series."),
        "",
        "| workload | transport | req/s | CPU/request | mean latency | max latency | "
        f"failed ({a} / {b}) | CPU vs HTTP/1.1 |"
        + (" CPU vs nginx | req/s vs nginx |" if ref else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|---|" if ref else ""),
    ]

    def opt(r, key):
        return _fmt_ratio(r[key]) if key in r else ""

    for row in summary["rows"]:
        r, s = row["ratios"], row["series"]
        fa = s.get(a, {}).get("failed", "n/a")
        fb = s.get(b, {}).get("failed", "n/a")
        lines.append(
            f"| {row['title']} | {row['transport']} | {_fmt_ratio(r['rps'])} | "
            f"{_fmt_ratio(r['cpu_us_per_req'])} | {_fmt_ratio(r['lat_mean_ms'])} | "
            f"{_fmt_ratio(r['lat_max_ms'])} | {fa} / {fb} | {opt(r, 'cpu_vs_h1')} |"
            + (f" {opt(r, 'cpu_vs_ref')} | {opt(r, 'rps_vs_ref')} |" if ref else ""))
    if summary["memory"]:
        lines += [
            "",
            f"## Memory: RSS per idle HTTP/2 connection ({meta['idle_connections']} "
            "connections, preface + SETTINGS exchanged)",
            "",
            f"| transport | {a} | {b} | ratio |"
            + (f" {ref} | {a} / nginx |" if ref else ""),
            "|---|---|---|---|" + ("---|---|" if ref else ""),
        ]
        def kib(s):
            if not s:
                return "n/a"
            if s["n"] == 1:
                return f"{s['median'] / 1024:.1f} KiB"
            return (f"{s['median'] / 1024:.1f} KiB ({s['min'] / 1024:.1f}–"
                    f"{s['max'] / 1024:.1f})")
        for mrow in summary["memory"]:
            per = mrow["bytes_per_conn"]
            lines.append(f"| {mrow['transport']} | {kib(per[a])} | {kib(per[b])} | "
                         f"{_fmt_ratio(mrow['ratio'])} |"
                         + (f" {kib(per[ref])} | {_fmt_ratio(mrow['ratio_vs_ref'])} |"
                            if ref else ""))
        states = [m for m in summary["memory"] if m.get("state_ratio") is not None]
        if states:
            lines += [
                "",
                "Without the growth of the servers' thread stacks (a one-time cost of each"
                " MPM thread's first jobs, bounded by ThreadsPerChild; bench.py"
                " measure_memory()):",
                "",
                f"| transport | {a} | {b} | ratio |",
                "|---|---|---|---|",
            ]
            for mrow in states:
                st = mrow["state_bytes_per_conn"]
                lines.append(f"| {mrow['transport']} | {kib(st[a])} | {kib(st[b])} | "
                             f"{_fmt_ratio(mrow['state_ratio'])} |")
    lines += ["", "## Targets", "", "| target | where | measured | goal | met |",
              "|---|---|---|---|---|"]
    for t in summary["targets"]:
        met = "yes" if t["met"] else "no" + (f" ({t['note']})" if t["note"] else "")
        lines.append(f"| {t['target']} | {t['where']} | {t['value']} | {t['goal']} | {met} |")
    errors = [(row, name, e) for row in summary["rows"] for name, s in row["series"].items()
              for e in s["errors"]]
    if errors:
        lines += ["", "## h2load errors", ""]
        for row, name, e in errors[:10]:
            lines.append(f"- {row['title']} {row['transport']} {name}: "
                         + e.replace("\n", " / ")[:300])
    return "\n".join(lines) + "\n"


# -- chart ----------------------------------------------------------------------------

def chart(summary: Dict, path: str) -> bool:
    """Horizontal bars of the ratios mod_h2x / mod_http2 (req/s, CPU/request,
    memory), with the noise band shaded.  False if matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels, rps, cpu = [], [], []
    for row in summary["rows"]:
        labels.append(f"{row['title']} ({row['transport']})")
        rps.append(row["ratios"]["rps"] or 0)
        cpu.append(row["ratios"]["cpu_us_per_req"] or 0)
    for m in summary["memory"]:
        labels.append(f"RSS per idle connection ({m['transport']})")
        rps.append(0)
        cpu.append(m["ratio"] or 0)
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(labels) + 1.8))
    ys = list(range(len(labels)))
    h = 0.38
    ax.barh([y - h / 2 for y in ys], rps, height=h, label="req/s (higher is better)",
            color="#4878d0", zorder=2)
    ax.barh([y + h / 2 for y in ys], cpu, height=h,
            label="CPU/request, memory (lower is better)", color="#ee854a", zorder=2)
    ax.axvspan(NOISE_BAND[0], NOISE_BAND[1], color="#dddddd", zorder=0,
               label=f"noise band {NOISE_BAND[0]}–{NOISE_BAND[1]}")
    ax.axvline(1.0, color="black", linewidth=0.8, zorder=3)
    ax.axvline(0.5, color="green", linewidth=0.8, linestyle="--",
               label="0.5 (CPU/memory goal)", zorder=3)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{summary['mod_a']} / {summary['mod_b']}")
    ax.set_title(f"{summary['mod_a']} / {summary['mod_b']}, {summary['meta']['date'][:10]}"
                 f" ({'quick' if summary['meta']['quick'] else 'full'} run)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
