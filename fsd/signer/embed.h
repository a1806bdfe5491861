/* Signatures embedded in the artifact itself, written from the published
 * specifications: Authenticode in PE/COFF images (Windows executables and
 * UEFI binaries; Microsoft's "PE Format" and "Windows Authenticode Portable
 * Executable Signature Format") and the kernel's appended module signature
 * (Documentation/admin-guide/module-signing.rst). Each reads the writer's
 * bytes from IN_FD and writes the signed artifact to OUT_FD, a new empty
 * file opened read-write, in one pass. Input that does not parse is refused
 * with -EINVAL and the reason in ERR; nothing is logged. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cms.h"
#include "error.h"

enum embed_format {
	EMBED_CMS,	    /* the artifact as written, beside a detached signature */
	EMBED_AUTHENTICODE, /* a PE image with its certificate table */
	EMBED_KMOD,	    /* an ELF relocatable with .modinfo, signature appended */
};

/* "cms", "authenticode", "kmod". */
const char *embed_format_name(enum embed_format f);

/* What the SIZE bytes of FD look like: a PE image (MZ and the PE signature
 * where it points, whatever follows) AUTHENTICODE, an ELF relocatable with
 * a .modinfo section KMOD (signed already or not), anything else CMS.
 * Never fails: unreadable is CMS. */
enum embed_format embed_detect(int fd, off_t size);

/* The key a signature is made with: a certificate, its chain (may be NULL)
 * and the private key (which may live in a token). */
struct embed_key {
	X509 *cert;
	STACK_OF(X509) * chain;
	EVP_PKEY *key;
};

/* The facts of a PE image that the signature depends on. */
struct pe_image {
	bool pe32plus;
	uint32_t checksum_off;	     /* file offset of the optional header's CheckSum */
	uint32_t certdir_off;	     /* file offset of the Certificate Table's entry */
	uint32_t cert_off, cert_len; /* the certificate table (0, 0: unsigned) */
	uint32_t headers_len;	     /* SizeOfHeaders */
	off_t end;		     /* where the image ends: the table's start or the size */
};

/* Parse and check the PE image of SIZE bytes in FD: MZ, the PE signature,
 * the optional header (PE32 or PE32+) with a certificate table entry, the
 * sections inside the file, an existing certificate table at its end. */
int pe_parse(int fd, off_t size, struct pe_image *ret, char err[ERROR_MAX]);

/* The Authenticode SHA-256 of the image in FD: every byte before IMG's end
 * but the CheckSum and the certificate table entry, then zeros to the next
 * multiple of 8 (the padding a new certificate table is written after). */
int pe_digest(int fd, const struct pe_image *img, unsigned char ret[SHA256_LEN],
	      char err[ERROR_MAX]);

/* Feed the N bytes of the image at OFF in BUF to MD, minus the CheckSum and
 * the certificate table entry (pe_digest in pieces). */
void pe_digest_update(EVP_MD_CTX *md, const struct pe_image *img, const unsigned char *buf,
		      off_t off, size_t n);

/* The PE image in IN_FD signed with KEY: Authenticode (PKCS#7 SignedData
 * over SpcIndirectDataContent, SHA-256) in a new certificate table, the
 * CheckSum updated. An existing signature is replaced, or with KEEP the
 * new one is nested in it (1.3.6.1.4.1.311.2.4.1). STAMP, if not NULL,
 * gives an RFC 3161 token over the signature value, added as the unsigned
 * attribute 1.3.6.1.4.1.311.3.3.1 (-ETIME when it fails). */
int authenticode_sign(int in_fd, off_t size, int out_fd, const struct embed_key *key, bool keep,
		      cms_stamp_fn stamp, void *stamp_ctx, char err[ERROR_MAX]);

/* The kernel module in IN_FD with an appended signature made with KEY:
 * CMS SignedData, detached, SHA-256, no signed attributes, the signer by
 * issuer and serial (as scripts/sign-file makes it, with the certificates
 * included), the module_signature trailer and "~Module signature
 * appended~\n". A module signed already is signed afresh (a module carries
 * one signature: with KEEP it is refused). The module's bytes come first in
 * OUT_FD, unchanged. */
int kmod_sign(int in_fd, off_t size, int out_fd, const struct embed_key *key, bool keep,
	      char err[ERROR_MAX]);

/* The length of the module in the SIZE bytes of FD without an appended
 * signature (SIZE when there is none), or a negative errno. */
off_t kmod_unsigned_length(int fd, off_t size);

/* Helpers of both formats: read exactly N bytes at OFF (-EINVAL when the
 * file is shorter), write exactly N bytes at OFF. */
int embed_pread(int fd, void *buf, size_t n, off_t off);
int embed_pwrite(int fd, const void *buf, size_t n, off_t off);
