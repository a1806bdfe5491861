/* The relay's forwarder: SFTP to a signer's signfs, a temporary name, one
 * rename that commits, and the signer's signature fetched back (relay.h). */
#include "relay.h"
#include "hash.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

struct signer_url {
	char account[64];
	char host[256];
	unsigned port;
	char inbox[1024];  /* where files land (PATH of the URL) */
	char outbox[1024]; /* the same place in the signer's outbox */
};

/* One kept connection: a forward at a time on it. Several let forwards of
 * several writers overlap (libssh takes one thread per session). */
struct conn {
	struct relay *relay;
	pthread_mutex_t lock; /* guards the fields below */
	ssh_session ssh;      /* NULL: not connected */
	sftp_session sftp;
	size_t current; /* the signer connected to */
	bool uid_known; /* uid: the account's on the signer, as its files show */
	uid_t uid;
	/* The certificates of the last signature checked (relay_split_certs),
	 * as DER and decoded: the signer's, the same for every file. */
	unsigned char *certs_der;
	size_t certs_len;
	STACK_OF(X509) * certs;
};

struct relay {
	struct signer_url urls[RELAY_MAX_SIGNERS];
	size_t n_urls;
	char *identity, *known_hosts;
	long timeout;
	struct conn conns[RELAY_CONNECTIONS];
	unsigned next; /* where the search for a free connection starts (atomic) */
};

int relay_parse_url(const char *url, char account[64], char host[256], unsigned *ret_port,
		    char path[1024])
{
	const char *p = url, *at, *slash, *colon;
	unsigned long port = 22;

	if (strncmp(p, "ssh://", 6))
		return -EINVAL;
	p += 6;
	at = strchr(p, '@');
	slash = strchr(p, '/');
	if (!at || !slash || at > slash || at == p || (size_t)(at - p) >= 64)
		return -EINVAL;
	colon = memchr(at, ':', slash - at);
	if (colon) {
		char *end;
		port = strtoul(colon + 1, &end, 10);
		if (end != slash || port < 1 || port > 65535)
			return -EINVAL;
	} else {
		colon = slash;
	}
	if (colon == at + 1 || (size_t)(colon - at - 1) >= 256 || strlen(slash) >= 1024)
		return -EINVAL;
	/* The signer's inbox must be named, so that its outbox can be. */
	if (!strstr(slash, "/inbox/") &&
	    (strlen(slash) < 6 || strcmp(slash + strlen(slash) - 6, "/inbox")))
		return -EINVAL;
	memcpy(account, p, at - p);
	account[at - p] = 0;
	memcpy(host, at + 1, colon - at - 1);
	host[colon - at - 1] = 0;
	*ret_port = port;
	strcpy(path, slash);
	return 0;
}

/* PATH with its last "/inbox" component as "/outbox". */
static void outbox_of(const char *inbox, char out[1024])
{
	const char *last = NULL;

	for (const char *p = strstr(inbox, "/inbox"); p; p = strstr(p + 1, "/inbox"))
		if (p[6] == '/' || !p[6])
			last = p;
	snprintf(out, 1024, "%.*s/outbox%s", (int)(last - inbox), inbox, last + 6);
}

int relay_open(const struct relay_settings *s, struct relay **ret, char err[ERROR_MAX])
{
	struct relay *r;

	if (!s->n_signers || s->n_signers > RELAY_MAX_SIGNERS)
		return error_set(err, -EINVAL, "[relay] needs 1 to %d signers", RELAY_MAX_SIGNERS);
	if (!s->identity || !s->known_hosts)
		return error_set(err, -EINVAL, "[relay] needs identity and known_hosts");
	if (access(s->identity, R_OK) < 0 || access(s->known_hosts, R_OK) < 0)
		return error_set(err, -EINVAL, "[relay] cannot read %s: %s",
				 access(s->identity, R_OK) < 0 ? s->identity : s->known_hosts,
				 strerror(errno));
	r = calloc(1, sizeof(*r));
	if (!r)
		return error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < s->n_signers; i++) {
		struct signer_url *u = &r->urls[i];
		if (relay_parse_url(s->signers[i], u->account, u->host, &u->port, u->inbox) < 0) {
			free(r);
			return error_set(
			    err, -EINVAL,
			    "[relay] signer '%s' is not ssh://ACCOUNT@HOST[:PORT]/PATH "
			    "with PATH in the signer's inbox",
			    s->signers[i]);
		}
		outbox_of(u->inbox, u->outbox);
	}
	r->n_urls = s->n_signers;
	r->identity = strdup(s->identity);
	r->known_hosts = strdup(s->known_hosts);
	r->timeout = s->timeout ? s->timeout : 10;
	for (size_t i = 0; i < RELAY_CONNECTIONS; i++) {
		r->conns[i].relay = r;
		pthread_mutex_init(&r->conns[i].lock, NULL);
	}
	if (!r->identity || !r->known_hosts) {
		relay_free(r);
		return error_set(err, -ENOMEM, "out of memory");
	}
	*ret = r;
	return 0;
}

