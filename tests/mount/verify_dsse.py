#!/usr/bin/python3
"""An independent DSSE verifier (Python's cryptography): ENVELOPE's
signature over the pre-authentication encoding with CERT's public key, its
payload an in-toto Statement v1 whose subject's sha256 is ARTIFACT's.
Prints what it checked; exit 0 only when everything holds.

usage: verify_dsse.py ENVELOPE CERT.pem ARTIFACT
"""
import base64
import hashlib
import json
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa


def pae(payload_type: bytes, body: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(body), body)


def main() -> int:
    envelope_path, cert_path, artifact_path = sys.argv[1:4]
    with open(envelope_path, "rb") as f:
        lines = f.read().splitlines()
    if len(lines) != 1:
        print(f"{envelope_path}: {len(lines)} lines, not one")
        return 1
    env = json.loads(lines[0])
    body = base64.b64decode(env["payload"], validate=True)
    ptype = env["payloadType"].encode()
    with open(cert_path, "rb") as f:
        key = x509.load_pem_x509_certificate(f.read()).public_key()
    good = False
    for s in env["signatures"]:
        sig = base64.b64decode(s["sig"], validate=True)
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(sig, pae(ptype, body), ec.ECDSA(hashes.SHA256()))
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(sig, pae(ptype, body), padding.PKCS1v15(), hashes.SHA256())
            else:
                print("unsupported key type")
                return 1
            good = True
        except InvalidSignature:
            pass
    if not good:
        print("signature: FAILED")
        return 1
    print("signature: ok")
    st = json.loads(body)
    if ptype != b"application/vnd.in-toto+json" or st["_type"] != "https://in-toto.io/Statement/v1":
        print("statement: not an in-toto Statement v1")
        return 1
    if st["predicateType"] != "https://slsa.dev/provenance/v1":
        print("predicate: not SLSA provenance v1")
        return 1
    with open(artifact_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest not in [s["digest"]["sha256"] for s in st["subject"]]:
        print("subject digest: FAILED")
        return 1
    print("subject digest: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
