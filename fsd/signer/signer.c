/* PKCS#11 signing through libp11. libp11 is not thread-safe outside of the
 * signing operation itself, so lookups and logins run under one mutex at
 * start; signing takes a token session per operation from libp11's pool. */
#include "signer.h"

#include "certid.h"
#include "dsse.h"
#include "hash.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libp11.h>
#include <p11-kit/uri.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#define SIGNER_MAX_KEYS 32
#define PIN_MAX 256

struct signer_key {
	char *name;
	PKCS11_SLOT *slot;
	struct cert_identity id; /* of cert, kept with it */
	EVP_PKEY *pkey;
	X509 *cert;
	STACK_OF(X509) * chain;
	struct signer_key_facts facts;
};

struct signer {
	char *module;
	PKCS11_CTX *ctx;
	PKCS11_SLOT *slots;
	unsigned int n_slots;
	char *pin_file;
	pthread_mutex_t lock;
	size_t n_keys;
	struct signer_key keys[SIGNER_MAX_KEYS];
	size_t n_pkeys;
	EVP_PKEY *pkeys[SIGNER_MAX_KEYS]; /* handed out by signer_find_pkey */
};

int signer_open(const char *module, const char *pin_file, struct signer **ret, char err[ERROR_MAX])
{
	struct signer *s;

	err[0] = 0;
	if (module && access(module, R_OK) < 0)
		return error_set(err, -ENOENT, "PKCS#11 module %s: %s", module, strerror(errno));
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	/* A relay without a token: nothing loaded, no keys. */
	if (!module) {
		*ret = s;
		return 0;
	}
	s->pin_file = strdup(pin_file);
	s->module = strdup(module);
	s->ctx = PKCS11_CTX_new();
	if (!s->ctx || !s->pin_file) {
		signer_free(s);
		return -ENOMEM;
	}
	if (PKCS11_CTX_load(s->ctx, module) < 0) {
		PKCS11_CTX_free(s->ctx);
		s->ctx = NULL;
		signer_free(s);
		return error_set(err, -EIO, "cannot load PKCS#11 module %s", module);
	}
	if (PKCS11_enumerate_slots(s->ctx, &s->slots, &s->n_slots) < 0) {
		signer_free(s);
		return error_set(err, -EIO, "cannot list the slots of PKCS#11 module %s", module);
	}
	*ret = s;
	return 0;
}

/* Reads the first line of the PIN file into pin (wiped by the caller). */
static int read_pin(const char *path, char pin[PIN_MAX], char *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		return error_set(err, -errno, "PIN file %s: %s", path, strerror(errno));
	n = read(fd, pin, PIN_MAX - 1);
	close(fd);
	if (n < 0)
		return error_set(err, -EIO, "PIN file %s: %s", path, strerror(errno));
	pin[n] = 0;
	pin[strcspn(pin, "\r\n")] = 0;
	if (!pin[0])
		return error_set(err, -EINVAL, "PIN file %s is empty", path);
	return 0;
}

/* Space-padded CK_TOKEN_INFO fields from libp11's strings, so that p11-kit
 * can match a URI against them. */
static void pad(unsigned char *dst, size_t n, const char *src)
{
	size_t len = src ? strlen(src) : 0;
	memset(dst, ' ', n);
	memcpy(dst, src ? src : "", len < n ? len : n);
}

static PKCS11_SLOT *find_slot(struct signer *s, P11KitUri *uri)
{
	for (unsigned int i = 0; i < s->n_slots; i++) {
		PKCS11_TOKEN *t = s->slots[i].token;
		CK_TOKEN_INFO info;
		if (!t || !t->initialized)
			continue;
		memset(&info, 0, sizeof(info));
		pad(info.label, sizeof(info.label), t->label);
		pad(info.manufacturerID, sizeof(info.manufacturerID), t->manufacturer);
		pad(info.model, sizeof(info.model), t->model);
		pad(info.serialNumber, sizeof(info.serialNumber), t->serialnr);
		if (p11_kit_uri_match_token_info(uri, &info))
			return &s->slots[i];
	}
	return NULL;
}

static int login(struct signer *s, PKCS11_SLOT *slot, char *err)
{
	char pin[PIN_MAX];
	int logged_in = 0, r;

	if (PKCS11_is_logged_in(slot, 0, &logged_in) == 0 && logged_in)
		return 0;
	r = read_pin(s->pin_file, pin, err);
	if (r < 0)
		return r;
	r = PKCS11_login(slot, 0, pin);
	OPENSSL_cleanse(pin, sizeof(pin));
	if (r < 0) {
		ERR_clear_error(); /* the reason is always "wrong PIN" or a locked token */
		return error_set(err, -EACCES,
				 "login to token '%s' failed: wrong PIN (from %s) or PIN locked",
				 slot->token->label, s->pin_file);
	}
	return 0;
}

