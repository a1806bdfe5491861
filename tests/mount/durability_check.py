"""The invariants a crash or a power cut must leave intact, checked on a
mounted signfs: durability_check.py MOUNT CA.pem T

- every version whose close() (or rename) returned 0 (an "S PATH SHA" line in
  T/log-*) is what the outbox holds, or a version attempted after it ("A");
- every outbox artifact's signature verifies (openssl cms) and it has a
  `signed` record of its path and content concluded by one `published`;
- every `signed` record has exactly one outcome;
- the outbox and the inbox hold the same paths (a temporary name in the
  inbox, still waiting for its rename, excepted), with the same bytes.
Prints one line per new problem (at most 20) and a summary; exits 1 on any
new problem (T/reported keeps those already reported).
"""
import fnmatch
import glob
import hashlib
import json
import os
import subprocess
import sys

TEMP = ('.*.??????', '*.part', '*.tmp', '*.lock', '.~tmp~')
mnt, ca, t = sys.argv[1:4]
recs = [json.loads(line) for f in sorted(glob.glob(mnt + '/audit/*.jsonl')) for line in open(f)]
outcome = {}
for r in recs:
    if r['event'] in ('published', 'failed', 'abandoned', 'denied', 'held') and 'ref' in r:
        outcome.setdefault(r['ref'], []).append(r['event'])
signed = {r['seq']: r for r in recs if r['event'] == 'signed'}
problems = []
for seq, r in signed.items():
    if len(outcome.get(seq, [])) != 1:
        problems.append('signed record %d (%s) has outcomes %s' % (seq, r['path'], outcome.get(seq)))


def sha(p):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def files(top, skip=lambda name: False):
    out = set()
    for root, dirs, names in os.walk(top):
        for name in names:
            if not skip(name):
                out.add(os.path.relpath(os.path.join(root, name), top))
    return out


def temporary(rel):
    return any(fnmatch.fnmatch(part, p) for part in rel.split('/') for p in TEMP)


# Signatures verified in an earlier round need not be verified again.
cache_file = t + '/verified.json'
verified = set(json.load(open(cache_file))) if os.path.exists(cache_file) else set()
outbox = files(mnt + '/outbox', lambda n: n.endswith('.p7s') or n.endswith('.intoto.jsonl'))
# A temporary name may wait in the inbox for its rename (or its grace).
inbox = {rel for rel in files(mnt + '/inbox') if not temporary(rel) or rel in outbox}
digests = {}
for rel in sorted(outbox):
    path = mnt + '/outbox/' + rel
    digest = digests[rel] = sha(path)
    if not [s for s, r in signed.items() if r['path'] == rel and r['sha256'] == digest
            and outcome.get(s) == ['published']]:
        problems.append('%s: no signed+published record for its content' % rel)
    key = rel + ' ' + digest + ' ' + sha(path + '.p7s')
    if key not in verified:
        v = subprocess.run(['openssl', 'cms', '-verify', '-binary', '-inform', 'DER', '-in',
                            path + '.p7s', '-content', path, '-CAfile', ca, '-purpose', 'any',
                            '-out', '/dev/null'], capture_output=True)
        if v.returncode:
            problems.append('%s: its signature does not verify' % rel)
        else:
            verified.add(key)
    inpath = mnt + '/inbox/' + rel
    if os.path.exists(inpath) and sha(inpath) != digest:
        problems.append('%s: the inbox differs from the outbox' % rel)
json.dump(sorted(verified), open(cache_file, 'w'))
for rel in sorted(inbox - outbox):
    problems.append('%s: in the inbox, not in the outbox' % rel)
for rel in sorted(outbox - inbox):
    problems.append('%s: in the outbox, not in the inbox' % rel)

# An acknowledged version may only have been replaced by a version
# attempted after it (one that committed but could not say so).
last, later = {}, {}
for f in sorted(glob.glob(t + '/log-*')):
    for line in open(f):
        parts = line.split()
        if len(parts) != 3:
            continue  # a line cut short when its writer was killed
        kind, rel, digest = parts
        if kind == 'S':
            last[rel] = digest
            later[rel] = set()
        else:
            later.setdefault(rel, set()).add(digest)
lost = 0


def history(rel):
    """The path's last records, for the reader of a failure."""
    return ', '.join('%s %d%s%s' % (r['event'], r['seq'],
                                    ' sha256 %s..' % r['sha256'][:8] if 'sha256' in r else '',
                                    ' (%s)' % r['reason'] if 'reason' in r else '')
                     for r in [r for r in recs if r.get('path') == rel][-4:])


for rel, digest in last.items():
    if rel not in outbox:
        lost += 1
        problems.append('%s: acknowledged (sha256 %s..), not published; its records: %s' %
                        (rel, digest[:8], history(rel)))
    elif digests[rel] not in {digest} | later[rel]:
        lost += 1
        problems.append('%s: acknowledged (sha256 %s..), replaced by an older version '
                        '(sha256 %s..); its records: %s' %
                        (rel, digest[:8], digests[rel][:8], history(rel)))
# A problem reported by an earlier round (a version lost for good) is not
# counted again.
reported_file = t + '/reported'
reported = set(open(reported_file).read().splitlines()) if os.path.exists(reported_file) else set()
new = [p for p in problems if p.split('; ')[0] not in reported]
for p in new[:20]:
    print(p)
with open(reported_file, 'a') as f:
    f.writelines(p.split('; ')[0] + '\n' for p in new)
print('%d artifacts, %d signed records, %d acknowledged paths (%d lost); %d new problems, %d known' %
      (len(outbox), len(signed), len(last), lost, len(new), len(problems) - len(new)))
sys.exit(bool(new))
