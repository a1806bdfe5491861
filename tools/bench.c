/* signfs-bench: the measuring half of tools/bench.sh (not installed).
 *   signfs-bench write DIR COUNT KIB THREADS   create COUNT files of KIB each
 *       in DIR with THREADS writers; prints files/s and close() latency
 *       (close returns once the file is signed and published).
 *   signfs-bench sign CONFIG COUNT THREADS     raw signing rate of the
 *       config's token: bare ECDSA over a digest, and full CMS. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "config.h"
#include "signer.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct writer {
	const char *dir;
	int id, count;
	size_t size;
	double *close_lat;
	int errors;
};

static void *write_files(void *arg)
{
	struct writer *w = arg;
	char path[4096];
	char *buf = malloc(w->size);

	if (!buf) {
		w->errors = w->count;
		return NULL;
	}
	memset(buf, 'a' + w->id, w->size);
	for (int i = 0; i < w->count; i++) {
		int fd;
		double t;
		snprintf(path, sizeof(path), "%s/w%d-%06d", w->dir, w->id, i);
		/* Distinct content per file, as real artifacts have. */
		memcpy(buf, &i, sizeof(i));
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, buf, w->size) != (ssize_t)w->size) {
			w->errors++;
			if (fd >= 0)
				close(fd);
			continue;
		}
		t = now();
		if (close(fd) < 0)
			w->errors++;
		w->close_lat[i] = now() - t;
	}
	free(buf);
	return NULL;
}

static int cmd_write(int argc, char **argv)
{
	int count, threads, per, errors = 0;
	size_t size;
	struct writer *w;
	pthread_t *t;
	double *lat, start, secs;

	if (argc != 5)
		return 2;
	count = atoi(argv[2]);
	size = (size_t)atoi(argv[3]) * 1024;
	threads = atoi(argv[4]);
	if (count <= 0 || threads <= 0 || threads > 64)
		return 2;
	per = count / threads;
	lat = calloc((size_t)per * threads, sizeof(*lat));
	w = calloc(threads, sizeof(*w));
	t = calloc(threads, sizeof(*t));
	if (!lat || !w || !t || per == 0) {
		free(lat);
		free(w);
		free(t);
		return 2;
	}
	start = now();
	for (int i = 0; i < threads; i++) {
		w[i] = (struct writer){argv[1], i, per, size, lat + (size_t)i * per, 0};
		pthread_create(&t[i], NULL, write_files, &w[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		errors += w[i].errors;
	}
	secs = now() - start;
	qsort(lat, (size_t)per * threads, sizeof(*lat), cmp_double);
	printf("files=%d errors=%d seconds=%.3f rate=%.0f close_p50_ms=%.3f close_p99_ms=%.3f\n",
	       per * threads, errors, secs, per * threads / secs, lat[per * threads / 2] * 1e3,
	       lat[(size_t)(per * threads * 0.99)] * 1e3);
	free(lat);
	free(w);
	free(t);
	return errors ? 1 : 0;
}

struct signer_job {
	struct signer *s;
	const char *key;
	EVP_PKEY *pkey;
	int count;
	int errors;
};

static void *sign_cms(void *arg)
{
	struct signer_job *j = arg;
	unsigned char d[SHA256_LEN] = {0}, *der;
	size_t len;
	char err[SIGNER_ERR_MAX];

	for (int i = 0; i < j->count; i++) {
		memcpy(d, &i, sizeof(i));
		if (signer_sign(j->s, j->key, d, time(NULL), &der, &len, err) < 0)
			j->errors++;
		else
			OPENSSL_free(der);
	}
	return NULL;
}

static void *sign_raw(void *arg)
{
	struct signer_job *j = arg;
	unsigned char d[SHA256_LEN] = {0}, sig[256];

	for (int i = 0; i < j->count; i++) {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(j->pkey, NULL);
		size_t len = sizeof(sig);
		memcpy(d, &i, sizeof(i));
		if (!ctx || EVP_PKEY_sign_init(ctx) <= 0 ||
		    EVP_PKEY_sign(ctx, sig, &len, d, sizeof(d)) <= 0)
			j->errors++;
		EVP_PKEY_CTX_free(ctx);
	}
	return NULL;
}

static double run_sign(void *(*fn)(void *), struct signer_job *proto, int threads, int count,
		       int *errors)
{
	struct signer_job j[64];
	pthread_t t[64];
	double start = now();

	for (int i = 0; i < threads; i++) {
		j[i] = *proto;
		j[i].count = count / threads;
		pthread_create(&t[i], NULL, fn, &j[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		*errors += j[i].errors;
	}
	return (count / threads) * threads / (now() - start);
}

static int cmd_sign(int argc, char **argv)
{
	struct config *c;
	struct signer *s;
	const struct config_key *k;
	char err[CONFIG_ERR_MAX > SIGNER_ERR_MAX ? CONFIG_ERR_MAX : SIGNER_ERR_MAX];
	struct signer_job proto = {0};
	int count, threads, errors = 0;
	double raw, cms;

	if (argc != 4)
		return 2;
	count = atoi(argv[2]);
	threads = atoi(argv[3]);
	if (count <= 0 || threads <= 0 || threads > 64)
		return 2;
	if (config_load(argv[1], &c, err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (c->softhsm2_conf)
		setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1);
	k = &c->keys[0];
	if (signer_open(c->module, c->pin_file, &s, err) < 0 ||
	    signer_add_key(s, k->name, k->uri, k->certificate, k->chain, err) < 0 ||
	    signer_find_pkey(s, k->uri, &proto.pkey, err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	proto.s = s;
	proto.key = k->name;
	raw = run_sign(sign_raw, &proto, threads, count, &errors);
	cms = run_sign(sign_cms, &proto, threads, count, &errors);
	printf("threads=%d raw_ecdsa_per_s=%.0f cms_per_s=%.0f errors=%d\n", threads, raw, cms,
	       errors);
	signer_free(s);
	config_free(c);
	return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	int r = 2;
	if (argc > 1 && !strcmp(argv[1], "write"))
		r = cmd_write(argc - 1, argv + 1);
	else if (argc > 1 && !strcmp(argv[1], "sign"))
		r = cmd_sign(argc - 1, argv + 1);
	if (r == 2)
		fprintf(stderr, "usage: signfs-bench write DIR COUNT KIB THREADS\n"
				"       signfs-bench sign CONFIG COUNT THREADS\n");
	return r;
}
