// Command auditcheck verifies an archived copy of signfs's /audit directory
// with the Go reference packages for transparency logs, so that an auditor
// need not trust signfsctl: golang.org/x/mod/sumdb/tlog computes the RFC 6962
// tree (leaf SHA-256(0x00||line), node SHA-256(0x01||left||right)), its
// inclusion and consistency proofs, and golang.org/x/mod/sumdb/note parses
// the signed checkpoint and checks its signature. note knows Ed25519 keys
// only; signfs signs with ECDSA P-256 (signed-note type 0x02), so the
// signature check itself is a note.Verifier written here on Go's
// crypto/ecdsa.
//
//	auditcheck [-vkey VKEY] [-old OLD-CHECKPOINT] DIR
//
// DIR holds YYYY-MM-DD.jsonl, checkpoint and audit.pub as /audit shows them.
// VKEY pins the key ("NAME+HASH+BASE64", the vkey line of audit.pub); without
// it, the one in DIR/audit.pub is used. With OLD-CHECKPOINT, it also proves
// that the log extends the one that checkpoint signed. Exit 0: intact; 1:
// anything fails to verify (the reason is printed); 2: usage.
//
// Build offline from Debian's packages golang-go and golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o auditcheck main.go
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const sigTypeECDSA = 0x02

// ecdsaVerifier checks signed-note signatures of type 0x02: an ASN.1 ECDSA
// signature over SHA-256 of the note text, by the key whose ID is the first
// four bytes of SHA-256 of its SubjectPublicKeyInfo.
type ecdsaVerifier struct {
	name string
	hash uint32
	key  *ecdsa.PublicKey
}

func (v *ecdsaVerifier) Name() string    { return v.name }
func (v *ecdsaVerifier) KeyHash() uint32 { return v.hash }
func (v *ecdsaVerifier) Verify(msg, sig []byte) bool {
	digest := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(v.key, digest[:], sig)
}

// newVerifier parses "NAME+HASH+BASE64(0x02 || SPKI DER)" and checks that
// HASH is the key's ID.
func newVerifier(vkey string) (*ecdsaVerifier, error) {
	parts := strings.SplitN(vkey, "+", 3) // base64 may hold '+' too
	if len(parts) != 3 {
		return nil, errors.New("vkey is not NAME+HASH+KEY")
	}
	hash, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil || len(parts[1]) != 8 {
		return nil, errors.New("vkey hash is not 8 hex digits")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) < 2 || raw[0] != sigTypeECDSA {
		return nil, errors.New("vkey is not an ECDSA (type 0x02) key")
	}
	pub, err := x509.ParsePKIXPublicKey(raw[1:])
	if err != nil {
		return nil, fmt.Errorf("vkey: %v", err)
	}
	key, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("vkey is not an ECDSA key")
	}
	id := sha256.Sum256(raw[1:])
	if binary.BigEndian.Uint32(id[:4]) != uint32(hash) {
		return nil, errors.New("vkey hash does not match its key")
	}
	return &ecdsaVerifier{name: parts[0], hash: uint32(hash), key: key}, nil
}

// vkeyOf reads the vkey line of audit.pub and checks it names the PEM key.
func vkeyOf(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(data)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "vkey ") {
			vkey := line[len("vkey "):]
			parts := strings.SplitN(vkey, "+", 3)
			raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
			if err != nil || block == nil || len(raw) < 1 || !bytes.Equal(raw[1:], block.Bytes) {
				return "", errors.New("audit.pub: the vkey line and the PEM key differ")
			}
			return vkey, nil
		}
	}
	return "", errors.New("audit.pub has no vkey line")
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