static void disconnect(struct conn *k)
{
	if (k->sftp)
		sftp_free(k->sftp);
	if (k->ssh) {
		ssh_disconnect(k->ssh);
		ssh_free(k->ssh);
	}
	k->sftp = NULL;
	k->ssh = NULL;
	k->uid_known = false;
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < RELAY_CONNECTIONS; i++) {
		disconnect(&r->conns[i]);
		free(r->conns[i].certs_der);
		sk_X509_pop_free(r->conns[i].certs, X509_free);
		pthread_mutex_destroy(&r->conns[i].lock);
	}
	free(r->identity);
	free(r->known_hosts);
	free(r);
}

/* Options that make the session depend on our files alone: no ~/.ssh/config,
 * the pinned known_hosts as the only one, and the timeout. */
static int session_options(struct relay *r, ssh_session s, const struct signer_url *u)
{
	bool no = false;
	int port = u->port, nodelay = 1;

	if (ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_HOST, u->host) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_PORT, &port) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_USER, u->account) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, r->known_hosts) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, r->known_hosts) < 0 ||
	    ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &r->timeout) < 0 ||
	    /* Each request waits for its reply: no Nagle delay on them. */
	    ssh_options_set(s, SSH_OPTIONS_NODELAY, &nodelay) < 0)
		return -EINVAL;
	return 0;
}

/* One signer: connected, its host key the pinned one, logged in, SFTP up. */
static int connect_one(struct conn *k, size_t i, char reason[ERROR_MAX])
{
	struct relay *r = k->relay;
	const struct signer_url *u = &r->urls[i];
	ssh_session s = ssh_new();
	ssh_key key = NULL;
	sftp_session sftp = NULL;
	int rc = -EIO;

	if (!s || session_options(r, s, u) < 0) {
		(void)error_set(reason, 0, "%s: cannot set up an SSH session", u->host);
		goto out;
	}
	if (ssh_connect(s) != SSH_OK) {
		(void)error_set(reason, 0, "%s:%u: %s", u->host, u->port, ssh_get_error(s));
		goto out;
	}
	if (ssh_session_is_known_server(s) != SSH_KNOWN_HOSTS_OK) {
		(void)error_set(reason, 0, "%s:%u: host key not the one pinned in %s", u->host,
				u->port, r->known_hosts);
		goto out;
	}
	if (ssh_pki_import_privkey_file(r->identity, NULL, NULL, NULL, &key) != SSH_OK) {
		(void)error_set(reason, 0, "cannot read the key %s", r->identity);
		goto out;
	}
	if (ssh_userauth_publickey(s, NULL, key) != SSH_AUTH_SUCCESS) {
		(void)error_set(reason, 0, "%s@%s: the key %s was not accepted", u->account,
				u->host, r->identity);
		goto out;
	}
	sftp = sftp_new(s);
	if (!sftp || sftp_init(sftp) != SSH_OK) {
		(void)error_set(reason, 0, "%s@%s: no SFTP: %s", u->account, u->host,
				ssh_get_error(s));
		goto out;
	}
	k->ssh = s;
	k->sftp = sftp;
	k->current = i;
	s = NULL;
	sftp = NULL;
	rc = 0;
out:
	ssh_key_free(key);
	if (sftp)
		sftp_free(sftp);
	if (s) {
		ssh_disconnect(s);
		ssh_free(s);
	}
	return rc;
}

/* The kept connection, or the first signer in order that answers. */
static int ensure_connected(struct conn *k, size_t from, char reason[ERROR_MAX])
{
	struct relay *r = k->relay;
	char why[ERROR_MAX] = "";
	size_t len = 0;

	if (k->ssh && ssh_is_connected(k->ssh))
		return 0;
	disconnect(k);
	reason[0] = 0;
	for (size_t i = from; i < r->n_urls; i++) {
		if (connect_one(k, i, why) == 0)
			return 0;
		len += snprintf(reason + len, len < ERROR_MAX ? ERROR_MAX - len : 0, "%s%s",
				len ? "; " : "", why);
		if (len >= ERROR_MAX)
			len = ERROR_MAX - 1;
	}
	return -EIO;
}

