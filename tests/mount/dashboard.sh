#!/bin/bash
# The dashboard (MOUNT/inventory/dashboard.html) and the HTML report, as an
# admin opens them: copied out of the mount, parsed by python's html.parser
# (every element closed, nothing that runs or fetches), their charts' counts
# equal to /metrics and the inventory's JSON files, a writer's file name
# shown as text and never as markup, and headless Chromium's layout no
# wider than a 1200-pixel window.
. "$(dirname "$0")/lib.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
CTL=$SIGNFSCTL
CHECK=$HERE/check_html.py

init_state
CONF=$STATE/signfs.conf
start_daemon
chmod 755 "$T" "$SRC"
# Anomaly checks begin once the profiles are learned (at once, from an empty log).
for _ in $(seq 200); do grep -q 'being learned' "$MNT/inventory/anomalies" || break; sleep 0.05; done

# A name of 200 bytes with no place to break, the first signature by root
# (a new_signer anomaly, recorded), two more, and two denials of uid 2001,
# one of a name that is markup.
long=$(printf 'n%.0s' $(seq 200))
echo artifact >"$SRC/a"
chmod 644 "$SRC/a"
cp "$SRC/a" "$MNT/inbox/$long"
cp "$SRC/a" "$MNT/inbox/f1"
cp "$SRC/a" "$MNT/inbox/f2"
evil='<img src=x onerror=alert(1)>"&.bin'
as 2001 "" cp "$SRC/a" "$MNT/inbox/$evil" 2>/dev/null
as 2001 "" cp "$SRC/a" "$MNT/inbox/$long-denied" 2>/dev/null

check "dashboard.html is listed in /inventory, with the mode of /inventory/anomalies" sh -c "
	ls '$MNT/inventory' | grep -qx dashboard.html &&
	test \"\$(stat -c %a:%u '$MNT/inventory/dashboard.html')\" = \"\$(stat -c %a:%u '$MNT/inventory/anomalies')\""
check "cp copies it out of the mount (exact size)" sh -c "
	cp '$MNT/inventory/dashboard.html' '$T/dash.html' &&
	test \$(stat -c %s '$T/dash.html') -gt 10000 && grep -q '</html>' '$T/dash.html'"
cp "$MNT/metrics" "$T/metrics"
cp "$MNT/inventory/certificates.json" "$MNT/inventory/anomalies.json" "$T/"
cp "$MNT/inventory/keys/codesign/holders" "$T/holders"

# The counts, from /metrics, checked against the inventory's JSON files.
read -r signed denials anomalies < <(/usr/bin/python3 - "$T" <<'EOF'
import json, re, sys
t = sys.argv[1]
metrics = open(t + "/metrics").read()
def total(pattern):
    return sum(int(float(v)) for v in re.findall(pattern + r"(?:\{.*\})? (\S+)$", metrics, re.M))
signed = total(r'^signfs_signatures_total\{key="codesign",result="signed"\}')
denials = total(r"^signfs_denials_total")
anomalies = total(r"^signfs_anomalies_total")
certs = json.load(open(t + "/certificates.json"))
uses = [c["uses_total"] for c in certs if c["key"] == "codesign" and c["current"]]
assert uses == [signed], (uses, signed)
assert len(json.load(open(t + "/anomalies.json"))) == anomalies
print(signed, denials, anomalies)
EOF
)
check "the counts of this run: 3 signatures, 2 denials, an anomaly or more" \
	test "$signed:$denials" = 3:2 -a "${anomalies:-0}" -ge 1
check "the dashboard parses, every element closed, and its charts count what /metrics and the JSON files count" \
	/usr/bin/python3 "$CHECK" "$T/dash.html" "hourly codesign=$signed" "daily codesign=$signed" \
	"daily denied=$denials" "daily anomaly=$anomalies" "daily held=0" "daily failed=0"
check "health and token state at the top, as /status says" /usr/bin/python3 -c "
import html, re
page = open('$T/dash.html').read()
token = re.search(r'^token: *(.*)$', open('$MNT/status').read(), re.M).group(1)
assert 'class=\"health ok\" id=\"health\">health: ok<' in page
assert 'token: <b>%s</b>' % html.escape(token).replace('&#x27;', '&#39;') in page, token"
check "the lifecycle timeline has each certificate of certificates.json, with its state" \
	/usr/bin/python3 -c "
import html, json
page = open('$T/dash.html').read()
certs = json.load(open('$T/certificates.json'))
assert page.count('<g class=\"cert\">') == len(certs), (page.count('<g class=\"cert\">'), len(certs))
for c in certs:
    t = '<title>%s certificate %s: %s to %s, %s, %s</title>' % (c['key'], c['serial'],
        c['not_before'][:10], c['not_after'][:10], c['status'], 'current' if c['current'] else 'superseded')
    assert t in page, t
