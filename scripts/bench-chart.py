#!/usr/bin/env python3
"""Draws throughput and p99 latency against concurrency from orderly-bench JSON reports.

Usage: scripts/bench-chart.py REPORT.json... > docs/bench-concurrency.svg

Each report is one run (`orderly-bench scenario ... --out FILE`); runs are grouped into one line
per scenario and database, ordered by their client count. Standard library only.
"""
import json
import math
import sys
from collections import defaultdict

WIDTH, HEIGHT = 960, 360
PANEL_W, PANEL_H = 360, 250
MARGIN_L, MARGIN_T = 70, 50
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def load(paths):
    series = defaultdict(list)
    for path in paths:
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
        key = f"{r['scenario']} · {r['database']}"
        series[key].append((r["clients"], r["throughput_per_s"], r["latency_ms"]["p99"]))
    return {k: sorted(v) for k, v in sorted(series.items())}


def nice_max(v):
    if v <= 0:
        return 1
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def panel(x0, title, series, pick, unit, clients):
    out = []
    ymax = nice_max(max(pick(p) for pts in series.values() for p in pts))
    lo, hi = math.log2(min(clients)), math.log2(max(clients))
    span = hi - lo or 1

    def px(c):
        return x0 + (math.log2(c) - lo) / span * PANEL_W

    def py(v):
        return MARGIN_T + PANEL_H - v / ymax * PANEL_H

    out.append(f'<text x="{x0 + PANEL_W / 2}" y="{MARGIN_T - 18}" text-anchor="middle" font-weight="bold">{title}</text>')
    out.append(f'<line x1="{x0}" y1="{MARGIN_T + PANEL_H}" x2="{x0 + PANEL_W}" y2="{MARGIN_T + PANEL_H}" stroke="#333"/>')
    out.append(f'<line x1="{x0}" y1="{MARGIN_T}" x2="{x0}" y2="{MARGIN_T + PANEL_H}" stroke="#333"/>')
    for i in range(5):
        v = ymax * i / 4
        y = py(v)
        out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + PANEL_W}" y2="{y}" stroke="#eee"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4}" text-anchor="end" font-size="11">{v:,.0f}</text>')
    for c in clients:
        out.append(f'<text x="{px(c)}" y="{MARGIN_T + PANEL_H + 16}" text-anchor="middle" font-size="11">{c}</text>')
    out.append(f'<text x="{x0 + PANEL_W / 2}" y="{MARGIN_T + PANEL_H + 34}" text-anchor="middle" font-size="12">concurrent clients</text>')
    out.append(f'<text x="{x0 - 52}" y="{MARGIN_T + PANEL_H / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 {x0 - 52} {MARGIN_T + PANEL_H / 2})">{unit}</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{px(p[0]):.1f},{py(pick(p)):.1f}" for p in pts)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for p in pts:
            out.append(f'<circle cx="{px(p[0]):.1f}" cy="{py(pick(p)):.1f}" r="3" fill="{colour}"/>')
    return out


def main():
    series = load(sys.argv[1:])
    if not series:
        sys.exit("no reports given: pass orderly-bench JSON files")
    clients = sorted({c for pts in series.values() for c, *_ in pts})
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 20 * len(series)}" font-family="sans-serif">',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    parts += panel(MARGIN_L, "Throughput", series, lambda p: p[1], "requests / s", clients)
    parts += panel(MARGIN_L + PANEL_W + 90, "p99 latency", series, lambda p: p[2], "ms", clients)
    for i, name in enumerate(series):
        y = HEIGHT + 20 * i
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<rect x="{MARGIN_L}" y="{y - 10}" width="14" height="4" fill="{colour}"/>')
        parts.append(f'<text x="{MARGIN_L + 20}" y="{y - 4}" font-size="12">{name}</text>')
    parts.append("</svg>")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