// openCheckpoint verifies the signed note in PATH and parses its text
// (C2SP tlog-checkpoint: origin, size, base64 root hash, extension lines).
func openCheckpoint(path string, v *ecdsaVerifier) (checkpoint, error) {
	var c checkpoint
	data, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	n, err := note.Open(data, note.VerifierList(v))
	if err != nil {
		return c, fmt.Errorf("%s: %v", path, err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return c, fmt.Errorf("%s: not a checkpoint", path)
	}
	c.origin = lines[0]
	c.size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || c.size < 0 {
		return c, fmt.Errorf("%s: bad tree size %q", path, lines[1])
	}
	if c.root, err = tlog.ParseHash(lines[2]); err != nil {
		return c, fmt.Errorf("%s: bad root hash: %v", path, err)
	}
	if c.origin != v.name {
		return c, fmt.Errorf("%s: origin %q is not the key's name %q", path, c.origin, v.name)
	}
	return c, nil
}

// records reads the day files in order: one record per line, its text
// without the newline, numbered by its "seq" from 0.
func records(dir string) ([][]byte, []string, error) {
	days, err := filepath.Glob(filepath.Join(dir, "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9].jsonl"))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(days)
	var recs [][]byte
	var where []string
	for _, day := range days {
		data, err := os.ReadFile(day)
		if err != nil {
			return nil, nil, err
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			return nil, nil, fmt.Errorf("%s: the last line is cut short", day)
		}
		for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			at := fmt.Sprintf("%s:%d", filepath.Base(day), i+1)
			want := fmt.Sprintf("{\"seq\":%d,", len(recs))
			if !bytes.HasPrefix(line, []byte(want)) {
				return nil, nil, fmt.Errorf("%s: expected record %d here", at, len(recs))
			}
			recs = append(recs, line)
			where = append(where, at)
		}
	}
	return recs, where, nil
}

func check(dir, vkey, old string) error {
	var err error
	if vkey == "" {
		if vkey, err = vkeyOf(filepath.Join(dir, "audit.pub")); err != nil {
			return err
		}
	}
	v, err := newVerifier(vkey)
	if err != nil {
		return err
	}
	cp, err := openCheckpoint(filepath.Join(dir, "checkpoint"), v)
	if err != nil {
		return err
	}
	recs, where, err := records(dir)
	if err != nil {
		return err
	}
	if cp.size > int64(len(recs)) {
		return fmt.Errorf("the checkpoint covers %d records, the files hold %d: records were deleted", cp.size, len(recs))
	}
	// The tree's stored hashes, record by record (tlog's own layout).
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i := int64(0); i < cp.size; i++ {
		h, err := tlog.StoredHashes(i, recs[i], reader)
		if err != nil {
			return err
		}
		stored = append(stored, h...)
	}
	root, err := tlog.TreeHash(cp.size, reader)
	if err != nil {
		return err
	}
	if root != cp.root {
		return fmt.Errorf("the %d records do not hash to the signed root %v (got %v): a record was altered, reordered or removed", cp.size, cp.root, root)
	}
	// Each record's inclusion proof, as a client holding only it would check.
	for i := int64(0); i < cp.size; i++ {
		p, err := tlog.ProveRecord(cp.size, i, reader)
		if err == nil {
			err = tlog.CheckRecord(p, cp.size, cp.root, i, tlog.RecordHash(recs[i]))
		}
		if err != nil {
			return fmt.Errorf("%s: record %d: inclusion proof: %v", where[i], i, err)
		}
	}
	fmt.Printf("intact: %d records hash to the root signed by %s (%v)\n", cp.size, v.name, cp.root)
	if extra := int64(len(recs)) - cp.size; extra > 0 {
		fmt.Printf("%d later records are not yet covered by the checkpoint\n", extra)
	}
	if old != "" {
		oc, err := openCheckpoint(old, v)
		if err != nil {
			return err
		}
		if oc.size > cp.size {
			return fmt.Errorf("the older checkpoint covers %d records, the newer only %d", oc.size, cp.size)
		}
		p, err := tlog.ProveTree(cp.size, oc.size, reader)
		if err == nil {
			err = tlog.CheckTree(p, cp.size, cp.root, oc.size, oc.root)
		}
		if err != nil {
			return fmt.Errorf("the log does not extend the older checkpoint (%d records): %v", oc.size, err)
		}
		fmt.Printf("consistent: the log of %d records extends the older checkpoint of %d\n", cp.size, oc.size)
	}
	return nil
}

func main() {
	vkey := flag.String("vkey", "", "the audit key to trust (NAME+HASH+KEY; default: DIR/audit.pub)")
	old := flag.String("old", "", "an older checkpoint the log must extend")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: auditcheck [-vkey VKEY] [-old OLD-CHECKPOINT] DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := check(flag.Arg(0), *vkey, *old); err != nil {
		fmt.Fprintln(os.Stderr, "auditcheck:", err)
		os.Exit(1)
	}
}
