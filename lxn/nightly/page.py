"""The nightly page as HTML: one self-contained file (inline CSS, an inline SVG chart, thumbnails
as data URIs, no script), so it opens from a bucket or a laptop with no server.

Everything that came from a report or a summary (brand names, URIs, error messages) is escaped;
every list is bounded, so a night of millions of rows gives a page of the same size as one of
a hundred.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lxn.nightly.picks import Hit, Picks
from lxn.nightly.thumbs import HIT_COLOUR, OTHER_COLOUR, Thumb

__all__ = ["PageData", "Totals", "build_page", "hits_shown", "COUNT_KEYS", "CHART_BRANDS", "TABLE_BRANDS", "HIT_BRANDS"]

COUNT_KEYS = ("scanned", "ok", "error", "with_brand", "no_brand", "unknown_mark", "detections")
CHART_BRANDS = 6    # lines in the chart
TABLE_BRANDS = 30   # rows in the comparison table
HIT_BRANDS = 12     # brands with a row of thumbnails
_ERROR_TEXT = 300   # characters of an error message shown
_PALETTE = ("#0a84ff", "#ff9f0a", "#30d158", "#bf5af2", "#ff375f", "#64d2ff")


@dataclasses.dataclass
class Totals:
    """Counts summed over scans' summaries."""

    counts: Counter[str]
    brands: Counter[str]            # appearances (detections)
    images_by_brand: Counter[str]
    errors_by_kind: Counter[str]
    scans: int

    @classmethod
    def of(cls, summaries: Iterable[Mapping[str, Any]]) -> "Totals":
        totals = cls(Counter(), Counter(), Counter(), Counter(), 0)
        for summary in summaries:
            totals.scans += 1
            totals.counts.update({k: int(v) for k, v in summary.get("counts", {}).items() if isinstance(v, int)})
            for name in ("brands", "images_by_brand", "errors_by_kind"):
                getattr(totals, name).update({str(k): int(v) for k, v in summary.get(name, {}).items()})
        return totals


@dataclasses.dataclass
class PageData:
    """What one page shows."""

    title: str
    focus: list[dict[str, Any]]                     # the scans the page is about: tonight's, or the range's
    nights: list[tuple[str, list[dict[str, Any]]]]  # every night on the chart, oldest first, with its scans
    baseline: list[dict[str, Any]]                  # the trailing nights' scans the focus is compared with
    picks: Picks
    thumbs: Mapping[tuple[str, str | None], Thumb]
    generated_at: str = dataclasses.field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    lxn_version: str = ""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1c1c1e;background:#f2f2f7}
