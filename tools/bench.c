/* signfs-bench: the measuring half of tools/bench.sh (not installed).
 *   signfs-bench write DIR COUNT KIB THREADS [sync]   create COUNT files of
 *       KIB each in DIR with THREADS writers; prints files/s and close()
 *       latency (in signfs, close returns once the file is signed and
 *       published). With sync, each file is fdatasync'd before close: the
 *       durable baseline of a plain filesystem.
 *   signfs-bench sign CONFIG COUNT THREADS     signing rate of the config's
 *       token: a bare signature over a digest, and a full CMS signature.
 *   signfs-bench fill CONFIG RECORDS ARTIFACTS   a stopped daemon's state
 *       made old: RECORDS audit records spread over the past year, signed
 *       by a checkpoint, and ARTIFACTS publications in the outbox.
 *   signfs-bench tree DIR COUNT DIRS THREADS [REWRITES]   COUNT distinct
 *       paths of 512 bytes written into DIRS directories under DIR (through
 *       the mount, as builds publish), in ten rounds; prints the rate of the
 *       first and the last tenth. Then REWRITES new versions of paths
 *       already written (a rebuild of the same name), spread over them all. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "audit.h"
#include "config.h"
#include "dsse.h"
#include "outbox.h"
#include "signer.h"
#include "store.h"
#include "timestamp.h"

static double now(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for this clock */
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A thread of the benchmark: one that did not start would make its figure
 * wrong, so the run stops instead. */
static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	if (pthread_create(t, NULL, fn, arg) != 0)
		abort();
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
	bool sync;
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
		if (fd < 0 || write(fd, buf, w->size) != (ssize_t)w->size ||
		    (w->sync && fdatasync(fd) < 0)) {
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

	if (argc != 5 && !(argc == 6 && !strcmp(argv[5], "sync")))
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
		w[i] = (struct writer){argv[1], i, per, size, argc == 6, lat + (size_t)i * per, 0};
		start_thread(&t[i], write_files, &w[i]);
	}
	for (int i = 0; i < threads; i++) {
		(void)pthread_join(t[i], NULL); /* our own threads: cannot fail */
		errors += w[i].errors;
	}
	secs = now() - start;
	qsort(lat, (size_t)per * threads, sizeof(*lat), cmp_double);
	printf("files=%d errors=%d seconds=%.3f rate=%.0f close_p50_ms=%.3f close_p99_ms=%.3f "
	       "close_max_ms=%.3f\n",
	       per * threads, errors, secs, per * threads / secs, lat[per * threads / 2] * 1e3,
	       lat[(size_t)(per * threads * 0.99)] * 1e3, lat[per * threads - 1] * 1e3);
	free(lat);
	free(w);
	free(t);
	return errors ? 1 : 0;
}

struct signer_job {
	struct signer *s;
	const char *key;
	EVP_PKEY *pkey;
	struct timestamper *ts; /* the local TSA of the config, or NULL */
	bool statement;		/* also a provenance statement's envelope */
	int count;
	int errors;
};

static int stamp(void *ctx, const unsigned char *sig, size_t len, unsigned char **token,
		 size_t *token_len)
{
	struct timestamp_info info;
	char err[ERROR_MAX];
	return timestamper_token(ctx, sig, len, token, token_len, &info, err);
}

/* CMS signatures, with the job's local timestamp if it has a TSA, as a
 * commit makes them. */
static void *sign_cms(void *arg)
{
	struct signer_job *j = arg;
	unsigned char d[SHA256_LEN] = {0}, *der;
	size_t len;
	char err[ERROR_MAX];

	for (int i = 0; i < j->count; i++) {
		memcpy(d, &i, sizeof(i));
		if (signer_sign_stamped(j->s, j->key, d, time(NULL), j->ts ? stamp : NULL, j->ts,
					&der, &len, err) < 0)
			j->errors++;
		else
			OPENSSL_free(der);
		if (j->statement) {
			/* A statement of the size a commit signs (about 1.2 KB). */
			char body[1200], *env;
			memset(body, 'x', sizeof(body));
			memcpy(body, &i, sizeof(i));
			if (signer_sign_envelope(j->s, j->key, DSSE_INTOTO_TYPE, body, sizeof(body),
						 &env, err) < 0)
				j->errors++;
			else
				free(env);
		}
	}
	return NULL;
}