assert 'today ' in page"
check "the key holders, as inventory/keys/codesign/holders has them" /usr/bin/python3 -c "
import html
page = open('$T/dash.html').read()
assert html.escape(open('$T/holders').read(), quote=True).replace('&#x27;', '&#39;') in page"
check "the latest denials name the file, escaped, and why" sh -c "
	grep -qF '<td>&lt;img src=x onerror=alert(1)&gt;&quot;&amp;.bin</td><td>no rule allows this user this path</td>' '$T/dash.html'"
check "the latest anomalies list what anomalies.json lists" /usr/bin/python3 -c "
import json
page = open('$T/dash.html').read()
for a in json.load(open('$T/anomalies.json'))[:10]:
    assert '<td>%d</td>' % a['id'] in page and '<td>%s</td>' % a['kind'] in page, a"
check "relative links to the text and JSON files" sh -c "
	grep -q '<a href=\"certificates.json\">' '$T/dash.html' && grep -q '<a href=\"../metrics\">' '$T/dash.html'"

chromium=$(command -v chromium || true)
flags="--headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
flags="$flags --disable-background-networking --disable-component-update --disable-sync"
flags="$flags --user-data-dir=$T/chromium --window-size=1200,900"
# The width Chromium lays a page out in: a copy with a line of script that
# writes it into the DOM (the pages themselves have none).
width() {
	sed 's|</body>|<script>document.body.setAttribute("data-scroll-width", document.documentElement.scrollWidth)</script></body>|' \
		"$1" >"$1.w.html"
	timeout 60 $chromium $flags --virtual-time-budget=2000 --dump-dom "file://$1.w.html" \
		2>/dev/null | sed -n 's/.*data-scroll-width="\([0-9]*\)".*/\1/p'
}
if [ -n "$chromium" ]; then
	printf '<html><body><div style="width:2000px">wide</div></body></html>\n' >"$T/wide.html"
	w=$(width "$T/wide.html")
	check "the width check sees a page wider than the window ($w px)" test "${w:-0}" -gt 1200
	w=$(width "$T/dash.html")
	check "Chromium lays the dashboard out within 1200 px ($w px)" test -n "$w" -a "${w:-9999}" -le 1200
	check "...no element from a file name in its DOM, the name shown as text" sh -c "
		timeout 60 $chromium $flags --dump-dom 'file://$T/dash.html' 2>/dev/null >'$T/dash.dom' &&
		! grep -q '<img' '$T/dash.dom' && grep -qF '&lt;img src=x onerror=alert(1)&gt;' '$T/dash.dom' &&
		test \$(grep -o '<svg' '$T/dash.dom' | wc -l) -ge 7"
	check "...and a screenshot of it" sh -c "
		cd '$T' && timeout 60 $chromium $flags --screenshot='$T/dash.png' 'file://$T/dash.html' >/dev/null 2>&1 &&
		test \$(stat -c %s '$T/dash.png') -gt 20000"
	[ -n "${KEEP_SCREENSHOT:-}" ] && cp "$T/dash.png" "$KEEP_SCREENSHOT.dashboard.png"
else
	not_ok "chromium is not installed (tools/test.sh installs it)"
fi

# The report: its repeated denials are recorded when their minute ends or
# signfsd stops.
check "unmount: signfsd exits 0" stop_daemon
today=$(date -u +%F)
"$CTL" report -c "$CONF" --since "$today" --format html >"$T/report.html"
"$CTL" report -c "$CONF" --since "$today" --format json >"$T/report.json"
check "the report parses, every element closed, its charts count what /metrics counted" \
	/usr/bin/python3 "$CHECK" "$T/report.html" "daily codesign=$signed" \
	"daily denied=$denials" "daily anomaly=$anomalies"
check "...and what its JSON says" /usr/bin/python3 -c "
import json
r = json.load(open('$T/report.json'))
assert (r['signatures'], r['denials'], r['anomalies']) == ($signed, $denials, $anomalies), r"
check "...the long name in its tables" grep -q "$long" "$T/report.html"
if [ -n "$chromium" ]; then
	w=$(width "$T/report.html")
	check "Chromium lays the report out within 1200 px ($w px)" test -n "$w" -a "${w:-9999}" -le 1200
	check "...and prints it: an A4 landscape PDF" sh -c "
		cd '$T' && timeout 60 $chromium $flags --print-to-pdf='$T/report.pdf' --no-pdf-header-footer \
			'file://$T/report.html' >/dev/null 2>&1 &&
		head -c 5 '$T/report.pdf' | grep -q '%PDF' &&
		grep -aq 'MediaBox \[0 0 841\.9[0-9]* 59[45]' '$T/report.pdf'"
	[ -n "${KEEP_SCREENSHOT:-}" ] && cp "$T/report.pdf" "$KEEP_SCREENSHOT.report.pdf"
fi
done_testing