main{max-width:1180px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}h3{font-size:15px;margin:14px 0 6px}
.meta{color:#636366}.card{background:#fff;border-radius:10px;padding:14px 16px;margin:10px 0;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e5e5ea}
th{font-weight:600;color:#3a3a3c}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.counts{display:flex;flex-wrap:wrap;gap:10px}.count{background:#fff;border-radius:10px;padding:10px 14px;
min-width:110px;box-shadow:0 1px 2px rgba(0,0,0,.08)}.count b{display:block;font-size:22px}
.flag{border-radius:10px;padding:10px 14px;margin:12px 0;font-weight:600}
.flag.drift{background:#ffe5e5;color:#a1001d}.flag.stable{background:#e3f9e5;color:#0b6b2b}
.flag.unknown{background:#eee;color:#48484a}
.grid{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;background:#fff;border-radius:8px;padding:6px;
width:196px;box-shadow:0 1px 2px rgba(0,0,0,.08)}figure img{display:block;max-width:192px;max-height:192px}
figcaption{font-size:12px;color:#3a3a3c;word-break:break-all}.missing{width:192px;height:96px;display:flex;
align-items:center;justify-content:center;background:#e5e5ea;color:#636366;font-size:12px;text-align:center}
.up{color:#0b6b2b}.down{color:#a1001d}.key{display:inline-block;width:10px;height:10px;border-radius:2px;
margin-right:4px}.legend span{margin-right:14px;white-space:nowrap}code{font-size:12px}
"""


def build_page(data: PageData) -> str:
    """The page's HTML."""
    totals = Totals.of(data.focus)
    sections = [
        _header(data, totals),
        _drift(data.focus),
        _counts(totals),
        _chart_section(data.nights, totals),
        _nights_table(data.nights),
        _compare(totals, data.baseline),
        _top_hits(data, totals),
        _hit_section("queue", "Review queue: nearest the threshold",
                     "Hits just above and rejections just below the no-logo threshold, the closest first.",
                     data.picks.queue, data.thumbs),
        _hit_section("unknown", "Unknown marks",
                     "Logo-like marks the open-set check would not name (brand_source = unknown).",
                     data.picks.unknown, data.thumbs),
        _hit_section("prototype", "New-brand (prototype) hits",
                     "Brands onboarded from a few examples (brand_source = prototype).",
                     data.picks.prototype, data.thumbs),
        _errors(totals, data.picks.errors),
        _footer(data),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            f"style-src 'unsafe-inline'\"><title>{_e(data.title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{''.join(sections)}</main></body></html>\n")


def _header(data: PageData, totals: Totals) -> str:
    models = sorted({f"{s.get('model', {}).get('name')} v{s.get('model', {}).get('version')}" for s in data.focus})
    thresholds = sorted({f"{s.get('threshold', {}).get('value')} ({s.get('threshold', {}).get('source', '?')})"
                         for s in data.focus if s.get("threshold")})
    scans = ", ".join(_e(s.get("scan_id")) for s in data.focus[:5]) + (
        f" and {len(data.focus) - 5} more" if len(data.focus) > 5 else "")
    return (f"<header id=\"header\"><h1>{_e(data.title)}</h1>"
            f"<div class=\"meta\">scans: {scans or 'none'}</div>"
            f"<div class=\"meta\" id=\"model\">model: {_e(', '.join(models) or 'none')}"
            f" &middot; no-logo threshold: {_e(', '.join(thresholds) or 'n/a')}</div></header>")


def _drift(focus: Sequence[Mapping[str, Any]]) -> str:
    verdicts = [(s.get("scan_id"), s.get("drift")) for s in focus if isinstance(s.get("drift"), dict)]
    if not verdicts:
        return "<div id=\"drift\" class=\"flag unknown\">Drift: not assessed for these scans</div>"
    drifted = [(scan, v) for scan, v in verdicts if v.get("drifted")]
    if drifted:
        lines = "; ".join(f"{_e(scan)}: {_e(', '.join(v.get('reasons', [])))}" for scan, v in drifted[:5])
        return (f"<div id=\"drift\" class=\"flag drift\" data-drifted=\"true\">Drift: {lines} "
                f"(population stability index against the trailing {_e(drifted[0][1].get('window_nights'))} "
                f"nights; cut {_e(drifted[0][1].get('cut'))})</div>")
    judged = [(scan, v) for scan, v in verdicts if v.get("drifted") is False]
    if judged:
        v = judged[-1][1]
        return (f"<div id=\"drift\" class=\"flag stable\" data-drifted=\"false\">No drift: brand mix PSI "
                f"{_e(v.get('brand_psi'))}, confidence PSI {_e(v.get('confidence_psi'))} against the trailing "
                f"{_e(v.get('window_nights'))} nights (cut {_e(v.get('cut'))})</div>")
    reason = verdicts[-1][1].get("reason", "")
    return f"<div id=\"drift\" class=\"flag unknown\" data-drifted=\"none\">Drift: not judged ({_e(reason)})</div>"


def _counts(totals: Totals) -> str:
    cells = "".join(f"<div class=\"count\"><b data-count=\"{k}\">{totals.counts.get(k, 0):,}</b>{_e(k.replace('_', ' '))}"
                    f"</div>" for k in COUNT_KEYS)
    return f"<section id=\"counts\"><h2>Images</h2><div class=\"counts\">{cells}</div></section>"


def _night_totals(nights: Sequence[tuple[str, list[dict[str, Any]]]]) -> list[tuple[str, Totals]]:
    return [(date, Totals.of(scans)) for date, scans in nights]


def _chart_section(nights: Sequence[tuple[str, list[dict[str, Any]]]], totals: Totals) -> str:
    per_night = _night_totals(nights)
    overall = sum((t.brands for _, t in per_night), Counter()) + totals.brands
    shown = [name for name, _ in sorted(overall.items(), key=lambda kv: (-kv[1], kv[0]))[:CHART_BRANDS]]
    if not shown or not per_night:
        return "<section id=\"trend\"><h2>Brand appearances by night</h2><p>No brand appeared.</p></section>"
    return (f"<section id=\"trend\"><h2>Brand appearances by night</h2><div class=\"card\">"
            f"{_svg_chart(per_night, shown)}<div class=\"legend\">"
            + "".join(f"<span><i class=\"key\" style=\"background:{_PALETTE[i]}\"></i>{_e(name)}</span>"
                      for i, name in enumerate(shown))
            + "</div></div></section>")


def _svg_chart(per_night: Sequence[tuple[str, Totals]], shown: Sequence[str]) -> str:
    width, height, left, right, top, bottom = 1100, 260, 48, 16, 12, 34
    n = len(per_night)
    peak = max([t.brands.get(name, 0) for _, t in per_night for name in shown] + [1])
    x = [left + (width - left - right) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]

    def y(value: int) -> float:
        return top + (height - top - bottom) * (1 - value / peak)

    parts = [f"<svg id=\"chart\" viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" "
             f"xmlns=\"http://www.w3.org/2000/svg\" aria-label=\"brand appearances per night\">",
             f"<line x1=\"{left}\" y1=\"{y(0):.1f}\" x2=\"{width - right}\" y2=\"{y(0):.1f}\" stroke=\"#c7c7cc\"/>",
             f"<text x=\"{left - 6}\" y=\"{y(peak) + 4:.1f}\" text-anchor=\"end\" font-size=\"11\">{peak}</text>",
             f"<text x=\"{left - 6}\" y=\"{y(0) + 4:.1f}\" text-anchor=\"end\" font-size=\"11\">0</text>"]
    step = max(1, n // 8)
    for i, (date, _) in enumerate(per_night):
        if i % step == 0 or i == n - 1:
            parts.append(f"<text x=\"{x[i]:.1f}\" y=\"{height - 12}\" text-anchor=\"middle\" "
                         f"font-size=\"11\">{_e(date[5:])}</text>")
    for j, name in enumerate(shown):
        colour = _PALETTE[j]
        values = [t.brands.get(name, 0) for _, t in per_night]
        points = " ".join(f"{x[i]:.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{points}\"/>")
        for i, v in enumerate(values):
            parts.append(f"<circle cx=\"{x[i]:.1f}\" cy=\"{y(v):.1f}\" r=\"3.5\" fill=\"{colour}\">"
                         f"<title>{_e(name)}, {_e(per_night[i][0])}: {v}</title></circle>")
    parts.append("</svg>")
    return "".join(parts)


def _nights_table(nights: Sequence[tuple[str, list[dict[str, Any]]]]) -> str:
    rows = []
    for date, totals in reversed(_night_totals(nights)):
        scans = [s for d, ss in nights if d == date for s in ss]
        verdicts = [s.get("drift", {}).get("drifted") for s in scans if isinstance(s.get("drift"), dict)]
        flag = "drift" if any(verdicts) else ("stable" if False in verdicts else "&ndash;")
        rows.append(f"<tr data-night=\"{_e(date)}\"><td>{_e(date)}</td><td class=\"n\">{totals.scans}</td>"
                    f"<td class=\"n\">{totals.counts.get('scanned', 0):,}</td>"
                    f"<td class=\"n\">{totals.counts.get('with_brand', 0):,}</td>"
                    f"<td class=\"n\">{totals.counts.get('detections', 0):,}</td>"
                    f"<td class=\"n\">{totals.counts.get('error', 0):,}</td><td>{flag}</td></tr>")
    return ("<section id=\"nights\"><h2>Nights</h2><div class=\"card\"><table><tr><th>night</th><th class=\"n\">scans"
            "</th><th class=\"n\">images</th><th class=\"n\">with a brand</th><th class=\"n\">appearances</th>"
            "<th class=\"n\">errors</th><th>drift</th></tr>" + "".join(rows) + "</table></div></section>")


def _compare(totals: Totals, baseline: Sequence[Mapping[str, Any]]) -> str:
    window = Totals.of(baseline)
    nights = len({s.get("date") for s in baseline})  # nights with a scan; a night not scanned is no zero
    names = set(totals.brands) | set(totals.images_by_brand) | set(window.brands)
    ordered = sorted(names, key=lambda b: (-totals.brands.get(b, 0), -window.brands.get(b, 0), b))
    head = ("<tr><th>brand</th><th class=\"n\">appearances</th><th class=\"n\">images</th>"
            + (f"<th class=\"n\">trailing mean ({nights} nights)</th><th class=\"n\">change</th>" if nights else "")
            + "</tr>")
    rows = []
    for name in ordered[:TABLE_BRANDS]:
        tonight = totals.brands.get(name, 0)
        cells = (f"<td>{_e(name)}</td><td class=\"n\" data-appearances>{tonight:,}</td>"
                 f"<td class=\"n\" data-images>{totals.images_by_brand.get(name, 0):,}</td>")
        if nights:
            mean = window.brands.get(name, 0) / nights
            if mean == 0:
                change = "<span class=\"up\">new</span>" if tonight else "&ndash;"
            else:
                ratio = tonight / mean - 1
                css = "up" if ratio > 0.005 else "down" if ratio < -0.005 else "same"
                change = f"<span class=\"{css}\">{ratio:+.0%}</span>"
            cells += f"<td class=\"n\">{mean:,.1f}</td><td class=\"n\">{change}</td>"
        rows.append(f"<tr data-brand=\"{_e(name)}\">{cells}</tr>")
    more = (f"<p class=\"meta\">and {len(ordered) - TABLE_BRANDS} more brands (the summary JSON lists all)</p>"
            if len(ordered) > TABLE_BRANDS else "")
    body = (f"<table>{head}{''.join(rows)}</table>{more}" if rows else "<p>No brand appeared.</p>")
    return f"<section id=\"brands\"><h2>Brands</h2><div class=\"card\">{body}</div></section>"


def _figure(hit: Hit, thumbs: Mapping[tuple[str, str | None], Thumb], caption: str) -> str:
    thumb = thumbs.get((hit.uri, hit.brand))
    name = hit.uri.rsplit("/", 1)[-1]
    if thumb is not None and thumb.src:
        picture = f"<img src=\"{_e(thumb.src)}\" alt=\"{_e(name)}\" loading=\"lazy\">"
    else:
        why = thumb.error if thumb is not None else "no thumbnail"
        picture = f"<div class=\"missing\">image unavailable<br>{_e(_short(why or '', 120))}</div>"
    return (f"<figure data-uri=\"{_e(hit.uri)}\">{picture}<figcaption title=\"{_e(hit.uri)}\">{caption}<br>"
            f"<code>{_e(_short(name, 60))}</code></figcaption></figure>")


def _hit_brands(picks: Picks, totals: Totals) -> list[str]:
    """The brands with thumbnails, most images first; then the rest."""
    return sorted(picks.top, key=lambda b: (-totals.images_by_brand.get(b, 0), b))


def hits_shown(picks: Picks, focus: Iterable[Mapping[str, Any]]) -> list[Hit]:
    """Every hit the page of `focus` shows as a thumbnail: what to fetch and draw."""
    brands = _hit_brands(picks, Totals.of(focus))[:HIT_BRANDS]
    return [h for b in brands for h in picks.top[b]] + picks.queue + picks.unknown + picks.prototype


def _top_hits(data: PageData, totals: Totals) -> str:
    brands = _hit_brands(data.picks, totals)
    blocks = []
    for brand in brands[:HIT_BRANDS]:
        figures = "".join(_figure(h, data.thumbs, f"{_e(h.brand)} {h.confidence:.2f} &middot; {_e(h.source)}")
                          for h in data.picks.top[brand])
        blocks.append(f"<h3>{_e(brand)}</h3><div class=\"grid\">{figures}</div>")
    more = (f"<p class=\"meta\">and {len(brands) - HIT_BRANDS} more brands</p>" if len(brands) > HIT_BRANDS else "")
    key = (f"<p class=\"meta\"><i class=\"key\" style=\"background:rgb{HIT_COLOUR}\"></i>the brand's mark "
           f"<i class=\"key\" style=\"background:rgb{OTHER_COLOUR}\"></i>other marks</p>")
    body = "".join(blocks) + more if blocks else "<p>No brand hits.</p>"
    return f"<section id=\"top-hits\"><h2>Top hits per brand</h2>{key}{body}</section>"


def _hit_section(section_id: str, title: str, about: str, hits: Sequence[Hit],
                 thumbs: Mapping[tuple[str, str | None], Thumb]) -> str:
    figures = "".join(
        _figure(h, thumbs, f"{_e(h.brand or 'no brand')} {h.confidence:.2f}"
                           + (f" &middot; {_e(h.note)} ({h.margin:+.2f})" if h.note else ""))
        for h in hits)
    body = f"<div class=\"grid\">{figures}</div>" if figures else "<p>None tonight.</p>"
    return f"<section id=\"{section_id}\"><h2>{_e(title)}</h2><p class=\"meta\">{_e(about)}</p>{body}</section>"


def _errors(totals: Totals, examples: Mapping[str, list[dict[str, str]]]) -> str:
    if not totals.errors_by_kind:
        return "<section id=\"errors\"><h2>Errors</h2><p>No errors.</p></section>"
    rows = []
    for kind, count in sorted(totals.errors_by_kind.items(), key=lambda kv: (-kv[1], kv[0])):
        shown = "".join(f"<div><code>{_e(_short(x['uri'], 160))}</code>: {_e(_short(x['error'], _ERROR_TEXT))}</div>"
                        for x in examples.get(kind, []))
        rows.append(f"<tr data-error-kind=\"{_e(kind)}\"><td>{_e(kind)}</td><td class=\"n\">{count:,}</td>"
                    f"<td>{shown}</td></tr>")
    return ("<section id=\"errors\"><h2>Errors</h2><div class=\"card\"><table><tr><th>kind</th><th class=\"n\">images"
            "</th><th>examples</th></tr>" + "".join(rows) + "</table></div></section>")


def _footer(data: PageData) -> str:
    reports = "".join(f"<div><code>{_e(s.get('report', {}).get('uri'))}</code> "
                      f"({_e(s.get('report', {}).get('rows'))} rows)</div>" for s in data.focus[:20])
    return (f"<footer id=\"footer\" class=\"meta\"><h2>Reports</h2>{reports}<p>written {_e(data.generated_at)} "
            f"by lxn {_e(data.lxn_version)}</p></footer>")
