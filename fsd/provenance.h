/* Provenance: beside each publication, X.intoto.jsonl, a DSSE envelope over
 * an in-toto Statement v1 with an SLSA provenance v1 predicate (who wrote
 * the artifact, under which rule and policy, which audit leaf records it,
 * when, its timestamp, a quorum's writers), signed on the token with the
 * rule's key. Made when the signature is recorded, kept until the outbox
 * builds the publication's object, and written into that object before the
 * flush that makes it durable (outbox_set_statement). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ingest.h"

struct audit_record;
struct config;
struct policy_live;
struct provenance;
struct signer;

/* Statements are made under the policy in force (POLICY: provenance = and
 * its version), signed by SIGNER, naming C's audit origin. 0 or -ENOMEM. */
int provenance_new(const struct config *c, struct policy_live *policy, struct signer *signer,
		   struct provenance **ret);

/* The statements not yet taken go too. Accepts NULL. */
void provenance_free(struct provenance *pv);

/* The SIGNED event EV, recorded as REC with leaf index SEQ: its statement
 * made and signed with the event's key, kept for object SEQ, unless the
 * rule says provenance = no. 0, or -EIO with why in VETO (the commit then
 * fails: nothing is published without the statement its rule wants). */
int provenance_signed(struct provenance *pv, const struct ingest_event *ev,
		      const struct audit_record *rec, uint64_t seq, char veto[INGEST_VETO_MAX]);

/* The outbox's statement hook (an outbox_statement_fn; CTX is the struct
 * provenance): the envelope kept for object ID, one line with its newline, handed
 * over; NULL when there is none. */
int provenance_statement(void *ctx, uint64_t id, char **ret, size_t *ret_len);

struct outcomes;

/* Make the statement of each signature O's SIGNED question records and
 * the features let through or hold (subscribe after the anomaly check).
 * 0 or -ENOMEM. */
int provenance_subscribe(struct provenance *pv, struct outcomes *o);