static bool attr_eq(CK_ATTRIBUTE_PTR a, const void *v, size_t n)
{
	return a->ulValueLen == n && memcmp(a->pValue, v, n) == 0;
}

/* CKA_SENSITIVE, CKA_NEVER_EXTRACTABLE and CKA_LOCAL of the private key
 * LABEL/ID on SLOT, through a session of our own: libp11 does not expose
 * them. The module is already initialised and logged in by libp11. */
static void read_facts(struct signer *s, PKCS11_SLOT *slot, PKCS11_KEY *key,
		       struct signer_key_facts *f)
{
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);
	CK_FUNCTION_LIST_PTR fl = NULL;
	CK_SESSION_HANDLE sess;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE find[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, key->id, key->id_len}};
	CK_OBJECT_HANDLE obj;
	CK_ULONG n = 0;
	CK_BBOOL sens = 0, never = 0, local = 0;
	CK_ATTRIBUTE attrs[] = {{CKA_SENSITIVE, &sens, sizeof(sens)},
				{CKA_NEVER_EXTRACTABLE, &never, sizeof(never)},
				{CKA_LOCAL, &local, sizeof(local)}};
	void *dl = dlopen(s->module, RTLD_NOW | RTLD_NOLOAD);

	f->sensitive = f->never_extractable = f->local = -1;
	snprintf(f->token, sizeof(f->token), "%s", slot->token->label);
	snprintf(f->label, sizeof(f->label), "%s", key->label ? key->label : "");
	f->id_len = key->id_len < sizeof(f->id) ? key->id_len : sizeof(f->id);
	memcpy(f->id, key->id, f->id_len);
	get_list = dl ? (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(dl, "C_GetFunctionList") : NULL;
	if (!get_list || get_list(&fl) != CKR_OK ||
	    fl->C_OpenSession(PKCS11_get_slotid_from_slot(slot), CKF_SERIAL_SESSION, NULL, NULL,
			      &sess) != CKR_OK) {
		if (dl)
			dlclose(dl);
		return;
	}
	if (fl->C_FindObjectsInit(sess, find, key->id_len ? 2 : 1) == CKR_OK) {
		if (fl->C_FindObjects(sess, &obj, 1, &n) == CKR_OK && n == 1) {
			/* Each attribute on its own: a token may refuse one of them. */
			for (int i = 0; i < 3; i++)
				if (fl->C_GetAttributeValue(sess, obj, &attrs[i], 1) == CKR_OK)
					*(i == 0   ? &f->sensitive
					  : i == 1 ? &f->never_extractable
						   : &f->local) =
					    *(CK_BBOOL *)attrs[i].pValue ? 1 : 0;
		}
		fl->C_FindObjectsFinal(sess);
	}
	fl->C_CloseSession(sess);
	dlclose(dl);
}

/* Caller holds s->lock. */
static int find_pkey(struct signer *s, const char *uri_str, EVP_PKEY **ret, char *err,
		     struct signer_key_facts *facts, PKCS11_SLOT **ret_slot)
{
	P11KitUri *uri = p11_kit_uri_new();
	CK_ATTRIBUTE_PTR label, id;
	PKCS11_SLOT *slot;
	PKCS11_KEY *keys = NULL, *key = NULL;
	unsigned int n_keys = 0;
	EVP_PKEY *pkey;
	int r;

