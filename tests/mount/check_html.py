#!/usr/bin/python3
"""Checks an HTML page that signfs renders (the dashboard, the report).

check_html.py FILE [CHART=COUNT ...]

Fails (exit 1, saying why) when python's html.parser finds an element that
is not closed or is closed out of order, an element or attribute that runs
or fetches something (script, img, src=, on*=, an absolute href), when a chart's caption total is not
the sum of its bars' titles ("LABEL: COUNT UNIT"), or when a chart named in
an argument does not count COUNT in all. Prints each chart's id, bars and
total.
"""
import re
import sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
        "param", "source", "track", "wbr"}


class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.charts = [], [], {}
        self.chart = None  # the chart being read
        self.text = None  # the text of a bar's title or the caption's total

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        # Self-contained and inert: nothing runs, nothing is fetched.
        if tag in ("script", "link", "img", "iframe", "object", "embed", "base"):
            self.errors.append(f"<{tag}> at {self.getpos()}")
        for name, value in attrs:
            if name == "src" or name.startswith("on") or name == "href" and (
                    ":" in (value or "") or (value or "").startswith("/")):
                self.errors.append(f"<{tag} {name}={value!r}> at {self.getpos()}")
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))
        if tag == "figure" and "data-chart" in a:
            self.chart = a["data-chart"]
            self.charts[self.chart] = {"bars": 0, "sum": 0, "total": None, "in_bar": False}
        elif self.chart and tag == "rect" and a.get("class") == "bar":
            self.charts[self.chart]["in_bar"] = True
        elif self.chart and (tag == "title" and self.charts[self.chart]["in_bar"] or
                             tag == "b" and a.get("class") == "total"):
            self.text = ""

    def handle_startendtag(self, tag, attrs):
        pass  # closed by its own "/>"

    def handle_data(self, data):
        if self.text is not None:
            self.text += data

    def handle_endtag(self, tag):
        if not self.stack:
            self.errors.append(f"</{tag}> at {self.getpos()} closes nothing")
            return
        top, pos = self.stack.pop()
        if top != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes <{top}> of {pos}")
        if self.chart is None:
            return
        c = self.charts[self.chart]
        if tag == "title" and self.text is not None:
            m = re.fullmatch(r".*: (\d+) \S+", self.text)
            if not m:
                self.errors.append(f"chart {self.chart}: bar title {self.text!r}")
            else:
                c["bars"] += 1
                c["sum"] += int(m.group(1))
            self.text = None
        elif tag == "b" and self.text is not None:
            c["total"] = int(self.text)
            self.text = None
        elif tag == "rect":
            c["in_bar"] = False
        elif tag == "figure":
            self.chart = None


def main():
    page = Page()
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        page.feed(f.read())
    page.close()
    errors = page.errors + [f"<{t}> of {pos} is never closed" for t, pos in page.stack]
    for name, c in page.charts.items():
        print(f"{name}: {c['bars']} bars, total {c['total']}")
        if name != "lifecycle" and c["total"] != c["sum"]:
            errors.append(f"chart {name}: caption total {c['total']}, bars sum {c['sum']}")
    for want in sys.argv[2:]:
        name, count = want.rsplit("=", 1)
        c = page.charts.get(name)
        if c is None:
            errors.append(f"no chart {name}")
        elif c["sum"] != int(count):
            errors.append(f"chart {name} counts {c['sum']}, not {count}")
    for e in errors:
        print(e)
    sys.exit(1 if errors else 0)


main()
