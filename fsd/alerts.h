/* Certificate expiry checks: at start and every alert_interval seconds, each
 * alert due fires once (logged, audited, shown in /inventory/alerts, and
 * handed to alert_command with its details in the environment). */
#pragma once

struct fsd;

int alerts_start(struct fsd *d);
void alerts_stop(struct fsd *d);