/* The config's local TSA, as signfsd sets it up; NULL without one. */
static struct timestamper *local_tsa(const struct config *c, struct signer *s)
{
	const struct config_key *k = c->timestamp.key ? config_find_key(c, c->timestamp.key) : NULL;
	struct timestamper *t = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *pkey;
	X509 *cert = NULL;
	char err[ERROR_MAX];

	if (!k || c->timestamp.n_urls ||
	    signer_add_key(s, k->name, k->uri, k->certificate, k->chain, err) < 0 ||
	    signer_find_pkey(s, k->uri, &pkey, err) < 0 ||
	    signer_certificate(s, k->name, &cert, &chain) < 0 ||
	    timestamper_new(NULL, 0, NULL, NULL, 0, pkey, cert, chain, &t, err) < 0)
		t = NULL;
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	return t;
}

static void *sign_raw(void *arg)
{
	struct signer_job *j = arg;
	unsigned char d[SHA256_LEN] = {0}, sig[1024];

	for (int i = 0; i < j->count; i++) {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(j->pkey, NULL);
		size_t len = sizeof(sig);
		memcpy(d, &i, sizeof(i));
		/* The digest's algorithm, as CMS signs: PKCS#1 v1.5 for RSA. */
		if (!ctx || EVP_PKEY_sign_init(ctx) <= 0 ||
		    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) <= 0 ||
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
		start_thread(&t[i], fn, &j[i]);
	}
	for (int i = 0; i < threads; i++) {
		(void)pthread_join(t[i], NULL); /* our own threads: cannot fail */
		*errors += j[i].errors;
	}
	return (count / threads) * threads / (now() - start);
}

static int cmd_sign(int argc, char **argv)
{
	struct config *c;
	struct signer *s;
	const struct config_key *k;
	char err[ERROR_MAX];
	struct signer_job proto = {0};
	int count, threads, errors = 0;
	double raw, cms, stamped, file;

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
		(void)setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1); /* ENOMEM: the token says so */
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
	proto.ts = local_tsa(c, s);
	stamped = proto.ts ? run_sign(sign_cms, &proto, threads, count, &errors) : 0;
	/* A file's signatures in the embedded default: the stamped CMS and its
	 * provenance statement's envelope, with the same key. */
	proto.statement = true;
	file = run_sign(sign_cms, &proto, threads, count, &errors);
	printf("threads=%d raw_sign_per_s=%.0f cms_per_s=%.0f cms_stamped_per_s=%.0f "
	       "file_per_s=%.0f errors=%d\n",
	       threads, raw, cms, stamped, file, errors);
	timestamper_free(proto.ts);
	signer_free(s);
	config_free(c);
	return errors ? 1 : 0;
}

/* ---- fill: a state with a long history ---- */

struct fill {
	struct audit *audit;
	int64_t start_ms, step_ms;
	uint64_t next, count;
	pthread_mutex_t lock;
	int errors;
};

/* Records are stamped in the order they commit, a step apart. */
static int64_t fill_clock(void *ctx)
{
	struct fill *f = ctx;
	return f->start_ms +
	       (int64_t)__atomic_fetch_add(&f->next, 1, __ATOMIC_RELAXED) * f->step_ms;
}

