/* See timestamp.h. */
#include "timestamp.h"

#include "certid.h"
#include "cms.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ts.h>

#define POOL 8			   /* idle HTTP handles kept, with their connections */
#define REPLY_MAX (1 << 20)	   /* a reply is a few KiB; more is not a TSA */
#define LOCAL_POLICY "2.5.29.32.0" /* the in-process TSA's: anyPolicy */

struct timestamper {
	char **urls;
	size_t n_urls;
	ASN1_OBJECT *policy; /* asked for; NULL: the TSA's default */
	X509_STORE *store;
	unsigned timeout_s;
	EVP_PKEY *key; /* the in-process TSA, when no URL */
	X509 *cert;
	STACK_OF(X509) * chain;
	time_t (*clock)(void); /* the local TSA's; NULL: time() */
	pthread_mutex_t lock;  /* the pools */
	CURL *pool[POOL];
	size_t n_pool;
	TS_RESP_CTX *responders[POOL]; /* the local TSA's, set up once */
	size_t n_responders;
	X509 *tsa_seen; /* the certificate of the last external TSA that answered */
	unsigned tsa_generation;
};

/* WHAT, with OpenSSL's reasons (and their data: why a chain failed). */
static int openssl_error(char err[ERROR_MAX], const char *what)
{
	(void)error_set(err, -EIO, "%s", what);
	error_openssl(err);
	return -EIO;
}

void timestamper_free(struct timestamper *t)
{
	if (!t)
		return;
	/* analyzer: n_urls counts what URLS holds, so URLS is set when it is not 0. */
	for (size_t i = 0; i < t->n_urls; i++)
		free(t->urls[i]);
	free(t->urls);
	for (size_t i = 0; i < t->n_pool; i++)
		curl_easy_cleanup(t->pool[i]);
	for (size_t i = 0; i < t->n_responders; i++)
		TS_RESP_CTX_free(t->responders[i]);
	ASN1_OBJECT_free(t->policy);
	X509_free(t->tsa_seen);
	X509_STORE_free(t->store);
	X509_free(t->cert);
	sk_X509_pop_free(t->chain, X509_free);
	EVP_PKEY_free(t->key);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int timestamper_new(const char *const *urls, size_t n, const char *policy, const char *ca_file,
		    unsigned timeout_s, EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain,
		    struct timestamper **ret, char err[ERROR_MAX])
{
	struct timestamper *t = calloc(1, sizeof(*t));
	int r = 0;

	if (!t)
		return error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&t->lock, NULL);
	t->timeout_s = timeout_s ? timeout_s : 10;
	t->store = X509_STORE_new();
	t->urls = n ? calloc(n, sizeof(*t->urls)) : NULL;
	if (!t->store || (n && !t->urls)) {
		timestamper_free(t);
		return error_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		/* analyzer: owned by T, freed by timestamper_free. */
		if (!(t->urls[t->n_urls] = strdup(urls[i]))) {
			timestamper_free(t);
			return error_set(err, -ENOMEM, "out of memory");
		}
		t->n_urls++;
	}
	if (policy && !(t->policy = OBJ_txt2obj(policy, 1)))
		r = error_set(err, -EINVAL, "TSA policy '%s' is not an OID", policy);
	if (r == 0 && ca_file && X509_STORE_load_file(t->store, ca_file) != 1)
		r = openssl_error(err, "cannot load the TSA trust anchor");
	if (r == 0 && !n) {
		if (!key || !cert) {
			r = error_set(err, -EINVAL, "no TSA URL and no TSA key to answer locally");
		} else {
			EVP_PKEY_up_ref(key);
			X509_up_ref(cert);
			t->key = key;
			t->cert = cert;
			t->chain = chain ? X509_chain_up_ref(chain) : NULL;
			/* The certificate must be one OpenSSL lets sign tokens. */
			if (X509_check_purpose(cert, X509_PURPOSE_TIMESTAMP_SIGN, 0) != 1)
				r = error_set(err, -EINVAL,
					      "the TSA certificate needs the extended key usage "
					      "timeStamping, critical, and no other");
		}
	}
	if (r == 0 && n && !ca_file)
		r = error_set(err, -EINVAL, "a TSA URL needs its trust anchor (ca)");
	if (r == 0 && n && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		r = error_set(err, -EIO, "cannot initialise libcurl");
	if (r < 0) {
		timestamper_free(t);
		return r;
	}
	*ret = t;
	return 0;
}

/* ---- the request ---- */

static TS_REQ *make_request(const unsigned char *data, size_t len, ASN1_OBJECT *policy)
{
	unsigned char md[SHA256_DIGEST_LENGTH], rnd[8];
	TS_REQ *req = TS_REQ_new();
	TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
	X509_ALGOR *alg = X509_ALGOR_new();
	BIGNUM *bn = NULL;
	ASN1_INTEGER *nonce = NULL;
	bool ok = req && mi && alg;

	SHA256(data, len, md);
	ok = ok && X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) &&
	     TS_MSG_IMPRINT_set_algo(mi, alg) && TS_MSG_IMPRINT_set_msg(mi, md, sizeof(md)) &&
	     TS_REQ_set_version(req, 1) && TS_REQ_set_msg_imprint(req, mi) &&
	     (!policy || TS_REQ_set_policy_id(req, policy)) && TS_REQ_set_cert_req(req, 1);
	/* A nonce of 64 random bits ties the reply to this request. */
	ok = ok && RAND_bytes(rnd, sizeof(rnd)) == 1 && (bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) &&
	     (nonce = BN_to_ASN1_INTEGER(bn, NULL)) && TS_REQ_set_nonce(req, nonce);
	BN_free(bn);
	ASN1_INTEGER_free(nonce);
	X509_ALGOR_free(alg);
	TS_MSG_IMPRINT_free(mi);
	if (!ok) {
		TS_REQ_free(req);
		return NULL;
	}
	return req;
}

