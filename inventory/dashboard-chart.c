/* The bar charts, inline SVG, that the dashboard and signfsctl report's HTML
 * share, and the escaping of every string they show. */
#include "dashboard.h"

#include <string.h>

#define CHART_H 180

void dashboard_escape(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

const char dashboard_chart_css[] =
    "figure.chart{margin:0 0 1em 0;break-inside:avoid}"
    "figure.chart svg{width:100%;height:auto;display:block}"
    "figure.chart figcaption{font-size:90%;margin-bottom:.2em}"
    "svg text{font-family:sans-serif;font-size:11px;fill:#333}"
    "svg .bar{fill:#4a7bb7}svg .axis{stroke:#555;stroke-width:1}svg .gl{stroke:#ddd}"
    "svg .valid{fill:#5a9e5a}svg .expiring{fill:#d9a330}svg .expired{fill:#999}"
    "svg .revoked{fill:#c94040}svg .other{fill:#b07cc6}svg .superseded{opacity:.45}"
    "svg .warnwin{fill:#f3c54b;opacity:.55}svg .alert{stroke:#a33;stroke-width:2}"
    "svg .today{stroke:#06c;stroke-width:2}svg .todaytext{fill:#06c}";

/* The smallest 1, 2 or 5 times a power of ten that is at least MAX (>= 1),
 * and a tick step that divides it. */
static uint64_t nice_max(uint64_t max, uint64_t *step)
{
	uint64_t p = 1;

	if (max < 1)
		max = 1;
	for (;;) {
		static const uint64_t m[] = {1, 2, 5};
		for (int i = 0; i < 3; i++)
			if (m[i] * p >= max) {
				uint64_t n = m[i] * p;
				*step = n % 5 == 0 ? n / 5 : n % 2 == 0 ? n / 2 : n;
				return n;
			}
		p *= 10;
	}
}

/* The y axis, its grid lines and unit. */
static void chart_axes(FILE *f, const struct dashboard_chart *c, uint64_t top, uint64_t step, int w,
		       int l, int t, int ph)
{
	for (uint64_t v = 0; v <= top; v += step) {
		double y = t + ph - (double)v * ph / top;
		fprintf(f,
			"<line class=\"gl\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
			"<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%llu</text>\n",
			l, y, w - 4, y, l - 4, y + 4, (unsigned long long)v);
	}
	fprintf(f,
		"<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
		"<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n"
		"<text x=\"12\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 12 %d)\">",
		l, t, l, t + ph, l, t + ph, w - 4, t + ph, t + ph / 2, t + ph / 2);
	dashboard_escape(f, c->unit);
	fputs(" per ", f);
	dashboard_escape(f, c->per);
	fputs("</text>\n", f);
}

void dashboard_chart_svg(FILE *f, const struct dashboard_chart *c)
{
	const int w = c->width ? c->width : 1000, l = 56, t = 12, ph = CHART_H - 12 - 34;
	uint64_t max = 0, total = 0, step, top;
	size_t every = c->label_every ? c->label_every : 1;
	double slot = c->n ? (double)(w - 4 - l) / c->n : 1;

	for (size_t i = 0; i < c->n; i++) {
		total += c->values[i];
		max = c->values[i] > max ? c->values[i] : max;
	}
	top = nice_max(max, &step);
	fputs("<figure class=\"chart\" data-chart=\"", f);
	dashboard_escape(f, c->id);
	fputs("\"><figcaption><b>", f);
	dashboard_escape(f, c->title);
	fputs("</b>, ", f);
	dashboard_escape(f, c->period);
	fprintf(f, ": total <b class=\"total\">%llu</b> ", (unsigned long long)total);
	dashboard_escape(f, c->unit);
	fprintf(f, "</figcaption>\n<svg viewBox=\"0 0 %d %d\" role=\"img\">\n", w, CHART_H);
	chart_axes(f, c, top, step, w, l, t, ph);
	for (size_t i = 0; i < c->n; i++) {
		double h = (double)c->values[i] * ph / top, x = l + i * slot + slot * 0.1;
		fprintf(f,
			"<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			"height=\"%.1f\"><title>",
			x, t + ph - h, slot * 0.8, h);
		dashboard_escape(f, c->labels[i]);
		fprintf(f, ": %llu ", (unsigned long long)c->values[i]);
		dashboard_escape(f, c->unit);
		fputs("</title></rect>", f);
		if (c->values[i] && slot >= 18)
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%llu</text>",
				x + slot * 0.4, t + ph - h - 3, (unsigned long long)c->values[i]);
		/* A label that would run past the drawing's edge is left out. */
		if (i % every == 0 && x + 6.5 * strlen(c->labels[i]) <= w) {
			fprintf(f, "<text x=\"%.1f\" y=\"%d\">", x, t + ph + 16);
			dashboard_escape(f, c->labels[i]);
			fputs("</text>", f);
		}
		fputc('\n', f);
	}
	fputs("</svg></figure>\n", f);
}