static void *fill_records(void *arg)
{
	struct fill *f = arg;
	char err[ERROR_MAX], path[64], sha[65];

	for (;;) {
		uint64_t i;
		pthread_mutex_lock(&f->lock);
		i = f->count ? f->count-- : 0;
		pthread_mutex_unlock(&f->lock);
		if (!i)
			return NULL;
		snprintf(path, sizeof(path), "fill/%06llu.bin",
			 (unsigned long long)(i / 2 % 100000));
		snprintf(sha, sizeof(sha), "%064llx", (unsigned long long)i / 2);
		/* A signature is two records, as signfsd writes them: signed,
		 * then published (which the anomaly profiles learn), by 20
		 * builders. */
		struct audit_record rec = {.event = i % 2 ? "signed" : "published",
					   .uid = 1000 + i / 2 % 20,
					   .gid = 1000,
					   .pid = 4242,
					   .user = "builder",
					   .exe = "/usr/bin/cp",
					   .path = path,
					   .size = 4096,
					   .sha256 = sha,
					   .key = "codesign",
					   .rule = "bench",
					   .decision = "allow"};
		/* Many appenders at once: the log commits them in groups. */
		if (audit_append(f->audit, &rec, NULL, err) < 0) {
			__atomic_fetch_add(&f->errors, 1, __ATOMIC_RELAXED);
			return NULL;
		}
	}
}

static int fill_artifacts(int state_fd, unsigned long n)
{
	struct outbox *o;
	char path[64];
	static const unsigned char sig[] = "not a signature: a benchmark's filler";
	int r = outbox_open(state_fd, NULL, &o);

	if (r < 0)
		return r;
	for (unsigned long i = 0; i < n && r == 0; i++) {
		int fd = openat(state_fd, "fill.tmp", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			r = -errno;
			break;
		}
		snprintf(path, sizeof(path), "fill/%02lu/%06lu.bin", i % 100, i);
		if (write(fd, path, strlen(path)) < 0)
			r = -errno;
		if (r == 0)
			r = outbox_publish(o, path, fd, sig, sizeof(sig), outbox_new_id(o));
		close(fd);
	}
	(void)unlinkat(state_fd, "fill.tmp", 0); /* a leftover is harmless scratch */
	outbox_free(o);
	return r;
}