	if (!uri)
		return -ENOMEM;
	r = p11_kit_uri_parse(uri_str, P11_KIT_URI_FOR_ANY, uri);
	if (r != P11_KIT_URI_OK) {
		r = error_set(err, -EINVAL, "bad PKCS#11 URI '%s': %s", uri_str,
			      p11_kit_uri_message(r));
		goto out;
	}
	label = p11_kit_uri_get_attribute(uri, CKA_LABEL);
	id = p11_kit_uri_get_attribute(uri, CKA_ID);
	if (!label && !id) {
		r = error_set(err, -EINVAL, "PKCS#11 URI '%s' names no object= or id=", uri_str);
		goto out;
	}
	slot = find_slot(s, uri);
	if (!slot) {
		r = error_set(err, -ENODEV, "no token matches '%s' (token absent?)", uri_str);
		goto out;
	}
	r = login(s, slot, err);
	if (r < 0)
		goto out;
	if (PKCS11_enumerate_keys(slot->token, &keys, &n_keys) < 0) {
		r = error_set(err, -EIO, "cannot list the keys of token '%s'", slot->token->label);
		goto out;
	}
	for (unsigned int i = 0; i < n_keys && !key; i++) {
		if (!keys[i].isPrivate)
			continue;
		if (label &&
		    !attr_eq(label, keys[i].label, keys[i].label ? strlen(keys[i].label) : 0))
			continue;
		if (id && !attr_eq(id, keys[i].id, keys[i].id_len))
			continue;
		key = &keys[i];
	}
	if (!key) {
		r = error_set(err, -ENOKEY, "no private key matches '%s' on token '%s'", uri_str,
			      slot->token->label);
		goto out;
	}
	pkey = PKCS11_get_private_key(key);
	if (!pkey) {
		r = error_set(err, -EIO, "cannot use private key '%s'", uri_str);
		goto out;
	}
	if (facts)
		read_facts(s, slot, key, facts);
	if (ret_slot)
		*ret_slot = slot;
	*ret = pkey;
	r = 0;
out:
	p11_kit_uri_free(uri);
	return r;
}

/* A software key in a PEM file, readable by its owner only: a relay's
 * audit key (signer.h). */
static int read_file_key(const char *path, EVP_PKEY **ret, char *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	EVP_PKEY *pkey = NULL;
	struct stat st;
	FILE *f;

	if (fd < 0)
		return error_set(err, -errno, "key file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
		close(fd);
		return error_set(err, -EPERM,
				 "key file %s must be a file readable by its owner only", path);
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return error_set(err, -ENOMEM, "out of memory");
	}
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!pkey) {
		ERR_clear_error();
		return error_set(err, -EINVAL, "key file %s holds no PEM private key", path);
	}
	*ret = pkey;
	return 0;
}

int signer_find_pkey(struct signer *s, const char *uri, EVP_PKEY **ret, char err[ERROR_MAX])
{
	EVP_PKEY *pkey = NULL;
	int r;

	err[0] = 0;
	pthread_mutex_lock(&s->lock);
	if (s->n_pkeys == SIGNER_MAX_KEYS) {
		r = error_set(err, -E2BIG, "too many keys");
		goto out;
	}
	if (!strncmp(uri, "file:/", 6))
		r = read_file_key(uri + 5, &pkey, err);
	else
		r = find_pkey(s, uri, &pkey, err, NULL, NULL);
	if (r == 0) {
		s->pkeys[s->n_pkeys++] = pkey;
		*ret = pkey;
	}
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int load_pem_certs(const char *path, STACK_OF(X509) * *ret, char *err)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	FILE *f = fopen(path, "re");
	X509 *x;

	if (!f) {
		sk_X509_free(sk);
		return error_set(err, -errno, "certificate file %s: %s", path, strerror(errno));
	}
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)))
		sk_X509_push(sk, x);
	fclose(f);
	/* The loop ends on "no start line", which is how PEM files end. */
	ERR_clear_error();
	if (sk_X509_num(sk) == 0) {
		sk_X509_free(sk);
		return error_set(err, -EINVAL, "certificate file %s holds no PEM certificate",
				 path);
	}
	*ret = sk;
	return 0;
}

int signer_add_key(struct signer *s, const char *name, const char *uri, const char *cert_file,
		   const char *chain_file, char err[ERROR_MAX])
{
	struct signer_key k = {0};
	STACK_OF(X509) *certs = NULL;
	int r;

	err[0] = 0;
	pthread_mutex_lock(&s->lock);
	if (s->n_keys == SIGNER_MAX_KEYS) {
		r = error_set(err, -E2BIG, "too many keys");
		goto out;
	}
	r = find_pkey(s, uri, &k.pkey, err, &k.facts, &k.slot);
	if (r < 0)
		goto out;
	r = load_pem_certs(cert_file, &certs, err);
	if (r < 0)
		goto out;
	k.cert = sk_X509_shift(certs);
	if (X509_check_private_key(k.cert, k.pkey) != 1) {
		r = error_set(err, -EKEYREJECTED, "certificate %s does not belong to key '%s'",
			      cert_file, uri);
		goto out;
	}
	if (chain_file) {
		STACK_OF(X509) *more = NULL;
		r = load_pem_certs(chain_file, &more, err);
		if (r < 0)
			goto out;
		while (sk_X509_num(more) > 0)
			sk_X509_push(certs, sk_X509_shift(more));
		sk_X509_free(more);
	}
	k.chain = certs;
	certs = NULL;
	k.name = strdup(name);
	/* once per certificate, not at every signature; "" if the digest failed */
	(void)cert_identity(k.cert, &k.id);
	s->keys[s->n_keys++] = k;
	memset(&k, 0, sizeof(k));
	r = 0;
out:
	pthread_mutex_unlock(&s->lock);
	EVP_PKEY_free(k.pkey);
	X509_free(k.cert);
	sk_X509_pop_free(certs, X509_free);
	return r;
}

