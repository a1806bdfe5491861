/* Checkpoints shipped off the host, where root on this host cannot take
 * them back (a witness, a syslog collector, object storage): each newly
 * signed checkpoint goes to checkpoint_command, the note on its standard
 * input and SIGNFS_CHECKPOINT_ORIGIN, SIGNFS_CHECKPOINT_SIZE in its
 * environment, from a thread of its own so that a slow command never holds
 * up signing. When checkpoints come faster than the command runs, the
 * newest is shipped: each one covers every one before it. */
#pragma once

struct audit;
struct shipper;

/* Start shipping the checkpoints of A with CMD. NULL when out of memory. */
struct shipper *shipper_start(const char *cmd, struct audit *a);

/* A new checkpoint was signed. Accepts NULL. */
void shipper_offer(struct shipper *s);

/* Ship what was offered and not shipped yet, then stop. Accepts NULL. */
void shipper_stop(struct shipper *s);
