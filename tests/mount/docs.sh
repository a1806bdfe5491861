#!/bin/bash
# Every INI block of the README, and the example config, means what it says:
# signfsctl policy check accepts it (fragments are checked on top of the
# config signfsctl init writes, itself a block of the README), and each
# rule's patterns are exactly those written, comments never among them.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)

# The names the examples use, for the time of the test.
made_group=no made_user=no
getent group release-eng >/dev/null || { groupadd release-eng && made_group=yes; }
getent passwd builder >/dev/null || { useradd -M -N -s /usr/sbin/nologin builder && made_user=yes; }
forget_names() {
	[ $made_user = yes ] && userdel builder
	[ $made_group = yes ] && groupdel release-eng
	cleanup
}
trap forget_names EXIT

/usr/bin/python3 - "$TOP" "$T" <<'PY' >"$T/blocks"
import re, sys
top, tmp = sys.argv[1], sys.argv[2]
readme = open(f"{top}/README.md").read()
blocks = re.findall(r"^```ini\n(.*?)^```", readme, re.M | re.S)
base = next(b for b in blocks if "[daemon]" in b)
for i, b in enumerate(blocks):
    path = f"{tmp}/readme-{i + 1}.conf"
    open(path, "w").write(b if "[daemon]" in b else base + "\n" + b)
    print(path)
print(f"{top}/doc/signfs.conf.example")
PY

while read -r conf; do
	name=${conf#"$T/"}
	name=${name#"$TOP/"}
	if ! "$SIGNFSCTL" policy check "$conf" >"$T/out" 2>&1; then
		not_ok "$name: policy check refused it: $(cat "$T/out")"
		continue
	fi
	# The patterns written on each rule's path lines (a comment starts at
	# '#' or ';' after whitespace), against what the parser made of them.
	if /usr/bin/python3 - "$conf" "$T/out" <<'PY'; then
import re, sys
conf, out = sys.argv[1], sys.argv[2]
written, rule = {}, None
for line in open(conf):
    m = re.match(r"\s*\[rule (\S+)\]", line)
    if m:
        rule = m.group(1)
    elif line.lstrip().startswith(("[", "#", ";")):
        rule = None if line.lstrip().startswith("[") else rule
    elif rule and re.match(r"\s*path\s*=", line):
        value = re.split(r"\s[#;]", line.split("=", 1)[1])[0]
        written.setdefault(rule, []).extend(value.split())
parsed = dict(re.findall(r"^  rule (\S+) \(line \d+\): key \S+ paths (.*?)(?: max_size| hours| rate| quorum| on_anomaly| format|$)",
                         open(out).read(), re.M))
bad = [r for r in written if parsed.get(r, "").split() != written[r]]
for r in bad:
    print(f"# rule {r}: written {written[r]}, parsed {parsed.get(r)}")
sys.exit(1 if bad else 0)
PY
		ok "$name: policy check accepts it, and its rules' patterns are those written"
	else
		not_ok "$name: a rule's patterns differ from those written"
	fi
done <"$T/blocks"
done_testing