static struct signer_key *lookup(struct signer *s, const char *name)
{
	for (size_t i = 0; i < s->n_keys; i++)
		if (!strcmp(s->keys[i].name, name))
			return &s->keys[i];
	return NULL;
}

int signer_key_info(struct signer *s, const char *name, char serial[65], char fingerprint[65])
{
	struct signer_key *k = lookup(s, name);

	if (!k)
		return -ENOKEY;
	pthread_mutex_lock(&s->lock);
	memcpy(serial, k->id.serial, 65);
	memcpy(fingerprint, k->id.fingerprint, 65);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

bool signer_has_key(struct signer *s, const char *name)
{
	return lookup(s, name) != NULL;
}

int signer_certificate(struct signer *s, const char *name, X509 **ret_cert,
		       STACK_OF(X509) * *ret_chain)
{
	struct signer_key *k = lookup(s, name);

	if (!k)
		return -ENOKEY;
	pthread_mutex_lock(&s->lock);
	X509_up_ref(k->cert);
	*ret_cert = k->cert;
	*ret_chain = k->chain ? X509_chain_up_ref(k->chain) : NULL;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int signer_sign(struct signer *s, const char *name, const unsigned char digest[SHA256_LEN],
		time_t when, unsigned char **ret_der, size_t *ret_len, char err[ERROR_MAX])
{
	return signer_sign_stamped(s, name, digest, when, NULL, NULL, ret_der, ret_len, err);
}

int signer_sign_stamped(struct signer *s, const char *name, const unsigned char digest[SHA256_LEN],
			time_t when, cms_stamp_fn stamp, void *stamp_ctx, unsigned char **ret_der,
			size_t *ret_len, char err[ERROR_MAX])
{
	struct signer_key *k = lookup(s, name);
	STACK_OF(X509) * chain;
	X509 *cert;
	int r = 0;

	err[0] = 0;
	if (!k)
		return error_set(err, -ENOKEY, "no key named '%s'", name);
	/* A renewal may swap the certificate meanwhile: sign with references. */
	pthread_mutex_lock(&s->lock);
	cert = k->cert;
	X509_up_ref(cert);
	chain = k->chain ? X509_chain_up_ref(k->chain) : NULL;
	pthread_mutex_unlock(&s->lock);
	r = cms_sign_digest_stamped(cert, chain, k->pkey, digest, when, stamp, stamp_ctx, ret_der,
				    ret_len);
	if (r == -ETIME) {
		err[0] = 0; /* the stamp's reason is the caller's */
	} else if (r < 0) {
		r = error_set(err, -EIO, "signing with key '%s' failed", name);
		error_openssl(err); /* the token's reason, such as a lost object */
	}
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	return r;
}

int signer_sign_envelope(struct signer *s, const char *name, const char *type, const void *body,
			 size_t len, char **ret, char err[ERROR_MAX])
{
	struct signer_key *k = lookup(s, name);
	char fingerprint[65];
	int r;

	err[0] = 0;
	if (!k)
		return error_set(err, -ENOKEY, "no key named '%s'", name);
	pthread_mutex_lock(&s->lock);
	memcpy(fingerprint, k->id.fingerprint, sizeof(fingerprint));
	pthread_mutex_unlock(&s->lock);
	r = dsse_sign(k->pkey, fingerprint, type, body, len, ret, err);
	if (r < 0)
		error_openssl(err); /* the token's reason */
	return r;
}

/* The SHA-256 of all OUT_FD holds: a module's bytes then its signature,
 * read back whole. */
static int hash_written(int out_fd, unsigned char ret[SHA256_LEN], char err[ERROR_MAX])
{
	off_t end = lseek(out_fd, 0, SEEK_END);
	int r = end < 0 ? -errno : hash_fd(out_fd, end, ret);

	if (r < 0)
		return error_set(err, r, "cannot read the signed module back: %s", strerror(-r));
	return 0;
}

int signer_embed(struct signer *s, const char *name, enum embed_format format, bool keep, int in_fd,
		 off_t size, const struct pe_sums *streamed, int out_fd, cms_stamp_fn stamp,
		 void *stamp_ctx, unsigned char ret_published[SHA256_LEN], char err[ERROR_MAX])
{
	struct signer_key *k = lookup(s, name);
	struct embed_key key = {0};
	int r;

	err[0] = 0;
	if (!k)
		return error_set(err, -ENOKEY, "no key named '%s'", name);
	pthread_mutex_lock(&s->lock);
	key.cert = k->cert;
	X509_up_ref(key.cert);
	key.chain = k->chain ? X509_chain_up_ref(k->chain) : NULL;
	pthread_mutex_unlock(&s->lock);
	key.key = k->pkey;
	if (format == EMBED_AUTHENTICODE) {
		r = authenticode_sign_streamed(in_fd, size, out_fd, &key, keep, streamed, stamp,
					       stamp_ctx, ret_published, err);
	} else if (format == EMBED_KMOD) {
		r = kmod_sign(in_fd, size, out_fd, &key, keep, err);
		if (r == 0)
			r = hash_written(out_fd, ret_published, err);
	} else
		r = error_set(err, -EINVAL, "no embedded signature for format %s",
			      embed_format_name(format));
	X509_free(key.cert);
	sk_X509_pop_free(key.chain, X509_free);
	return r;
}

void signer_token_state(struct signer *s, const char *name, char *out, size_t n)
{
	struct signer_key *k = lookup(s, name);
	int logged_in = 0;

	if (!k || !k->slot) {
		snprintf(out, n, "unknown");
		return;
	}
	/* libp11 calls other than signing are not thread-safe: one at a time. */
	pthread_mutex_lock(&s->lock);
	if (PKCS11_is_logged_in(k->slot, 0, &logged_in) < 0)
		snprintf(out, n, "absent or not answering (token '%s')", k->facts.token);
	else
		snprintf(out, n, "%s (token '%s')", logged_in ? "logged in" : "NOT logged in",
			 k->facts.token);
	pthread_mutex_unlock(&s->lock);
	ERR_clear_error();
}

int signer_key_facts(struct signer *s, const char *name, struct signer_key_facts *out)
{
	struct signer_key *k = lookup(s, name);
	if (!k)
		return -ENOKEY;
	*out = k->facts;
	return 0;
}

static STACK_OF(X509) * certs_from_pem(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *x;

	while (b && sk && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(b);
	return sk;
}

int signer_set_certificate(struct signer *s, const char *name, const char *cert_pem,
			   const char *chain_pem, char err[ERROR_MAX])
{
	struct signer_key *k = lookup(s, name);
	STACK_OF(X509) * certs, *chain;
	X509 *cert;

	err[0] = 0;
	if (!k)
		return error_set(err, -ENOKEY, "no key named '%s'", name);
	certs = certs_from_pem(cert_pem);
	cert = sk_X509_num(certs) > 0 ? sk_X509_shift(certs) : NULL;
	sk_X509_pop_free(certs, X509_free);
	if (!cert)
		return error_set(err, -EINVAL, "no certificate in the inventory's PEM for '%s'",
				 name);
	if (X509_check_private_key(cert, k->pkey) != 1) {
		X509_free(cert);
		return error_set(err, -EKEYREJECTED,
				 "the new certificate does not belong to key '%s'", name);
	}
	chain = certs_from_pem(chain_pem ? chain_pem : "");
	pthread_mutex_lock(&s->lock);
	X509_free(k->cert); /* threads signing right now hold their own references */
	k->cert = cert;
	(void)cert_identity(k->cert, &k->id);
	sk_X509_pop_free(k->chain, X509_free);
	k->chain = chain;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void signer_free(struct signer *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_keys; i++) {
		free(s->keys[i].name);
		EVP_PKEY_free(s->keys[i].pkey);
		X509_free(s->keys[i].cert);
		sk_X509_pop_free(s->keys[i].chain, X509_free);
	}
	for (size_t i = 0; i < s->n_pkeys; i++)
		EVP_PKEY_free(s->pkeys[i]);
	if (s->ctx) {
		if (s->slots)
			PKCS11_release_all_slots(s->ctx, s->slots, s->n_slots);
		PKCS11_CTX_unload(s->ctx);
		PKCS11_CTX_free(s->ctx);
	}
	pthread_mutex_destroy(&s->lock);
	free(s->pin_file);
	free(s->module);
	free(s);
}
