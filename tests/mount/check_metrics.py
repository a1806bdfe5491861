#!/usr/bin/python3
"""Strict check of a Prometheus text exposition (format 0.0.4): every line is
a HELP, a TYPE or a sample of the grammar; each family is declared once,
before its samples, with a known type; histograms have ordered cumulative
buckets ending in +Inf that equal _count. Then it is parsed again with the
reference client (Debian's python3-prometheus-client) and the values named
on the command line (NAME{LABELS}=VALUE, or >=VALUE) are checked."""
import math
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL})(?:,{LABEL})*\}})? (\S+)$")
HELP = re.compile(rf"^# HELP ({NAME}) .*$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")

text = open(sys.argv[1]).read()
assert text.endswith("\n"), "exposition must end with a newline"
types, helped, seen_samples = {}, set(), set()
buckets = {}
for n, line in enumerate(text.split("\n")[:-1], 1):
    if m := HELP.match(line):
        assert m[1] not in helped, f"line {n}: second HELP for {m[1]}"
        helped.add(m[1])
    elif m := TYPE.match(line):
        assert m[1] not in types, f"line {n}: second TYPE for {m[1]}"
        assert m[1] not in seen_samples, f"line {n}: TYPE after samples of {m[1]}"
        types[m[1]] = m[2]
    elif m := SAMPLE.match(line):
        name, value = m[1], m[3]
        float(value)  # must be a number (NaN and +Inf included)
        family = re.sub(r"_(bucket|sum|count|total)$", "", name)
        fam = name if name in types else family if family in types else None
        if fam is None and name.endswith("_total"):
            fam = name[:-6] if name[:-6] in types else None
        assert fam is not None or name in types, f"line {n}: {name} has no TYPE"
        seen_samples.add(fam or name)
        if name.endswith("_bucket"):
            le = re.search(r'le="([^"]*)"', m[2] or "")[1]
            buckets.setdefault(family, []).append((math.inf if le == "+Inf" else float(le), float(value)))
        if name.endswith("_count") and family in buckets:
            assert buckets[family][-1][0] == math.inf, f"{family}: no +Inf bucket"
            assert buckets[family][-1][1] == float(value), f"{family}: +Inf bucket != _count"
    else:
        raise AssertionError(f"line {n} is not exposition format: {line!r}")
for fam, bs in buckets.items():
    les = [b[0] for b in bs]
    assert les == sorted(les), f"{fam}: buckets out of order"
    counts = [b[1] for b in bs]
    assert counts == sorted(counts), f"{fam}: buckets not cumulative"

samples = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
for want in sys.argv[2:]:
    at_least = ">=" in want
    key, value = want.rsplit(">=" if at_least else "=", 1)
    assert key in samples, f"{key} missing; have {sorted(samples)}"
    if at_least:
        assert samples[key] >= float(value), f"{key} is {samples[key]}, expected >= {value}"
    else:
        assert samples[key] == float(value), f"{key} is {samples[key]}, expected {value}"
print(f"{len(samples)} samples, {len(types)} families: ok")
