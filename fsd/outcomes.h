/* The pipeline's questions and outcomes, fanned out to the features that
 * registered for them: each feature subscribes next to its constructor
 * (one line of start-up), and nothing here knows what a feature does.
 *
 * For each event the audit record's common fields (who, what, which key,
 * the digests as hex, the writer's name, the certificate) are built once;
 * each handler gets its own copy to complete. Handlers run in their order
 * (OUTCOMES_FIRST, then OUTCOMES_FEATURE, then OUTCOMES_LAST), and in the
 * order they subscribed within one. A question (ATTEST, VET, SIGNED) goes
 * to its answerers until one fails or gives a verdict that ends the commit
 * (REFUSE, REFUSE_NO_ROOM, ATTESTED_ONLY); HOLD_FOR_REVIEW goes on (a held
 * signature gets its provenance statement too). An outcome goes to every
 * subscriber. Handlers run on the committing thread with the locks
 * ingest.h names for each hook; the registry is fixed before the ingest
 * opens and read without a lock. */
#pragma once

#include "audit.h"
#include "ingest.h"

/* A bit per enum ingest_result, for the results a handler wants. */
#define OUTCOME(result) (1u << (result))

enum outcomes_order {
	OUTCOMES_FIRST,	  /* the record a question needs before it is answered */
	OUTCOMES_FEATURE, /* the features */
	OUTCOMES_LAST,	  /* the closing record, once the features have seen it */
};

/* A question's answerer: 0 with the verdict in ANSWER (left PUBLISH to
 * let the others decide), or a negative errno with why in ANSWER's veto. */
typedef int (*outcomes_answer_fn)(void *ctx, const struct ingest_event *ev,
				  struct audit_record *rec, struct ingest_answer *answer);

/* An outcome's subscriber. */
typedef void (*outcomes_notify_fn)(void *ctx, const struct ingest_event *ev,
				   struct audit_record *rec);

struct outcomes;
struct signer;
struct usernames;

/* The writer's name comes from NAMES, the key's certificate from SIGNER
 * (either may be NULL: left out). 0 or -ENOMEM. */
int outcomes_new(struct signer *signer, struct usernames *names, struct outcomes **ret);

/* Accepts NULL. */
void outcomes_free(struct outcomes *o);

/* FN (with CTX) answers the questions in RESULTS (OUTCOME() bits), in
 * ORDER. 0, or -ENOMEM. */
int outcomes_answer(struct outcomes *o, unsigned results, enum outcomes_order order,
		    outcomes_answer_fn fn, void *ctx);

/* FN (with CTX) hears the outcomes in RESULTS, in ORDER. 0, or -ENOMEM. */
int outcomes_subscribe(struct outcomes *o, unsigned results, enum outcomes_order order,
		       outcomes_notify_fn fn, void *ctx);

/* The pipeline's hooks (an ingest_ask_fn and an ingest_notify_fn) for O. */
int outcomes_ask(struct outcomes *o, const struct ingest_event *ev, struct ingest_answer *answer);
void outcomes_notify(struct outcomes *o, const struct ingest_event *ev);

/* The result's name ("signed", "published", ...), for logs. */
const char *outcomes_name(enum ingest_result result);
