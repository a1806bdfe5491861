/* See metrics.h. Label sets are small and bounded: keys come from the
 * config, results and denial reasons from fixed texts. */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "outcomes.h"

#define MAX_SERIES 64

static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5};
#define N_BUCKETS (sizeof(buckets) / sizeof(*buckets))

struct series {
	char a[128], b[64];
	uint64_t n;
};

struct metrics {
	pthread_mutex_t lock;
	struct series sigs[MAX_SERIES], denials[MAX_SERIES];
	size_t n_sigs, n_denials;
	uint64_t bucket_counts[N_BUCKETS], count, bytes;
	double sum;
};

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (m)
		pthread_mutex_init(&m->lock, NULL);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Holds m->lock. Past MAX_SERIES, new label sets are not counted. */
static void bump(struct series *s, size_t *n, const char *a, const char *b)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(s[i].a, a) && !strcmp(s[i].b, b)) {
			s[i].n++;
			return;
		}
	if (*n == MAX_SERIES)
		return;
	snprintf(s[*n].a, sizeof(s[*n].a), "%s", a);
	snprintf(s[*n].b, sizeof(s[*n].b), "%s", b);
	s[(*n)++].n = 1;
}

void metrics_commit(struct metrics *m, const char *key, const char *result, double seconds,
		    uint64_t bytes)
{
	pthread_mutex_lock(&m->lock);
	bump(m->sigs, &m->n_sigs, key ? key : "", result);
	for (size_t i = 0; i < N_BUCKETS; i++)
		if (seconds <= buckets[i])
			m->bucket_counts[i]++;
	m->count++;
	m->sum += seconds;
	if (!strcmp(result, "signed"))
		m->bytes += bytes;
	pthread_mutex_unlock(&m->lock);
}

void metrics_denial(struct metrics *m, const char *reason)
{
	pthread_mutex_lock(&m->lock);
	bump(m->denials, &m->n_denials, reason ? reason : "", "");
	pthread_mutex_unlock(&m->lock);
}

void metrics_label(void *file, const char *v)
{
	FILE *f = file;
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*v, f);
	}
}

void metrics_render(struct metrics *m, void *file)
{
	FILE *f = file;

	pthread_mutex_lock(&m->lock);
	fputs("# HELP signfs_signatures_total Commits by signing key and result.\n"
	      "# TYPE signfs_signatures_total counter\n",
	      f);
	for (size_t i = 0; i < m->n_sigs; i++) {
		fputs("signfs_signatures_total{key=\"", f);
		metrics_label(f, m->sigs[i].a);
		fprintf(f, "\",result=\"%s\"} %llu\n", m->sigs[i].b,
			(unsigned long long)m->sigs[i].n);
	}
	fputs("# HELP signfs_denials_total Writes refused by the policy, by reason.\n"
	      "# TYPE signfs_denials_total counter\n",
	      f);
	for (size_t i = 0; i < m->n_denials; i++) {
		fputs("signfs_denials_total{reason=\"", f);
		metrics_label(f, m->denials[i].a);
		fprintf(f, "\"} %llu\n", (unsigned long long)m->denials[i].n);
	}
	fputs("# HELP signfs_commit_seconds Time from close() to published (or failed).\n"
	      "# TYPE signfs_commit_seconds histogram\n",
	      f);
	for (size_t i = 0; i < N_BUCKETS; i++)
		fprintf(f, "signfs_commit_seconds_bucket{le=\"%g\"} %llu\n", buckets[i],
			(unsigned long long)m->bucket_counts[i]);
	fprintf(f,
		"signfs_commit_seconds_bucket{le=\"+Inf\"} %llu\n"
		"signfs_commit_seconds_sum %.6f\n"
		"signfs_commit_seconds_count %llu\n",
		(unsigned long long)m->count, m->sum, (unsigned long long)m->count);
	fprintf(f,
		"# HELP signfs_ingested_bytes_total Bytes of artifacts signed and published.\n"
		"# TYPE signfs_ingested_bytes_total counter\n"
		"signfs_ingested_bytes_total %llu\n",
		(unsigned long long)m->bytes);
	pthread_mutex_unlock(&m->lock);
}

static void count(void *ctx, const struct ingest_event *ev, struct audit_record *rec)
{
	struct metrics *m = ctx;

	if (ev->result == INGEST_DENIED)
		metrics_denial(m, ev->reason);
	else if (ev->result == INGEST_PUBLISHED)
		metrics_commit(m, ev->key, "signed", ev->seconds, ev->size);
	else
		metrics_commit(m, ev->key, "failed", ev->seconds, 0);
}

int metrics_subscribe(struct metrics *m, struct outcomes *o)
{
	return outcomes_subscribe(
	    o, OUTCOME(INGEST_PUBLISHED) | OUTCOME(INGEST_DENIED) | OUTCOME(INGEST_FAILED),
	    OUTCOMES_FEATURE, count, m);
}
