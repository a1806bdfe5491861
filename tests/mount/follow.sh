#!/bin/bash
# The outbox follows the inbox: a file removed from the inbox is withdrawn
# from the outbox (artifact and signature, with a `withdrawn` audit event
# naming it); a renamed one is published under its new name and withdrawn
# under the old; git's temporary files (renamed or removed by git itself)
# never stay published; `rsync --delete` withdraws what it removes. After
# all of it, the outbox and the inbox hold the same paths.
. "$(dirname "$0")/lib.sh"

init_state
start_daemon
I=$MNT/inbox
O=$MNT/outbox

# withdrawn PATH: a `withdrawn` audit event names PATH.
withdrawn() {
	/usr/bin/python3 - "$MNT" "$1" <<'PY'
import glob, json, sys
mnt, path = sys.argv[1:3]
recs = [json.loads(l) for f in sorted(glob.glob(mnt + '/audit/*.jsonl')) for l in open(f)]
sys.exit(not any(r['event'] == 'withdrawn' and r.get('path') == path for r in recs))
PY
}

# gone PATH: neither the artifact nor its signature is in the outbox.
gone() {
	test ! -e "$O/$1" && test ! -e "$O/$1.p7s" && test ! -e "$O/$1.intoto.jsonl"
}

# same_paths DIR: the files under inbox/DIR and outbox/DIR (signatures aside)
# have the same paths; prints the difference.
same_paths() {
	diff <(cd "$I/$1" && find . -type f | sort) \
		<(cd "$O/$1" && find . -type f ! -name '*.p7s' ! -name '*.intoto.jsonl' | sort)
}

random_file "$SRC/x" 40
cp "$SRC/x" "$I/x"
check "rm: x was published first" verify x
rm "$I/x"
check "rm inbox/x: outbox/x and x.p7s are withdrawn" gone x
check "rm inbox/x: a withdrawn event names x" withdrawn x

mkdir -p "$I/sub"
random_file "$SRC/deep" 8
cp "$SRC/deep" "$I/sub/deep"
rm "$I/sub/deep"
check "rm inbox/sub/deep: withdrawn from a subdirectory too" \
	sh -c "test ! -e '$O/sub/deep' && test ! -e '$O/sub/deep.p7s'"

random_file "$SRC/b" 30
cp "$SRC/b" "$I/b"
mv "$I/b" "$I/c"
check "mv inbox/b inbox/c: c is published with b's bytes" cmp "$SRC/b" "$O/c"
check "mv inbox/b inbox/c: c's signature verifies" verify c
check "mv inbox/b inbox/c: b is withdrawn" gone b
check "mv inbox/b inbox/c: a withdrawn event names b" withdrawn b

mkdir -p "$I/dir1"
random_file "$SRC/d1" 12
cp "$SRC/d1" "$I/dir1/one"
mv "$I/dir1" "$I/dir2"
check "mv inbox/dir1 inbox/dir2: dir2/one is published" cmp "$SRC/d1" "$O/dir2/one"
check "mv inbox/dir1 inbox/dir2: dir1/one is withdrawn" gone dir1/one

# A small repository, cloned through git's own transport (pack files,
# tmp_pack_*, tmp_idx_*, packed-refs.new, *.lock, mkstemp names).
mkdir "$T/repo"
(
	cd "$T/repo" && git init -q && git config user.email t@example.org &&
		git config user.name t &&
		for i in 1 2 3 4; do
			head -c 3000 /dev/urandom | base64 >"f$i" && git add "f$i" &&
				git commit -qm "c$i" && git tag "v$i"
		done
) >/dev/null
check "git clone into the inbox exits 0" git clone -q --no-local "$T/repo" "$I/clone"
git_temps() {
	find "$O/clone" \( -name '*.lock' -o -name 'packed-refs.new' -o -name 'tmp_obj_*' -o \
		-name 'tmp_pack_*' -o -name 'tmp_idx_*' -o -name '*.keep' \) -print | tee "$T/temps"
	test ! -s "$T/temps"
}
check "git clone: none of git's temporary files is published" git_temps
check "git clone: the working tree is published" cmp "$T/repo/f4" "$O/clone/f4"
check "git clone: the outbox holds exactly the clone's files" same_paths clone

mkdir -p "$SRC/tree/sub"
for f in a b c sub/d sub/e; do random_file "$SRC/tree/$f" 6; done
rsync -a "$SRC/tree/" "$I/r/"
check "rsync -a: the tree is published" cmp "$SRC/tree/sub/e" "$O/r/sub/e"
rm "$SRC/tree/b" "$SRC/tree/sub/e"
check "rsync -a --delete exits 0" rsync -a --delete "$SRC/tree/" "$I/r/"
check "rsync --delete: the files it removed are withdrawn" sh -c "
	test ! -e '$O/r/b' && test ! -e '$O/r/b.p7s' && test ! -e '$O/r/sub/e' &&
		test ! -e '$O/r/sub/e.p7s'"
rsync_withdrawn() { withdrawn r/b && withdrawn r/sub/e; }
check "rsync --delete: withdrawn events name them" rsync_withdrawn
check "rsync --delete: the rest stays published" cmp "$SRC/tree/sub/d" "$O/r/sub/d"

check "after all of it: the outbox and the inbox hold the same paths" same_paths .
check "after all of it: every artifact verifies" verify_all
check "unmount: signfsd exits 0" stop_daemon
done_testing