/* The server's status as an errno: its policy's refusal is EACCES. */
static int sftp_errno(sftp_session sftp)
{
	switch (sftp_get_error(sftp)) {
	case SSH_FX_PERMISSION_DENIED:
		return -EACCES;
	case SSH_FX_NO_SUCH_FILE:
		return -ENOENT;
	case SSH_FX_FILE_ALREADY_EXISTS:
		return -EEXIST;
	default:
		return -EIO;
	}
}

/* Each directory of DIR below BASE exists on the signer (mkdir -p). */
static int make_dirs(struct conn *k, const char *base, const char *dir)
{
	char p[2048];
	size_t n = snprintf(p, sizeof(p), "%s/", base);

	for (const char *s = dir; *s && n < sizeof(p) - 1;) {
		const char *e = strchrnul(s, '/');
		n += snprintf(p + n, sizeof(p) - n, "%.*s", (int)(e - s), s);
		if (sftp_mkdir(k->sftp, p, 0755) < 0 &&
		    sftp_get_error(k->sftp) != SSH_FX_FILE_ALREADY_EXISTS) {
			sftp_attributes a = sftp_stat(k->sftp, p);
			if (!a)
				return sftp_errno(k->sftp);
			sftp_attributes_free(a);
		}
		if (!*e)
			break;
		p[n++] = '/';
		s = e + 1;
	}
	return 0;
}

/* STAGING: PATH's directory, then ".BASE" RELAY_STAGING_TAG "XXXXXX": a
 * temporary name that the signer's signfs never publishes (relay.h). */
static int staging_name(const struct signer_url *u, const char *path, char out[2048])
{
	const char *base = strrchr(path, '/');
	unsigned char rnd[6];
	char sfx[7];
	static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -EIO;
	for (size_t i = 0; i < 6; i++)
		sfx[i] = set[rnd[i] % (sizeof(set) - 1)];
	sfx[6] = 0;
	base = base ? base + 1 : path;
	return snprintf(out, 2048, "%s/%.*s.%s" RELAY_STAGING_TAG "%s", u->inbox,
			(int)(base - path), path, base, sfx) >= 2048
		   ? -ENAMETOOLONG
		   : 0;
}

static int upload(struct conn *k, int fd, off_t size, const char *staging, char reason[ERROR_MAX])
{
	sftp_file f = sftp_open(k->sftp, staging, O_WRONLY | O_CREAT | O_EXCL, 0644);
	char *buf = malloc(CHUNK);
	off_t off = 0;
	int rc = 0;

	if (!f || !buf) {
		free(buf);
		if (f)
			sftp_close(f);
		/* A kept connection that died while idle: nothing reached the
		 * signer yet (ENOTCONN, relay_forward tries again). */
		rc = f ? -ENOMEM : !ssh_is_connected(k->ssh) ? -ENOTCONN : sftp_errno(k->sftp);
		return error_set(reason, rc, "the signer refused the upload: %s",
				 f ? "out of memory" : ssh_get_error(k->ssh));
	}
	/* Once per connection: whose the signer's replies must be. */
	if (!k->uid_known) {
		sftp_attributes a = sftp_fstat(f);
		if (a) {
			k->uid = a->uid;
			k->uid_known = true;
			sftp_attributes_free(a);
		}
	}
	while (rc == 0 && off < size) {
		ssize_t n = pread(fd, buf, CHUNK, off);
		if (n <= 0)
			rc = error_set(reason, -EIO, "cannot read the file back: %s",
				       n < 0 ? strerror(errno) : "short");
		else if (sftp_write(f, buf, n) != n)
			rc = error_set(reason, sftp_errno(k->sftp), "upload to the signer: %s",
				       ssh_get_error(k->ssh));
		else
			off += n;
	}
	free(buf);
	if (sftp_close(f) != SSH_OK && rc == 0)
		rc = error_set(reason, -EIO, "upload to the signer: %s", ssh_get_error(k->ssh));
	return rc;
}

/* One DER header at *P, below END (definite lengths only): its class,
 * tag and content length; *P moves past it. */
