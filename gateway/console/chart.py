"""A tiny server-rendered bar chart: accepted and refused webhooks per minute.

The bars are an SVG that stretches to its box (``preserveAspectRatio="none"``: any width, a
fixed height); the labels are HTML under it, so no width makes them overlap a bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from gateway.outbox import ActivityBucket

WIDTH = 600  # user units of the viewBox; the bars stretch to the page's width
HEIGHT = 100


def activity_svg(buckets: Sequence[ActivityBucket]) -> Markup:
    """Stacked bars (accepted below, refused on top), one per bucket, with a title per bar."""
    peak = max((b.accepted + b.rejected for b in buckets), default=0)
    scale = HEIGHT / peak if peak else 0.0
    slot = WIDTH / max(1, len(buckets))
    bar = max(1.0, slot * 0.8)
    parts = [
        '<figure class="chart" id="chart">',
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none"'
        ' role="img" aria-label="webhooks per minute, last hour"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" class="axis"'
        ' vector-effect="non-scaling-stroke"/>',
    ]
    for i, b in enumerate(buckets):
        x = i * slot + (slot - bar) / 2
        ok_h = b.accepted * scale
        bad_h = b.rejected * scale
        title = escape(f"{len(buckets) - i} min ago: {b.accepted} accepted, {b.rejected} refused")
        parts.append(f'<g data-accepted="{b.accepted}" data-rejected="{b.rejected}">')
        parts.append(f"<title>{title}</title>")
        if ok_h:
            parts.append(
                f'<rect class="ok" x="{x:.2f}" y="{HEIGHT - ok_h:.2f}" width="{bar:.2f}"'
                f' height="{ok_h:.2f}"/>'
            )
        if bad_h:
            parts.append(
                f'<rect class="bad" x="{x:.2f}" y="{HEIGHT - ok_h - bad_h:.2f}"'
                f' width="{bar:.2f}" height="{bad_h:.2f}"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    parts.append(
        '<figcaption class="chart-axis">'
        f"<span>-{len(buckets)} min</span>"
        f'<span class="peak" id="chart-peak">peak {peak}/min</span>'
        "<span>now</span></figcaption></figure>"
    )
    return Markup("".join(parts))
