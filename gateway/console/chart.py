"""A tiny server-rendered SVG bar chart: accepted and refused webhooks per minute."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from gateway.outbox import ActivityBucket

WIDTH = 600
HEIGHT = 120
_PAD = 18  # room for the axis labels


def activity_svg(buckets: Sequence[ActivityBucket]) -> Markup:
    """Stacked bars (accepted below, refused on top), one per bucket, with a title per bar."""
    peak = max((b.accepted + b.rejected for b in buckets), default=0)
    scale = (HEIGHT - _PAD) / peak if peak else 0.0
    slot = WIDTH / max(1, len(buckets))
    bar = max(1.0, slot - 2)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" height="{HEIGHT}"'
        ' role="img" aria-label="webhooks per minute, last hour" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="0" y1="{HEIGHT - _PAD}" x2="{WIDTH}" y2="{HEIGHT - _PAD}" class="axis"/>',
        f'<text x="0" y="{HEIGHT - 4}" class="label">-{len(buckets)} min</text>',
        f'<text x="{WIDTH}" y="{HEIGHT - 4}" class="label" text-anchor="end">now</text>',
        f'<text x="{WIDTH}" y="10" class="label" text-anchor="end">peak {peak}/min</text>',
    ]
    base = HEIGHT - _PAD
    for i, b in enumerate(buckets):
        x = i * slot + 1
        ok_h = b.accepted * scale
        bad_h = b.rejected * scale
        title = escape(f"{len(buckets) - i} min ago: {b.accepted} accepted, {b.rejected} refused")
        parts.append(f'<g data-accepted="{b.accepted}" data-rejected="{b.rejected}">')
        parts.append(f"<title>{title}</title>")
        if ok_h:
            parts.append(
                f'<rect class="ok" x="{x:.1f}" y="{base - ok_h:.1f}" width="{bar:.1f}"'
                f' height="{ok_h:.1f}"/>'
            )
        if bad_h:
            parts.append(
                f'<rect class="bad" x="{x:.1f}" y="{base - ok_h - bad_h:.1f}" width="{bar:.1f}"'
                f' height="{bad_h:.1f}"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