/* ---- HTTP (RFC 3161, section 3.4) ---- */

struct body {
	unsigned char *p;
	size_t n;
	bool too_big;
};

/* The TSA's sockets close on exec: the commands signfsd runs (alerts,
 * checkpoints) never inherit a connection. */
static curl_socket_t open_cloexec(void *ctx, curlsocktype purpose, struct curl_sockaddr *a)
{
	(void)ctx;
	(void)purpose;
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t collect(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct body *b = ctx;
	size_t n = size * nmemb;
	unsigned char *p;

	if (b->n + n > REPLY_MAX) {
		b->too_big = true;
		return 0;
	}
	p = realloc(b->p, b->n + n);
	if (!p)
		return 0;
	memcpy(p + b->n, data, n);
	b->p = p;
	b->n += n;
	return n;
}

static CURL *handle_get(struct timestamper *t)
{
	CURL *c = NULL;

	pthread_mutex_lock(&t->lock);
	if (t->n_pool)
		c = t->pool[--t->n_pool];
	pthread_mutex_unlock(&t->lock);
	return c ? c : curl_easy_init();
}

/* Back to the pool, its connection kept alive for the next request. */
static void handle_put(struct timestamper *t, CURL *c)
{
	pthread_mutex_lock(&t->lock);
	if (t->n_pool < POOL) {
		t->pool[t->n_pool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	if (c)
		curl_easy_cleanup(c);
}

static TS_RESP *http_reply(struct timestamper *t, const char *url, TS_REQ *req, char err[ERROR_MAX])
{
	unsigned char *query = NULL;
	int qlen = i2d_TS_REQ(req, &query);
	struct curl_slist *headers =
	    curl_slist_append(NULL, "Content-Type: application/timestamp-query");
	struct body b = {0};
	CURL *c = handle_get(t);
	TS_RESP *resp = NULL;
	long status = 0;
	CURLcode rc;

	if (!c || qlen <= 0 || !headers) {
		(void)error_set(err, -ENOMEM, "%s: out of memory", url);
		goto out;
	}
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_cloexec);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, query);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)qlen);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)t->timeout_s * 1000);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		(void)error_set(err, -EIO, "%s: %s", url,
				b.too_big ? "a reply larger than 1 MiB" : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		(void)error_set(err, -EIO, "%s: HTTP status %ld", url, status);
		goto out;
	}
	const unsigned char *p = b.p;
	resp = b.p ? d2i_TS_RESP(NULL, &p, (long)b.n) : NULL;
	if (!resp)
		(void)error_set(err, -EIO, "%s: the reply is not an RFC 3161 TimeStampResp", url);
	ERR_clear_error();
