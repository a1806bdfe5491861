/* See provision.h. */
#include "provision.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <p11-kit/pkcs11.h>

/* DER of OID 1.2.840.10045.3.1.7 (prime256v1). */
static const CK_BYTE p256_params[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

static int find_slot(CK_FUNCTION_LIST_PTR f, const char *label, CK_SLOT_ID *ret, char *err)
{
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64;
	CK_RV rv = f->C_GetSlotList(CK_TRUE, slots, &n);

	if (rv != CKR_OK)
		return error_set(err, -EIO, "C_GetSlotList: 0x%lx", rv);
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		bool initialized = ti.flags & CKF_TOKEN_INITIALIZED;
		if (!label && !initialized) {
			*ret = slots[i];
			return 0;
		}
		if (label && initialized) {
			char padded[32];
			memset(padded, ' ', sizeof(padded));
			memcpy(padded, label, strlen(label));
			if (!memcmp(ti.label, padded, sizeof(padded))) {
				*ret = slots[i];
				return 0;
			}
		}
	}
	return label ? error_set(err, -ENODEV, "token '%s' not found after initialisation", label)
		     : error_set(err, -ENODEV, "no free (uninitialised) token slot in the module");
}

static int generate(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE sess, const struct provision_key *k,
		    char *err)
{
	CK_MECHANISM mech = {k->rsa_bits ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, NULL,
			     0};
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_BYTE id = k->id, exponent[] = {0x01, 0x00, 0x01};
	CK_ULONG label_len = strlen(k->label), bits = k->rsa_bits;
	CK_ATTRIBUTE pub[] = {
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_VERIFY, &yes, sizeof(yes)},
	    {CKA_LABEL, (void *)k->label, label_len},
	    {CKA_ID, &id, 1},
	    /* the key type's own attributes, last */
	    {CKA_EC_PARAMS, (void *)p256_params, sizeof(p256_params)},
	    {CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent)},
	};
	CK_ULONG n_pub = sizeof(pub) / sizeof(*pub) - 1;
	CK_ATTRIBUTE priv[] = {
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_PRIVATE, &yes, sizeof(yes)},
	    {CKA_SENSITIVE, &yes, sizeof(yes)},
	    {CKA_EXTRACTABLE, &no, sizeof(no)},
	    {CKA_SIGN, &yes, sizeof(yes)},
	    {CKA_LABEL, (void *)k->label, label_len},
	    {CKA_ID, &id, 1},
	};
	CK_OBJECT_HANDLE hpub, hpriv;
	CK_RV rv;

	if (k->rsa_bits) {
		pub[4] = (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)};
		n_pub++;
	}
	rv = f->C_GenerateKeyPair(sess, &mech, pub, n_pub, priv, sizeof(priv) / sizeof(*priv),
				  &hpub, &hpriv);

	if (rv != CKR_OK)
		return error_set(err, -EIO, "generating key '%s': C_GenerateKeyPair 0x%lx",
				 k->label, rv);
	return 0;
}

int provision_token(const char *module, const char *label, const char *so_pin, const char *user_pin,
		    const struct provision_key *keys, size_t n_keys, char err[ERROR_MAX])
{
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);
	CK_FUNCTION_LIST_PTR f = NULL;
	CK_SESSION_HANDLE sess = CK_INVALID_HANDLE;
	CK_UTF8CHAR tlabel[32];
	CK_SLOT_ID slot;
	CK_RV rv;
	void *dl;
	int r = -EIO;

	err[0] = 0;
	if (strlen(label) > sizeof(tlabel))
		return error_set(err, -EINVAL, "token label longer than 32 bytes");
	dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		return error_set(err, -ENOENT, "cannot load PKCS#11 module %s: %s", module,
				 dlerror());
	get_list = (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(dl, "C_GetFunctionList");
	if (!get_list || get_list(&f) != CKR_OK) {
		dlclose(dl);
		return error_set(err, -EINVAL, "%s is not a PKCS#11 module", module);
	}
	rv = f->C_Initialize(NULL);
	if (rv != CKR_OK) {
		r = error_set(err, -EIO, "C_Initialize: 0x%lx", rv);
		goto out_dl;
	}
	r = find_slot(f, NULL, &slot, err);
	if (r < 0)
		goto out;
	memset(tlabel, ' ', sizeof(tlabel));
	memcpy(tlabel, label, strlen(label));
	rv = f->C_InitToken(slot, (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin), tlabel);
	if (rv != CKR_OK) {
		r = error_set(err, -EIO, "C_InitToken: 0x%lx", rv);
		goto out;
	}
	/* SoftHSM2 moves an initialised token to a new slot id. */
	r = find_slot(f, label, &slot, err);
	if (r < 0)
		goto out;
	r = -EIO;
	rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &sess);
	if (rv != CKR_OK) {
		r = error_set(err, -EIO, "C_OpenSession: 0x%lx", rv);
		goto out;
	}
	if ((rv = f->C_Login(sess, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin))) != CKR_OK ||
	    (rv = f->C_InitPIN(sess, (CK_UTF8CHAR_PTR)user_pin, strlen(user_pin))) != CKR_OK ||
	    (rv = f->C_Logout(sess)) != CKR_OK ||
	    (rv = f->C_Login(sess, CKU_USER, (CK_UTF8CHAR_PTR)user_pin, strlen(user_pin))) !=
		CKR_OK) {
		r = error_set(err, -EIO, "setting the token PINs failed: 0x%lx", rv);
		goto out;
	}
	for (size_t i = 0; i < n_keys; i++) {
		r = generate(f, sess, &keys[i], err);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	if (sess != CK_INVALID_HANDLE)
		f->C_CloseSession(sess);
	f->C_Finalize(NULL);
out_dl:
	dlclose(dl);
	return r;
}