static int cmd_fill(int argc, char **argv)
{
	struct config *c;
	struct signer *s = NULL;
	struct store *store = NULL;
	EVP_PKEY *key = NULL;
	char err[ERROR_MAX];
	char origin[CONFIG_ORIGIN_MAX];
	struct fill f = {.lock = PTHREAD_MUTEX_INITIALIZER};
	pthread_t t[128];
	struct timespec ts;
	unsigned long artifacts;
	int state_fd = -1, r = 1;

	if (argc != 4)
		return 2;
	f.count = strtoull(argv[2], NULL, 10);
	artifacts = strtoul(argv[3], NULL, 10);
	if (config_load(argv[1], &c, err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (c->softhsm2_conf)
		(void)setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1); /* ENOMEM: the token says so */
	config_audit_origin(c, origin);
	if (signer_open(c->module, c->pin_file, &s, err) < 0 ||
	    signer_find_pkey(s, c->audit_key, &key, err) < 0 ||
	    store_open(c->state_dir, true, &store, err) < 0 ||
	    audit_open(store, origin, key, &f.audit, err) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	/* A year of history, ending an hour ago. */
	(void)clock_gettime(CLOCK_REALTIME, &ts); /* cannot fail for this clock */
	f.step_ms = f.count ? 365LL * 86400 * 1000 / f.count : 1;
	f.start_ms = (int64_t)ts.tv_sec * 1000 - 365LL * 86400 * 1000 - 3600 * 1000;
	audit_set_clock(f.audit, fill_clock, &f);
	for (int i = 0; i < 128; i++)
		start_thread(&t[i], fill_records, &f);
	for (int i = 0; i < 128; i++)
		(void)pthread_join(t[i], NULL); /* our own threads: cannot fail */
	if (f.errors || audit_checkpoint(f.audit, err) < 0) {
		fprintf(stderr, "filling the audit log failed: %s\n", err);
		goto out;
	}
	state_fd = open(c->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (state_fd < 0 || fill_artifacts(state_fd, artifacts) < 0) {
		fprintf(stderr, "filling the outbox failed\n");
		goto out;
	}
	printf("records=%llu artifacts=%lu\n", (unsigned long long)f.next, artifacts);
	r = 0;
out:
	if (state_fd >= 0)
		close(state_fd);
	audit_close(f.audit);
	store_close(store);
	signer_free(s); /* and KEY, which it owns */
	config_free(c);
	return r;
}

struct tree_writer {
	const char *dir;
	int from, to, step, dirs; /* files FROM, FROM + STEP, ... below TO */
	int count;		  /* a rewrite's number I names path I % COUNT */
	int errors;
};

static void *write_tree(void *arg)
{
	struct tree_writer *w = arg;
	char path[4096], buf[512];

	for (int i = w->from; i < w->to; i += w->step) {
		int fd, n = i % w->count;

		snprintf(path, sizeof(path), "%s/d%04d/build-%08d.bin", w->dir, n % w->dirs, n);
		memset(buf, 'a' + i % 26, sizeof(buf));
		memcpy(buf, &i, sizeof(i)); /* distinct content per path */
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
			w->errors++;
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (close(fd) < 0)
			w->errors++;
	}
	return NULL;
}

static int cmd_tree(int argc, char **argv)
{
	int count, dirs, threads, rewrites, errors = 0;
	double rate[11], start = now();
	char path[4096];

	if (argc != 5 && argc != 6)
		return 2;
	count = atoi(argv[2]);
	dirs = atoi(argv[3]);
	threads = atoi(argv[4]);
	rewrites = argc == 6 ? atoi(argv[5]) : 0;
	if (count < 10 || dirs <= 0 || dirs > 10000 || threads <= 0 || threads > 64 ||
	    rewrites < 0 || rewrites > INT_MAX - count)
		return 2;
	for (int d = 0; d < dirs; d++) {
		snprintf(path, sizeof(path), "%s/d%04d", argv[1], d);
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			perror(path);
			return 1;
		}
	}
	/* Ten rounds of new paths, then one of rewrites (if any). */
	for (int round = 0; round < 10 + !!rewrites; round++) {
		struct tree_writer w[64];
		pthread_t t[64];
		int from = count / 10 * round, to = round == 9 ? count : count / 10 * (round + 1);
		double t0 = now();

		if (round == 10) {
			from = count;
			to = count + rewrites;
		}
		for (int i = 0; i < threads; i++) {
			w[i] = (struct tree_writer){argv[1], from + i, to, threads, dirs, count, 0};
			start_thread(&t[i], write_tree, &w[i]);
		}
		for (int i = 0; i < threads; i++) {
			(void)pthread_join(t[i], NULL); /* our own threads: cannot fail */
			errors += w[i].errors;
		}
		rate[round] = (to - from) / (now() - t0);
	}
	printf("files=%d dirs=%d errors=%d seconds=%.3f first_tenth_rate=%.0f "
	       "last_tenth_rate=%.0f rewrites=%d rewrite_rate=%.0f\n",
	       count, dirs, errors, now() - start, rate[0], rate[9], rewrites,
	       rewrites ? rate[10] : 0.0);
	return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	int r = 2;
	if (argc > 1 && !strcmp(argv[1], "write"))
		r = cmd_write(argc - 1, argv + 1);
	else if (argc > 1 && !strcmp(argv[1], "sign"))
		r = cmd_sign(argc - 1, argv + 1);
	else if (argc > 1 && !strcmp(argv[1], "fill"))
		r = cmd_fill(argc - 1, argv + 1);
	else if (argc > 1 && !strcmp(argv[1], "tree"))
		r = cmd_tree(argc - 1, argv + 1);
	if (r == 2)
		fprintf(stderr, "usage: signfs-bench write DIR COUNT KIB THREADS [sync]\n"
				"       signfs-bench sign CONFIG COUNT THREADS\n"
				"       signfs-bench fill CONFIG RECORDS ARTIFACTS\n"
				"       signfs-bench tree DIR COUNT DIRS THREADS\n");
	return r;
}