static int der_header(const unsigned char **p, const unsigned char *end, int *ret_class,
		      int *ret_tag, long *ret_len)
{
	int r = ASN1_get_object(p, ret_len, ret_tag, ret_class, end - *p);

	if (r & 0x80 || r & 1) {
		ERR_clear_error();
		return -EINVAL;
	}
	return 0;
}

int relay_split_certs(const unsigned char *der, size_t len, unsigned char **ret_rest,
		      size_t *ret_rest_len, const unsigned char **ret_certs, size_t *ret_certs_len)
{
	const unsigned char *p = der, *end = der + len, *oid, *sd, *certs = NULL, *certs_end = NULL;
	const unsigned char *body = NULL;
	int cls, tag, oid_len, sd_len, exp_len, ci_len, total;
	unsigned char *out, *q;
	long l;

	/* ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT SignedData } */
	if (der_header(&p, end, &cls, &tag, &l) < 0 || tag != V_ASN1_SEQUENCE || p + l != end)
		return -EINVAL;
	oid = p;
	if (der_header(&p, end, &cls, &tag, &l) < 0 || tag != V_ASN1_OBJECT)
		return -EINVAL;
	p += l;
	oid_len = p - oid;
	if (der_header(&p, end, &cls, &tag, &l) < 0 || cls != V_ASN1_CONTEXT_SPECIFIC || tag != 0 ||
	    p + l != end || der_header(&p, end, &cls, &tag, &l) < 0 || tag != V_ASN1_SEQUENCE ||
	    p + l != end)
		return -EINVAL;
	/* SignedData's fields, one of them [0] IMPLICIT the certificates. */
	for (sd = p; p < end; p += l) {
		const unsigned char *field = p;
		if (der_header(&p, end, &cls, &tag, &l) < 0)
			return -EINVAL;
		if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 0 && !certs) {
			certs = field;
			body = p;
			certs_end = p + l;
		}
	}
	if (!certs || len > INT_MAX)
		return -EINVAL;
	sd_len = (end - sd) - (certs_end - certs);
	/* The same, lengths anew: contentType, [0] { SignedData less them } */
	exp_len = ASN1_object_size(1, sd_len, V_ASN1_SEQUENCE);
	ci_len = oid_len + ASN1_object_size(1, exp_len, 0);
	total = ASN1_object_size(1, ci_len, V_ASN1_SEQUENCE);
	if (exp_len < 0 || ci_len < oid_len || total < 0 || !(out = malloc(total)))
		return -EINVAL;
	q = out;
	ASN1_put_object(&q, 1, ci_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	memcpy(q, oid, oid_len);
	q += oid_len;
	ASN1_put_object(&q, 1, exp_len, 0, V_ASN1_CONTEXT_SPECIFIC);
	ASN1_put_object(&q, 1, sd_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	memcpy(q, sd, certs - sd);
	q += certs - sd;
	memcpy(q, certs_end, end - certs_end);
	*ret_rest = out;
	*ret_rest_len = total;
	*ret_certs = body;
	*ret_certs_len = certs_end - body;
	return 0;
}

/* The certificates CERTS (LEN bytes of DER Certificates) decoded: K's
 * cache when they are the last ones seen, else decoded and cached. */
static STACK_OF(X509) * cached_certs(struct conn *k, const unsigned char *certs, size_t len)
{
	STACK_OF(X509) * sk;
	unsigned char *copy;

	if (k->certs && k->certs_len == len && !memcmp(k->certs_der, certs, len))
		return k->certs;
	sk = sk_X509_new_null();
	copy = malloc(len);
	for (const unsigned char *p = certs; sk && copy && p < certs + len;) {
		X509 *x = d2i_X509(NULL, &p, certs + len - p);
		if (!x || !sk_X509_push(sk, x)) {
			X509_free(x);
			sk_X509_pop_free(sk, X509_free);
			sk = NULL;
		}
	}
	if (!sk || !copy) {
		sk_X509_pop_free(sk, X509_free);
		free(copy);
		ERR_clear_error();
		return NULL;
	}
	memcpy(copy, certs, len);
	free(k->certs_der);
	sk_X509_pop_free(k->certs, X509_free);
	k->certs_der = copy;
	k->certs_len = len;
	k->certs = sk;
	return sk;
}

/* Whether DER (LEN bytes) is a detached CMS signature over exactly FD's
 * bytes: 0, -ESTALE when it is over other bytes, -EIO when unreadable.
 * The chain is the reader's to check. */
static int check_signature(struct conn *k, const unsigned char *der, size_t len, int fd,
			   char reason[ERROR_MAX])
{
	unsigned char *rest = NULL;
	const unsigned char *certs, *p = der;
	size_t rest_len, certs_len;
	STACK_OF(X509) *sk = NULL;
	CMS_ContentInfo *cms;
	BIO *content = NULL;
	int rc = -EIO;

	if (relay_split_certs(der, len, &rest, &rest_len, &certs, &certs_len) == 0 &&
	    (sk = cached_certs(k, certs, certs_len))) {
		p = rest;
		len = rest_len;
	}
	cms = d2i_CMS_ContentInfo(NULL, &p, len);
	content = BIO_new_fd(fd, BIO_NOCLOSE);
	if (lseek(fd, 0, SEEK_SET) < 0 || !content || !cms)
		(void)error_set(reason, 0, "the signer's signature cannot be read");
	else if (CMS_verify(cms, sk, NULL, content, NULL, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) !=
		 1)
		rc = error_set(reason, -ESTALE, "the signer's signature is not over these bytes");
	else
		rc = 0;
	ERR_clear_error(); /* one signature's failure is not the next one's */
	CMS_ContentInfo_free(cms);
	BIO_free(content);
	free(rest);
	return rc;
}

/* The length of the DER element that starts BUF (LEN bytes read of it),
 * or 0 while its header is incomplete. */
static size_t der_total(const unsigned char *buf, size_t len)
{
	size_t n, total = 0;

	if (len < 2)
		return 0;
	if (buf[1] < 0x80)
		return 2 + buf[1];
	n = buf[1] & 0x7f;
	if (n > 3 || len < 2 + n)
		return n > 3 ? SIZE_MAX : 0;
	for (size_t i = 0; i < n; i++)
		total = total << 8 | buf[2 + i];
	return 2 + n + total;
}

/* The signature the signer published for PATH, if it covers exactly the
 * bytes of FD (a later version published meanwhile does not): -ENOENT when
 * there is none, -ESTALE when it is over other bytes. */
static int fetch_signature(struct conn *k, const struct signer_url *u, const char *path, int fd,
			   unsigned char **ret_der, size_t *ret_len, char reason[ERROR_MAX])
{
	char name[2048];
	sftp_file f;
	unsigned char *der = NULL;
	size_t len = 0, cap = 0, want = 0;
	ssize_t n = -1;
	int rc;

	snprintf(name, sizeof(name), "%s/%s.p7s", u->outbox, path);
	f = sftp_open(k->sftp, name, O_RDONLY, 0);
	if (!f)
		return error_set(
		    reason,
		    sftp_get_error(k->sftp) == SSH_FX_NO_SUCH_FILE && ssh_is_connected(k->ssh)
			? -ENOENT
			: -EIO,
		    "published, but the signature cannot be fetched: %s", ssh_get_error(k->ssh));
	/* Its DER header says its length: one read when it comes whole. */
	do {
		if (len == cap || (want > cap && want <= RELAY_MAX_SIGNATURE)) {
			size_t next = want > cap ? want : cap ? cap * 2 : 8192;
			unsigned char *p =
			    next <= RELAY_MAX_SIGNATURE ? OPENSSL_realloc(der, next) : NULL;
			if (!p)
				break;
			der = p;
			cap = next;
		}
		n = sftp_read(f, der + len, cap - len);
		if (n > 0)
			len += n;
		want = der_total(der, len);
	} while (n > 0 && len != want);
	sftp_close(f);
	if (n < 0 || (n > 0 && len != want)) {
		OPENSSL_free(der);
		return error_set(reason, -EIO, "published, but the signature cannot be fetched");
	}
	rc = check_signature(k, der, len, fd, reason);
	if (rc < 0) {
		OPENSSL_free(der);
		return rc;
	}
	*ret_der = der;
	*ret_len = len;
	return 0;
}

/* The SHA-256 of FD's SIZE bytes, in hex. */
static int local_digest(int fd, off_t size, char hex[2 * SHA256_LEN + 1])
{
	unsigned char digest[SHA256_LEN];
	int r = hash_fd(fd, size, digest);

	if (r == 0)
		text_hex(digest, SHA256_LEN, hex);
	return r;
}

/* The signer's reply beside STAGING, when its rename attested the bytes
 * instead of publishing them (relay.h): 1 with the digest in OUT when it
 * is there, is the account's and names these bytes; 0 when there is none
 * (published); -EIO when it cannot be told. Removed once read. */
static int read_reply(struct conn *k, const char *staging, int fd, off_t size,
		      struct relay_outcome *out, char reason[ERROR_MAX])
{
	char name[2048 + sizeof(RELAY_REPLY_SUFFIX)], text[RELAY_MAX_REPLY], mine[2 * 32 + 1];
	const size_t tag = strlen(RELAY_REPLY_ATTESTED " ");
	sftp_attributes a;
	sftp_file f;
	ssize_t n;
	bool ours;

	snprintf(name, sizeof(name), "%s" RELAY_REPLY_SUFFIX, staging);
	f = sftp_open(k->sftp, name, O_RDONLY, 0);
	/* None, or another account's (not readable): published. */
	if (!f &&
	    (sftp_get_error(k->sftp) == SSH_FX_NO_SUCH_FILE ||
	     sftp_get_error(k->sftp) == SSH_FX_PERMISSION_DENIED) &&
	    ssh_is_connected(k->ssh))
		return 0;
	if (!f)
		return error_set(reason, -EIO,
				 "renamed on the signer, but its reply is unreadable: %s",
				 ssh_get_error(k->ssh));
	a = sftp_fstat(f);
	/* Another account may have made this name first: not the signer's. */
	ours = a && k->uid_known && a->uid == k->uid;
	sftp_attributes_free(a);
	n = ours ? sftp_read(f, text, sizeof(text) - 1) : -1;
	sftp_close(f);
	if (!ours)
		return 0;
	sftp_unlink(k->sftp, name); /* else it goes after the signer's temp_grace */
	text[n > 0 ? n : 0] = 0;
	if (n <= 0 || strncmp(text, RELAY_REPLY_ATTESTED " ", tag) || strlen(text) < tag + 64)
		return error_set(reason, -EIO, "the signer's reply cannot be read");
	if (local_digest(fd, size, mine) < 0 || strncmp(text + tag, mine, 64))
		return error_set(reason, -EIO, "the signer's reply names other bytes than these");
	memcpy(out->sha256, mine, sizeof(mine));
	out->attested = true;
	return 1;
}

/* After the rename of STAGING to PATH: the signature the signer published
 * over these bytes, or its reply that it counted them towards its quorum
 * and published nothing (made before the rename returned). The signature
 * is looked for first, the usual outcome, and the reply only when none
 * covers these bytes: a round trip saved per file. */
static int fetch_outcome(struct conn *k, const struct signer_url *u, const char *path,
			 const char *staging, int fd, off_t size, struct relay_outcome *out,
			 unsigned char **ret_der, size_t *ret_len, char reason[ERROR_MAX])
{
	int rc, attested;

	for (int tries = 0; tries < 3; tries++) {
		rc = fetch_signature(k, u, path, fd, ret_der, ret_len, reason);
		if (rc == 0)
			return 0;
		if (tries == 0 && (rc == -ENOENT || rc == -ESTALE)) {
			attested = read_reply(k, staging, fd, size, out, reason);
			if (attested < 0)
				return -EIO;
			if (attested)
				return error_set(
				    reason, 0,
				    "attested by %s@%s:%u: counted towards its quorum, "
				    "published there once the other writers agree",
				    u->account, u->host, u->port);
		}
		if (rc != -ESTALE)
			break;
	}
	return -EIO;
}

/* The claims sidecar of STAGING (CLAIMS may be NULL: none). */
static int upload_claims(struct conn *k, const char *staging, const char *claims)
{
	char name[2048 + sizeof(RELAY_CLAIMS_SUFFIX)];
	size_t len = claims ? strlen(claims) : 0;
	sftp_file f;
	int rc = 0;

	if (!len || len > RELAY_MAX_CLAIMS)
		return 0;
	snprintf(name, sizeof(name), "%s" RELAY_CLAIMS_SUFFIX, staging);
	f = sftp_open(k->sftp, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (!f)
		return sftp_errno(k->sftp);
	if (sftp_write(f, claims, len) != (ssize_t)len)
		rc = sftp_errno(k->sftp);
	if (sftp_close(f) != SSH_OK && rc == 0)
		rc = -EIO;
	return rc;
}

static void drop_claims(struct conn *k, const char *staging)
{
	char name[2048 + sizeof(RELAY_CLAIMS_SUFFIX)];

	snprintf(name, sizeof(name), "%s" RELAY_CLAIMS_SUFFIX, staging);
	sftp_unlink(k->sftp, name); /* gone already when the signer read it */
}

/* One attempt on the connected signer. */
static int forward_once(struct conn *k, const char *path, int fd, off_t size, const char *claims,
			struct relay_outcome *out, unsigned char **ret_der, size_t *ret_len,
			char reason[ERROR_MAX])
{
	const struct signer_url *u = &k->relay->urls[k->current];
	char staging[2048], final[2048];
	const char *slash = strrchr(path, '/');
	int rc;

	rc = staging_name(u, path, staging);
	if (rc == 0 &&
	    snprintf(final, sizeof(final), "%s" RELAY_COMMIT_SUFFIX, staging) >= (int)sizeof(final))
		rc = -ENAMETOOLONG;
	if (rc < 0)
		return error_set(reason, rc, "no staging name for %s", path);
	rc = upload(k, fd, size, staging, reason);
	/* Directories are made when missing only: a round trip saved each. */
	if (rc == -ENOENT && slash) {
		char dir[1024];
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
		rc = make_dirs(k, u->inbox, dir);
		if (rc < 0)
			return error_set(reason, rc, "the signer refused the directory %s: %s", dir,
					 ssh_get_error(k->ssh));
		rc = upload(k, fd, size, staging, reason);
	}
	/* What the claims say is recorded, never decided on: without them the
	 * commit goes on. */
	if (rc == 0)
		(void)upload_claims(k, staging, claims);
	if (rc < 0) {
		sftp_unlink(k->sftp, staging);
		return rc == -EACCES || rc == -ENOTCONN ? rc : -EIO;
	}
	/* The signer's commit as PATH: its close() outcome is this rename's. */
	if (sftp_rename(k->sftp, staging, final) < 0) {
		rc = sftp_errno(k->sftp);
		(void)error_set(reason, rc == -EACCES ? -EACCES : -EIO, "the signer %s: %s",
				rc == -EACCES ? "refused it (see its /whoami)"
					      : "failed to sign it (see its audit)",
				ssh_get_error(k->ssh));
		sftp_unlink(k->sftp, staging);
		drop_claims(k, staging);
		return rc == -EACCES ? -EACCES : -EIO;
	}
	return fetch_outcome(k, u, path, staging, fd, size, out, ret_der, ret_len, reason);
}

/* A free connection, or (all busy) one to wait for. Returned locked. */
static struct conn *take_conn(struct relay *r)
{
	unsigned start = __atomic_fetch_add(&r->next, 1, __ATOMIC_RELAXED);

	for (size_t i = 0; i < RELAY_CONNECTIONS; i++) {
		struct conn *k = &r->conns[(start + i) % RELAY_CONNECTIONS];
		if (pthread_mutex_trylock(&k->lock) == 0)
			return k;
	}
	pthread_mutex_lock(&r->conns[start % RELAY_CONNECTIONS].lock);
	return &r->conns[start % RELAY_CONNECTIONS];
}

int relay_forward(struct relay *r, const char *path, int fd, off_t size, const char *claims,
		  struct relay_outcome *ret_outcome, unsigned char **ret_der, size_t *ret_len,
		  char reason[ERROR_MAX])
{
	struct conn *k = take_conn(r);
	int rc;

	*ret_outcome = (struct relay_outcome){0};
	rc = ensure_connected(k, 0, reason);
	if (rc == 0) {
		rc = forward_once(k, path, fd, size, claims, ret_outcome, ret_der, ret_len, reason);
		/* A kept connection found dead before anything was sent: once
		 * more on a new one, from the first signer in order. One lost
		 * mid-upload fails the forward (the signer abandons what came). */
		if (rc == -ENOTCONN) {
			disconnect(k);
			rc = ensure_connected(k, 0, reason);
			if (rc == 0)
				rc = forward_once(k, path, fd, size, claims, ret_outcome, ret_der,
						  ret_len, reason);
			if (rc == -ENOTCONN)
				rc = -EIO;
		}
		if (rc < 0 && k->ssh && !ssh_is_connected(k->ssh))
			disconnect(k);
	} else {
		char why[ERROR_MAX];
		snprintf(why, sizeof(why), "no signer answered: %s", reason);
		strcpy(reason, why);
	}
	pthread_mutex_unlock(&k->lock);
	return rc;
}