out:
	if (c)
		handle_put(t, c);
	curl_slist_free_all(headers);
	OPENSSL_free(query);
	free(b.p);
	return resp;
}

/* ---- the in-process TSA ---- */

void timestamper_set_clock(struct timestamper *t, time_t (*clock)(void))
{
	t->clock = clock;
}

/* The in-process TSA's time (genTime), for TS_RESP_CTX. */
static int local_time(TS_RESP_CTX *ctx, void *data, long *sec, long *usec)
{
	struct timestamper *t = data;
	(void)ctx;
	*sec = (long)(t->clock ? t->clock() : time(NULL));
	*usec = 0;
	return 1;
}

/* 128 random bits: unique without a counter to keep across restarts. */
static ASN1_INTEGER *serial_number(TS_RESP_CTX *ctx, void *data)
{
	unsigned char rnd[16];
	BIGNUM *bn;
	ASN1_INTEGER *serial = NULL;

	(void)ctx;
	(void)data;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return NULL;
	rnd[0] &= 0x7f;
	bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
	if (bn)
		serial = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	return serial;
}

/* A responder of the local TSA: its signer, chain, policy and digests set
 * once (setting them up costs more than a response). NULL on failure. */
static TS_RESP_CTX *responder_new(struct timestamper *t)
{
	TS_RESP_CTX *ctx = TS_RESP_CTX_new();
	ASN1_OBJECT *policy = OBJ_txt2obj(LOCAL_POLICY, 1);
	bool ok = ctx && policy && TS_RESP_CTX_set_signer_cert(ctx, t->cert) &&
		  TS_RESP_CTX_set_signer_key(ctx, t->key) &&
		  (!t->chain || TS_RESP_CTX_set_certs(ctx, t->chain)) &&
		  TS_RESP_CTX_set_def_policy(ctx, t->policy ? t->policy : policy) &&
		  TS_RESP_CTX_add_md(ctx, EVP_sha256()) &&
		  TS_RESP_CTX_set_signer_digest(ctx, EVP_sha256()) &&
		  TS_RESP_CTX_set_accuracy(ctx, 1, 0, 0);

	ASN1_OBJECT_free(policy);
	if (!ok) {
		TS_RESP_CTX_free(ctx);
		return NULL;
	}
	TS_RESP_CTX_set_serial_cb(ctx, serial_number, NULL);
	TS_RESP_CTX_set_time_cb(ctx, local_time, t);
	return ctx;
}

