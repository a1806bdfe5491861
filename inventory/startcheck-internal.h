/* For the start check's own files only (startcheck*.c): what one part
 * calls in another. */
#pragma once

#include <stdint.h>

/* Every object named after a record: none published at or past SIZE, the
 * store's record count (those never published are removed, as at start).
 * 0, or -EIO with what is wrong in ERR. */
int startcheck_scan_objects(const char *dir, uint64_t size, char *err);
