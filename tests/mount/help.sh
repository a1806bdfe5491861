#!/bin/bash
# Every command signfsctl(8) lists answers --help and -h with its usage on
# stdout and exit 0, and nothing on stderr. The list is read from the man
# page, so a command documented later is tested with no edit here.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)

# The commands of the man page's COMMANDS section, one a line: the leading
# lower-case words of each .TP entry's .B line, alternatives ("disable|enable",
# "quorum ... | quorum show PATH") expanded.
/usr/bin/python3 - "$TOP/doc/signfsctl.8" <<'PY' >"$T/verbs"
import re, sys
text = open(sys.argv[1]).read()
section = text.split(".SH COMMANDS", 1)[1].split("\n.SH ", 1)[0]
seen = []
for line in re.findall(r"^\.TP\n\.B (.*)$", section, re.M):
    plain = re.sub(r"\\f[BIRP]", "", line).replace("\\-", "-")
    for part in plain.split(" | "):
        words = []
        for w in part.split():
            if not re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", w):
                break
            words.append(w)
        if not words:
            continue
        for alt in words[-1].split("|"):
            verb = " ".join(words[:-1] + [alt])
            if verb not in seen:
                seen.append(verb)
print("\n".join(seen))
PY
check "the man page lists at least 20 commands" test "$(wc -l <"$T/verbs")" -ge 20
while read -r verb; do
	for h in --help -h; do
		# shellcheck disable=SC2086 # a verb is one to three words
		"$SIGNFSCTL" $verb $h >"$T/stdout" 2>"$T/stderr"
		rc=$?
		check "signfsctl $verb $h: exit 0, usage on stdout, nothing on stderr" sh -c "
			[ $rc = 0 ] && grep -q '^usage: signfsctl ${verb%% *}' '$T/stdout' &&
			! [ -s '$T/stderr' ] || { echo exit $rc; cat '$T/stdout' '$T/stderr'; exit 1; }"
	done
done <"$T/verbs"
check "signfsctl --help lists every command of the man page" sh -c "
	'$SIGNFSCTL' --help >'$T/main'
	while read -r verb; do grep -q \"^  \${verb%% *} \" '$T/main' || { echo \"\$verb\"; exit 1; }; done <'$T/verbs'"
done_testing