static TS_RESP *local_reply(struct timestamper *t, TS_REQ *req, char err[ERROR_MAX])
{
	TS_RESP_CTX *ctx = NULL;
	unsigned char *query = NULL;
	int qlen = i2d_TS_REQ(req, &query);
	BIO *in = qlen > 0 ? BIO_new_mem_buf(query, qlen) : NULL;
	TS_RESP *resp = NULL;

	pthread_mutex_lock(&t->lock);
	if (t->n_responders)
		ctx = t->responders[--t->n_responders];
	pthread_mutex_unlock(&t->lock);
	if (!ctx)
		ctx = responder_new(t);
	if (ctx && in)
		resp = TS_RESP_create_response(ctx, in);
	if (!resp) /* the reason in ERR; a NULL response says it failed */
		(void)openssl_error(err, "the local TSA cannot answer");
	/* Back to the pool: a response leaves nothing of itself in it. */
	pthread_mutex_lock(&t->lock);
	if (ctx && t->n_responders < POOL) {
		t->responders[t->n_responders++] = ctx;
		ctx = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	TS_RESP_CTX_free(ctx);
	BIO_free(in);
	OPENSSL_free(query);
	return resp;
}

/* ---- checking and reading tokens ---- */

/* The trust for a verification: STORE (a reference taken), the token's own
 * certificates coming with it. */
static TS_VERIFY_CTX *verify_ctx(TS_VERIFY_CTX *v, X509_STORE *store)
{
	if (!v || !X509_STORE_up_ref(store)) {
		TS_VERIFY_CTX_free(v);
		return NULL;
	}
	TS_VERIFY_CTX_set_store(v, store);
	return v;
}

static void read_info(PKCS7 *token, struct timestamp_info *info)
{
	TS_TST_INFO *tst = PKCS7_to_TS_TST_INFO(token);
	STACK_OF(PKCS7_SIGNER_INFO) *sis = PKCS7_get_signer_info(token);
	PKCS7_SIGNER_INFO *si =
	    sis && sk_PKCS7_SIGNER_INFO_num(sis) ? sk_PKCS7_SIGNER_INFO_value(sis, 0) : NULL;
	struct tm tm;

	memset(info, 0, sizeof(*info));
	if (tst && ASN1_TIME_to_tm(TS_TST_INFO_get_time(tst), &tm) == 1) {
		info->when = timegm(&tm);
		strftime(info->gen_time, sizeof(info->gen_time), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	if (tst)
		cert_serial_text(TS_TST_INFO_get_serial(tst), info->serial, sizeof(info->serial));
	if (si && si->issuer_and_serial)
		cert_serial_text(si->issuer_and_serial->serial, info->tsa_serial,
				 sizeof(info->tsa_serial));
	TS_TST_INFO_free(tst);
	ERR_clear_error();
}

/* The reply to REQ: granted, its nonce, imprint and policy REQ's, signed by
 * a TSA chaining to the store with the timeStamping EKU. */
static int check_reply(struct timestamper *t, TS_REQ *req, TS_RESP *resp, const char *source,
		       char err[ERROR_MAX])
{
	TS_VERIFY_CTX *v = verify_ctx(TS_REQ_to_TS_VERIFY_CTX(req, NULL), t->store);
	int ok;

	if (!v)
		return error_set(err, -ENOMEM, "out of memory");
	TS_VERIFY_CTX_add_flags(v, TS_VFY_SIGNATURE);
	ok = TS_RESP_verify_response(v, resp);
	TS_VERIFY_CTX_free(v);
	if (ok != 1) {
		char what[300];
		snprintf(what, sizeof(what), "%s: the timestamp does not verify", source);
		return openssl_error(err, what);
	}
	return 0;
}

/* The certificate that signed TOKEN (an external TSA's), kept when new. */
static void note_tsa(struct timestamper *t, PKCS7 *token)
{
	STACK_OF(X509) *signers = PKCS7_get0_signers(token, NULL, 0);
	X509 *cert = signers && sk_X509_num(signers) ? sk_X509_value(signers, 0) : NULL;

	pthread_mutex_lock(&t->lock);
	if (cert && (!t->tsa_seen || X509_cmp(cert, t->tsa_seen))) {
		X509_up_ref(cert);
		X509_free(t->tsa_seen);
		t->tsa_seen = cert;
		t->tsa_generation++;
	}
	pthread_mutex_unlock(&t->lock);
	sk_X509_free(signers);
	ERR_clear_error();
}

unsigned timestamper_tsa_certificate(struct timestamper *t, X509 **ret)
{
	unsigned generation;

	pthread_mutex_lock(&t->lock);
	*ret = t->tsa_seen;
	if (*ret)
		X509_up_ref(*ret);
	generation = t->tsa_generation;
	pthread_mutex_unlock(&t->lock);
	return generation;
}

/* The SignerInfo of a one-signer CMS. */
static CMS_SignerInfo *only_signer(CMS_ContentInfo *cms)
{
	STACK_OF(CMS_SignerInfo) *sis = cms ? CMS_get0_SignerInfos(cms) : NULL;
	return sis && sk_CMS_SignerInfo_num(sis) == 1 ? sk_CMS_SignerInfo_value(sis, 0) : NULL;
}

int timestamper_token(struct timestamper *t, const unsigned char *sig, size_t len,
		      unsigned char **ret_token, size_t *ret_len, struct timestamp_info *info,
		      char err[ERROR_MAX])
{
	TS_REQ *req = make_request(sig, len, t->policy);
	TS_RESP *resp = NULL;
	unsigned char *token = NULL;
	char source[sizeof(info->source)] = "";
	int tlen, r = -EIO;

	if (!req) {
		r = error_set(err, -EIO, "cannot make a timestamp request for the signature");
		goto out;
	}
	/* What this process signed itself needs no check against itself (it
	 * would cost a verification per file); a verifier checks it later. */
	if (!t->n_urls) {
		resp = local_reply(t, req, err);
		snprintf(source, sizeof(source), "local TSA");
	}
	/* Each URL in turn, until one gives a token that checks. */
	for (size_t i = 0; !resp && i < t->n_urls; i++) {
		resp = http_reply(t, t->urls[i], req, err);
		if (resp && check_reply(t, req, resp, t->urls[i], err) < 0) {
			TS_RESP_free(resp);
			resp = NULL;
		}
		if (resp)
			snprintf(source, sizeof(source), "%s", t->urls[i]);
	}
	if (!resp)
		goto out;
	tlen = i2d_PKCS7(TS_RESP_get_token(resp), &token);
	if (tlen <= 0) {
		r = openssl_error(err, "cannot encode the timestamp");
		goto out;
	}
	read_info(TS_RESP_get_token(resp), info);
	memcpy(info->source, source, sizeof(source));
	if (t->n_urls)
		note_tsa(t, TS_RESP_get_token(resp));
	*ret_token = token;
	*ret_len = tlen;
	r = 0;
out:
	TS_RESP_free(resp);
	TS_REQ_free(req);
	ERR_clear_error();
	return r;
}

int timestamp_verify(const unsigned char *der, size_t len, X509_STORE *trust,
		     struct timestamp_info *info, char err[ERROR_MAX])
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	CMS_SignerInfo *si = only_signer(cms);
	int idx = si ? CMS_unsigned_get_attr_by_NID(si, NID_id_smime_aa_timeStampToken, -1) : -1;
	X509_ATTRIBUTE *attr = idx >= 0 ? CMS_unsigned_get_attr(si, idx) : NULL;
	ASN1_TYPE *at = attr ? X509_ATTRIBUTE_get0_type(attr, 0) : NULL;
	ASN1_OCTET_STRING *sig = si ? CMS_SignerInfo_get0_signature(si) : NULL;
	PKCS7 *token = NULL;
	TS_VERIFY_CTX *v = NULL;
	BIO *data = NULL;
	int r;

	if (!si || !sig) {
		r = error_set(err, -EIO, "not a CMS signature with one signer");
		goto out;
	}
	if (!at) {
		r = error_set(err, -ENOENT, "the signature carries no timestamp");
		goto out;
	}
	if (at->type == V_ASN1_SEQUENCE) {
		const unsigned char *q = at->value.sequence->data;
		token = d2i_PKCS7(NULL, &q, at->value.sequence->length);
	}
	if (!token) {
		r = error_set(err, -EIO, "the timestamp attribute is not a TimeStampToken");
		goto out;
	}
	/* The TSA's certificate must have been valid when it made the token
	 * (its signature binds genTime), whatever has become of it since. */
	read_info(token, info);
	if (info->when)
		X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(trust), info->when);
	v = verify_ctx(TS_VERIFY_CTX_new(), trust);
	data = BIO_new_mem_buf(sig->data, sig->length);
	if (!v || !data) {
		r = error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	TS_VERIFY_CTX_set_flags(v, TS_VFY_VERSION | TS_VFY_SIGNATURE | TS_VFY_DATA);
	TS_VERIFY_CTX_set_data(v, data);
	data = NULL; /* the context's now */
	if (TS_RESP_verify_token(v, token) != 1) {
		r = openssl_error(err, "the timestamp does not verify");
		goto out;
	}
	read_info(token, info);
	r = 0;
out:
	BIO_free(data);
	TS_VERIFY_CTX_free(v);
	PKCS7_free(token);
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return r;
}

int timestamp_verify_signature(const unsigned char *der, size_t len, int content_fd,
			       X509_STORE *trust, X509_STORE *tsa_trust,
			       struct signature_verdict *ret, char err[ERROR_MAX])
{
	int r = timestamp_verify(der, len, tsa_trust, &ret->ts, err);

	memset(ret, 0, r == 0 ? offsetof(struct signature_verdict, ts) : sizeof(*ret));
	ret->signer = NULL;
	if (r < 0 && r != -ENOENT)
		return r;
	ret->timestamped = r == 0;
	/* At genTime: the signature existed then, and what happened to the
	 * certificate after it does not undo that. */
	X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(trust),
				   ret->timestamped ? ret->ts.when : time(NULL));
	return cms_verify_detached(der, len, content_fd, trust, &ret->signer, err);
}
