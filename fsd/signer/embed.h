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

/* The Authenticode digest of an image and the running sum its CheckSum is
 * made from, as a stream gave them (pe_stream_finish) or a full read
 * (pe_measure): what signing needs of every byte before the end. */
struct pe_sums {
	bool valid;			    /* false: the stream cannot stand for a read */
	off_t size;			    /* the bytes covered: [0, SIZE) */
	uint32_t checksum_off, certdir_off; /* the two fields left out */
	unsigned char digest[SHA256_LEN];   /* pe_digest's, padding included */
	uint64_t sum;			    /* unfolded 16-bit words, both fields zero */
};

/* The Authenticode digest and the CheckSum's sum of an image computed as its
 * bytes are written, when they come in order from offset 0: the headers'
 * first bytes are held until they show where the CheckSum and the
 * certificate table entry lie, then everything is hashed in file order as
 * pe_digest reads it. Anything else (a gap, a rewrite, a header that puts
 * the fields beyond its first 4 KiB, not MZ) leaves the stream broken, and
 * the commit reads the file as before. Not thread-safe: one writer's lock. */
/* Where the CheckSum field and the certificate table's directory entry
 * lie, from the first HAVE bytes H of an image (the offsets pe_parse
 * finds; it checks the rest): 1 found, 0 more bytes needed, -1 not a PE
 * image. */
int pe_locate_fields(const unsigned char *h, size_t have, uint32_t *ret_checksum,
		     uint32_t *ret_certdir);

struct pe_stream;

/* 0 or -ENOMEM. */
int pe_stream_new(struct pe_stream **ret);
/* Feed the N bytes just written at OFF. Never fails. */
void pe_stream_update(struct pe_stream *s, off_t off, const void *buf, size_t n);
/* What was fed is no longer the file (a truncate, an overwrite elsewhere). */
void pe_stream_invalidate(struct pe_stream *s);
/* The sums of the SIZE bytes fed in order in RET (RET->valid false when the
 * stream cannot stand for them), then start afresh for the next version. */
void pe_stream_finish(struct pe_stream *s, off_t size, struct pe_sums *ret);
/* Accepts NULL. */
void pe_stream_free(struct pe_stream *s);

/* The reference the stream is checked against: the sums of IMG's bytes in
 * FD read in full (pe_digest and the CheckSum's sum in one read). */
int pe_measure(int fd, const struct pe_image *img, struct pe_sums *ret, char err[ERROR_MAX]);

/* The PE CheckSum: N bytes at file offset OFF added to SUM as 16-bit
 * little-endian words (unfolded), and the final value for a file of LEN
 * bytes (end-around carry folded, then LEN added). */
uint64_t pe_checksum_add(uint64_t sum, const unsigned char *p, size_t n, off_t off);
uint32_t pe_checksum_final(uint64_t sum, off_t len);

/* The PE image in IN_FD signed with KEY: Authenticode (PKCS#7 SignedData
 * over SpcIndirectDataContent, SHA-256) in a new certificate table, the
 * CheckSum updated. An existing signature is replaced, or with KEEP the
 * new one is nested in it (1.3.6.1.4.1.311.2.4.1). STAMP, if not NULL,
 * gives an RFC 3161 token over the signature value, added as the unsigned
 * attribute 1.3.6.1.4.1.311.3.3.1 (-ETIME when it fails). */
int authenticode_sign(int in_fd, off_t size, int out_fd, const struct embed_key *key, bool keep,
		      cms_stamp_fn stamp, void *stamp_ctx, char err[ERROR_MAX]);

/* authenticode_sign() with the sums a stream gave while the image was
 * written (STREAMED, may be NULL or not valid: then the image is read for
 * them), and the SHA-256 of the signed image as written to OUT_FD in
 * RET_PUBLISHED: the image is read once more, to be copied. The bytes
 * written are the same whichever way the sums came. */
int authenticode_sign_streamed(int in_fd, off_t size, int out_fd, const struct embed_key *key,
			       bool keep, const struct pe_sums *streamed, cms_stamp_fn stamp,
			       void *stamp_ctx, unsigned char ret_published[SHA256_LEN],
			       char err[ERROR_MAX]);

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
