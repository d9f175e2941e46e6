"""The HTML report's stylesheet and Content-Security-Policy (inline: the page opens offline)."""

from __future__ import annotations

__all__ = ["CSP", "CSS"]

CSS = """
:root{--pass:#2b8a3e;--fail:#c92a2a;--nodata:#868e96;--warn:#e67700;--ink:#212529;--muted:#6c757d;--line:#dee2e6}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);
margin:0 auto;max-width:1100px;padding:16px 20px 40px}
h1{font-size:22px;margin:4px 0 12px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);
padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
.banner{border-radius:8px;padding:14px 18px;color:#fff;display:flex;flex-wrap:wrap;gap:8px 28px;align-items:baseline}
.banner.pass{background:var(--pass)}.banner.fail{background:var(--fail)}.banner.unknown{background:var(--nodata)}
.banner.inconclusive{background:var(--warn)}
.banner .verdict{font-size:24px;font-weight:700;letter-spacing:.5px}
.meta{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:4px 18px;margin:12px 0;
color:var(--muted)}.meta b{color:var(--ink);font-weight:600}
.note{border-left:4px solid var(--warn);background:#fff4e6;padding:8px 12px;margin:8px 0}
.note.abort{border-color:var(--fail);background:#fff5f5}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f8f9fa;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.num,#thresholds td:first-child{white-space:nowrap}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;color:#fff;font-size:12px;font-weight:600;
white-space:nowrap}.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}
.badge.nodata,.badge.unknown{background:var(--nodata)}
tr.fail td{background:#fff5f5}code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
svg.defs{position:absolute}.chart-svg text{fill:#495057}.chart-svg .grid{stroke:#e9ecef}
.chart{margin:8px 0 4px}.chart svg{width:100%;max-width:980px;height:auto;background:#fff}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12.5px;margin:2px 0 10px}
.legend i{display:inline-block;width:14px;height:4px;margin-right:5px;vertical-align:middle}
.muted{color:var(--muted)}.empty{color:var(--muted);font-style:italic}
.attr{border:1px solid var(--line);border-radius:6px;padding:8px 12px;margin:8px 0}
tr.fail-windows td{background:#fff9f9}.mark{color:var(--fail);font-weight:700}
.note.fault{border-color:#f59f00;background:#fff9db}.note ul{margin:4px 0 0;padding-left:20px}
.toc{font-size:13px;margin:10px 0;padding:6px 10px;background:#f8f9fa;border-radius:6px}
.toc a,.links a{color:#1f5fbf}
.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:6px 16px}
.small{border:1px solid var(--line);border-radius:6px;padding:4px 8px}.small.fail{border-color:#ffa8a8}
.small h4{margin:4px 0;font-size:13px;font-weight:600}.small .chart{margin:0}.small .legend{margin:0 0 2px}
footer{margin-top:30px;color:var(--muted);font-size:12px}
"""

# Scripts and every network fetch are forbidden: the report opens offline and stays inert.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
